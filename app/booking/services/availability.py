"""Capacity and seats left per class of departures, from seat maps, blocks and live bookings.

A seat is taken while a live booking line holds it, except when that booking is a hold
whose time has run out: those seats count as free at once, even before the expiry job
releases them (the booking engine expires such holds before it assigns seats).

A running agency allotment keeps its unused seats from everybody but that agency: they
count as taken for the others until the allotment's release time (`Allotment`, read here
in SQL with the booking lines it is measured against).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.booking.tables import Booking
from app.catalogue.schemas.public import ClassAvailability
from app.catalogue.services.common import Row, as_uuid
from app.catalogue.tables import Departure
from app.core import clock


@dataclass(frozen=True, slots=True)
class ClassCounts:
    capacity: int
    held: int
    sold: int
    # Unused seats of other agencies' running allotments.
    allotted: int = 0

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.held - self.sold - self.allotted)


@dataclass(frozen=True, slots=True)
class AllotmentUse:
    id: UUID
    departure_id: UUID
    seat_class: str
    agency_id: UUID
    seats: int
    # Seats of the class the agency holds or has sold on the departure.
    used: int
    release_at: datetime

    @property
    def unused(self) -> int:
        return max(0, self.seats - self.used)


# Seats of an allotment's class its agency holds (unexpired) or has sold on the departure.
_ALLOTMENT_USED = """
    (SELECT COUNT(*) FROM booking_line l JOIN booking b ON b.id = l.booking
     WHERE l.departure = a.departure AND l.seat_class = a.seat_class AND l.live
       AND b.agency = a.agency
       AND (b.status = 'confirmed' OR (b.status = 'on_hold' AND b.expires_at > {})))
"""


# An allotment `a` is running: not released, and before its release time (the parameter).
_RUNNING = "a.released_at IS NULL AND a.release_at > {}"


def running_allotments_count(departure: str) -> str:
    """SQL for how many allotments of `departure` (an SQL expression) are running (one
    parameter: now). Most departures have none: then their holdback needs no query."""
    return f"(SELECT COUNT(*) FROM allotment a WHERE a.departure = {departure} AND {_RUNNING})"


async def running_allotments(departure_ids: list[UUID]) -> list[AllotmentUse]:
    """Allotments of these departures not released yet and before their release time."""
    if not departure_ids:
        return []
    now = clock.now()
    placeholders = ", ".join("{}" for _ in departure_ids)
    rows: list[Row] = await Booking.raw(
        f"""
        SELECT a.id AS id, a.departure AS departure_id, a.seat_class AS seat_class,
               a.agency AS agency_id, a.seats AS seats, a.release_at AS release_at,
               {_ALLOTMENT_USED} AS used
        FROM allotment a
        WHERE a.departure IN ({placeholders}) AND {_RUNNING}
        """,
        now,
        *departure_ids,
        now,
    ).run()
    return [
        AllotmentUse(
            id=as_uuid(row["id"]),
            departure_id=as_uuid(row["departure_id"]),
            seat_class=row["seat_class"],
            agency_id=as_uuid(row["agency_id"]),
            seats=int(row["seats"]),
            used=int(row["used"] or 0),
            release_at=row["release_at"],
        )
        for row in rows
    ]


async def used_by_allotments(allotment_ids: list[UUID]) -> dict[UUID, int]:
    """Per allotment: the seats of its class its agency holds or has sold right now."""
    if not allotment_ids:
        return {}
    placeholders = ", ".join("{}" for _ in allotment_ids)
    rows: list[Row] = await Booking.raw(
        f"SELECT a.id AS id, {_ALLOTMENT_USED} AS used FROM allotment a "
        f"WHERE a.id IN ({placeholders})",
        clock.now(),
        *allotment_ids,
    ).run()
    return {as_uuid(row["id"]): int(row["used"] or 0) for row in rows}


async def allotment_holdback(
    departure_ids: list[UUID], agency_id: UUID | None = None
) -> dict[UUID, dict[str, int]]:
    """Per departure and class: seats running allotments keep from `agency_id` (from
    everybody when None), i.e. the unused seats of every other agency's allotment."""
    kept: dict[UUID, dict[str, int]] = {d: {} for d in departure_ids}
    for use in await running_allotments(departure_ids):
        if use.agency_id != agency_id:
            by_class = kept[use.departure_id]
            by_class[use.seat_class] = by_class.get(use.seat_class, 0) + use.unused
    return kept


def held_back_seats(free: list[tuple[UUID, str]], kept: dict[str, int]) -> set[UUID]:
    """Which free seats (id, class; in seat order) an allotment holdback takes: the last
    ones of each class, so every view and every booking agrees on which are left."""
    held: set[UUID] = set()
    for seat_class, count in kept.items():
        in_class = [seat_id for seat_id, cls in free if cls == seat_class]
        held.update(in_class[len(in_class) - min(count, len(in_class)) :])
    return held


async def class_counts(
    departure_ids: list[UUID], agency_id: UUID | None = None
) -> dict[UUID, dict[str, ClassCounts]]:
    """Per departure and seat class: seats on sale, held, sold and kept by allotments
    (of agencies other than `agency_id`)."""
    counts: dict[UUID, dict[str, ClassCounts]] = {d: {} for d in departure_ids}
    if not departure_ids:
        return counts
    placeholders = ", ".join("{}" for _ in departure_ids)
    now = clock.now()
    rows: list[Row] = await Departure.raw(
        f"""
        SELECT d.id AS departure_id, s.seat_class AS seat_class, COUNT(*) AS seats,
               SUM(CASE WHEN b.status = 'on_hold' AND b.expires_at > {{}} THEN 1 ELSE 0 END)
                   AS held,
               SUM(CASE WHEN b.status = 'confirmed' THEN 1 ELSE 0 END) AS sold,
               {running_allotments_count("d.id")} AS allotments
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
        now,
        now,
        *departure_ids,
    ).run()
    with_allotments = sorted({as_uuid(row["departure_id"]) for row in rows if row["allotments"]})
    holdback = await allotment_holdback(with_allotments, agency_id)
    for row in rows:
        departure_id = as_uuid(row["departure_id"])
        counts[departure_id][row["seat_class"]] = ClassCounts(
            capacity=int(row["seats"]), held=int(row["held"] or 0), sold=int(row["sold"] or 0),
            allotted=holdback.get(departure_id, {}).get(row["seat_class"], 0),
        )  # fmt: skip
    return {d: dict(sorted(classes.items())) for d, classes in counts.items()}


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


async def taken_seats(departure_id: UUID) -> set[UUID]:
    """Seats held by live bookings, except holds whose time has run out."""
    rows: list[Row] = await Booking.raw(
        """
        SELECT l.seat AS seat FROM booking_line l JOIN booking b ON b.id = l.booking
        WHERE l.departure = {} AND l.live
          AND NOT (b.status = 'on_hold' AND b.expires_at <= {})
        """,
        departure_id,
        clock.now(),
    ).run()
    return {as_uuid(row["seat"]) for row in rows}
