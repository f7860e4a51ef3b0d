"""Starting a payment: a complete booking on hold gets its card payment (or is confirmed
at once when it costs nothing)."""

from __future__ import annotations

import logging
from uuid import UUID

from app.booking.rows import BookingRow
from app.booking.services.access import guest_booking_to_change, lock_booking
from app.booking.services.state import hold_running, pending_change, transition
from app.booking.tables import BookingLine, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, DomainError, FieldError
from app.core.i18n import _
from app.core.money import PriceOut
from app.payments.providers import checkout_provider, on_account
from app.payments.schemas import PaymentStartOut
from app.payments.services.settle import cancel_intent
from app.payments.tables import Payment, PaymentStatus

logger = logging.getLogger("tourline.payments")


async def _details_missing(booking: BookingRow) -> list[FieldError]:
    problems = []
    if not booking.contact_email:
        problems.append(FieldError(field="contact", message=_("Add the contact details first.")))
    lines = (
        await BookingLine.select(BookingLine.position, BookingLine.passenger_name)
        .where(
            (BookingLine.booking == booking.id) & (BookingLine.departure == booking.departure_id)
        )
        .order_by(BookingLine.position)
        .run()
    )
    for index, line in enumerate(lines):
        if not line["passenger_name"]:
            problems.append(
                FieldError(field=f"passengers[{index}].name", message=_("Add every passenger."))
            )
    return problems


async def start_payment(reference: str, token: str | None) -> PaymentStartOut:
    """Create, or reuse, the payment of a complete booking on hold (a guest's; an
    agency's booking is paid by the agency, 403)."""
    found = await guest_booking_to_change(reference, token)
    return await pay_booking(found.id, actor="guest")


async def charge_on_account(booking_id: UUID, *, actor: str) -> None:
    """Charge an agency's running hold to its account and confirm it. The partner API
    calls this inside its transaction, having checked the agency's credit limit."""
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        if not hold_running(booking.status, booking.expires_at):
            raise Conflict(_("The hold has run out; book again."), code="hold_expired")
        await on_account.record_payment(booking.id, booking.total_amount, booking.currency)
        await transition(booking, BookingStatus.confirmed, actor=actor, reason=on_account.NAME)


async def pay_booking(booking_id: UUID, *, actor: str) -> PaymentStartOut:
    """Create, or reuse, the card payment of a complete booking on hold, or of the
    difference a pending change asks of a paid one; a hold that costs nothing is
    confirmed at once."""
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        change = None
        if booking.status == BookingStatus.confirmed:
            change = await pending_change(booking.id)
            if change is None:
                raise Conflict(_("This booking is already paid."), code="already_paid")
            if change.expires_at is not None and change.expires_at <= clock.now():
                raise Conflict(
                    _("The time to pay for the change has run out; the booking stays as it was."),
                    code="change_expired",
                )
            total, currency = change.amount_due, change.currency
        else:
            if not hold_running(booking.status, booking.expires_at):
                raise Conflict(_("The hold has run out; book again."), code="hold_expired")
            problems = await _details_missing(booking)
            if problems:
                raise Conflict(
                    _("Complete the booking before paying."), code="details_incomplete",
                    errors=problems,
                )  # fmt: skip
            total, currency = booking.total_amount, booking.currency
        if total == 0:
            # The free provider: nothing to pay, confirmed at once.
            await Payment.insert(
                Payment(
                    booking=booking.id,
                    provider="free",
                    amount=0,
                    currency=currency,
                    status=PaymentStatus.succeeded.value,
                    succeeded_at=clock.now(),
                )
            ).run()
            await transition(booking, BookingStatus.confirmed, actor=actor, reason="free")
            return PaymentStartOut(
                provider="free", status="confirmed", amount=PriceOut.minor(0, currency)
            )
        provider = checkout_provider()
        # The booking's own payments, or the change's: each has its attempts.
        paying = Payment.change.is_null() if change is None else Payment.change == change.id
        payments = (
            await Payment.select()
            .where((Payment.booking == booking.id) & (Payment.provider == provider.name) & paying)
            .order_by(Payment.attempt, ascending=False)
            .run()
        )
        # A declined intent can be tried again with another card: reuse it, never open a
        # second one beside it.
        open_statuses = (PaymentStatus.requires_payment, PaymentStatus.failed)
        current = next((p for p in payments if p["status"] in open_statuses), None)
        if current is not None and current["status"] == PaymentStatus.failed:
            await (
                Payment.update({Payment.status: PaymentStatus.requires_payment.value})
                .where(Payment.id == current["id"])
                .run()
            )
        stale = None
        if current is not None and current["amount"] != total:
            # The total changed (a rebooking): this intent must not be paid any more.
            stale = current
            await (
                Payment.update({Payment.status: PaymentStatus.cancelled.value})
                .where(Payment.id == current["id"])
                .run()
            )
            current = None
        if current is None:
            attempt = (payments[0]["attempt"] + 1) if payments else 1
            # Created by our clock: the sweep's window (SYNC_WINDOW) is measured on it.
            payment = Payment(
                booking=booking.id, provider=provider.name, attempt=attempt, amount=total,
                currency=currency, status=PaymentStatus.requires_payment.value,
                change=None if change is None else change.id,
                created_at=clock.now(), updated_at=clock.now(),
            )  # fmt: skip
            await payment.save().run()
            current = {"id": payment.id, "attempt": attempt, "provider_id": None}
    if stale is not None and stale["provider_id"]:
        try:
            await cancel_intent(stale["id"], stale["provider"], stale["provider_id"])
        except DomainError:
            # Still unsettled: the sweep (`sync_open_payments`) cancels it.
            logger.warning("could not cancel payment intent %s", stale["provider_id"])
    # Derived from what is paid and the attempt: a retry can never create a second charge.
    paid_for = f"booking-{booking.id}" if change is None else f"change-{change.id}"
    key = f"tourline-{paid_for}-attempt-{current['attempt']}"
    if current["provider_id"]:
        intent = await provider.fetch(current["provider_id"])
    else:
        intent = await provider.start(total, currency, booking.reference, key)
        await (
            Payment.update(
                {Payment.provider_id: intent.provider_id, Payment.updated_at: clock.now()}
            )
            .where(Payment.id == current["id"])
            .run()
        )
    return PaymentStartOut(
        provider=provider.name,
        status="requires_payment",
        amount=PriceOut.minor(total, currency),
        client_secret=intent.client_secret,
        publishable_key=provider.publishable_key,
        payment_method_types=list(provider.payment_method_types),
    )
