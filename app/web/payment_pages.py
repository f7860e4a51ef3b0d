"""The tourist's payment page: Stripe's card form for a held booking."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.booking.controllers import guarded
from app.booking.services import guest
from app.booking.tables import BookingStatus
from app.core.errors import DomainError
from app.core.http_security import PAYMENT_PAGE_CSP, STRIPE_JS_URL
from app.core.links import lang_code
from app.core.settings import Settings
from app.payments.services.start import start_payment
from app.web.booking_pages import (
    Token,
    _booking_page,
    _guest_token,
    _seconds_left,
    agency_refusal,
    booking_link,
)
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems
from app.web.templates import page_context


class PaymentPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get("/bookings/{reference:str}/pay")
    async def pay(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        reference: FromPath[str],
        token: Token = None,
    ) -> Response[Any]:
        token = _guest_token(request, token)
        booking = await guarded(request, lambda: guest.get_booking(reference, token))
        refused = await agency_refusal(request, booking, token or "")
        if refused is not None:
            return refused
        change = booking.pending_change
        # A hold is paid in full; a paid booking's pending change, its difference.
        held_until = change.expires_at if change is not None else booking.expires_at
        context: dict[str, Any] = {
            **page_context(request),
            "booking": booking,
            "token": token,
            "back": booking_link(booking.reference, token or ""),
            "held_until": held_until,
            "seconds_left": _seconds_left(held_until),
        }
        if booking.status != BookingStatus.on_hold and change is None:
            return Redirect(booking_link(booking.reference, token or ""), status_code=303)
        if not settings.stripe_secret_key and booking.total.amount:
            return Template("pay.html", context={**context, "unconfigured": True})
        try:
            started = await start_payment(reference, token)
        except DomainError as exc:
            return await _booking_page(
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
