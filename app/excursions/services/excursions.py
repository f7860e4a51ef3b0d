"""Planning excursions and hiring their coaches: what an operator admin enters per
departure and itinerary day."""

from __future__ import annotations

from datetime import time
from typing import Any
from uuid import UUID

import msgspec

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.rows import DepartureRow
from app.catalogue.services.common import owned_departure, parse_clock_time
from app.catalogue.tables import DepartureStatus, Route
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.i18n import _
from app.excursions.rows import CoachRow, ExcursionRow
from app.excursions.schemas import (
    CoachIn,
    CoachOut,
    CoachUpdate,
    ExcursionIn,
    ExcursionOut,
    ExcursionUpdate,
)
from app.excursions.services.common import (
    coaches_of,
    excursion_out,
    excursion_view,
    local_times,
    lock_excursion,
    seating_of,
    travellers_of,
)
from app.excursions.tables import Coach, CoachAssignment, Excursion

MAX_EXCURSIONS = 100
MAX_COACHES = 30


# ---------------------------------------------------------------- excursions


async def list_excursions(principal: OperatorPrincipal, departure_id: UUID) -> list[ExcursionOut]:
    """The departure's excursions by day and time, each with its coaches and how many of the
    departure's travellers have a seat on them."""
    departure = await owned_departure(principal, departure_id)
    rows = (
        await Excursion.select()
        .where(Excursion.departure == departure_id)
        .order_by(Excursion.day_number)
        .order_by(Excursion.meet_time)
        .output(load_json=True)
        .run()
    )
    excursions = [ExcursionRow.from_row(row) for row in rows]
    ids = [excursion.id for excursion in excursions]
    coaches = await coaches_of(ids)
    seating = await seating_of(ids)
    travellers = await travellers_of(departure_id)
    return [
        excursion_view(e, departure, coaches[e.id], seating[e.id], travellers) for e in excursions
    ]


def _refuse_cancelled(departure: DepartureRow) -> None:
    if departure.status == DepartureStatus.cancelled:
        raise Conflict(
            _("The departure is cancelled: its excursions cannot change."),
            code="departure_cancelled",
        )


async def _check_schedule(
    departure: DepartureRow, day_number: int, meet_time: time, return_time: time
) -> None:
    """The day is one of the trip's, the coaches are back after they leave (the same day),
    and both times fall within the trip."""
    route = (
        await Route.select(Route.duration_days).where(Route.id == departure.route_id).first().run()
    )
    days = route["duration_days"] if route else 1
    if day_number > days:
        raise InvalidInput(
            "day_number",
            _("The trip has {days} days; give a day from 1 to {days}.").format(days=days),
        )
    if return_time <= meet_time:
        raise InvalidInput(
            "return_time", _("The coaches must be back after they leave, on the same day.")
        )
    meet_at, return_at = local_times(departure, day_number, meet_time, return_time)
    if meet_at < departure.departs_at:
        raise InvalidInput("meet_time", _("This is before the departure leaves."))
    if return_at > departure.returns_at:
        raise InvalidInput("return_time", _("This is after the trip ends."))


def _clock(field: str, value: str) -> time:
    parsed = parse_clock_time(value)
    if parsed is None:  # the schema's pattern already refuses it; kept for the type
        raise InvalidInput(field, _("Give a time as HH:MM."))
    return parsed


async def create_excursion(
    principal: OperatorPrincipal, departure_id: UUID, data: ExcursionIn
) -> ExcursionOut:
    require_operator_admin(principal)
    async with write_transaction():
        departure = await owned_departure(principal, departure_id)
        _refuse_cancelled(departure)
        meet_time = _clock("meet_time", data.meet_time)
        return_time = _clock("return_time", data.return_time)
        await _check_schedule(departure, data.day_number, meet_time, return_time)
        count = await Excursion.count().where(Excursion.departure == departure_id).run()
        if count >= MAX_EXCURSIONS:
            raise Conflict(
                _("A departure has at most {count} excursions.").format(count=MAX_EXCURSIONS),
                code="too_many_excursions",
            )
        now = clock.now()
        excursion = Excursion(
            operator=principal.operator_id,
            departure=departure_id,
            day_number=data.day_number,
            sight=dict(data.sight),
            meeting_point=dict(data.meeting_point),
            meet_time=meet_time,
            return_time=return_time,
            notes=data.notes,
            created_at=now,
            updated_at=now,
        )
        await Excursion.insert(excursion).run()
    return await excursion_out(principal, excursion.id)


async def get_excursion(principal: OperatorPrincipal, excursion_id: UUID) -> ExcursionOut:
    return await excursion_out(principal, excursion_id)


async def update_excursion(
    principal: OperatorPrincipal, excursion_id: UUID, data: ExcursionUpdate
) -> ExcursionOut:
    require_operator_admin(principal)
    async with write_transaction():
        excursion = await lock_excursion(principal, excursion_id)
        departure = await owned_departure(principal, excursion.departure_id)
        _refuse_cancelled(departure)
        day_number = excursion.day_number
        if data.day_number is not msgspec.UNSET:
            day_number = data.day_number
        meet_time = excursion.meet_time
        if data.meet_time is not msgspec.UNSET:
            meet_time = _clock("meet_time", data.meet_time)
        return_time = excursion.return_time
        if data.return_time is not msgspec.UNSET:
            return_time = _clock("return_time", data.return_time)
        await _check_schedule(departure, day_number, meet_time, return_time)
        values: dict[Any, Any] = {
            Excursion.day_number: day_number,
            Excursion.meet_time: meet_time,
            Excursion.return_time: return_time,
            Excursion.updated_at: clock.now(),
        }
        if data.sight is not msgspec.UNSET:
            values[Excursion.sight] = dict(data.sight)
        if data.meeting_point is not msgspec.UNSET:
            values[Excursion.meeting_point] = dict(data.meeting_point)
        if data.notes is not msgspec.UNSET:
            values[Excursion.notes] = data.notes
        await Excursion.update(values).where(Excursion.id == excursion_id).run()
    return await excursion_out(principal, excursion_id)


async def delete_excursion(principal: OperatorPrincipal, excursion_id: UUID) -> None:
    """The excursion goes with its coaches and their assignments."""
    require_operator_admin(principal)
    async with write_transaction():
        await lock_excursion(principal, excursion_id)
        await Excursion.delete().where(Excursion.id == excursion_id).run()


# ---------------------------------------------------------------- coaches


async def list_coaches(principal: OperatorPrincipal, excursion_id: UUID) -> list[CoachOut]:
    return (await excursion_out(principal, excursion_id)).coaches


def _coach_not_found() -> NotFound:
    return NotFound(_("Coach not found."), code="coach_not_found")


async def _coach(excursion_id: UUID, coach_id: UUID) -> CoachRow:
    row = (
        await Coach.select()
        .where((Coach.id == coach_id) & (Coach.excursion == excursion_id))
        .first()
        .run()
    )
    if row is None:
        raise _coach_not_found()
    return CoachRow.from_row(row)


def _coach_out_of(excursion: ExcursionOut, coach_id: UUID) -> CoachOut:
    return next(coach for coach in excursion.coaches if coach.id == coach_id)


def _guide(name: str, phone: str | None) -> None:
    if phone and not name:
        raise InvalidInput("guide_name", _("Give the guide's name with the guide's phone."))


async def create_coach(principal: OperatorPrincipal, excursion_id: UUID, data: CoachIn) -> CoachOut:
    require_operator_admin(principal)
    _guide(data.guide_name, data.guide_phone)
    async with write_transaction():
        excursion = await lock_excursion(principal, excursion_id)
        _refuse_cancelled(await owned_departure(principal, excursion.departure_id))
        existing = (await coaches_of([excursion_id]))[excursion_id]
        if len(existing) >= MAX_COACHES:
            raise Conflict(
                _("An excursion has at most {count} coaches.").format(count=MAX_COACHES),
                code="too_many_coaches",
            )
        position = data.position or max((c.position for c in existing), default=0) + 1
        now = clock.now()
        coach = Coach(
            operator=principal.operator_id,
            excursion=excursion_id,
            position=position,
            label=data.label or str(position),
            capacity=data.capacity,
            plate=data.plate,
            company=data.company,
            driver_name=data.driver_name,
            driver_phone=data.driver_phone,
            guide_name=data.guide_name,
            guide_phone=data.guide_phone or "",
            created_at=now,
            updated_at=now,
        )
        await Coach.insert(coach).run()
    return _coach_out_of(await excursion_out(principal, excursion_id), coach.id)


async def update_coach(
    principal: OperatorPrincipal, excursion_id: UUID, coach_id: UUID, data: CoachUpdate
) -> CoachOut:
    """Change a coach; its capacity may not go below the travellers it carries, and its
    travellers keep places within it."""
    require_operator_admin(principal)
    async with write_transaction():
        excursion = await lock_excursion(principal, excursion_id)
        _refuse_cancelled(await owned_departure(principal, excursion.departure_id))
        coach = await _coach(excursion_id, coach_id)
        values: dict[Any, Any] = {Coach.updated_at: clock.now()}
        for name in (
            "label", "position", "plate", "company", "driver_name", "driver_phone", "guide_name",
        ):  # fmt: skip
            value = getattr(data, name)
            if value is not msgspec.UNSET:
                values[getattr(Coach, name)] = value
        guide_name = coach.guide_name if data.guide_name is msgspec.UNSET else data.guide_name
        guide_phone = coach.guide_phone if data.guide_phone is msgspec.UNSET else data.guide_phone
        _guide(guide_name, guide_phone)
        if data.guide_phone is not msgspec.UNSET:
            values[Coach.guide_phone] = data.guide_phone or ""
        if data.capacity is not msgspec.UNSET and data.capacity != coach.capacity:
            await _resize(coach, data.capacity)
            values[Coach.capacity] = data.capacity
        await Coach.update(values).where(Coach.id == coach_id).run()
    return _coach_out_of(await excursion_out(principal, excursion_id), coach_id)


async def _resize(coach: CoachRow, capacity: int) -> None:
    """Under the excursion's lock: refuse a capacity below the travellers on the coach, and
    move those in places beyond the new capacity to free places within it."""
    rows = (
        await CoachAssignment.select(CoachAssignment.id, CoachAssignment.place)
        .where(CoachAssignment.coach == coach.id)
        .run()
    )
    if len(rows) > capacity:
        raise Conflict(
            _(
                "Coach {label} carries {count} travellers; move some to another coach before "
                "lowering its capacity to {capacity}."
            ).format(label=coach.label, count=len(rows), capacity=capacity),
            code="coach_capacity_below_assigned",
        )
    used = {row["place"] for row in rows}
    free = iter(sorted(set(range(1, capacity + 1)) - used))
    for row in sorted(rows, key=lambda r: r["place"]):
        if row["place"] > capacity:
            await (
                CoachAssignment.update({CoachAssignment.place: next(free)})
                .where(CoachAssignment.id == row["id"])
                .run()
            )


async def delete_coach(principal: OperatorPrincipal, excursion_id: UUID, coach_id: UUID) -> None:
    """The coach goes; its travellers are left without a coach (auto-assign or move them)."""
    require_operator_admin(principal)
    async with write_transaction():
        await lock_excursion(principal, excursion_id)
        await _coach(excursion_id, coach_id)
        await Coach.delete().where(Coach.id == coach_id).run()
