"""Capacity and seats left per class of departures, derived from seat maps and blocks."""

from __future__ import annotations

from uuid import UUID

from app.catalogue.schemas import ClassAvailability
from app.catalogue.services.common import Row
from app.catalogue.tables import Departure


async def capacity_by_departure(departure_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Seats on sale per class: the vehicle's seats minus vehicle and departure blocks."""
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
              SELECT 1 FROM departure_seat_block b WHERE b.departure = d.id AND b.seat = s.id
          )
        GROUP BY d.id, s.seat_class
        """,
        *departure_ids,
    ).run()
    for row in rows:
        departure_id = row["departure_id"]
        if not isinstance(departure_id, UUID):
            departure_id = UUID(str(departure_id))
        capacity[departure_id][row["seat_class"]] = int(row["seats"])
    return {d: dict(sorted(classes.items())) for d, classes in capacity.items()}


async def availability_by_departure(
    departure_ids: list[UUID],
) -> dict[UUID, list[ClassAvailability]]:
    """Capacity and seats left per class (nothing is sold before the booking engine exists)."""
    capacity = await capacity_by_departure(departure_ids)
    return {
        departure_id: [
            ClassAvailability(seat_class=seat_class, capacity=seats, seats_left=seats)
            for seat_class, seats in classes.items()
        ]
        for departure_id, classes in capacity.items()
    }
