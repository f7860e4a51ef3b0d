"""Settling what a booking leaves open once it changed: open intents cancelled at the
provider (or marked settled when they can move no money), refunds owed paid now."""

from __future__ import annotations

import dataclasses
import logging
from uuid import UUID

from app.booking.services.state import LIVE_STATUSES
from app.booking.tables import Booking, BookingChangeStatus
from app.core import clock
from app.core.errors import DomainError
from app.payments.providers import IntentState, ProviderError, UnknownObject, get_provider
from app.payments.services.refunds import execute_pending_refunds
from app.payments.tables import Payment, PaymentStatus

logger = logging.getLogger("tourline.payments")


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
            if status and status["status"] not in LIVE_STATUSES:
                await cancel_open_payments(booking_id)
            elif status:
                await cancel_open_payments(booking_id, dropped_changes_only=True)
    except DomainError as exc:
        logger.warning("settling bookings %s deferred to the worker: %s", booking_ids, exc.code)


async def cancel_open_payments(booking_id: UUID, *, dropped_changes_only: bool = False) -> int:
    """Cancel the open PaymentIntents of a booking that can no longer be paid (or, with
    `dropped_changes_only`, those of its changes that are no longer pending); how many.
    One that fails is left to the sweep (`sync_open_payments`) and does not stop the rest."""
    which = (Payment.booking == booking_id) & Payment.status.is_in(
        [PaymentStatus.requires_payment.value, PaymentStatus.failed.value]
    )
    if dropped_changes_only:
        which &= Payment.change.is_not_null() & (
            Payment.change.status != BookingChangeStatus.pending.value
        )
    open_payments = (
        await Payment.select(Payment.id, Payment.provider, Payment.provider_id).where(which).run()
    )
    cancelled = 0
    for payment in open_payments:
        if not payment["provider_id"]:
            await _mark_cancelled(payment["id"])
            cancelled += 1
            continue
        try:
            outcome = await cancel_intent(
                payment["id"], payment["provider"], payment["provider_id"]
            )
        except DomainError as exc:
            logger.warning(
                "could not cancel payment intent %s: %s", payment["provider_id"], exc.code
            )
            continue
        cancelled += outcome == "cancelled"
    return cancelled


async def cancel_intent(
    payment_id: UUID, provider_name: str, provider_id: str | None, intent: IntentState | None = None
) -> str:
    """Cancel at Stripe an intent nobody may pay any more, and mark its payment cancelled
    (settled) once Stripe has it so; what became of it. Safe to race: Stripe refuses to
    cancel twice, and an intent another worker cancelled first is just as cancelled.

    A succeeded or processing intent cannot be cancelled: money moved (or may yet), and
    its webhook or the sweep confirms the booking or refunds it. An intent unknown to
    Stripe (another account, a deleted test object) can take nothing: settled."""
    provider_id = str(provider_id)
    provider = get_provider(provider_name)
    try:
        if intent is None:
            intent = await provider.fetch(provider_id)
        if intent.status not in ("canceled", "succeeded", "processing"):
            try:
                await provider.cancel(provider_id)
            except ProviderError:
                # Cancelled meanwhile elsewhere, or it has just succeeded: Stripe's word.
                intent = await provider.fetch(provider_id)
                if intent.status not in ("canceled", "succeeded", "processing"):
                    return "cancel_failed"
            else:
                intent = dataclasses.replace(intent, status="canceled")
    except UnknownObject:
        logger.warning("payment intent %s is unknown to Stripe", provider_id)
        await _settle_payment(payment_id)
        return "unknown"
    if intent.status != "canceled":
        return intent.status
    await _mark_cancelled(payment_id)
    return "cancelled"


async def _mark_cancelled(payment_id: UUID) -> None:
    """The provider has cancelled the intent: it can move no money any more."""
    now = clock.now()
    await (
        Payment.update(
            {
                Payment.status: PaymentStatus.cancelled.value,
                Payment.updated_at: now,
                Payment.settled_at: now,
            }
        )
        .where((Payment.id == payment_id) & (Payment.status != PaymentStatus.succeeded.value))
        .run()
    )


async def _settle_payment(payment_id: UUID) -> None:
    await (
        Payment.update({Payment.settled_at: clock.now()})
        .where((Payment.id == payment_id) & Payment.settled_at.is_null())
        .run()
    )
