"""Refunds: owed inside the caller's transaction, claimed by one worker, paid back through
the provider under an idempotency key; refunds made at the provider recorded."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from piccolo.custom_types import Combinable

from app.core import clock
from app.core.backoff import Backoff, RetryPolicy
from app.core.delivery import Channel, Claim, Ledger, Outcome, Row
from app.core.errors import DomainError
from app.core.i18n import _
from app.payments.providers import RefundState, get_provider, is_remote
from app.payments.providers.on_account import NAME as ON_ACCOUNT
from app.payments.providers.stripe import STRIPE_TIMEOUT_SECONDS
from app.payments.rows import PaymentRow, RefundRow
from app.payments.tables import Payment, PaymentStatus, Refund, RefundStatus

logger = logging.getLogger("tourline.payments")

# Refunds that failed are tried again by the worker up to this many times, the n-th retry
# waiting REFUND_RETRY_FIRST * 2**(n-1), at most REFUND_RETRY_MAX: all of them fall well
# inside the 24 hours Stripe keeps an idempotency key.
MAX_REFUND_ATTEMPTS = 8
REFUND_RETRY_FIRST = timedelta(seconds=30)
REFUND_RETRY_MAX = timedelta(hours=1)
# How long a worker's claim on a refund lasts: longer than any Stripe call (the SDK's
# timeout and retries). A worker that dies holding it leaves the refund to the next worker
# once it lapses, with the same idempotency key.
REFUND_LEASE = timedelta(minutes=5)
# The longest one call to the provider may take (Stripe's timeout, and a margin for its own
# answer to come first); a call cut off is an unknown outcome, retried under the same key.
REFUND_CALL_SECONDS = STRIPE_TIMEOUT_SECONDS + 5


def _refund_status(provider_status: str) -> RefundStatus:
    """A Stripe refund's status as ours (any other is still on its way)."""
    return {
        "succeeded": RefundStatus.succeeded,
        "failed": RefundStatus.failed,
        "canceled": RefundStatus.failed,
    }.get(provider_status, RefundStatus.pending)


async def _apply_refund_state(provider_id: str | None, status: str) -> str:
    if provider_id is None:
        return "unknown_refund"  # A provider that keeps no refund objects (on account).
    updated = (
        await Refund.update(
            {Refund.status: _refund_status(status).value, Refund.updated_at: clock.now()}
        )
        .where(Refund.provider_id == provider_id)
        .returning(Refund.id)
        .run()
    )
    return "refund_updated" if updated else "unknown_refund"


async def _record_provider_refunds(payment: PaymentRow, states: list[RefundState]) -> int:
    """Inside a transaction: bring our refunds of a payment in line with the refunds
    Stripe lists for its intent (`states`); how many made outside Tourline were recorded.

    Ours take Stripe's status. One made at Stripe directly (the dashboard) is recorded as a
    refund `refunded_at_provider` with its Stripe id: the ledger then adds up, and it is
    never paid again. The booking is left as it is: the report shows the mismatch until
    the operator settles it."""
    recorded = 0
    for state in states:
        if await _apply_refund_state(state.provider_id, state.status) == "refund_updated":
            continue
        if state.key is not None:
            continue  # Ours, from a worker that has not recorded it yet: the refunds step will.
        status = _refund_status(state.status)
        if status == RefundStatus.failed:
            continue  # It gave nothing back.
        inserted = (
            await Refund.insert(
                Refund(
                    booking=payment.booking_id,
                    payment=payment.id,
                    provider="stripe",
                    provider_id=state.provider_id,
                    key=f"provider-refund:{state.provider_id}",
                    amount=state.amount,
                    currency=payment.currency,
                    reason="refunded_at_provider",
                    status=status.value,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(Refund.id)
            .run()
        )
        if inserted:
            logger.warning(
                "refund %s of payment intent %s was made outside Tourline",
                state.provider_id,
                payment.provider_id,
            )
            recorded += 1
    return recorded


async def _refundable_payments(booking_id: UUID) -> list[tuple[dict[str, Any], int]]:
    """Succeeded provider payments of a booking, newest first, each with what is still
    refundable through it (its amount less the refunds already owed or paid through it)."""
    payments = (
        await Payment.select()
        .where(
            (Payment.booking == booking_id)
            & (Payment.status == PaymentStatus.succeeded.value)
            & (Payment.provider != "free")
        )
        .order_by(Payment.succeeded_at, ascending=False)
        .run()
    )
    refunds = (
        await Refund.select(Refund.payment, Refund.amount)
        .where(
            (Refund.booking == booking_id) & (Refund.status != RefundStatus.requires_action.value)
        )
        .run()
    )
    through: dict[Any, int] = {}
    for refund in refunds:
        through[refund["payment"]] = through.get(refund["payment"], 0) + refund["amount"]
    return [(dict(p), max(0, p["amount"] - through.get(p["id"], 0))) for p in payments]


async def owe_refund(
    booking_id: UUID,
    currency: str,
    amount: int,
    reason: str,
    key: str,
    *,
    payment_id: UUID | None = None,
) -> None:
    """Record a refund owed, inside the caller's transaction, never above what was paid;
    once per `key` (the cause).

    What providers took is refunded through them, newest payment first (`payment_id`
    first, when a particular payment goes back), split over several payments when one
    does not hold enough (a booking paid, then its change's difference); any rest (a
    booking confirmed without a provider payment) is left `requires_action` for the
    operator to settle by hand. A booking charged to an agency's account is refunded to
    that account first, never to a card that also paid it (a traveller's payment that
    landed after the agency confirmed).
    """
    if amount <= 0:
        return
    if await Refund.exists().where(Refund.key.is_in([key, f"{key}:manual"])).run():
        return  # This cause is already owed.
    payments = await _refundable_payments(booking_id)
    payments.sort(key=lambda item: (item[0]["id"] != payment_id, item[0]["provider"] != ON_ACCOUNT))
    rows: list[Refund] = []
    left = amount
    for payment, refundable in payments:
        part = min(left, refundable)
        if part <= 0:
            continue
        rows.append(
            Refund(
                booking=booking_id,
                payment=payment["id"],
                provider=payment["provider"],
                key=key if not rows else f"{key}:{len(rows) + 1}",
                amount=part,
                currency=currency,
                reason=reason,
                status=RefundStatus.pending.value,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        left -= part
        if not left:
            break
    if left:
        rows.append(
            Refund(
                booking=booking_id,
                provider="manual",
                key=f"{key}:manual",
                amount=left,
                currency=currency,
                reason=reason,
                status=RefundStatus.requires_action.value,
                last_error=_("Nothing was paid through a provider for this amount."),
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    for row in rows:
        await Refund.insert(row).on_conflict(target=Refund.key, action="DO NOTHING").run()


def refund_idempotency_key(refund_id: UUID) -> str:
    """Stripe's idempotency key for a refund: its row's id (one row per natural key, the
    cause), so every worker and every retry asks for the same refund. The id, as before the
    claims existed, so that a refund retried across that upgrade keeps its key."""
    return f"tourline-refund-{refund_id}"


async def _ask_provider(claimed: RefundRow, provider_id: str | None) -> RefundState:
    key = refund_idempotency_key(claimed.id)
    provider = get_provider(claimed.provider)
    if claimed.attempts > 1:
        # A retry: an earlier attempt may have reached Stripe (a timeout, or a worker that
        # died before recording). The same key makes Stripe answer with that refund for
        # 24 hours; looking it up first also covers a retry after Stripe forgot the key.
        found = await provider.find_refund(provider_id, key)
        if found is not None:
            return found
    return await provider.refund(provider_id, claimed.amount, key)


class RefundChannel(Channel[RefundRow]):
    """Refunds through their provider: a claimed refund is `processing` under a fresh
    claim id; a failed one waits in `failed` for its retry."""

    name = "refund"
    ledger = Ledger(
        table=Refund,
        status=Refund.status,
        attempts=Refund.attempts,
        due_at=Refund.claimed_until,
        error=Refund.last_error,
        waiting=(RefundStatus.pending.value, RefundStatus.failed.value),
        claimed=RefundStatus.processing.value,
        retrying=RefundStatus.failed.value,
        given_up=RefundStatus.failed.value,
        order=(Refund.created_at,),
        token=Refund.claim,
        touched_at=Refund.updated_at,
    )
    retry = RetryPolicy(
        Backoff.doubling(REFUND_RETRY_FIRST, REFUND_RETRY_MAX), max_attempts=MAX_REFUND_ATTEMPTS
    )
    longest_send = REFUND_CALL_SECONDS

    def lease(self) -> timedelta:
        return REFUND_LEASE

    def claimable(self, now: datetime) -> Combinable:
        return Refund.provider_id.is_null()  # not asked for yet, or with no answer

    async def prepare(self, row: Row) -> RefundRow:
        return RefundRow.from_row(row)

    async def send(self, claim: Claim[RefundRow], seconds: float) -> Outcome:
        claimed = claim.item
        payment = (
            await Payment.select(Payment.provider_id)
            .where(Payment.id == claimed.payment_id)
            .first()
            .run()
        )
        if payment is None or (not payment["provider_id"] and is_remote(claimed.provider)):
            return Outcome.failed(
                _("The payment to refund is unknown to the provider."),
                permanent=True,
                values={Refund.attempts: MAX_REFUND_ATTEMPTS},  # never claimed again
            )
        try:
            state = await _ask_provider(claimed, payment["provider_id"])
        except DomainError as exc:
            # Unknown whether the provider acted (or it is not configured): retried later
            # under the same key, never left claimed.
            return Outcome.failed(str(exc.detail or exc.code))
        return Outcome.done(
            _refund_status(state.status).value,
            values={Refund.provider_id: state.provider_id, Refund.claimed_until: None},
        )


REFUNDS = RefundChannel()


async def claim_refund(refund_id: UUID) -> RefundRow | None:
    """Claim one refund for this worker in a committed row, before any call to the
    provider; the refund as claimed, or None when it is not due or another worker holds
    it."""
    claim = await REFUNDS.claim(refund_id)
    return None if claim is None else claim.item


async def execute_refund(claimed: RefundRow) -> bool:
    """Pay back one refund this worker has claimed (`claim_refund`); True when the provider
    answered and its answer was recorded."""
    # The claim's row is the refund's columns by name (the channel reads only its item).
    row = {**asdict(claimed), "booking": claimed.booking_id, "payment": claimed.payment_id}
    claim = Claim(claimed.id, claimed.attempts, REFUND_LEASE, claimed.claim, row, claimed)
    return await REFUNDS.attempt(claim, REFUNDS.send_seconds(REFUND_LEASE))


async def execute_pending_refunds(
    booking_ids: list[UUID] | None = None, *, limit: int = 50, deadline: float | None = None
) -> int:
    """Pay back the refunds that are due, oldest first, at most `limit` (a batch: the
    refunds step drains a backlog batch after batch); returns how many the provider
    answered. With a `deadline` (time.monotonic()), no refund is claimed once less time
    is left than one call to the provider may take.

    Each refund is claimed in a committed row first, so two workers never send the same
    one; the provider sees the refund's natural key as idempotency key, so a retry after
    an unknown outcome can never pay twice."""
    if booking_ids is not None and not booking_ids:
        return 0
    only = None if booking_ids is None else Refund.booking.is_in(booking_ids)
    return await REFUNDS.deliver_due(limit=limit, deadline=deadline, only=only)
