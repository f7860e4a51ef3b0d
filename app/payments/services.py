"""Taking payments, confirming bookings from Stripe's word, and paying refunds back.

Order of trust: a webhook body is only a hint; the PaymentIntent is fetched again from
Stripe before anything changes. Every effect has a natural key (Stripe event id, refund
cause) so that repeats and races change nothing twice.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.booking.services.bookings import (
    booking_not_found,
    confirm_paid,
    guest_booking,
    lock_booking,
    normalize_reference,
)
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.services.common import get_operator_row, local_day_range
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, DomainError, FieldError
from app.core.i18n import _
from app.core.money import PriceOut
from app.core.settings import get_settings
from app.notifications.services import enqueue
from app.payments.providers import (
    IntentState,
    ProviderError,
    UnknownObject,
    stripe_provider,
    verify_stripe_event,
)
from app.payments.schemas import (
    BookingMoneyOut,
    PaymentOut,
    PaymentStartOut,
    Reconciliation,
    ReconciliationLine,
    RefundOut,
)
from app.payments.tables import Payment, PaymentStatus, Refund, RefundStatus, StripeEvent

logger = logging.getLogger("tourline.payments")

# Refunds that failed are tried again by the worker up to this many times.
MAX_REFUND_ATTEMPTS = 8


# ---------------------------------------------------------------- starting a payment


async def _details_missing(booking: dict[str, Any]) -> list[FieldError]:
    problems = []
    if not booking["contact_email"]:
        problems.append(FieldError(field="contact", message=_("Add the contact details first.")))
    lines = (
        await BookingLine.select(BookingLine.position, BookingLine.passenger_name)
        .where(
            (BookingLine.booking == booking["id"]) & (BookingLine.departure == booking["departure"])
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
    """Create, or reuse, the payment of a complete booking on hold (a guest's)."""
    found = await guest_booking(reference, token)
    return await pay_booking(found["id"], actor="guest")


async def pay_booking(booking_id: UUID, *, actor: str) -> PaymentStartOut:
    """Create, or reuse, the card payment of a complete booking on hold; a booking that
    costs nothing is confirmed at once."""
    settings = get_settings()
    async with write_transaction():
        booking, _departure = await lock_booking(booking_id)
        if booking["status"] == BookingStatus.confirmed:
            raise Conflict(_("This booking is already paid."), code="already_paid")
        if booking["status"] != BookingStatus.on_hold or (
            booking["expires_at"] and booking["expires_at"] <= clock.now()
        ):
            raise Conflict(_("The hold has run out; book again."), code="hold_expired")
        problems = await _details_missing(booking)
        if problems:
            raise Conflict(
                _("Complete the booking before paying."), code="details_incomplete",
                errors=problems,
            )  # fmt: skip
        total, currency = booking["total_amount"], booking["currency"]
        if total == 0:
            # The free provider: nothing to pay, confirmed at once.
            await Payment.insert(
                Payment(
                    booking=booking["id"],
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
        provider = stripe_provider()
        payments = (
            await Payment.select()
            .where((Payment.booking == booking["id"]) & (Payment.provider == "stripe"))
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
            payment = Payment(
                booking=booking["id"], provider="stripe", attempt=attempt, amount=total,
                currency=currency, status=PaymentStatus.requires_payment.value,
            )  # fmt: skip
            await payment.save().run()
            current = {"id": payment.id, "attempt": attempt, "provider_id": None}
    if stale is not None and stale["provider_id"]:
        await _cancel_quietly(stale["provider_id"])
    # Derived from the booking and attempt: a retry can never create a second charge.
    key = f"tourline-booking-{booking['id']}-attempt-{current['attempt']}"
    if current["provider_id"]:
        intent = await provider.fetch(current["provider_id"])
    else:
        intent = await provider.start(total, currency, booking["reference"], key)
        await (
            Payment.update(
                {Payment.provider_id: intent.provider_id, Payment.updated_at: clock.now()}
            )
            .where(Payment.id == current["id"])
            .run()
        )
    return PaymentStartOut(
        provider="stripe",
        status="requires_payment",
        amount=PriceOut.minor(total, currency),
        client_secret=intent.client_secret,
        publishable_key=settings.stripe_publishable_key or None,
        payment_method_types=list(settings.stripe_payment_method_types),
    )


async def _cancel_quietly(provider_id: str) -> None:
    try:
        await stripe_provider().cancel(provider_id)
    except ProviderError:
        logger.warning("could not cancel payment intent %s", provider_id)


async def cancel_open_payments(booking_id: UUID) -> int:
    """Cancel the open PaymentIntents of a booking that can no longer be paid."""
    open_payments = (
        await Payment.select()
        .where(
            (Payment.booking == booking_id)
            & Payment.status.is_in(
                [PaymentStatus.requires_payment.value, PaymentStatus.failed.value]
            )
        )
        .run()
    )
    cancelled = 0
    for payment in open_payments:
        if payment["provider_id"]:
            intent = await stripe_provider().fetch(payment["provider_id"])
            if intent.status == "succeeded":
                continue  # Its webhook decides: confirm, or refund.
            if intent.status != "canceled":
                await stripe_provider().cancel(payment["provider_id"])
        await (
            Payment.update(
                {Payment.status: PaymentStatus.cancelled.value, Payment.updated_at: clock.now()}
            )
            .where(Payment.id == payment["id"])
            .run()
        )
        cancelled += 1
    return cancelled


# ---------------------------------------------------------------- webhooks


HANDLED_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "refund.updated",
}


async def handle_stripe_webhook(payload: bytes, signature: str | None) -> str:
    """Verify, deduplicate and apply one Stripe event; returns what was done."""
    event = verify_stripe_event(payload, signature, get_settings())
    event_id, event_type = str(event["id"]), str(event["type"])
    data_object = event["data"]["object"]
    object_id = str(data_object.get("id", ""))
    if await StripeEvent.exists().where(StripeEvent.id == event_id).run():
        return "duplicate"
    intent: IntentState | None = None
    if event_type.startswith("payment_intent.") and object_id:
        try:
            intent = await stripe_provider().fetch(object_id)
        except UnknownObject:
            intent = None  # Not ours (e.g. a dashboard test event): stored, nothing to do.
    refund_ids: list[str] = []
    if event_type == "charge.refunded":
        refunds = (data_object.get("refunds") or {}).get("data") or []
        refund_ids = [str(r["id"]) for r in refunds if isinstance(r, dict) and r.get("id")]
    elif event_type == "refund.updated" and object_id:
        refund_ids = [object_id]
    refund_states = []
    for refund_id in refund_ids:
        try:
            refund_states.append(await stripe_provider().fetch_refund(refund_id))
        except UnknownObject:
            continue
    outcome = "ignored"
    async with write_transaction():
        claimed = await (
            StripeEvent.insert(StripeEvent(id=event_id, type=event_type, object_id=object_id))
            .on_conflict(target=StripeEvent.id, action="DO NOTHING")
            .returning(StripeEvent.id)
            .run()
        )
        if not claimed:
            return "duplicate"
        if intent is not None and event_type == "payment_intent.succeeded":
            outcome = await _apply_success(intent)
        elif intent is not None and event_type == "payment_intent.payment_failed":
            outcome = await _apply_failure(intent)
        for state in refund_states:
            outcome = await _apply_refund_state(state.provider_id, state.status)
    if outcome == "refunded" and intent is not None:
        # Pay the late payment back now; the worker retries if Stripe fails.
        payment = (
            await Payment.select(Payment.booking)
            .where(Payment.provider_id == intent.provider_id)
            .first()
            .run()
        )
        if payment is not None:
            await settle_after_change([payment["booking"]])
    return outcome


async def _payment_for(intent: IntentState) -> dict[str, Any] | None:
    payment = await Payment.select().where(Payment.provider_id == intent.provider_id).first().run()
    if payment is not None or intent.reference is None:
        return dict(payment) if payment else None
    # The intent is ours but its row was lost (e.g. a crash after Stripe answered).
    booking = (
        await Booking.select(Booking.id)
        .where(Booking.reference == normalize_reference(intent.reference))
        .first()
        .run()
    )
    if booking is None:
        return None
    row = Payment(
        booking=booking["id"], provider="stripe", provider_id=intent.provider_id, attempt=0,
        amount=intent.amount, currency=intent.currency,
        status=PaymentStatus.requires_payment.value,
    )  # fmt: skip
    await row.save().run()
    return dict(await Payment.select().where(Payment.id == row.id).first().run() or {})


async def _apply_success(intent: IntentState) -> str:
    if intent.status != "succeeded":
        return "stale_event"
    payment = await _payment_for(intent)
    if payment is None:
        logger.warning("payment intent %s matches no booking", intent.provider_id)
        return "unknown_payment"
    # Conditional, so that a success heard twice (another event id, or the sync worker,
    # even concurrently) is applied once: confirming or refunding it again would give the
    # money back twice.
    applied = (
        await Payment.update(
            {
                Payment.status: PaymentStatus.succeeded.value,
                Payment.amount: intent.amount,
                Payment.succeeded_at: clock.now(),
                Payment.updated_at: clock.now(),
            }
        )
        .where((Payment.id == payment["id"]) & (Payment.status != PaymentStatus.succeeded.value))
        .returning(Payment.id)
        .run()
    )
    if not applied:
        return "already_applied"
    # A payment we had cancelled (the total changed since) is outdated: never confirm with
    # it; it goes back in full like a late one.
    owed = (
        await Booking.select(Booking.total_amount, Booking.balance_due)
        .where(Booking.id == payment["booking"])
        .first()
        .run()
    )
    outdated = payment["status"] == PaymentStatus.cancelled or (
        owed is not None and intent.amount != owed["total_amount"] - owed["balance_due"]
    )
    result = "outdated" if outdated else await confirm_paid(payment["booking"], actor="stripe")
    if result in ("confirmed", "already_confirmed"):
        return result
    # Paid, but the booking cannot be honoured (hold ran out and seats resold, or
    # cancelled meanwhile): everything paid goes back, with a notice.
    booking = await Booking.select().where(Booking.id == payment["booking"]).first().run()
    assert booking is not None
    await (
        Booking.update({Booking.refund_amount: booking["refund_amount"] + intent.amount})
        .where(Booking.id == booking["id"])
        .run()
    )
    await owe_refund(
        dict(booking), intent.amount, "paid_after_expiry", f"late-payment:{intent.provider_id}"
    )
    await enqueue(
        "payment.refunded_late",
        f"payment.refunded_late:{intent.provider_id}",
        {"reference": booking["reference"], "amount": intent.amount, "currency": intent.currency},
    )
    return "refunded"


async def _apply_failure(intent: IntentState) -> str:
    payment = await _payment_for(intent)
    if payment is None:
        return "unknown_payment"
    if payment["status"] == PaymentStatus.succeeded:
        return "stale_event"
    await (
        Payment.update(
            {
                Payment.status: PaymentStatus.failed.value
                if intent.status in ("requires_payment_method", "canceled")
                else payment["status"],
                Payment.failure_reason: intent.failure_reason or _("The payment failed."),
                Payment.updated_at: clock.now(),
            }
        )
        .where(Payment.id == payment["id"])
        .run()
    )
    return "failed"


async def _apply_refund_state(provider_id: str, status: str) -> str:
    mapped = {
        "succeeded": RefundStatus.succeeded,
        "failed": RefundStatus.failed,
        "canceled": RefundStatus.failed,
    }.get(status, RefundStatus.pending)
    updated = (
        await Refund.update({Refund.status: mapped.value, Refund.updated_at: clock.now()})
        .where(Refund.provider_id == provider_id)
        .returning(Refund.id)
        .run()
    )
    return "refund_updated" if updated else "unknown_refund"


# ---------------------------------------------------------------- refunds


async def _paid_and_committed(booking_id: UUID) -> tuple[list[dict[str, Any]], int]:
    """Succeeded provider payments of a booking, and what refunds already give back."""
    payments = (
        await Payment.select()
        .where(
            (Payment.booking == booking_id)
            & (Payment.status == PaymentStatus.succeeded.value)
            & (Payment.provider != "free")
        )
        .order_by(Payment.succeeded_at)
        .run()
    )
    refunds = (
        await Refund.select(Refund.amount)
        .where(
            (Refund.booking == booking_id) & (Refund.status != RefundStatus.requires_action.value)
        )
        .run()
    )
    return [dict(p) for p in payments], sum(r["amount"] for r in refunds)


async def owe_refund(booking: dict[str, Any], amount: int, reason: str, key: str) -> None:
    """Record a refund owed, inside the caller's transaction, never above what was paid.

    What a provider took is refunded through it; any rest (a booking confirmed without a
    provider payment) is left `requires_action` for the operator to settle by hand.
    """
    if amount <= 0:
        return
    payments, committed = await _paid_and_committed(booking["id"])
    refundable = sum(p["amount"] for p in payments) - committed
    through_provider = max(0, min(amount, refundable))
    rows = []
    if through_provider:
        payment = payments[-1]
        rows.append(
            Refund(
                booking=booking["id"],
                payment=payment["id"],
                provider=payment["provider"],
                key=key,
                amount=through_provider,
                currency=booking["currency"],
                reason=reason,
                status=RefundStatus.pending.value,
            )
        )
    if amount > through_provider:
        rows.append(
            Refund(
                booking=booking["id"],
                provider="manual",
                key=f"{key}:manual",
                amount=amount - through_provider,
                currency=booking["currency"],
                reason=reason,
                status=RefundStatus.requires_action.value,
                last_error=_("Nothing was paid through a provider for this amount."),
            )
        )
    for row in rows:
        await Refund.insert(row).on_conflict(target=Refund.key, action="DO NOTHING").run()


async def execute_pending_refunds(booking_ids: list[UUID] | None = None) -> int:
    """Ask the provider for every pending (or failed, to retry) refund; returns how many
    were accepted. Safe to run again: the provider sees the same idempotency key."""
    query = Refund.select().where(
        Refund.status.is_in([RefundStatus.pending.value, RefundStatus.failed.value])
        & Refund.provider_id.is_null()
        & (Refund.attempts < MAX_REFUND_ATTEMPTS)
    )
    if booking_ids is not None:
        if not booking_ids:
            return 0
        query = query.where(Refund.booking.is_in(booking_ids))
    done = 0
    for refund in await query.run():
        if refund["provider"] == "on_account":
            await (
                Refund.update({Refund.status: RefundStatus.succeeded.value})
                .where(Refund.id == refund["id"])
                .run()
            )
            done += 1
            continue
        payment = await Payment.select().where(Payment.id == refund["payment"]).first().run()
        if payment is None or not payment["provider_id"]:
            continue
        try:
            state = await stripe_provider().refund(
                payment["provider_id"], refund["amount"], f"tourline-refund-{refund['id']}"
            )
        except ProviderError as exc:
            await (
                Refund.update(
                    {
                        Refund.status: RefundStatus.failed.value,
                        Refund.attempts: refund["attempts"] + 1,
                        Refund.last_error: str(exc.detail or exc.code),
                        Refund.updated_at: clock.now(),
                    }
                )
                .where(Refund.id == refund["id"])
                .run()
            )
            continue
        status = RefundStatus.succeeded if state.status == "succeeded" else RefundStatus.pending
        if state.status in ("failed", "canceled"):
            status = RefundStatus.failed
        await (
            Refund.update(
                {
                    Refund.provider_id: state.provider_id,
                    Refund.status: status.value,
                    Refund.attempts: refund["attempts"] + 1,
                    Refund.last_error: "",
                    Refund.updated_at: clock.now(),
                }
            )
            .where(Refund.id == refund["id"])
            .run()
        )
        done += 1
    return done


# ---------------------------------------------------------------- operator views


def _payment_out(row: dict[str, Any]) -> PaymentOut:
    return PaymentOut(
        id=row["id"], provider=row["provider"], provider_id=row["provider_id"],
        attempt=row["attempt"], amount=PriceOut.minor(row["amount"], row["currency"]),
        status=PaymentStatus(row["status"]), failure_reason=row["failure_reason"],
        created_at=row["created_at"], succeeded_at=row["succeeded_at"],
    )  # fmt: skip


def _refund_out(row: dict[str, Any]) -> RefundOut:
    return RefundOut(
        id=row["id"], provider=row["provider"], provider_id=row["provider_id"],
        amount=PriceOut.minor(row["amount"], row["currency"]), reason=row["reason"],
        status=RefundStatus(row["status"]), attempts=row["attempts"],
        last_error=row["last_error"], created_at=row["created_at"],
    )  # fmt: skip


async def money_of(booking: dict[str, Any]) -> tuple[int, int]:
    payments = (
        await Payment.select(Payment.amount)
        .where(
            (Payment.booking == booking["id"]) & (Payment.status == PaymentStatus.succeeded.value)
        )
        .run()
    )
    refunds = await Refund.select(Refund.amount).where(Refund.booking == booking["id"]).run()
    return sum(p["amount"] for p in payments), sum(r["amount"] for r in refunds)


def money_problem(booking: dict[str, Any], paid: int, refunded: int) -> str | None:
    """Why a booking's money does not add up, or None when it does."""
    status = booking["status"]
    if status == BookingStatus.confirmed:
        expected = booking["total_amount"] - booking["balance_due"]
        if paid - refunded != expected:
            return "confirmed_but_paid_differs"
        return None
    if status == BookingStatus.on_hold:
        return "paid_while_on_hold" if paid else None
    # Cancelled or expired: everything owed back is recorded as refunds.
    if refunded != min(booking["refund_amount"], paid) + max(0, booking["refund_amount"] - paid):
        return "refund_owed_not_recorded"
    return None


async def booking_money(principal: OperatorPrincipal, reference: str) -> BookingMoneyOut:
    booking = (
        await Booking.select()
        .where(
            (Booking.reference == normalize_reference(reference))
            & (Booking.operator == principal.operator_id)
        )
        .first()
        .run()
    )
    if booking is None:
        raise booking_not_found()
    payments = (
        await Payment.select()
        .where(Payment.booking == booking["id"])
        .order_by(Payment.created_at)
        .run()
    )
    refunds = (
        await Refund.select()
        .where(Refund.booking == booking["id"])
        .order_by(Refund.created_at)
        .run()
    )
    paid, refunded = await money_of(booking)
    currency = booking["currency"]
    return BookingMoneyOut(
        reference=booking["reference"], booking_status=booking["status"],
        total=PriceOut.minor(booking["total_amount"], currency),
        paid=PriceOut.minor(paid, currency), refunded=PriceOut.minor(refunded, currency),
        payments=[_payment_out(p) for p in payments], refunds=[_refund_out(r) for r in refunds],
    )  # fmt: skip


async def reconciliation(
    principal: OperatorPrincipal, date_from: date | None, date_to: date | None
) -> Reconciliation:
    """Bookings made in a date range (operator's local dates): what was paid and refunded,
    and every booking whose money does not match its status."""
    operator = await get_operator_row(principal.operator_id)
    start, end = local_day_range(date_from, date_to, operator["time_zone"])
    query = Booking.select().where(Booking.operator == principal.operator_id)
    if start is not None:
        query = query.where(Booking.created_at >= start)
    if end is not None:
        query = query.where(Booking.created_at < end)
    bookings = await query.order_by(Booking.created_at).run()
    total_paid = total_refunded = 0
    mismatches = []
    for booking in bookings:
        paid, refunded = await money_of(booking)
        total_paid += paid
        total_refunded += refunded
        problem = money_problem(booking, paid, refunded)
        if problem:
            mismatches.append(
                ReconciliationLine(
                    reference=booking["reference"],
                    booking_status=booking["status"],
                    paid=paid,
                    refunded=refunded,
                    expected_net=booking["total_amount"] - booking["balance_due"]
                    if booking["status"] == BookingStatus.confirmed
                    else 0,
                    problem=problem,
                )
            )
    currency = operator["currency"]
    return Reconciliation(
        currency=currency, bookings=len(bookings), paid=PriceOut.minor(total_paid, currency),
        refunded=PriceOut.minor(total_refunded, currency), mismatches=mismatches,
    )  # fmt: skip


async def sync_open_payments(limit: int = 200) -> int:
    """Ask Stripe about payments still open here, for webhooks that never arrived."""
    rows = (
        await Payment.select()
        .where(
            (Payment.status == PaymentStatus.requires_payment.value)
            & Payment.provider_id.is_not_null()
        )
        .limit(limit)
        .run()
    )
    changed = 0
    for row in rows:
        intent = await stripe_provider().fetch(row["provider_id"])
        async with write_transaction():
            if intent.status == "succeeded":
                await _apply_success(intent)
                changed += 1
            elif intent.status == "canceled":
                await (
                    Payment.update({Payment.status: PaymentStatus.cancelled.value})
                    .where(Payment.id == row["id"])
                    .run()
                )
                changed += 1
    await execute_pending_refunds()
    return changed


async def settle_after_change(booking_ids: list[UUID]) -> None:
    """After a cancellation, expiry or rebooking commits: pay owed refunds and cancel open
    payment intents now. A provider failure is not the caller's failure: the refund stays
    `failed` (visible to the operator) and the worker tries again."""
    if not booking_ids:
        return
    try:
        await execute_pending_refunds(booking_ids)
        for booking_id in booking_ids:
            status = (
                await Booking.select(Booking.status).where(Booking.id == booking_id).first().run()
            )
            if status and status["status"] in (BookingStatus.cancelled, BookingStatus.expired):
                await cancel_open_payments(booking_id)
    except DomainError as exc:
        logger.warning("settling bookings %s deferred to the worker: %s", booking_ids, exc.code)


async def cancel_stale_intents(limit: int = 200) -> int:
    """Cancel open payment intents of bookings that can no longer be paid (expired or
    cancelled elsewhere, e.g. a run-out hold expired while someone else was booking)."""
    rows = (
        await Payment.select(Payment.booking)
        .where(
            Payment.status.is_in([PaymentStatus.requires_payment.value, PaymentStatus.failed.value])
            & Payment.booking.is_in(
                Booking.select(Booking.id).where(
                    Booking.status.is_in(
                        [BookingStatus.expired.value, BookingStatus.cancelled.value]
                    )
                )
            )
        )
        .limit(limit)
        .run()
    )
    cancelled = 0
    for booking_id in sorted({row["booking"] for row in rows}, key=str):
        cancelled += await cancel_open_payments(booking_id)
    return cancelled
