"""Which departures and seats live bookings are on: the questions other domains ask."""

from __future__ import annotations

from uuid import UUID

from app.booking.tables import BookingLine
from app.core import booking_checks


async def has_live_bookings(departure_id: UUID) -> bool:
    return bool(
        await BookingLine.exists()
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )


async def booked_on_departure(departure_id: UUID) -> set[UUID]:
    """Seats held by a live booking line on this departure."""
    rows = (
        await BookingLine.select(BookingLine.seat)
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )
    return {row["seat"] for row in rows}


async def booked_on_vehicle(vehicle_id: UUID) -> set[UUID]:
    """Seats of this vehicle held by a live booking line on any departure."""
    rows = (
        await BookingLine.select(BookingLine.seat)
        .where((BookingLine.seat.vehicle == vehicle_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )
    return {row["seat"] for row in rows}


def answer_booking_checks() -> None:
    """Answer the catalogue's questions about bookings (`app.core.booking_checks`)."""
    booking_checks.answer_has_live_bookings(has_live_bookings)
