"""Seats and berths: which are free on a departure, and which to give a party.

Callers hold the departure's lock (`lock_departure`) inside a write transaction, so the
free seats they read stay free until they commit; the partial unique index on live booking
lines backs this up in the database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

from app.booking.rows import BookingRow, DepartureRow
from app.booking.services.availability import (
    allotment_holdback,
    held_back_seats,
    running_allotments_count,
)
from app.booking.tables import Booking, BookingStatus
from app.catalogue.services.common import as_uuid
from app.catalogue.tables import Departure, PassengerType, Seat
from app.core import clock
from app.core.database import for_update
from app.core.errors import NotFound
from app.core.i18n import _


@dataclass(frozen=True, slots=True)
class FreeSeat:
    id: UUID
    label: str
    seat_class: str
    position: str | None
    car: int | None
    compartment: int | None
    row: int | None
    sort_key: int

    @property
    def group(self) -> tuple[int | None, int | None, int | None]:
        """Seats that sit together: a train compartment, or a bus row."""
        return (self.car, self.compartment, self.row)


async def lock_departure(departure_id: UUID) -> DepartureRow:
    """Lock the departure row: bookings of one departure are assigned one at a time."""
    row = await for_update(Departure.select().where(Departure.id == departure_id).first()).run()
    if row is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return DepartureRow.from_row(row)


# Seats of a vehicle not blocked on it or on the departure and not held by a live line,
# each with the number of the departure's running allotments.
_FREE_SEATS = f"""
    SELECT s.id AS id, s.label AS label, s.seat_class AS seat_class, s.position AS position,
           s.car AS car, s.compartment AS compartment, s.seat_row AS seat_row,
           s.sort_key AS sort_key, {running_allotments_count("{}")} AS allotments
    FROM seat s
    WHERE s.vehicle = {{}} AND s.blocked_reason IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM departure_seat_block x WHERE x.departure = {{}} AND x.seat = s.id
      )
      AND NOT EXISTS (
          SELECT 1 FROM booking_line l WHERE l.departure = {{}} AND l.seat = s.id AND l.live
      )
    ORDER BY s.sort_key
"""


async def free_seats(departure: DepartureRow, agency_id: UUID | None = None) -> list[FreeSeat]:
    """Seats of the departure's vehicle that are not blocked and not held by a live line,
    less what other agencies' running allotments keep (the last seats of each class)."""
    free, allotments = await _unheld_seats(departure)
    if not allotments:
        return free
    departure_id = departure.id
    kept = (await allotment_holdback([departure_id], agency_id))[departure_id]
    held = held_back_seats([(seat.id, seat.seat_class) for seat in free], kept)
    return [seat for seat in free if seat.id not in held]


async def seats_still_free(
    departure: DepartureRow, seat_ids: list[UUID], agency_id: UUID | None = None
) -> bool:
    """Whether these seats could be booked now: none blocked or held by a live line, and
    enough left in each of their classes beyond what other agencies' allotments keep."""
    if not seat_ids:
        return False
    free, allotments = await _unheld_seats(departure)
    by_id = {seat.id: seat for seat in free}
    if any(seat_id not in by_id for seat_id in seat_ids):
        return False
    if not allotments:
        return True
    wanted: dict[str, int] = defaultdict(int)
    for seat_id in seat_ids:
        wanted[by_id[seat_id].seat_class] += 1
    left: dict[str, int] = defaultdict(int)
    for seat in await free_seats(departure, agency_id):
        left[seat.seat_class] += 1
    # Which seats an allotment keeps is a choice; how many it keeps per class is not.
    return all(left[seat_class] >= count for seat_class, count in wanted.items())


async def _unheld_seats(departure: DepartureRow) -> tuple[list[FreeSeat], bool]:
    """Seats neither blocked nor held by a live line, and whether allotments are running."""
    if departure.vehicle_id is None:
        return [], False
    departure_id = departure.id
    rows = await Seat.raw(
        _FREE_SEATS, departure_id, clock.now(), departure.vehicle_id, departure_id, departure_id
    ).run()
    free = [
        FreeSeat(
            id=as_uuid(seat["id"]),
            label=seat["label"],
            seat_class=seat["seat_class"],
            position=seat["position"],
            car=seat["car"],
            compartment=seat["compartment"],
            row=seat["seat_row"],
            sort_key=seat["sort_key"],
        )
        for seat in rows
    ]
    return free, bool(rows and rows[0]["allotments"])


async def overdue_holds(departure_id: UUID) -> list[BookingRow]:
    """Holds of the departure whose time has run out but that are not expired yet."""
    # Every booking asks, and there are almost never any: their ids first, in SQL much
    # cheaper to build than Piccolo's select of every column.
    overdue = await Booking.raw(
        "SELECT id FROM booking WHERE departure = {} AND status = {} AND expires_at <= {}",
        departure_id,
        BookingStatus.on_hold.value,
        clock.now(),
    ).run()
    if not overdue:
        return []
    ids = [as_uuid(row["id"]) for row in overdue]
    rows = await Booking.select().where(Booking.id.is_in(ids)).run()
    return [BookingRow.from_row(row) for row in rows]


# Who gets the lower berths first.
_BERTH_PRIORITY = {PassengerType.senior: 0, PassengerType.child: 1, PassengerType.adult: 2}
_POSITION_ORDER = {"lower": 0, "middle": 1, "upper": 2, "window": 0, "aisle": 1}


def choose_seats(free: list[FreeSeat], party: list[PassengerType]) -> list[FreeSeat] | None:
    """Seats for a party of one class, kept together where possible; None if too few.

    Prefers the fullest compartment or row that still fits everyone (leaving big empty
    ones for big parties); otherwise the tightest run of neighbouring seats.
    Returns seats in the order of `party`, seniors and children on the lower berths.
    """
    size = len(party)
    if size > len(free):
        return None
    by_group: dict[tuple[int | None, int | None, int | None], list[FreeSeat]] = defaultdict(list)
    for seat in free:
        by_group[seat.group].append(seat)
    fitting = [seats for seats in by_group.values() if len(seats) >= size]
    if fitting:
        chosen = min(fitting, key=lambda seats: (len(seats), seats[0].sort_key))[:size]
        if size < len(by_group[chosen[0].group]):
            chosen = _best_within_group(by_group[chosen[0].group], party)
    else:
        ordered = sorted(free, key=lambda seat: seat.sort_key)
        start = min(
            range(len(ordered) - size + 1),
            key=lambda i: (ordered[i + size - 1].sort_key - ordered[i].sort_key, i),
        )
        chosen = ordered[start : start + size]
    return _seat_party(chosen, party)


def _best_within_group(seats: list[FreeSeat], party: list[PassengerType]) -> list[FreeSeat]:
    """Within one compartment, take lower berths first when the party has seniors or
    children, else seats in order."""
    if any(kind != PassengerType.adult for kind in party):
        ranked = sorted(seats, key=lambda s: (_POSITION_ORDER.get(s.position or "", 3), s.sort_key))
        return ranked[: len(party)]
    return sorted(seats, key=lambda s: s.sort_key)[: len(party)]


def _seat_party(seats: list[FreeSeat], party: list[PassengerType]) -> list[FreeSeat]:
    by_comfort = sorted(seats, key=lambda s: (_POSITION_ORDER.get(s.position or "", 3), s.sort_key))
    order = sorted(range(len(party)), key=lambda i: (_BERTH_PRIORITY[party[i]], i))
    result: list[FreeSeat | None] = [None] * len(party)
    for seat, index in zip(by_comfort, order, strict=True):
        result[index] = seat
    return [seat for seat in result if seat is not None]
