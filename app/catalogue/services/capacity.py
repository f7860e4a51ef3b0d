"""Seats on sale per class of departures: the vehicle's seats less vehicle and departure
blocks. What is left of them once bookings and allotments take theirs is the booking
domain's business (`app.booking.services.availability`)."""

from __future__ import annotations

from uuid import UUID

from app.catalogue.services.common import Row, as_uuid
from app.catalogue.tables import Departure


async def capacity_by_departure(departure_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Per departure, seats on sale by class (sorted); only classes with a seat on sale."""
    capacity: dict[UUID, dict[str, int]] = {d: {} for d in departure_ids}
    if not departure_ids:
        return capacity
    placeholders = ", ".join("{}" for _ in departure_ids)
    rows: list[Row] = await Departure.raw(
        f"""
        SELECT d.id AS departure_id, s.seat_class AS seat_class, COUNT(*) AS seats
        FROM departure d
        JOIN seat s ON s.vehicle = d.vehicle
        WHERE d.id IN ({placeholders})
          AND s.blocked_reason IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM departure_seat_block x WHERE x.departure = d.id AND x.seat = s.id
          )
        GROUP BY d.id, s.seat_class
        """,
        *departure_ids,
    ).run()
    for row in rows:
        capacity[as_uuid(row["departure_id"])][row["seat_class"]] = int(row["seats"])
    return {d: dict(sorted(classes.items())) for d, classes in capacity.items()}
