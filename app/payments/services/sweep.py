"""The reconciliation sweep, for webhooks that never arrived: intents and refunds asked
about again at the provider and brought in line, refunds made there recorded."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from app.booking.services.state import hold_running
from app.booking.tables import Booking, BookingChange, BookingChangeStatus
from app.core import clock
from app.core.database import write_transaction
from app.payments.providers import IntentState, UnknownObject, enabled_names, get_provider
from app.payments.rows import PaymentRow
from app.payments.services.refunds import (
    _apply_refund_state,
    _record_provider_refunds,
    _refund_status,
)
from app.payments.services.settle import _settle_payment, cancel_intent, settle_after_change
from app.payments.services.webhook import _apply_success
from app.payments.tables import Payment, PaymentStatus, Refund, RefundStatus

logger = logging.getLogger("tourline.payments")

# The reconciliation sweep re-fetches from Stripe every intent that is not settled yet
# (see `Payment.settled_at`), until it is: each at most once per SYNC_RECHECK while it is
# younger than SYNC_WINDOW, then once per SYNC_RECHECK_OLD. Holds last minutes and the
# sweep cancels the open intent of a booking that can no longer be paid, so an intent
# still unsettled after a week (also Stripe's horizon for an uncaptured authorisation) is
# stuck, not late: it costs one call a day, and the operator's report lists it.
SYNC_WINDOW = timedelta(days=7)
SYNC_RECHECK = timedelta(minutes=1)
SYNC_RECHECK_OLD = timedelta(days=1)
# A payment that succeeded is asked about too, on the same schedule, while younger than
# this: a refund made outside Tourline (the Stripe dashboard) whose webhook never reached
# us is recorded then. A bound on the sweep's work: one call a day per older payment.
REFUND_WATCH = timedelta(days=180)


async def sync_open_payments(limit: int = 200) -> int:
    """The reconciliation sweep, for webhooks that never arrived: re-fetch from Stripe
    every intent that could still move money (whatever its status here, until it is
    settled; see SYNC_WINDOW) and settle it, and every recent succeeded one (see
    REFUND_WATCH); then catch up refunds Stripe left pending. Paying refunds owed is the
    refunds step's (`execute_pending_refunds`).

    A succeeded intent confirms its booking if it can still be held (on hold, or expired
    with its seats still free), else is refunded in full with a notice to the tourist; an
    open intent of a booking that can no longer be paid is cancelled; a refund made at
    Stripe directly is recorded. Returns how many intents changed here."""
    now = clock.now()
    ids = await _due_ids(_unsettled(), now, limit)
    # Succeeded payments, watched for refunds, take what is left of the batch: a payment
    # that may have been lost never waits behind them.
    if len(ids) < limit:
        ids += await _due_ids(_watched(now), now, limit - len(ids))
    changed = 0
    for payment_id in ids:
        payment = await _claim_check(payment_id, now)
        if payment is None:
            continue  # Another sweep has it.
        try:
            intent = await get_provider(payment.provider).fetch(str(payment.provider_id))
        except UnknownObject:
            # Not the provider's (another account, a deleted test object): it takes nothing.
            logger.warning("payment %s is unknown to %s", payment.provider_id, payment.provider)
            await _settle_payment(payment.id)
            continue
        outcome = await reconcile_intent(payment, intent)
        if outcome not in _UNCHANGED:
            changed += 1
    await sync_refunds(limit)
    return changed


def _unsettled() -> Any:
    # A payment that succeeded here was applied in the same transaction: settled.
    return (
        Payment.provider.is_in(enabled_names())
        & Payment.provider_id.is_not_null()
        & Payment.settled_at.is_null()
        & (Payment.status != PaymentStatus.succeeded.value)
    )


def _watched(now: datetime) -> Any:
    # Succeeded, and young enough to be asked about refunds made outside Tourline.
    return (
        (Payment.provider == "stripe")
        & Payment.provider_id.is_not_null()
        & (Payment.status == PaymentStatus.succeeded.value)
        & (Payment.created_at >= now - REFUND_WATCH)
    )


def _swept(now: datetime) -> Any:
    """What the sweep asks Stripe about: unsettled intents, and succeeded ones younger than
    REFUND_WATCH (for refunds made outside Tourline)."""
    return _unsettled() | _watched(now)


async def _due_ids(which: Any, now: datetime, limit: int) -> list[UUID]:
    """Up to `limit` payments of `which` to ask Stripe about now: those never fetched
    (newest first) and those due again (longest unchecked first), half the batch each at
    least: a backlog of either rotates and starves neither."""
    unchecked = (
        await Payment.select(Payment.id)
        .where(which & Payment.checked_at.is_null())
        .order_by(Payment.created_at, ascending=False)
        .limit(limit)
        .run()
    )
    due = (
        await Payment.select(Payment.id)
        .where(which & _due_for_check(now))
        .order_by(Payment.checked_at)
        .limit(limit)
        .run()
    )
    due = due[: max(limit - len(unchecked), limit // 2)]
    return [row["id"] for row in due + unchecked[: limit - len(due)]]


# What reconcile_intent answers when nothing changed here.
_UNCHANGED = {"open", "already_applied", "processing", "succeeded", "cancel_failed"}


def _due_for_check(now: datetime) -> Any:
    recent = (Payment.created_at >= now - SYNC_WINDOW) & (Payment.checked_at <= now - SYNC_RECHECK)
    old = (Payment.created_at < now - SYNC_WINDOW) & (Payment.checked_at <= now - SYNC_RECHECK_OLD)
    return recent | old


async def _claim_check(payment_id: UUID, now: datetime) -> PaymentRow | None:
    """Mark the payment checked now, unless another sweep checked it recently enough."""
    rows = (
        await Payment.update({Payment.checked_at: now})
        .where(
            (Payment.id == payment_id)
            & _swept(now)
            & (Payment.checked_at.is_null() | _due_for_check(now))
        )
        .returning(*Payment.all_columns())
        .run()
    )
    return PaymentRow.from_row(rows[0]) if rows else None


async def reconcile_intent(payment: PaymentRow, intent: IntentState) -> str:
    """Bring one payment in line with its intent as Stripe has it now; what was done."""
    if intent.status == "succeeded":
        async with write_transaction():
            outcome = await _apply_success(payment.provider, intent)
        if outcome == "refunded":
            # Pay it back now; the refund worker retries if Stripe fails.
            await settle_after_change([payment.booking_id])
        if await _catch_up_provider_refunds(payment, intent):
            outcome = "refunded_at_provider"
        return outcome
    if intent.status == "canceled":
        return await cancel_intent(payment.id, payment.provider, payment.provider_id, intent)
    if payment.change_id is not None:
        # The difference of a change: payable while the change waits for it.
        change = (
            await BookingChange.select(BookingChange.status, BookingChange.expires_at)
            .where(BookingChange.id == payment.change_id)
            .first()
            .run()
        )
        still_owed = change is not None and change["status"] == BookingChangeStatus.pending
        if still_owed and change is not None and change["expires_at"] is not None:
            still_owed = change["expires_at"] > clock.now()
    else:
        booking = (
            await Booking.select(Booking.status, Booking.expires_at)
            .where(Booking.id == payment.booking_id)
            .first()
            .run()
        )
        still_owed = booking is not None and hold_running(booking["status"], booking["expires_at"])
    payable = still_owed and payment.status in (
        PaymentStatus.requires_payment,
        PaymentStatus.failed,
    )
    if payable:
        return "open"  # The tourist may still pay it (a declined card can be retried).
    # Nobody may pay this intent any more: cancelled so that it never takes money (one
    # processing, or that has just succeeded, is fetched again next time).
    return await cancel_intent(payment.id, payment.provider, payment.provider_id, intent)


async def _catch_up_provider_refunds(payment: PaymentRow, intent: IntentState) -> int:
    """Record the refunds made outside Tourline of a payment whose intent Stripe says has
    given back more than our refunds through it show; how many."""
    payment_id = payment.id
    ours = (
        await Refund.select(Refund.amount)
        .where(
            (Refund.payment == payment_id)
            & Refund.provider_id.is_not_null()
            & Refund.status.is_in([RefundStatus.pending.value, RefundStatus.succeeded.value])
        )
        .run()
    )
    if intent.amount_refunded <= sum(row["amount"] for row in ours):
        return 0
    states = await get_provider(payment.provider).list_refunds(intent.provider_id)
    async with write_transaction():
        row = await Payment.select().where(Payment.id == payment_id).first().run()
        return await _record_provider_refunds(PaymentRow.from_row(row), states) if row else 0


async def sync_refunds(limit: int = 200) -> int:
    """Ask Stripe about refunds it left pending, for `refund.updated` webhooks that never
    arrived; returns how many changed."""
    rows = (
        await Refund.select(Refund.provider, Refund.provider_id, Refund.status)
        .where(
            (Refund.status == RefundStatus.pending.value)
            & Refund.provider_id.is_not_null()
            & Refund.provider.is_in(enabled_names())
            & (Refund.created_at >= clock.now() - SYNC_WINDOW)
        )
        .order_by(Refund.updated_at)
        .limit(limit)
        .run()
    )
    changed = 0
    for row in rows:
        try:
            state = await get_provider(row["provider"]).fetch_refund(row["provider_id"])
        except UnknownObject:
            continue
        if _refund_status(state.status) != RefundStatus.pending:
            await _apply_refund_state(state.provider_id, state.status)
            changed += 1
    return changed
