"""What payments do when bookings change: owe refunds, and settle once committed.

A refund owed is recorded in the change's own transaction (never above what was paid), so
a cancellation and its refund commit together; the provider is asked only after the
commit (`settle_after_change`), and the `refunds` step retries what that missed.
"""

from __future__ import annotations

from app.booking.events import BookingCancelled, BookingChanged, BookingExpired, ChangeReverted
from app.core.events import EventBus, Phase, publish
from app.payments.events import RefundRequested
from app.payments.services.refunds import owe_refund
from app.payments.services.settle import settle_after_change


async def _owe(
    event: BookingCancelled | BookingExpired | BookingChanged, reason: str, cause: str
) -> None:
    await owe_refund(
        event.booking_id, event.currency, event.refund_amount, reason,
        f"refund:{event.reference}:{cause}",
    )  # fmt: skip
    await publish(
        RefundRequested(
            booking_id=event.booking_id,
            reference=event.reference,
            amount=event.refund_amount,
            currency=event.currency,
            reason=reason,
            cause=cause,
        )
    )


async def refund_ended_booking(event: BookingCancelled | BookingExpired) -> None:
    if event.refund_amount > 0:
        await _owe(event, event.reason, event.name.removeprefix("booking."))


async def refund_rebooking(event: BookingChanged) -> None:
    if event.refund_amount > 0:
        await _owe(event, event.reason, f"rebook:{event.change_id}")


async def settle_booking(event: BookingCancelled | BookingChanged | ChangeReverted) -> None:
    """Refunds paid and open payments cancelled once the change is committed (a reverted
    change's payment among them)."""
    if not isinstance(event, BookingChanged) or event.reason == "rebooked":
        await settle_after_change([event.booking_id])


def subscribe(bus: EventBus) -> None:
    bus.know(RefundRequested)
    bus.subscribe(BookingCancelled, Phase.IN_TRANSACTION, refund_ended_booking)
    bus.subscribe(BookingExpired, Phase.IN_TRANSACTION, refund_ended_booking)
    bus.subscribe(BookingChanged, Phase.IN_TRANSACTION, refund_rebooking)
    bus.subscribe(BookingCancelled, Phase.AFTER_COMMIT, settle_booking)
    bus.subscribe(BookingChanged, Phase.AFTER_COMMIT, settle_booking)
    bus.subscribe(ChangeReverted, Phase.AFTER_COMMIT, settle_booking)
