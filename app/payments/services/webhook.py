"""Stripe's webhook: verify, deduplicate and apply one event, trusting only what Stripe
says when asked again."""

from __future__ import annotations

import logging
from typing import Any

from app.booking.services.access import normalize_reference
from app.booking.services.confirm import confirm_paid
from app.booking.services.rebook import complete_change
from app.booking.services.state import owe_back
from app.booking.tables import Booking
from app.core import clock
from app.core.database import write_transaction
from app.core.events import publish
from app.core.i18n import _
from app.core.settings import Settings
from app.payments.events import PaymentRefundedLate
from app.payments.providers import (
    STRIPE,
    IntentState,
    UnknownObject,
    stripe_provider,
    verify_stripe_event,
)
from app.payments.rows import PaymentRow
from app.payments.services.refunds import _apply_refund_state, _record_provider_refunds, owe_refund
from app.payments.services.settle import _settle_payment, settle_after_change
from app.payments.tables import Payment, PaymentStatus, StripeEvent

logger = logging.getLogger("tourline.payments")


# Refunds, ours or made at Stripe directly: the intent's refunds are fetched again.
REFUND_EVENTS = {"charge.refunded", "refund.created", "refund.updated"}
HANDLED_EVENTS = {"payment_intent.succeeded", "payment_intent.payment_failed", *REFUND_EVENTS}


def _text(value: Any) -> str:
    """A string field of the event's object, or "" when it is anything else."""
    return value if isinstance(value, str) else ""


def _listed_refund_ids(charge: dict[str, Any]) -> list[str]:
    """The ids of the refunds a charge lists (`refunds.data[].id`), if it lists any."""
    listed = charge.get("refunds")
    refunds = listed.get("data") if isinstance(listed, dict) else None
    if not isinstance(refunds, list):
        return []
    ids = [_text(refund.get("id")) for refund in refunds if isinstance(refund, dict)]
    return [refund_id for refund_id in ids if refund_id]


async def handle_stripe_webhook(payload: bytes, signature: str | None, settings: Settings) -> str:
    """Verify, deduplicate and apply one Stripe event; returns what was done."""
    event = verify_stripe_event(payload, signature, settings)
    event_id, event_type = str(event["id"]), str(event["type"])
    data_object = event["data"]["object"]
    object_id = _text(data_object.get("id"))
    if await StripeEvent.exists().where(StripeEvent.id == event_id).run():
        return "duplicate"
    intent: IntentState | None = None
    if event_type.startswith("payment_intent.") and object_id:
        try:
            intent = await stripe_provider().fetch(object_id)
        except UnknownObject:
            intent = None  # Not ours (e.g. a dashboard test event): stored, nothing to do.
    # Of a refund event, only the intent's id is taken from the body: its refunds as Stripe
    # lists them now are what counts (without an intent, the refunds named are fetched).
    named_intent = data_object.get("payment_intent")
    refunded_intent = named_intent if isinstance(named_intent, str) and named_intent else None
    refund_ids: list[str] = []
    if event_type not in REFUND_EVENTS:
        refunded_intent = None
    elif refunded_intent is None and event_type == "charge.refunded":
        refund_ids = _listed_refund_ids(data_object)
    elif refunded_intent is None and object_id:
        refund_ids = [object_id]
    refund_states = []
    try:
        if refunded_intent:
            refund_states = await stripe_provider().list_refunds(refunded_intent)
        for refund_id in refund_ids:
            refund_states.append(await stripe_provider().fetch_refund(refund_id))
    except UnknownObject:
        pass  # Not ours: stored, nothing to do.
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
            outcome = await _apply_success(STRIPE, intent)
        elif intent is not None and event_type == "payment_intent.payment_failed":
            outcome = await _apply_failure(STRIPE, intent)
        refunded = None
        if refunded_intent:
            refunded = (
                await Payment.select().where(Payment.provider_id == refunded_intent).first().run()
            )
        if refunded is not None:
            recorded = await _record_provider_refunds(PaymentRow.from_row(refunded), refund_states)
            outcome = "refunded_at_provider" if recorded else "refund_updated"
        else:
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


async def _payment_for(provider: str, intent: IntentState) -> dict[str, Any] | None:
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
        booking=booking["id"], provider=provider, provider_id=intent.provider_id, attempt=0,
        amount=intent.amount, currency=intent.currency,
        status=PaymentStatus.requires_payment.value, created_at=clock.now(),
        updated_at=clock.now(),
    )  # fmt: skip
    await row.save().run()
    return dict(await Payment.select().where(Payment.id == row.id).first().run() or {})


async def _apply_success(provider: str, intent: IntentState) -> str:
    if intent.status != "succeeded":
        return "stale_event"
    payment = await _payment_for(provider, intent)
    if payment is None:
        logger.warning("payment intent %s matches no booking", intent.provider_id)
        return "unknown_payment"
    # Conditional, so that a success heard twice (another event id, or the sync worker,
    # even concurrently) is applied once: confirming or refunding it again would give the
    # money back twice.
    # Settled with it: once applied, the booking is confirmed or a refund is owed (and the
    # refunds' own delivery takes over), so the sweep has nothing more to ask Stripe.
    applied = (
        await Payment.update(
            {
                Payment.status: PaymentStatus.succeeded.value,
                Payment.amount: intent.amount,
                Payment.succeeded_at: clock.now(),
                Payment.updated_at: clock.now(),
                Payment.settled_at: clock.now(),
            }
        )
        .where((Payment.id == payment["id"]) & (Payment.status != PaymentStatus.succeeded.value))
        .returning(Payment.id)
        .run()
    )
    if not applied:
        await _settle_payment(payment["id"])
        return "already_applied"
    # A payment we had cancelled (the total changed since) is outdated: never confirm with
    # it; it goes back in full like a late one.
    cancelled = payment["status"] == PaymentStatus.cancelled
    if payment["change"] is not None:
        # The difference of a pending change: the move completes, unless it was dropped.
        result = "outdated" if cancelled else await complete_change(
            payment["change"], actor=provider, paid=intent.amount
        )  # fmt: skip
        if result in ("completed", "already_completed"):
            return result
    else:
        owed = (
            await Booking.select(Booking.total_amount)
            .where(Booking.id == payment["booking"])
            .first()
            .run()
        )
        outdated = cancelled or (owed is not None and intent.amount != owed["total_amount"])
        result = "outdated" if outdated else await confirm_paid(payment["booking"], actor=provider)
        if result == "confirmed":
            return result
    # Paid, but the booking cannot be honoured (hold ran out and seats resold, or
    # cancelled meanwhile), or was already paid by another payment (an agency's account,
    # a second intent): everything this payment took goes back, with a notice.
    booking = await owe_back(payment["booking"], intent.amount)
    await owe_refund(
        booking.id, booking.currency, intent.amount, "paid_after_expiry",
        f"late-payment:{intent.provider_id}", payment_id=payment["id"],
    )  # fmt: skip
    await publish(
        PaymentRefundedLate(
            booking_id=booking.id,
            reference=booking.reference,
            amount=intent.amount,
            currency=intent.currency,
            provider_payment_id=intent.provider_id,
            why=(
                "change_lapsed"
                if payment["change"] is not None
                else "paid_twice"
                if result == "already_confirmed"
                else "hold_ran_out"
            ),
        )
    )
    return "refunded"


async def _apply_failure(provider: str, intent: IntentState) -> str:
    payment = await _payment_for(provider, intent)
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
