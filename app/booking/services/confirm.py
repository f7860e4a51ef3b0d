"""Confirming a booking whose payment succeeded, even a hold that ran out meanwhile."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from app.booking.services import inventory
from app.booking.services.access import lock_booking
from app.booking.services.state import hold_running, transition
from app.booking.tables import BookingLine, BookingStatus
from app.catalogue.tables import DepartureStatus
from app.core import clock
from app.core.database import write_transaction


async def confirm_paid(booking_id: UUID, *, actor: str) -> str:
    """Confirm a booking whose payment succeeded (inside or outside a transaction).

    Returns `confirmed`, `already_confirmed`, or `seats_gone` / `not_live` when the
    booking cannot be honoured and the payment must go back. A hold that ran out is still
    confirmed when all of its seats are free and the departure is on sale.
    """
    async with write_transaction():
        booking, departure = await lock_booking(booking_id)
        status = booking.status
        if status == BookingStatus.confirmed:
            return "already_confirmed"
        if status == BookingStatus.cancelled:
            return "not_live"
        if hold_running(status, booking.expires_at):
            await transition(booking, BookingStatus.confirmed, actor=actor, reason="paid")
            return "confirmed"
        if status == BookingStatus.on_hold:
            await transition(booking, BookingStatus.expired, actor="system", reason="hold_expired")
            booking = replace(booking, status=BookingStatus.expired)
        lines = (
            await BookingLine.select(BookingLine.id, BookingLine.seat)
            .where((BookingLine.booking == booking_id) & (BookingLine.departure == departure.id))
            .run()
        )
        # Its seats must be free as a new booking would find them: not taken, not blocked
        # since, and not among the seats other agencies' allotments keep.
        free = await inventory.seats_still_free(
            departure, [line["seat"] for line in lines], booking.agency_id
        )
        still_running = departure.status in (DepartureStatus.published, DepartureStatus.closed)
        if not free or not still_running or clock.now() >= departure.departs_at:
            return "seats_gone"
        await (
            BookingLine.update({BookingLine.live: True})
            .where(BookingLine.id.is_in([line["id"] for line in lines]))
            .run()
        )
        await transition(booking, BookingStatus.confirmed, actor=actor, reason="paid_after_expiry")
        return "confirmed"
