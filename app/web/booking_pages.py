"""The tourist's booking pages: see the booking through its reference-and-token link, add
details, fetch its calendar file, and find a booking by reference and email. Choosing and
holding seats, paying, cancelling and moving are in their own modules beside this one.

Every page calls the same services as the public API, so the rules (no seat sold twice,
prices from the server, the cancellation policy) are the API's. The token travels in the
link (`?token=`) and in the forms; pages are never cached and send no referrer.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import Cookie, FormMultiDict
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.booking.controllers import calendar_response, guarded
from app.booking.schemas import BookingOut
from app.booking.services import access, guest, public_departures, tickets
from app.booking.tables import BookingStatus
from app.core import clock
from app.core.errors import DomainError, NotFound
from app.core.i18n import _
from app.core.links import booking_path, lang_code, ticket_path
from app.core.settings import Settings
from app.web.booking_forms import _details_from_form, _pickups
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, text
from app.web.templates import page_context
from app.web.ticket_pdf import render_ticket

Token = Annotated[str | None, QueryParameter(name="token", required=False, max_length=128)]
# The guest's token for one booking's pages (path /bookings/{reference}).
BOOKING_COOKIE = "tourline_booking"
BOOKING_COOKIE_SECONDS = 60 * 24 * 3600
logger = logging.getLogger("tourline.pages")


def booking_link(reference: str, token: str, suffix: str = "", **query: str) -> str:
    """The guest's link to their booking (or one of its pages), in the reader's language."""
    return booking_path(reference, token, suffix, lang=lang_code(), **query)


async def _send_link(reference: str, email: str, redis_url: str) -> None:
    try:
        await guest.send_booking_link(reference, email, redis_url)
    except Exception:  # after the answer: nobody to tell but the log
        logger.exception("could not send the link to booking %s", reference)


def _guest_token(request: Request[Any, Any, Any], token: str | None) -> str:
    """The token from the link, else the one this browser kept for the booking."""
    return token or request.cookies.get(BOOKING_COOKIE, "")


def _seconds_left(held_until: datetime | None) -> int:
    """Of a hold (or a pending change), for the countdown (also shown as is where scripts
    do not run)."""
    if held_until is None:
        return 0
    return max(0, int((held_until - clock.now()).total_seconds()))


async def _booking_page(
    request: Request[Any, Any, Any],
    booking: BookingOut,
    token: str,
    *,
    problems: FormProblems | None = None,
    form: FormMultiDict | None = None,
    status_code: int = 200,
) -> Template:
    """The booking page; also the answer of the payment, cancel and move pages when their
    action fails, hence a function and not a controller method."""
    pickups = []
    if booking.status == BookingStatus.on_hold:
        try:
            departure = await public_departures.get_departure(booking.departure_id)
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
            "ticket_path": ticket_path(booking.reference) + "?lang=" + lang_code(),
            "pickups": pickups,
            "awaiting_payment_confirmation": paid and booking.status == BookingStatus.on_hold,
            "details_complete": details_complete,
            "seconds_left": _seconds_left(booking.expires_at),
            "problems": problems or FormProblems(),
            "form": form,
        },
        status_code=status_code,
    )


async def agency_refusal(
    request: Request[Any, Any, Any], booking: BookingOut, token: str
) -> Template | None:
    """The booking page saying which agency to ask (403), when an agency made the booking
    its guest asks to change, cancel, move or pay for; None for any other booking."""
    if booking.agency is None:
        return None
    try:
        await access.guest_booking_to_change(booking.reference, token)
    except DomainError as exc:
        return await _booking_page(
            request, booking, token, problems=FormProblems.of(exc), status_code=exc.status_code
        )
    return None


class BookingPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get("/bookings/{reference:str}")
    async def booking(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        reference: FromPath[str],
        token: Token = None,
    ) -> Template:
        token = _guest_token(request, token)
        booking = await guarded(
            request, lambda: guest.get_booking(reference, token, with_itinerary=True)
        )
        page = await _booking_page(request, booking, token)
        # The browser keeps the token for this booking's pages, so that the way back from
        # Stripe needs none in its address (Stripe stores that address).
        page.cookies.append(
            Cookie(
                key=BOOKING_COOKIE, value=token, path=f"/bookings/{booking.reference}",
                max_age=BOOKING_COOKIE_SECONDS, httponly=True, samesite="lax",
                secure=settings.is_production,
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
        refused = await agency_refusal(request, booking, token)
        if refused is not None:
            return refused
        data, problems = _details_from_form(booking, form)
        if data is None:
            return await _booking_page(
                request, booking, token, problems=problems, form=form, status_code=400
            )
        try:
            booking = await guest.update_booking(reference, token, data)
        except DomainError as exc:
            return await _booking_page(
                request, booking, token, problems=FormProblems.of(exc), form=form,
                status_code=exc.status_code,
            )  # fmt: skip
        return Redirect(booking_link(booking.reference, token, "/pay"), status_code=303)

    @get("/bookings/{reference:str}/calendar.ics")
    async def calendar(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: Token = None
    ) -> Response[Any]:
        token = _guest_token(request, token)
        content = await guarded(request, lambda: guest.guest_calendar(reference, token))
        return calendar_response(reference, content)

    @get("/tickets/{reference:str}/{signature:str}/ticket.pdf")
    async def ticket(
        self, request: Request[Any, Any, Any], reference: FromPath[str], signature: FromPath[str]
    ) -> Response[bytes]:
        """The confirmed booking's printable ticket, by its signed link (OCTO vouchers'
        PDF_URL, the booking page's "Ticket (PDF)")."""
        booking = await guarded(request, lambda: tickets.ticket_booking(reference, signature))
        return Response(
            render_ticket(booking),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="ticket-{booking.reference}.pdf"',
                "Cache-Control": "no-store",
            },
        )

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
    async def send_link(
        self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]
    ) -> Template:
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
            background=None
            if problems
            else BackgroundTask(_send_link, reference, email, settings.redis_url),
        )
