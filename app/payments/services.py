"""Taking payments, confirming bookings from Stripe's word, and paying refunds back.

Order of trust: a webhook body is only a hint; the PaymentIntent is fetched again from
Stripe before anything changes. Every effect has a natural key (Stripe event id, refund
cause) so that repeats and races change nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from app.accounts.schemas import OperatorPrincipal
from app.booking.services.access import (
    booking_not_found,
    guest_booking,
    lock_booking,
    normalize_reference,
)
from app.booking.services.confirm import confirm_paid
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
    STRIPE,
    IntentState,
    ProviderError,
    RefundState,
    UnknownObject,
    checkout_provider,
    enabled_names,
    get_provider,
    is_remote,
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
# A provider refund not settled after this long is stuck: the operator's report lists it.
REFUND_OVERDUE = timedelta(days=1)

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
# The report asks Stripe about at most this many unsettled intents per request.
REPORT_PROVIDER_CHECKS = 100


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
        provider = checkout_provider()
        payments = (
            await Payment.select()
            .where((Payment.booking == booking["id"]) & (Payment.provider == provider.name))
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
                booking=booking["id"], provider=provider.name, attempt=attempt, amount=total,
                currency=currency, status=PaymentStatus.requires_payment.value,
                created_at=clock.now(), updated_at=clock.now(),
            )  # fmt: skip
            await payment.save().run()
            current = {"id": payment.id, "attempt": attempt, "provider_id": None}
    if stale is not None and stale["provider_id"]:
        try:
            await cancel_intent(stale)
        except DomainError:
            # Still unsettled: the sweep (`sync_open_payments`) cancels it.
            logger.warning("could not cancel payment intent %s", stale["provider_id"])
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
        provider=provider.name,
        status="requires_payment",
        amount=PriceOut.minor(total, currency),
        client_secret=intent.client_secret,
        publishable_key=provider.publishable_key,
        payment_method_types=list(provider.payment_method_types),
    )


async def cancel_open_payments(booking_id: UUID) -> int:
    """Cancel the open PaymentIntents of a booking that can no longer be paid; how many.
    One that fails is left to the sweep (`sync_open_payments`) and does not stop the rest."""
    open_payments = (
        await Payment.select(Payment.id, Payment.provider, Payment.provider_id)
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
        if not payment["provider_id"]:
            await _mark_cancelled(payment["id"])
            cancelled += 1
            continue
        try:
            outcome = await cancel_intent(payment)
        except DomainError as exc:
            logger.warning(
                "could not cancel payment intent %s: %s", payment["provider_id"], exc.code
            )
            continue
        cancelled += outcome == "cancelled"
    return cancelled


async def cancel_intent(payment: dict[str, Any], intent: IntentState | None = None) -> str:
    """Cancel at Stripe an intent nobody may pay any more, and mark its payment cancelled
    (settled) once Stripe has it so; what became of it. Safe to race: Stripe refuses to
    cancel twice, and an intent another worker cancelled first is just as cancelled.

    A succeeded or processing intent cannot be cancelled: money moved (or may yet), and
    its webhook or the sweep confirms the booking or refunds it. An intent unknown to
    Stripe (another account, a deleted test object) can take nothing: settled."""
    payment_id, provider_id = payment["id"], str(payment["provider_id"])
    provider = get_provider(payment["provider"])
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


# ---------------------------------------------------------------- webhooks


# Refunds, ours or made at Stripe directly: the intent's refunds are fetched again.
REFUND_EVENTS = {"charge.refunded", "refund.created", "refund.updated"}
HANDLED_EVENTS = {"payment_intent.succeeded", "payment_intent.payment_failed", *REFUND_EVENTS}


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
    # Of a refund event, only the intent's id is taken from the body: its refunds as Stripe
    # lists them now are what counts (without an intent, the refunds named are fetched).
    named_intent = data_object.get("payment_intent")
    refunded_intent = named_intent if isinstance(named_intent, str) and named_intent else None
    refund_ids: list[str] = []
    if event_type not in REFUND_EVENTS:
        refunded_intent = None
    elif refunded_intent is None and event_type == "charge.refunded":
        refunds = (data_object.get("refunds") or {}).get("data") or []
        refund_ids = [str(r["id"]) for r in refunds if isinstance(r, dict) and r.get("id")]
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
            recorded = await _record_provider_refunds(dict(refunded), refund_states)
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
    owed = (
        await Booking.select(Booking.total_amount, Booking.balance_due)
        .where(Booking.id == payment["booking"])
        .first()
        .run()
    )
    outdated = payment["status"] == PaymentStatus.cancelled or (
        owed is not None and intent.amount != owed["total_amount"] - owed["balance_due"]
    )
    result = "outdated" if outdated else await confirm_paid(payment["booking"], actor=provider)
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


async def _record_provider_refunds(payment: dict[str, Any], states: list[RefundState]) -> int:
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
                    booking=payment["booking"],
                    payment=payment["id"],
                    provider="stripe",
                    provider_id=state.provider_id,
                    key=f"provider-refund:{state.provider_id}",
                    amount=state.amount,
                    currency=payment["currency"],
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
                payment["provider_id"],
            )
            recorded += 1
    return recorded


async def _catch_up_provider_refunds(payment: dict[str, Any], intent: IntentState) -> int:
    """Record the refunds made outside Tourline of a payment whose intent Stripe says has
    given back more than our refunds through it show; how many."""
    payment_id = payment["id"]
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
    states = await get_provider(payment["provider"]).list_refunds(intent.provider_id)
    async with write_transaction():
        row = await Payment.select().where(Payment.id == payment_id).first().run()
        return await _record_provider_refunds(dict(row), states) if row else 0


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
                created_at=clock.now(),
                updated_at=clock.now(),
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
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    for row in rows:
        await Refund.insert(row).on_conflict(target=Refund.key, action="DO NOTHING").run()


def refund_idempotency_key(refund: dict[str, Any]) -> str:
    """Stripe's idempotency key for a refund: its row's id (one row per natural key, the
    cause), so every worker and every retry asks for the same refund. The id, as before the
    claims existed, so that a refund retried across that upgrade keeps its key."""
    return f"tourline-refund-{refund['id']}"


def _refund_claimable(now: datetime) -> Any:
    """Refunds a worker may take: owed and not yet asked for (or failed, once their retry
    is due), and those whose worker's claim lapsed with the outcome unknown."""
    due = Refund.claimed_until.is_null() | (Refund.claimed_until <= now)
    owed = Refund.status.is_in([RefundStatus.pending.value, RefundStatus.failed.value]) & due
    lapsed = (Refund.status == RefundStatus.processing.value) & (Refund.claimed_until <= now)
    return (owed | lapsed) & Refund.provider_id.is_null() & (Refund.attempts < MAX_REFUND_ATTEMPTS)


async def claim_refund(refund_id: UUID) -> dict[str, Any] | None:
    """Claim one refund for this worker in a committed row, before any call to the
    provider; None when it is not due or another worker holds it."""
    now = clock.now()
    async with write_transaction():
        rows = (
            await Refund.update(
                {
                    Refund.status: RefundStatus.processing.value,
                    Refund.claim: uuid4(),
                    Refund.claimed_until: now + REFUND_LEASE,
                    Refund.attempts: Refund.attempts + 1,
                    Refund.updated_at: now,
                }
            )
            .where((Refund.id == refund_id) & _refund_claimable(now))
            .returning(*Refund.all_columns())
            .run()
        )
    return dict(rows[0]) if rows else None


async def _record_refund(claimed: dict[str, Any], values: dict[Any, Any]) -> bool:
    """Record a claimed refund's outcome, only if this worker's claim still holds (a worker
    whose lease lapsed must not overwrite what the next one found)."""
    updated = (
        await Refund.update({**values, Refund.claim: None, Refund.updated_at: clock.now()})
        .where(
            (Refund.id == claimed["id"])
            & (Refund.claim == claimed["claim"])
            & (Refund.status == RefundStatus.processing.value)
        )
        .returning(Refund.id)
        .run()
    )
    if not updated:
        logger.warning("refund %s was taken over by another worker", claimed["id"])
    return bool(updated)


async def _still_claimed(claimed: dict[str, Any]) -> bool:
    return bool(
        await Refund.exists()
        .where(
            (Refund.id == claimed["id"])
            & (Refund.claim == claimed["claim"])
            & (Refund.status == RefundStatus.processing.value)
            & (Refund.claimed_until > clock.now())
        )
        .run()
    )


def _retry_delay(attempts: int) -> timedelta:
    factor: int = 2 ** min(max(0, attempts - 1), 16)
    return min(REFUND_RETRY_FIRST * factor, REFUND_RETRY_MAX)


async def _ask_provider(claimed: dict[str, Any], provider_id: str | None) -> RefundState:
    key = refund_idempotency_key(claimed)
    provider = get_provider(claimed["provider"])
    if claimed["attempts"] > 1:
        # A retry: an earlier attempt may have reached Stripe (a timeout, or a worker that
        # died before recording). The same key makes Stripe answer with that refund for
        # 24 hours; looking it up first also covers a retry after Stripe forgot the key.
        found = await provider.find_refund(provider_id, key)
        if found is not None:
            return found
    return await provider.refund(provider_id, claimed["amount"], key)


async def execute_refund(claimed: dict[str, Any]) -> bool:
    """Pay back one refund this worker has claimed (`claim_refund`); True when the provider
    accepted it and its answer was recorded."""
    payment = (
        await Payment.select(Payment.provider_id)
        .where(Payment.id == claimed["payment"])
        .first()
        .run()
    )
    if payment is None or (not payment["provider_id"] and is_remote(claimed["provider"])):
        await _record_refund(
            claimed,
            {
                Refund.status: RefundStatus.failed.value,
                Refund.attempts: MAX_REFUND_ATTEMPTS,
                Refund.last_error: _("The payment to refund is unknown to the provider."),
                Refund.claimed_until: None,
            },
        )
        return False
    if not await _still_claimed(claimed):
        return False  # Paused past its lease: the refund is another worker's now.
    try:
        state = await _ask_provider(claimed, payment["provider_id"])
    except DomainError as exc:
        # Unknown whether Stripe acted (or it is not configured): retried later under the
        # same key, never left claimed.
        await _record_refund(
            claimed,
            {
                Refund.status: RefundStatus.failed.value,
                Refund.last_error: str(exc.detail or exc.code),
                Refund.claimed_until: clock.now() + _retry_delay(claimed["attempts"]),
            },
        )
        return False
    return await _record_refund(
        claimed,
        {
            Refund.provider_id: state.provider_id,
            Refund.status: _refund_status(state.status).value,
            Refund.last_error: "",
            Refund.claimed_until: None,
        },
    )


async def execute_pending_refunds(booking_ids: list[UUID] | None = None, *, limit: int = 50) -> int:
    """Pay back the refunds that are due, oldest first, at most `limit` (a batch: the
    refunds step drains a backlog batch after batch); returns how many the provider
    accepted.

    Each refund is claimed in a committed row first, so two workers never send the same
    one; Stripe sees the refund's natural key as idempotency key, so a retry after an
    unknown outcome can never pay twice."""
    query = Refund.select(Refund.id).where(_refund_claimable(clock.now()))
    if booking_ids is not None:
        if not booking_ids:
            return 0
        query = query.where(Refund.booking.is_in(booking_ids))
    done = 0
    for row in await query.order_by(Refund.created_at).limit(limit).run():
        claimed = await claim_refund(row["id"])
        if claimed is not None and await execute_refund(claimed):
            done += 1
    return done


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
    and every mismatch between the money and the bookings, one line per booking and
    problem, for as long as it lasts.

    Besides our own books, Stripe is asked about every intent of these bookings that is not
    settled yet: money it took that no webhook told us about shows as `paid_not_recorded`
    until the sweep confirms the booking or refunds it."""
    operator = await get_operator_row(principal.operator_id)
    start, end = local_day_range(date_from, date_to, operator["time_zone"])
    in_range: Any = Booking.operator == principal.operator_id
    if start is not None:
        in_range &= Booking.created_at >= start
    if end is not None:
        in_range &= Booking.created_at < end
    bookings = await Booking.select().where(in_range).order_by(Booking.created_at).run()
    booking_ids = Booking.select(Booking.id).where(in_range)
    unrecorded, unverified, unsettled = await _unrecorded_at_provider(booking_ids)
    refund_problems = await _refund_problems(booking_ids)
    total_paid = total_refunded = 0
    mismatches = []
    for booking in bookings:
        paid, refunded = await money_of(booking)
        total_paid += paid
        total_refunded += refunded
        problems = [money_problem(booking, paid, refunded)]
        if unrecorded.get(booking["id"]):
            problems.append("paid_not_recorded")
        if booking["id"] in unverified:
            problems.append("provider_unverified")
        if booking["id"] in unsettled:
            problems.append("payment_unsettled")
        problems += refund_problems.get(booking["id"], [])
        for problem in problems:
            if problem is None:
                continue
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
                    unrecorded=unrecorded.get(booking["id"], 0),
                )
            )
    currency = operator["currency"]
    return Reconciliation(
        currency=currency, bookings=len(bookings), paid=PriceOut.minor(total_paid, currency),
        refunded=PriceOut.minor(total_refunded, currency), mismatches=mismatches,
    )  # fmt: skip


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


async def _unrecorded_at_provider(
    booking_ids: Any,
) -> tuple[dict[UUID, int], set[UUID], set[UUID]]:
    """What Stripe holds that our books do not show, for the unsettled intents of these
    bookings: the amounts it took (asked now, for intents younger than SYNC_WINDOW, which
    the sweep may not have seen yet), by booking; the bookings it could not tell us about
    (unreachable, or beyond REPORT_PROVIDER_CHECKS); and those with an older intent the
    sweep has looked at and could not settle."""
    since = clock.now() - SYNC_WINDOW
    rows = (
        await Payment.select(
            Payment.booking,
            Payment.provider,
            Payment.provider_id,
            Payment.created_at,
            Payment.checked_at,
        )
        .where(_unsettled() & Payment.booking.is_in(booking_ids))
        .order_by(Payment.created_at, ascending=False)
        .run()
    )
    recent = [row for row in rows if row["created_at"] >= since]
    unsettled = {row["booking"] for row in rows if row["created_at"] < since and row["checked_at"]}
    unrecorded: dict[UUID, int] = {}
    unverified = {row["booking"] for row in recent[REPORT_PROVIDER_CHECKS:]}
    gate = asyncio.Semaphore(8)

    async def check(row: dict[str, Any]) -> None:
        async with gate:
            try:
                intent = await get_provider(row["provider"]).fetch(row["provider_id"])
            except UnknownObject:
                return
            except DomainError:
                unverified.add(row["booking"])
                return
        if intent.status == "succeeded":
            unrecorded[row["booking"]] = unrecorded.get(row["booking"], 0) + intent.amount

    await asyncio.gather(*(check(dict(row)) for row in recent[:REPORT_PROVIDER_CHECKS]))
    return unrecorded, unverified, unsettled


async def _refund_problems(booking_ids: Any) -> dict[UUID, list[str]]:
    """Refunds through a provider that will not complete by themselves: refused by it or
    out of retries (`refund_failed`), or still open a day after they were owed
    (`refund_stuck`). Manual refunds are a person's to-do, not a mismatch."""
    now = clock.now()
    rows = (
        await Refund.select()
        .where(
            Refund.booking.is_in(booking_ids)
            & (Refund.provider != "manual")
            & Refund.status.is_in(
                [RefundStatus.pending.value, RefundStatus.processing.value,
                 RefundStatus.failed.value]
            )
        )
        .run()
    )  # fmt: skip
    problems: dict[UUID, list[str]] = {}
    for row in rows:
        if row["status"] == RefundStatus.failed and (
            row["provider_id"] or row["attempts"] >= MAX_REFUND_ATTEMPTS
        ):
            problem = "refund_failed"
        elif row["created_at"] <= now - REFUND_OVERDUE or (
            row["attempts"] >= MAX_REFUND_ATTEMPTS and not row["provider_id"]
        ):
            problem = "refund_stuck"
        else:
            continue
        found = problems.setdefault(row["booking"], [])
        if problem not in found:
            found.append(problem)
    return problems


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
            intent = await get_provider(payment["provider"]).fetch(payment["provider_id"])
        except UnknownObject:
            # Not the provider's (another account, a deleted test object): it takes nothing.
            logger.warning(
                "payment %s is unknown to %s", payment["provider_id"], payment["provider"]
            )
            await _settle_payment(payment["id"])
            continue
        outcome = await reconcile_intent(payment, intent)
        if outcome not in _UNCHANGED:
            changed += 1
    await sync_refunds(limit)
    return changed


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


async def _claim_check(payment_id: UUID, now: datetime) -> dict[str, Any] | None:
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
    return dict(rows[0]) if rows else None


async def reconcile_intent(payment: dict[str, Any], intent: IntentState) -> str:
    """Bring one payment in line with its intent as Stripe has it now; what was done."""
    if intent.status == "succeeded":
        async with write_transaction():
            outcome = await _apply_success(payment["provider"], intent)
        if outcome == "refunded":
            # Pay it back now; the refund worker retries if Stripe fails.
            await settle_after_change([payment["booking"]])
        if await _catch_up_provider_refunds(payment, intent):
            outcome = "refunded_at_provider"
        return outcome
    if intent.status == "canceled":
        return await cancel_intent(payment, intent)
    booking = (
        await Booking.select(Booking.status, Booking.expires_at)
        .where(Booking.id == payment["booking"])
        .first()
        .run()
    )
    payable = (
        booking is not None
        and booking["status"] == BookingStatus.on_hold
        and (booking["expires_at"] is None or booking["expires_at"] > clock.now())
        and payment["status"] in (PaymentStatus.requires_payment, PaymentStatus.failed)
    )
    if payable:
        return "open"  # The tourist may still pay it (a declined card can be retried).
    # Nobody may pay this intent any more: cancelled so that it never takes money (one
    # processing, or that has just succeeded, is fetched again next time).
    return await cancel_intent(payment, intent)


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
