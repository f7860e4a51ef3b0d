"""Booking HTTP API: tourists' bookings (guest token access), waiting list, operators' views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, ValidationException
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.booking.schemas import (
    BookingCreate,
    BookingCreated,
    BookingOut,
    BookingUpdate,
    CancelIn,
    CancellationOut,
    CancellationQuote,
    CheckInIn,
    CheckInOut,
    DepartureCancellationOut,
    Manifest,
    RebookIn,
    SalesOverview,
    WaitlistIn,
    WaitlistOut,
)
from app.booking.services import access, cancel, guest, hold, operations, rebook, waitlist
from app.core import throttle
from app.core.errors import NotFound, problem_responses
from app.core.i18n import _
from app.core.idempotency import guest_session, idempotent
from app.core.openapi import JsonOrCsvOperation
from app.core.settings import Settings
from app.core.throttle import Limit

T = TypeVar("T")

BookingToken = Annotated[
    str | None,
    HeaderParameter(
        name="X-Booking-Token",
        description="The access token returned when the booking was made",
        required=False,
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Retries with the same key and body get the first response again. A "
        "key belongs to its caller: a guest's answer is replayed only to the guest session "
        "(`tourline_guest` cookie, set on the first answer) that made it; another session "
        "gets its own result, a caller without the cookie 409 `idempotency_key_taken`.",
        required=False,
        max_length=255,
    ),
]

# Wrong booking tokens: 20 per client address and 100 per booking in 10 minutes, then 429
# (for every process of the service: `app.core.throttle`). The per-booking limit also stops
# a guess spread over many addresses; a token has 192 random bits, so neither is reached by
# honest use.
TOKEN_GUESSES_PER_ADDRESS = 20
TOKEN_GUESSES_PER_BOOKING = 100
TOKEN_GUESS_WINDOW_SECONDS = 600


async def guarded(request: Request[Any, Any, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Run a guest call of a booking's route, counting it against the wrong-token limits of
    the client address and of the booking before the token is checked; a wrong token keeps
    its count, a right one gives it back."""
    settings: Settings = request.app.state["settings"]
    client = request.client.host if request.client else "unknown"
    reference = access.normalize_reference(str(request.path_params.get("reference", "")))
    limits = [
        Limit(f"token:ip:{client}", TOKEN_GUESSES_PER_ADDRESS, TOKEN_GUESS_WINDOW_SECONDS),
        Limit(f"token:booking:{reference}", TOKEN_GUESSES_PER_BOOKING, TOKEN_GUESS_WINDOW_SECONDS),
    ]
    async with await throttle.attempt(
        settings.redis_url, limits, _("Too many failed attempts; try again later."),
        "too_many_attempts",
    ) as counted:  # fmt: skip
        try:
            return await call()
        except NotFound as exc:
            if exc.code == "booking_not_found":
                counted.failed()
            raise


async def _guest_idempotent(
    request: Request[Any, Any, Any],
    reference: str,
    token: str | None,
    key: str | None,
    run: Callable[[], Awaitable[Response[Any]]],
) -> Response[Any]:
    """An idempotent guest call. The token is checked before any replay: a stored answer is
    never shown without it, and a wrong token is always a counted failure."""

    async def call() -> Response[Any]:
        await access.guest_booking(reference, token)
        scope = f"booking:{access.normalize_reference(reference)}"
        return await idempotent(request, key, scope, run)

    return await guarded(request, call)


def calendar_response(reference: str, content: bytes) -> Response[bytes]:
    name = access.normalize_reference(reference)
    return Response(
        content,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.ics"'},
    )


def manifest_csv_response(data: Manifest) -> Response[bytes]:
    """The manifest as a spreadsheet (with a BOM, so that Excel reads the Chinese)."""
    return Response(
        content=operations.manifest_csv(data).encode("utf-8-sig"),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="manifest-{data.departure_id}.csv"'},
    )


def _created(content: Any) -> Response[Any]:
    return Response(content, status_code=201)


def _ok(content: Any) -> Response[Any]:
    return Response(content, status_code=200)


class BookingController(Controller):
    path = "/api/v1/bookings"
    tags = ["Public: bookings"]

    @post(
        "/",
        summary="Hold seats",
        description="Reserve seats or berths on a departure until `expires_at`: give counts per "
        "seat class and passenger type (seats are assigned, parties kept together) or explicit "
        "seat labels. All seats or none: 409 `sold_out` / `not_enough_seats`. The access token "
        "is shown only in this response.",
        responses=problem_responses(400, 404, 409, 422),
        status_code=201,
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        data: JSONBody[BookingCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[BookingCreated]:
        async def run() -> Response[Any]:
            return _created(await hold.create_booking(data))

        session = guest_session(request, secure=settings.is_production)
        return await idempotent(request, idempotency_key, "public:bookings", run, guest=session)

    @get(
        "/{reference:str}",
        summary="My booking",
        description="Needs the booking's token in `X-Booking-Token`; otherwise 404. "
        "`?include=itinerary` adds the trip day by day on its dates.",
        responses=problem_responses(404, 429),
    )
    async def read(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        token: BookingToken = None,
        include: Annotated[
            Literal["itinerary"] | None,
            QueryParameter(description="`itinerary`: the trip day by day on its dates"),
        ] = None,
    ) -> BookingOut:
        with_itinerary = include == "itinerary"
        return await guarded(
            request, lambda: guest.get_booking(reference, token, with_itinerary=with_itinerary)
        )

    @patch(
        "/{reference:str}",
        summary="Add contact and passenger details",
        description="While on hold. Prices, statuses and owners cannot be set (400).",
        responses=problem_responses(400, 404, 409, 429),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        data: JSONBody[BookingUpdate],
        token: BookingToken = None,
    ) -> BookingOut:
        return await guarded(request, lambda: guest.update_booking(reference, token, data))

    @get(
        "/{reference:str}/cancellation",
        summary="What cancelling now would refund",
        description="The refund under the route's cancellation policy if the booking were "
        "cancelled now, and the policy itself; nothing changes. 409 `departure_passed` once "
        "the departure has left.",
        responses=problem_responses(404, 409, 429),
    )
    async def cancellation_quote(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: BookingToken = None
    ) -> CancellationQuote:
        return await guarded(request, lambda: cancel.guest_cancellation_quote(reference, token))

    @get(
        "/{reference:str}/calendar",
        summary="My trip as a calendar event",
        description="An iCalendar (RFC 5545) event: when and where to board, which seats.",
        responses=problem_responses(404, 429),
        media_type="text/calendar",
    )
    async def calendar(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: BookingToken = None
    ) -> Response[bytes]:
        content = await guarded(request, lambda: guest.guest_calendar(reference, token))
        return calendar_response(reference, content)

    @post(
        "/{reference:str}/cancel",
        summary="Cancel my booking",
        description="Applies the route's cancellation policy and returns the refund; the seats "
        "go back on sale at once.",
        responses=problem_responses(400, 404, 409, 422, 429),
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        token: BookingToken = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[CancellationOut]:
        body = await request.body()
        data = CancelIn() if not body.strip() else _decode(body, CancelIn)

        async def run() -> Response[Any]:
            return _ok(await cancel.guest_cancel(reference, token, data.reason))

        return await _guest_idempotent(request, reference, token, idempotency_key, run)

    @post(
        "/{reference:str}/rebook",
        summary="Move my booking to another departure of the same line",
        description="Takes the new seats before releasing the old ones. A hold moves and is "
        "repriced; a paid booking moves at once when the new fare costs no more, and the "
        "difference is refunded (`refund`); when it costs more, the new seats are held as a "
        "`pending_change` until its `amount_due` is paid (`POST .../payments`), and the booking "
        "stays where it is if it is not paid in time. Asked twice, the move is made once. "
        "409 if the new departure is full.",
        responses=problem_responses(400, 404, 409, 422, 429),
        status_code=200,
    )
    async def rebook(
        self,
        request: Request[Any, Any, Any],
        reference: FromPath[str],
        data: JSONBody[RebookIn],
        token: BookingToken = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[BookingOut]:
        async def run() -> Response[Any]:
            return _ok(await rebook.rebook(reference, token, data.departure_id))

        return await _guest_idempotent(request, reference, token, idempotency_key, run)


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ValidationException(
            extra=[{"message": str(exc), "key": "", "source": "body"}]
        ) from exc
    except msgspec.DecodeError as exc:
        raise ClientException("JSON is malformed") from exc


class WaitlistController(Controller):
    path = "/api/v1/departures"
    tags = ["Public: bookings"]

    @post(
        "/{departure_id:uuid}/waitlist",
        summary="Join the waiting list of a sold-out departure",
        description="When seats free up, the first entry that fits gets a hold and a message.",
        responses=problem_responses(400, 404, 409, 422),
        status_code=201,
    )
    async def join(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        departure_id: FromPath[UUID],
        data: JSONBody[WaitlistIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[WaitlistOut]:
        async def run() -> Response[Any]:
            return _created(await waitlist.join(departure_id, data))

        session = guest_session(request, secure=settings.is_production)
        scope = f"waitlist:{departure_id}"
        return await idempotent(request, idempotency_key, scope, run, guest=session)


class OperatorBookingController(Controller):
    path = "/api/v1/operator/departures"
    tags = ["Operator: departures"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @get(
        "/{departure_id:uuid}/manifest",
        operation_class=JsonOrCsvOperation,
        summary="Passenger manifest",
        description="Passengers of live bookings with seats, pick-up stops, contacts and "
        "check-in; `format=csv` for a spreadsheet; `sort=seat` (car and berth) or `pickup`.",
        responses=problem_responses(400, 401, 403, 404),
        media_type="application/json",
    )
    async def manifest(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
        sort: Annotated[Literal["seat", "pickup"], QueryParameter(name="sort")] = "seat",
    ) -> Response[Any]:
        data = await operations.manifest(operator, departure_id, sort)
        if format == "csv":
            return manifest_csv_response(data)
        return Response(data)

    @post(
        "/{departure_id:uuid}/check-in",
        summary="Check passengers in at boarding",
        description="By booking reference: every passenger, or the listed seats.",
        responses=problem_responses(400, 401, 403, 404, 409),
        status_code=200,
    )
    async def check_in(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[CheckInIn],
    ) -> CheckInOut:
        return await operations.check_in(operator, departure_id, data)

    @get(
        "/{departure_id:uuid}/sales",
        summary="Sales overview",
        description="Seats sold, held and free per class, and revenue.",
        responses=problem_responses(401, 403, 404),
    )
    async def sales(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> SalesOverview:
        return await operations.sales_overview(operator, departure_id)

    @post(
        "/{departure_id:uuid}/cancel",
        summary="Cancel a departure and all its bookings",
        description="Every live booking is cancelled with a full refund and a notice, in one "
        "transaction; retrying is safe.",
        responses=problem_responses(401, 403, 404, 409, 422),
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[DepartureCancellationOut]:
        async def run() -> Response[Any]:
            return _ok(await operations.cancel_departure(operator, departure_id))

        scope = f"staff:{operator.staff_id}:cancel:{departure_id}"
        return await idempotent(request, idempotency_key, scope, run)
