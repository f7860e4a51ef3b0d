"""What the excursion services share: scoped look-ups, the excursion's lock, its times in
the departure's zone, the departure's confirmed travellers and who rides which coach."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.booking.tables import BookingLine, BookingStatus
from app.catalogue.rows import DepartureRow
from app.catalogue.services.common import format_clock_time, in_zone, owned_departure
from app.catalogue.tables import PassengerType
from app.core import clock
from app.core.database import for_update
from app.core.errors import NotFound
from app.core.i18n import _
from app.excursions.rows import CoachRow, ExcursionRow
from app.excursions.schemas import CoachOut, ExcursionOut
from app.excursions.tables import Coach, CoachAssignment, Excursion


def excursion_not_found() -> NotFound:
    return NotFound(_("Excursion not found."), code="excursion_not_found")


async def owned_excursion(principal: OperatorPrincipal, excursion_id: UUID) -> ExcursionRow:
    """The excursion if it belongs to the caller's operator; anything else is a 404."""
    row = (
        await Excursion.select()
        .where((Excursion.id == excursion_id) & (Excursion.operator == principal.operator_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise excursion_not_found()
    return ExcursionRow.from_row(row)


async def lock_excursion(principal: OperatorPrincipal, excursion_id: UUID) -> ExcursionRow:
    """The caller's excursion, its row locked until the transaction ends: every change of
    its coaches and assignments takes this lock first, so they happen one at a time."""
    row = await for_update(
        Excursion.select()
        .where((Excursion.id == excursion_id) & (Excursion.operator == principal.operator_id))
        .first()
        .output(load_json=True)
    ).run()
    if row is None:
        raise excursion_not_found()
    return ExcursionRow.from_row(row)


async def coaches_of(excursion_ids: list[UUID]) -> dict[UUID, list[CoachRow]]:
    """The coaches of each excursion, in their order on the plan."""
    found: dict[UUID, list[CoachRow]] = {excursion_id: [] for excursion_id in excursion_ids}
    if not excursion_ids:
        return found
    rows = (
        await Coach.select()
        .where(Coach.excursion.is_in(excursion_ids))
        .order_by(Coach.position)
        .order_by(Coach.created_at)
        .run()
    )
    for row in rows:
        found[row["excursion"]].append(CoachRow.from_row(row))
    return found


# ---------------------------------------------------------------- times


def excursion_date(departure: DepartureRow, day_number: int) -> date:
    """The local date of day `day_number` of the trip (day 1 is the day it leaves)."""
    return in_zone(departure.departs_at, departure.time_zone).date() + timedelta(
        days=day_number - 1
    )


def local_times(
    departure: DepartureRow, day_number: int, meet_time: time, return_time: time
) -> tuple[datetime, datetime]:
    """When the coaches leave and are back on day `day_number`, in the departure's zone."""
    day = excursion_date(departure, day_number)
    tz = clock.zone(departure.time_zone)
    return (
        datetime.combine(day, meet_time, tzinfo=tz),
        datetime.combine(day, return_time, tzinfo=tz),
    )


def excursion_times(excursion: ExcursionRow, departure: DepartureRow) -> tuple[datetime, datetime]:
    return local_times(departure, excursion.day_number, excursion.meet_time, excursion.return_time)


# ---------------------------------------------------------------- travellers


@dataclass(frozen=True, slots=True)
class Traveller:
    """One passenger of a confirmed booking on the departure (a live booking line)."""

    line_id: UUID
    booking_id: UUID
    reference: str
    contact_name: str
    contact_phone: str
    seat_label: str
    car: int | None
    sort_key: int
    # Order in its booking (as the booking lists its passengers).
    position: int
    passenger_type: PassengerType
    passenger_name: str


async def travellers_of(departure_id: UUID) -> list[Traveller]:
    """The departure's confirmed travellers, in seat order (car, compartment, berth). Holds
    are not travellers yet; a cancelled booking's are no longer."""
    confirmed = BookingStatus.confirmed.value
    rows = (
        await BookingLine.select(
            BookingLine.id,
            BookingLine.booking,
            BookingLine.seat_label,
            BookingLine.passenger_type,
            BookingLine.passenger_name,
            BookingLine.position,
            BookingLine.seat.car,
            BookingLine.seat.sort_key,
            BookingLine.booking.reference,
            BookingLine.booking.contact_name,
            BookingLine.booking.contact_phone,
        )
        .where(
            (BookingLine.departure == departure_id)
            & (BookingLine.live == True)  # noqa: E712
            & BookingLine.change.is_null()
            & (BookingLine.booking.departure == departure_id)
            & (BookingLine.booking.status == confirmed)
        )
        .run()
    )
    travellers = [
        Traveller(
            line_id=row["id"],
            booking_id=row["booking"],
            reference=row["booking.reference"],
            contact_name=row["booking.contact_name"],
            contact_phone=row["booking.contact_phone"],
            seat_label=row["seat_label"],
            car=row["seat.car"],
            sort_key=row["seat.sort_key"],
            position=row["position"],
            passenger_type=PassengerType(row["passenger_type"]),
            passenger_name=row["passenger_name"],
        )
        for row in rows
    ]
    travellers.sort(key=lambda t: (t.sort_key, t.seat_label))
    return travellers


@dataclass(frozen=True, slots=True)
class Seated:
    """A traveller's assignment: the coach and the place taken in it."""

    coach_id: UUID
    place: int


async def seating_of(excursion_ids: list[UUID]) -> dict[UUID, dict[UUID, Seated]]:
    """For each excursion, the coach and place of each assigned booking line."""
    found: dict[UUID, dict[UUID, Seated]] = {excursion_id: {} for excursion_id in excursion_ids}
    if not excursion_ids:
        return found
    rows = (
        await CoachAssignment.select(
            CoachAssignment.excursion,
            CoachAssignment.line,
            CoachAssignment.coach,
            CoachAssignment.place,
        )
        .where(CoachAssignment.excursion.is_in(excursion_ids))
        .run()
    )
    for row in rows:
        found[row["excursion"]][row["line"]] = Seated(coach_id=row["coach"], place=row["place"])
    return found


# ---------------------------------------------------------------- views


def coach_out(coach: CoachRow, assigned: int) -> CoachOut:
    return CoachOut(
        id=coach.id, excursion_id=coach.excursion_id, position=coach.position,
        label=coach.label, capacity=coach.capacity, assigned=assigned,
        free=max(coach.capacity - assigned, 0), plate=coach.plate, company=coach.company,
        driver_name=coach.driver_name, driver_phone=coach.driver_phone,
        guide_name=coach.guide_name, guide_phone=coach.guide_phone,
    )  # fmt: skip


def assigned_per_coach(seating: dict[UUID, Seated], travellers: list[Traveller]) -> Counter[UUID]:
    """Travellers on each coach; an assignment left by a booking that ended meanwhile is no
    traveller (it is cleared at the excursion's next change)."""
    return Counter(seating[t.line_id].coach_id for t in travellers if t.line_id in seating)


def excursion_view(
    excursion: ExcursionRow,
    departure: DepartureRow,
    coaches: list[CoachRow],
    seating: dict[UUID, Seated],
    travellers: list[Traveller],
) -> ExcursionOut:
    meet_at, return_at = excursion_times(excursion, departure)
    per_coach = assigned_per_coach(seating, travellers)
    assigned = sum(per_coach.values())
    return ExcursionOut(
        id=excursion.id,
        departure_id=excursion.departure_id,
        day_number=excursion.day_number,
        date=meet_at.date(),
        sight=excursion.sight,
        meeting_point=excursion.meeting_point,
        meet_time=format_clock_time(excursion.meet_time) or "",
        return_time=format_clock_time(excursion.return_time) or "",
        meet_at=meet_at,
        return_at=return_at,
        time_zone=departure.time_zone,
        notes=excursion.notes,
        coaches=[coach_out(coach, per_coach[coach.id]) for coach in coaches],
        capacity=sum(coach.capacity for coach in coaches),
        travellers=len(travellers),
        assigned=assigned,
        unassigned=len(travellers) - assigned,
        created_at=excursion.created_at,
        updated_at=excursion.updated_at,
    )


async def excursion_out(principal: OperatorPrincipal, excursion_id: UUID) -> ExcursionOut:
    excursion = await owned_excursion(principal, excursion_id)
    departure = await owned_departure(principal, excursion.departure_id)
    coaches = (await coaches_of([excursion.id]))[excursion.id]
    seating = (await seating_of([excursion.id]))[excursion.id]
    return excursion_view(excursion, departure, coaches, seating, await travellers_of(departure.id))
