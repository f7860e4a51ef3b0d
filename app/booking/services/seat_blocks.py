"""Keeping seats off sale without breaking a booking: the catalogue keeps the blocks,
booking says which seats live bookings hold (those cannot be blocked)."""

from __future__ import annotations

from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.booking.services.live_bookings import booked_on_departure, booked_on_vehicle
from app.catalogue.schemas.departures import DepartureBlocksIn, DepartureOut
from app.catalogue.schemas.vehicles import SeatOut
from app.catalogue.services import seat_blocks, vehicles
from app.core.database import write_transaction


async def replace_departure_blocks(
    principal: OperatorPrincipal, departure_id: UUID, data: DepartureBlocksIn
) -> DepartureOut:
    """Seats kept off sale on this departure only; refused for a seat booked on it."""
    async with write_transaction():
        booked = await booked_on_departure(departure_id)
        return await seat_blocks.replace_blocks(principal, departure_id, data, booked=booked)


async def set_vehicle_seat_block(
    principal: OperatorPrincipal, vehicle_id: UUID, label: str, reason: str | None
) -> SeatOut:
    """Keep a seat off sale on every departure of its vehicle, or release it; refused
    for a seat booked on any departure."""
    async with write_transaction():
        booked = await booked_on_vehicle(vehicle_id)
        return await vehicles.set_seat_block(principal, vehicle_id, label, reason, booked=booked)
