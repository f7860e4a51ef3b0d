"""The tourist's booking pages: choose passengers and seats, hold them, add details, pay,
then see, cancel or move the booking through its reference-and-token link.

Every page calls the same services as the public API, so the rules (no seat sold twice,
prices from the server, the cancellation policy) are the API's. The token travels in the
link (`?token=`) and in the forms; pages are never cached and send no referrer.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import Cookie, FormMultiDict
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.booking.controllers import calendar_response, guarded
from app.booking.schemas import (
    BookingCreate,
    BookingOut,
    BookingUpdate,
    CancellationQuote,
    ClassCount,
    SeatChoice,
    WaitlistIn,
)
from app.booking.services import cancel, guest, hold, rebook, waitlist
from app.booking.tables import BookingStatus
from app.catalogue.schemas import PublicDepartureDetail, PublicSeat, PublicStop
from app.catalogue.services import public
from app.catalogue.tables import PassengerType, StopKind
from app.core import clock
from app.core.errors import DomainError, NotFound
from app.core.http_security import PAYMENT_PAGE_CSP, STRIPE_JS_URL
from app.core.i18n import _, current_locale
from app.core.pagination import PageParams
from app.core.settings import get_settings
from app.payments.services.start import start_payment
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, convert, small_number, text
from app.web.links import booking_path, lang_code
from app.web.templates import page_context

Token = Annotated[str | None, QueryParameter(name="token", required=False, max_length=128)]
# The guest's token for one booking's pages (path /bookings/{reference}).
BOOKING_COOKIE = "tourline_booking"
BOOKING_COOKIE_SECONDS = 60 * 24 * 3600
logger = logging.getLogger("tourline.pages")
# Departures offered when moving a booking.
REBOOK_CHOICES = 30


def booking_link(reference: str, token: str, suffix: str = "", **query: str) -> str:
    """The guest's link to their booking (or one of its pages), in the reader's language."""
    return booking_path(reference, token, suffix, lang=lang_code(), **query)


async def _send_link(reference: str, email: str) -> None:
    try:
        await guest.send_booking_link(reference, email)
    except Exception:  # after the answer: nobody to tell but the log
        logger.exception("could not send the link to booking %s", reference)


def _guest_token(request: Request[Any, Any, Any], token: str | None) -> str:
    """The token from the link, else the one this browser kept for the booking."""
    return token or request.cookies.get(BOOKING_COOKIE, "")


def _seconds_left(booking: BookingOut) -> int:
    """Of the hold, for the countdown (also shown as is where scripts do not run)."""
    if booking.expires_at is None:
        return 0
    return max(0, int((booking.expires_at - clock.now()).total_seconds()))


def _seat_groups(seats: list[PublicSeat]) -> list[tuple[str, list[PublicSeat]]]:
    """Seats as the vehicle has them: a train by car (berths by compartment), a bus whole."""
    groups: dict[int | None, list[PublicSeat]] = defaultdict(list)
    for seat in seats:
        groups[seat.car].append(seat)
    return [
        (_("Car {number}").format(number=car) if car is not None else _("Seats"), members)
        for car, members in groups.items()
    ]


def _pickups(departure: PublicDepartureDetail) -> list[PublicStop]:
    """The stops a tourist may board at (not drop-offs)."""
    return [stop for stop in departure.stops if stop.kind != StopKind.dropoff]


def _fares_by_class(departure: PublicDepartureDetail) -> dict[str, list[Any]]:
    by_class: dict[str, list[Any]] = defaultdict(list)
    order = {kind.value: index for index, kind in enumerate(PassengerType)}
    for fare in sorted(departure.fares, key=lambda f: order[f.passenger_type]):
        by_class[fare.seat_class].append(fare)
    return by_class


def _count_field(seat_class: str, passenger_type: str) -> str:
    return f"count.{seat_class}.{passenger_type}"


def _booking_from_form(
    departure: PublicDepartureDetail, seat_map: list[PublicSeat], form: FormMultiDict
) -> tuple[BookingCreate | None, FormProblems]:
    """The hold the form asks for: counts per class and passenger type, and, when the reader
    picked seats, exactly as many seats in each class as passengers counted for it."""
    problems = FormProblems()
    counts: list[ClassCount] = []
    for fare in departure.fares:
        name = _count_field(fare.seat_class, fare.passenger_type)
        number = small_number(text(form, name) or "0")
        if number is None:
            problems.add(name, _("Give a whole number."))
            continue
        if number:
            count = convert(
                {"seat_class": fare.seat_class, "passenger_type": fare.passenger_type,
                 "count": number},
                ClassCount, FormProblems(),
            )  # fmt: skip
            if count is None:
                problems.add(name, _("Choose from 0 to 10."))
            else:
                counts.append(count)
    if not counts and not problems:
        problems.add("counts", _("Choose at least one passenger."))
    picked = [label for label in form.getall("seat", []) if isinstance(label, str)]
    seats_by_label = {seat.label: seat for seat in seat_map}
    choices: list[SeatChoice] | None = None
    if picked and not problems:
        unknown = [label for label in picked if label not in seats_by_label]
        if unknown:
            problems.add("seat", _("Seat {label} is not on this vehicle.").format(label=unknown[0]))
        else:
            choices = _pair_seats(picked, seats_by_label, counts, problems)
    pickup = text(form, "pickup_stop_id") or None
    if pickup is not None and pickup not in {str(stop.id) for stop in _pickups(departure)}:
        problems.add("pickup_stop_id", _("Choose one of the listed stops."))
        pickup = None
    if problems:
        return None, problems
    data = BookingCreate(
        departure_id=departure.id,
        counts=None if choices else counts,
        seats=choices,
        pickup_stop_id=UUID(pickup) if pickup else None,
    )
    return data, problems


def _pair_seats(
    picked: list[str],
    seats_by_label: dict[str, PublicSeat],
    counts: list[ClassCount],
    problems: FormProblems,
) -> list[SeatChoice] | None:
    wanted: dict[str, list[PassengerType]] = defaultdict(list)
    for count in counts:
        wanted[count.seat_class].extend([count.passenger_type] * count.count)
    chosen: dict[str, list[str]] = defaultdict(list)
    for label in dict.fromkeys(picked):
        chosen[seats_by_label[label].seat_class].append(label)
    for seat_class in set(wanted) | set(chosen):
        if len(chosen[seat_class]) != len(wanted[seat_class]):
            problems.add(
                "seat",
                _(
                    "Pick one seat per passenger in each class ({picked} picked, {needed} "
                    "passengers), or pick none and let us choose."
                ).format(picked=len(chosen[seat_class]), needed=len(wanted[seat_class])),
            )
            return None
    return [
        SeatChoice(label=label, passenger_type=passenger_type)
        for seat_class, labels in chosen.items()
        for label, passenger_type in zip(labels, wanted[seat_class], strict=True)
    ]


def _contact(form: FormMultiDict, problems: FormProblems) -> dict[str, str]:
    """The contact fields of a form, in the reader's language; every empty one is named at
    once, not one per attempt."""
    for name in ("contact.name", "contact.email", "contact.phone"):
        if not text(form, name):
            problems.add(name, _("This field is required."))
    return {
        "name": text(form, "contact.name"),
        "email": text(form, "contact.email"),
        "phone": text(form, "contact.phone"),
        "locale": current_locale(),
    }


def _details_from_form(
    booking: BookingOut, form: FormMultiDict
) -> tuple[BookingUpdate | None, FormProblems]:
    problems = FormProblems()
    passengers = []
    for index, _line in enumerate(booking.lines):
        passenger: dict[str, Any] = {"name": text(form, f"passengers[{index}].name")}
        document = text(form, f"passengers[{index}].id_document")
        if document:
            passenger["id_document"] = document
        passengers.append(passenger)
    pickup = text(form, "pickup_stop_id")
    data: dict[str, Any] = {"contact": _contact(form, problems), "passengers": passengers}
    if "pickup_stop_id" in form:
        data["pickup_stop_id"] = pickup or None
    for index, passenger in enumerate(passengers):
        if not passenger["name"]:
            problems.add(f"passengers[{index}].name", _("This field is required."))
    if problems:
        return None, problems
    return convert(data, BookingUpdate, problems), problems


class BookingPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    # ------------------------------------------------------------ choosing and holding

    async def _booking_form(
        self,
        request: Request[Any, Any, Any],
        departure_id: UUID,
        *,
        problems: FormProblems | None = None,
        form: FormMultiDict | None = None,
        status_code: int = 200,
    ) -> Template:
        departure = await public.get_departure(departure_id)
        seat_map = await public.get_seat_map(departure_id)
        sold_out = departure.on_sale and departure.seats_left == 0
        return Template(
            "book.html",
            context={
                **page_context(request, f"/departures/{departure_id}/book"),
                "departure": departure,
                "fares_by_class": _fares_by_class(departure),
                "classes": {c.seat_class: c for c in departure.classes},
                "seat_groups": _seat_groups(seat_map.seats),
                "pickups": _pickups(departure),
                "sold_out": sold_out,
                "count_field": _count_field,
                "problems": problems or FormProblems(),
                "form": form or FormMultiDict(),
                "picked": set(form.getall("seat", [])) if form else set(),
            },
            status_code=status_code,
        )

    @get("/departures/{departure_id:uuid}/book")
    async def booking_form(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Template:
        return await self._booking_form(request, departure_id)

    @post("/departures/{departure_id:uuid}/book", status_code=303)
    async def hold(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Redirect | Template:
        form = await request.form()
        departure = await public.get_departure(departure_id)
        seat_map = await public.get_seat_map(departure_id)
        data, problems = _booking_from_form(departure, seat_map.seats, form)
        if data is None:
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=400
            )
        try:
            created = await hold.create_booking(data)
        except DomainError as exc:
            problems = FormProblems.of(exc)
            # The API names `seats[0].label`; on the page that is the seat map.
            problems.fields = {
                ("seat" if name.startswith("seats") else name): message
                for name, message in problems.fields.items()
            }
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=exc.status_code
            )
        return Redirect(
            booking_link(created.booking.reference, created.access_token), status_code=303
        )

    @post("/departures/{departure_id:uuid}/waitlist", status_code=201)
    async def join_waitlist(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Template:
        form = await request.form()
        problems = FormProblems()
        contact = _contact(form, problems)
        party = text(form, "party_size")
        data = None
        if not problems:
            data = convert(
                {
                    "seat_class": text(form, "seat_class"),
                    # Text that is no small number stays text: its error names the field.
                    "party_size": party if (size := small_number(party)) is None else size,
                    "contact": contact,
                },
                WaitlistIn,
                problems,
            )
        if data is None:
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=400
            )
        try:
            entry = await waitlist.join(departure_id, data)
        except DomainError as exc:
            return await self._booking_form(
                request, departure_id, problems=FormProblems.of(exc), form=form,
                status_code=exc.status_code,
            )  # fmt: skip
        departure = await public.get_departure(departure_id)
        return Template(
            "waitlisted.html",
            context={
                **page_context(request, f"/departures/{departure_id}/book"),
                "entry": entry,
                "departure": departure,
            },
            status_code=201,
        )

    # ------------------------------------------------------------ my booking

    async def _booking_page(
        self,
        request: Request[Any, Any, Any],
        booking: BookingOut,
        token: str,
        *,
        problems: FormProblems | None = None,
        form: FormMultiDict | None = None,
        status_code: int = 200,
    ) -> Template:
        pickups = []
        if booking.status == BookingStatus.on_hold:
            try:
                departure = await public.get_departure(booking.departure_id)
                pickups = _pickups(departure)
            except NotFound:
                pickups = []
        paid = request.query_params.get("paid") == "1" or (
            request.query_params.get("redirect_status") == "succeeded"
        )
        details_complete = booking.contact is not None and all(
            line.passenger_name for line in booking.lines
        )
        return Template(
            "booking.html",
            context={
                **page_context(request, booking_path(booking.reference, token)),
                "booking": booking,
                "token": token,
                "link": lambda suffix="", **query: booking_link(
                    booking.reference, token, suffix, **query
                ),
                "pickups": pickups,
                "awaiting_payment_confirmation": paid and booking.status == BookingStatus.on_hold,
                "details_complete": details_complete,
                "seconds_left": _seconds_left(booking),
                "problems": problems or FormProblems(),
                "form": form,
            },
            status_code=status_code,
        )

    @get("/bookings/{reference:str}")
    async def booking(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Template:
        token = _guest_token(request, token)
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        page = await self._booking_page(request, booking, token)
        # The browser keeps the token for this booking's pages, so that the way back from
        # Stripe needs none in its address (Stripe stores that address).
        page.cookies.append(
            Cookie(
                key=BOOKING_COOKIE, value=token, path=f"/bookings/{booking.reference}",
                max_age=BOOKING_COOKIE_SECONDS, httponly=True, samesite="lax",
                secure=get_settings().is_production,
            )
        )  # fmt: skip
        return page

    @post("/bookings/{reference:str}/details", status_code=303)
    async def save_details(
        self, request: Request[Any, Any, Any], reference: FromPath[str]
    ) -> Redirect | Template:
        form = await request.form()
        token = text(form, "token")
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        data, problems = _details_from_form(booking, form)
        if data is None:
            return await self._booking_page(
                request, booking, token, problems=problems, form=form, status_code=400
            )
        try:
            booking = await guest.update_booking(reference, token, data)
        except DomainError as exc:
            return await self._booking_page(
                request, booking, token, problems=FormProblems.of(exc), form=form,
                status_code=exc.status_code,
            )  # fmt: skip
        return Redirect(booking_link(booking.reference, token, "/pay"), status_code=303)

    @get("/bookings/{reference:str}/pay")
    async def pay(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Response[Any]:
        token = _guest_token(request, token)
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        settings = get_settings()
        context: dict[str, Any] = {
            **page_context(request),
            "booking": booking,
            "token": token,
            "back": booking_link(booking.reference, token or ""),
            "seconds_left": _seconds_left(booking),
        }
        if booking.status != BookingStatus.on_hold:
            return Redirect(booking_link(booking.reference, token or ""), status_code=303)
        if not settings.stripe_secret_key and booking.total.amount:
            return Template("pay.html", context={**context, "unconfigured": True})
        try:
            started = await start_payment(reference, token)
        except DomainError as exc:
            return await self._booking_page(
                request, booking, token or "", problems=FormProblems.of(exc),
                status_code=exc.status_code,
            )  # fmt: skip
        if started.status == "confirmed":
            return Redirect(booking_link(booking.reference, token or ""), status_code=303)
        # Without the token: Stripe keeps this address; the browser's cookie opens the page.
        return_url = str(request.base_url).rstrip("/") + booking_link(
            booking.reference, "", paid="1"
        )
        return Template(
            "pay.html",
            context={
                **context,
                "unconfigured": False,
                "payment": started,
                "return_url": return_url,
                "stripe_locale": lang_code(),
                "stripe_js": STRIPE_JS_URL,
            },
            headers={"Content-Security-Policy": PAYMENT_PAGE_CSP},
        )

    @get("/bookings/{reference:str}/calendar.ics")
    async def calendar(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Response[Any]:
        token = _guest_token(request, token)
        content = await guarded(request, lambda: guest.guest_calendar(reference, token))
        return calendar_response(reference, content)

    @get("/find-booking")
    async def find_form(
        self,
        request: Request[Any, Any, Any],
        reference: Annotated[str, QueryParameter(name="reference", max_length=12)] = "",
    ) -> Template:
        return Template(
            "find_booking.html",
            context={
                **page_context(request),
                "reference": reference,
                "email": "",
                "problems": FormProblems(),
                "sent": False,
            },
        )

    @post("/find-booking", status_code=200)
    async def send_link(self, request: Request[Any, Any, Any]) -> Template:
        form = await request.form()
        reference, email = text(form, "reference").upper(), text(form, "email")
        problems = FormProblems()
        for name, value in (("reference", reference), ("email", email)):
            if not value:
                problems.add(name, _("This field is required."))
        if len(reference) > 12:
            problems.add("reference", _("A booking reference has 8 letters and digits."))
        return Template(
            "find_booking.html",
            context={
                **page_context(request, "/find-booking"),
                "reference": reference,
                "email": email,
                "problems": problems,
                # The same answer whether or not anything matched.
                "sent": not problems,
            },
            status_code=400 if problems else 200,
            # After the answer is sent, so that its timing tells nothing either.
            background=None if problems else BackgroundTask(_send_link, reference, email),
        )

    # ------------------------------------------------------------ cancel and move

    @get("/bookings/{reference:str}/cancel")
    async def cancel_form(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Template:
        token = _guest_token(request, token)
        try:
            quote = await guarded(
                request, lambda: cancel.guest_cancellation_quote(reference, token)
            )
        except NotFound:
            raise  # the not-found page, not the booking page below
        except DomainError as exc:
            booking = await guest.get_booking(reference, token)
            return await self._booking_page(
                request, booking, token or "", problems=FormProblems.of(exc),
                status_code=exc.status_code,
            )  # fmt: skip
        return self._cancel_page(request, quote, token or "")

    def _cancel_page(
        self,
        request: Request[Any, Any, Any],
        quote: CancellationQuote,
        token: str,
        *,
        changed: bool = False,
    ) -> Template:
        return Template(
            "cancel.html",
            context={
                **page_context(request, booking_path(quote.booking.reference, token, "/cancel")),
                "quote": quote,
                "token": token,
                "changed": changed,
                "back": booking_link(quote.booking.reference, token),
            },
            status_code=409 if changed else 200,
        )

    @post("/bookings/{reference:str}/cancel", status_code=303)
    async def cancel(
        self, request: Request[Any, Any, Any], reference: FromPath[str]
    ) -> Redirect | Template:
        form = await request.form()
        token = text(form, "token")
        reason = text(form, "reason")[:200]
        shown = small_number(text(form, "shown_percent"))
        try:
            quote = await guarded(
                request, lambda: cancel.guest_cancellation_quote(reference, token)
            )
            if shown is not None and quote.refund_percent < shown:
                # The policy's next tier began since the page was read: show it again.
                return self._cancel_page(request, quote, token, changed=True)
            done = await guarded(request, lambda: cancel.guest_cancel(reference, token, reason))
        except NotFound:
            raise  # the not-found page, not the booking page below
        except DomainError as exc:
            booking = await guest.get_booking(reference, token)
            return await self._booking_page(
                request, booking, token, problems=FormProblems.of(exc),
                status_code=exc.status_code,
            )  # fmt: skip
        return Redirect(booking_link(done.booking.reference, token), status_code=303)

    @get("/bookings/{reference:str}/rebook")
    async def rebook_form(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Template | Redirect:
        token = _guest_token(request, token)
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        if booking.status != BookingStatus.confirmed:
            # Only a confirmed booking moves; the booking page says what it can do.
            return Redirect(booking_link(booking.reference, token or ""), status_code=303)
        return await self._rebook_page(request, booking, token or "")

    async def _rebook_page(
        self,
        request: Request[Any, Any, Any],
        booking: BookingOut,
        token: str,
        problems: FormProblems | None = None,
        status_code: int = 200,
    ) -> Template:
        seats_needed: dict[str, int] = defaultdict(int)
        for line in booking.lines:
            seats_needed[line.seat_class] += 1
        try:
            listed = await public.list_route_departures(
                booking.route_slug, PageParams(page=1, page_size=REBOOK_CHOICES), None, None
            )
            choices = [
                d
                for d in listed.items
                if d.id != booking.departure_id
                and d.on_sale
                and all(
                    any(c.seat_class == k and c.seats_left >= n for c in d.classes)
                    for k, n in seats_needed.items()
                )
            ]
        except NotFound:
            choices = []
        return Template(
            "rebook.html",
            context={
                **page_context(request, booking_path(booking.reference, token, "/rebook")),
                "booking": booking,
                "token": token,
                "choices": choices,
                "back": booking_link(booking.reference, token),
                "problems": problems or FormProblems(),
            },
            status_code=status_code,
        )

    @post("/bookings/{reference:str}/rebook", status_code=303)
    async def rebook(
        self, request: Request[Any, Any, Any], reference: FromPath[str]
    ) -> Redirect | Template:
        form = await request.form()
        token = text(form, "token")
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        chosen = text(form, "departure_id")
        try:
            departure_id = UUID(chosen)
        except ValueError:
            problems = FormProblems()
            problems.add("departure_id", _("Choose one of the listed departures."))
            return await self._rebook_page(request, booking, token, problems, 400)
        try:
            moved = await rebook.rebook(reference, token, departure_id)
        except DomainError as exc:
            return await self._rebook_page(
                request, booking, token, FormProblems.of(exc), exc.status_code
            )
        return Redirect(booking_link(moved.reference, token), status_code=303)
