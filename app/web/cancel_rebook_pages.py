"""The tourist's pages to cancel a booking (with the refund the policy gives) or move it to
another departure of the same route.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.booking.controllers import guarded
from app.booking.schemas import BookingOut, CancellationQuote
from app.booking.services import cancel, guest, public_departures, rebook
from app.booking.tables import BookingStatus
from app.core.errors import DomainError, NotFound
from app.core.i18n import _
from app.core.links import booking_path
from app.core.pagination import PageParams
from app.web.booking_pages import (
    Token,
    _booking_page,
    _guest_token,
    agency_refusal,
    booking_link,
)
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, small_number, text
from app.web.templates import page_context

# Departures offered when moving a booking.
REBOOK_CHOICES = 30


class CancelRebookPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

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
            return await _booking_page(
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
            return await _booking_page(
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
        refused = await agency_refusal(request, booking, token or "")
        if refused is not None:
            return refused
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
            listed = await public_departures.list_route_departures(
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
        refused = await agency_refusal(request, booking, token)
        if refused is not None:
            return refused
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
        # A dearer move waits for its difference: straight on to paying it.
        suffix = "/pay" if moved.pending_change is not None else ""
        return Redirect(booking_link(moved.reference, token, suffix), status_code=303)
