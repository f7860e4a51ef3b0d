"""The one place a booking changes status: the check, the audit entry and the side effects."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from app.booking.events import BOOKING_STATUS_EVENTS, BookingChanged, ChangeReverted
from app.booking.rows import BookingRow, ChangeRow
from app.booking.tables import (
    Booking,
    BookingChange,
    BookingChangeStatus,
    BookingEvent,
    BookingLine,
    BookingStatus,
)
from app.core import clock
from app.core.errors import Conflict
from app.core.events import publish
from app.core.i18n import _
from app.core.labels import status_label

_ALLOWED: dict[BookingStatus, set[BookingStatus]] = {
    BookingStatus.on_hold: {
        BookingStatus.confirmed,
        BookingStatus.cancelled,
        BookingStatus.expired,
    },
    BookingStatus.confirmed: {BookingStatus.cancelled},
    BookingStatus.cancelled: set(),
    # Only through `confirm_paid`: a payment that lands after expiry while the seats are
    # still free.
    BookingStatus.expired: {BookingStatus.confirmed},
}
# Statuses whose lines hold their seats.
LIVE_STATUSES = (BookingStatus.on_hold, BookingStatus.confirmed)


def can_transition(current: BookingStatus | str, target: BookingStatus) -> bool:
    """Whether a booking in `current` may become `target`: every check asks here."""
    return target in _ALLOWED[BookingStatus(current)]


def hold_running(status: BookingStatus | str, expires_at: datetime | None) -> bool:
    """On hold with time left. A hold whose time has run out is as good as expired even
    before its job or the sweep expires it: it cannot be paid, confirmed or extended."""
    return status == BookingStatus.on_hold and (expires_at is None or expires_at > clock.now())


def hold_run_out(status: BookingStatus | str, expires_at: datetime | None) -> bool:
    """On hold, but its time has run out (waiting for its expiry)."""
    return status == BookingStatus.on_hold and not hold_running(status, expires_at)


async def record_event(
    booking_id: UUID,
    actor: str,
    from_status: str | None,
    to_status: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> UUID:
    event = BookingEvent(
        booking=booking_id,
        at=clock.now(),
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        details=details,
    )
    await BookingEvent.insert(event).run()
    return UUID(str(event.id))


async def transition(
    booking: BookingRow,
    target: BookingStatus,
    *,
    actor: str,
    reason: str,
    refund_amount: int = 0,
    details: dict[str, Any] | None = None,
) -> None:
    """Move `booking` (a row read inside the caller's write transaction) to `target`.

    The status update is conditional on the status read, so two racing transitions (an
    expiry and a payment, say) cannot both apply: the loser gets a 409.
    """
    current = booking.status
    if not can_transition(current, target):
        raise Conflict(
            _("A {current} booking cannot become {target}.").format(
                current=status_label(current.value), target=status_label(target.value)
            ),
            code="illegal_transition",
        )
    now = clock.now()
    values: dict[Any, Any] = {Booking.status: target.value, Booking.updated_at: now}
    if target == BookingStatus.confirmed:
        values[Booking.confirmed_at] = now
        values[Booking.expires_at] = None
    if target in (BookingStatus.cancelled, BookingStatus.expired):
        values[Booking.cancelled_at] = now
        values[Booking.refund_amount] = booking.refund_amount + refund_amount
    updated = (
        await Booking.update(values)
        .where((Booking.id == booking.id) & (Booking.status == current.value))
        .returning(Booking.id)
        .run()
    )
    if not updated:
        raise Conflict(
            _("The booking changed meanwhile; reload it and try again."), code="booking_changed"
        )
    if target not in LIVE_STATUSES:
        # The seats go back on sale in the same transaction, a pending change's with them.
        pending = await pending_change(booking.id)
        if pending is not None:
            await revert_change(booking, pending, actor=actor, reason=f"booking_{target.value}")
        await (
            BookingLine.update({BookingLine.live: False})
            .where(BookingLine.booking == booking.id)
            .run()
        )
    await record_event(booking.id, actor, current.value, target.value, reason, details)
    event_type = BOOKING_STATUS_EVENTS[f"booking.{target.value}"]
    await publish(
        event_type(
            booking_id=booking.id,
            reference=booking.reference,
            reason=reason,
            agency_id=booking.agency_id,
            refund_amount=refund_amount,
            currency=booking.currency,
        )
    )


async def publish_change(
    booking: BookingRow, change_id: UUID, reason: str, refund: int = 0
) -> None:
    """Tell the other domains that a live booking changed (rebooked, boarded)."""
    await publish(
        BookingChanged(
            booking_id=booking.id,
            reference=booking.reference,
            change_id=change_id,
            reason=reason,
            agency_id=booking.agency_id,
            refund_amount=refund,
            currency=booking.currency,
        )
    )


async def pending_change(booking_id: UUID) -> ChangeRow | None:
    """The booking's change waiting for its difference to be paid, if any."""
    row = (
        await BookingChange.select()
        .where(
            (BookingChange.booking == booking_id)
            & (BookingChange.status == BookingChangeStatus.pending.value)
        )
        .first()
        .run()
    )
    return ChangeRow.from_row(row) if row else None


async def revert_change(booking: BookingRow, change: ChangeRow, *, actor: str, reason: str) -> bool:
    """Drop a pending change inside the caller's transaction (which holds the booking's
    row): the seats it held are deleted at once, the booking stays where it was. The seats
    go to the waiting list and its open payment is cancelled from the outbox (this
    transaction does not hold the other departure's lock). False if it was no longer
    pending."""
    now = clock.now()
    reverted = (
        await BookingChange.update(
            {
                BookingChange.status: BookingChangeStatus.reverted.value,
                BookingChange.decided_at: now,
            }
        )
        .where(
            (BookingChange.id == change.id)
            & (BookingChange.status == BookingChangeStatus.pending.value)
        )
        .returning(BookingChange.id)
        .run()
    )
    if not reverted:
        return False
    await BookingLine.delete().where(BookingLine.change == change.id).run()
    await record_event(
        booking.id, actor, booking.status.value, booking.status.value, "rebook_reverted",
        {"change": str(change.id), "to_departure": str(change.to_departure_id), "why": reason},
    )  # fmt: skip
    await publish(
        ChangeReverted(
            booking_id=booking.id,
            reference=booking.reference,
            change_id=change.id,
            departure_id=change.to_departure_id,
            reason=reason,
            agency_id=booking.agency_id,
        )
    )
    return True


async def owe_back(booking_id: UUID, amount: int) -> BookingRow:
    """Count `amount` as owed back to the payer (a payment that arrived for a booking that
    can no longer be honoured), in the caller's transaction; returns the booking as now."""
    rows = (
        await Booking.update({Booking.refund_amount: Booking.refund_amount + amount})
        .where(Booking.id == booking_id)
        .returning(*Booking.all_columns())
        .run()
    )
    return BookingRow.from_row(rows[0])
