"""Holds whose time runs out: expired by the sweep, by their job, or when their guest
looks, so a run-out hold is never seen or changed as if still held."""

from __future__ import annotations

from uuid import UUID

from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow
from app.booking.services import inventory
from app.booking.services.access import guest_booking, lock_booking, refuse_agency_booking
from app.booking.services.state import hold_run_out, transition
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict
from app.core.events import publish
from app.core.i18n import _


async def expire_overdue(departure_id: UUID) -> int:
    """Expire the departure's run-out holds (inside the caller's departure lock).

    Their open payment intents are cancelled by the next periodic tick (`tick` settles
    expired bookings), not here: the caller still holds the departure's lock.
    """
    overdue = await inventory.overdue_holds(departure_id)
    for booking in overdue:
        await transition(booking, BookingStatus.expired, actor="system", reason="hold_expired")
    return len(overdue)


async def _guest_booking_now(
    reference: str, token: str | None, *, to_view: bool = False
) -> BookingRow:
    """`guest_booking`, expiring it first if it is a hold whose time has run out: a guest
    never sees, changes, cancels or moves a run-out hold as if it were still held (the
    callers re-read the booking).

    Unless only `to_view` it, a booking an agency made is refused (403 `agency_booking`):
    its guest may look at it, never change, cancel, move or pay for it."""
    booking = await guest_booking(reference, token)
    if not to_view:
        await refuse_agency_booking(booking)
    if hold_run_out(booking.status, booking.expires_at):
        await expire_hold(booking.id)
    return booking


def _refuse_run_out_hold(booking: BookingRow) -> None:
    """A hold whose time has run out is as good as expired, even before the sweep."""
    if hold_run_out(booking.status, booking.expires_at):
        raise Conflict(_("The hold has run out; book again."), code="hold_expired")


async def expire_hold(booking_id: UUID) -> bool:
    """Expire one hold if its time has run out; False when it was already dealt with."""
    async with write_transaction():
        row, departure = await lock_booking(booking_id)
        if not hold_run_out(row.status, row.expires_at):
            return False
        await transition(row, BookingStatus.expired, actor="system", reason="hold_expired")
        await publish(SeatsFreed(departure_id=departure.id))
    # Stripe is not asked here (the sweeps and the guest's page call this): an expired
    # hold owes no refund, and its open intent is cancelled by the payments sweep.
    return True


async def expire_all_overdue(limit: int = 500) -> int:
    """Safety-net sweep: expire every hold whose time has run out."""
    rows = (
        await Booking.select(Booking.id)
        .where(
            (Booking.status == BookingStatus.on_hold.value) & (Booking.expires_at <= clock.now())
        )
        .limit(limit)
        .run()
    )
    expired = 0
    for row in rows:
        expired += await expire_hold(row["id"])
    return expired
