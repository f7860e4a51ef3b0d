"""Capacity and seats left per class of departures, from seat maps, blocks and live bookings.

A seat is taken while a live booking line holds it, except when that booking is a hold
whose time has run out: those seats count as free at once, even before the expiry job
releases them (the booking engine expires such holds before it assigns seats).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from app.catalogue.schemas import ClassAvailability
from app.catalogue.services.common import Row
from app.catalogue.tables import Departure
from app.core import clock


@dataclass(frozen=True, slots=True)
class ClassCounts:
    capacity: int
    held: int
    sold: int

    @property
    def free(self) -> int:
        return self.capacity - self.held - self.sold


async def class_counts(departure_ids: list[UUID]) -> dict[UUID, dict[str, ClassCounts]]:
    """Per departure and seat class: seats on sale, seats held, seats sold."""
    counts: dict[UUID, dict[str, ClassCounts]] = {d: {} for d in departure_ids}
    if not departure_ids:
        return counts
    placeholders = ", ".join("{}" for _ in departure_ids)
    rows: list[Row] = await Departure.raw(
        f"""
        SELECT d.id AS departure_id, s.seat_class AS seat_class, COUNT(*) AS seats,
               SUM(CASE WHEN b.status = 'on_hold' AND b.expires_at > {{}} THEN 1 ELSE 0 END)
                   AS held,
               SUM(CASE WHEN b.status = 'confirmed' THEN 1 ELSE 0 END) AS sold
        FROM departure d
        JOIN seat s ON s.vehicle = d.vehicle
        LEFT JOIN booking_line l ON l.departure = d.id AND l.seat = s.id AND l.live
        LEFT JOIN booking b ON b.id = l.booking
        WHERE d.id IN ({placeholders})
          AND s.blocked_reason IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM departure_seat_block x WHERE x.departure = d.id AND x.seat = s.id
          )
        GROUP BY d.id, s.seat_class
        """,
        clock.now(),
        *departure_ids,
    ).run()
    for row in rows:
        departure_id = row["departure_id"]
        if not isinstance(departure_id, UUID):
            departure_id = UUID(str(departure_id))
        counts[departure_id][row["seat_class"]] = ClassCounts(
            capacity=int(row["seats"]), held=int(row["held"] or 0), sold=int(row["sold"] or 0)
        )
    return {d: dict(sorted(classes.items())) for d, classes in counts.items()}


async def capacity_by_departure(departure_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Seats on sale per class: the vehicle's seats minus vehicle and departure blocks."""
    counts = await class_counts(departure_ids)
    return {
        d: {seat_class: c.capacity for seat_class, c in classes.items()}
        for d, classes in counts.items()
    }


async def availability_by_departure(
    departure_ids: list[UUID],
) -> dict[UUID, list[ClassAvailability]]:
    counts = await class_counts(departure_ids)
    return {
        departure_id: [
            ClassAvailability(seat_class=seat_class, capacity=c.capacity, seats_left=c.free)
            for seat_class, c in classes.items()
        ]
        for departure_id, classes in counts.items()
    }
