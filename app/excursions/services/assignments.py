"""Who rides which coach: the plan of an excursion, automatic assignment, moves by hand.

Rules (README, "Coach excursions"):
- Only the departure's confirmed travellers ride; a booking on hold has no coach yet.
- Automatic assignment keeps each party (a booking) in one coach and the people of one car
  together, fills coach 1 first, then 2, ..., and never goes over a coach's capacity. It
  keeps the assignments already made (by hand or by an earlier run) unless asked to redo
  them all. A party bigger than every coach is split across coaches by car; any other
  party that fits in no coach's free places is left out, and the answer says who.
- A move puts a party (or some of its travellers) on another coach, or off the coaches;
  it is refused (409) when the coach has too few free places.
- A cancelled booking's travellers leave their coaches in the cancelling transaction
  (`app.excursions.handlers`); a rebooked one's lines go, with their assignments. A booking
  confirmed later has no coach until the operator runs the automatic assignment again or
  moves it by hand.

Capacity is kept by the database: each assignment takes a numbered place of its coach,
and a place holds one traveller (a unique index). Every writer locks the excursion's row
first, so two operators' changes of one excursion happen one after the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from uuid import UUID

from msgspec import UnsetType

from app.accounts.schemas import OperatorPrincipal
from app.booking.services.access import normalize_reference
from app.catalogue.services.common import owned_departure
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.i18n import _, ngettext
from app.excursions.rows import CoachRow, ExcursionRow
from app.excursions.schemas import (
    AssignmentOutcome,
    AssignmentsIn,
    AssignmentsOut,
    CoachPlanOut,
    NotPlaced,
    PartyOut,
    PartyPassenger,
)
from app.excursions.services.common import (
    Seated,
    Traveller,
    assigned_per_coach,
    coach_out,
    coaches_of,
    lock_excursion,
    owned_excursion,
    seating_of,
    travellers_of,
)
from app.excursions.tables import CoachAssignment

# ---------------------------------------------------------------- the plan


def _parties(travellers: Iterable[Traveller]) -> list[list[Traveller]]:
    """Travellers grouped by booking (each party in its booking's order), parties in the
    order of their first berth or seat."""
    by_booking: dict[UUID, list[Traveller]] = defaultdict(list)
    for traveller in travellers:
        by_booking[traveller.booking_id].append(traveller)
    parties = [sorted(party, key=lambda t: t.position) for party in by_booking.values()]
    return sorted(parties, key=lambda party: (min(t.sort_key for t in party), party[0].reference))


def _party_out(party: list[Traveller]) -> PartyOut:
    first = party[0]
    return PartyOut(
        reference=first.reference,
        contact_name=first.contact_name,
        contact_phone=first.contact_phone,
        size=len(party),
        passengers=[
            PartyPassenger(
                seat_label=t.seat_label,
                car=t.car,
                passenger_type=t.passenger_type,
                passenger_name=t.passenger_name,
            )
            for t in party
        ],
    )


def plan_view(
    excursion: ExcursionRow,
    coaches: list[CoachRow],
    seating: dict[UUID, Seated],
    travellers: list[Traveller],
    outcome: AssignmentOutcome | None = None,
) -> AssignmentsOut:
    per_coach = assigned_per_coach(seating, travellers)
    on_coach: dict[UUID, list[Traveller]] = defaultdict(list)
    unassigned = []
    for traveller in travellers:
        seated = seating.get(traveller.line_id)
        if seated is None:
            unassigned.append(traveller)
        else:
            on_coach[seated.coach_id].append(traveller)
    return AssignmentsOut(
        excursion_id=excursion.id,
        departure_id=excursion.departure_id,
        day_number=excursion.day_number,
        travellers=len(travellers),
        assigned=sum(per_coach.values()),
        coaches=[
            CoachPlanOut(
                coach=coach_out(coach, per_coach[coach.id]),
                parties=[_party_out(party) for party in _parties(on_coach[coach.id])],
            )
            for coach in coaches
        ],
        unassigned=[_party_out(party) for party in _parties(unassigned)],
        outcome=outcome,
    )


async def assignments(principal: OperatorPrincipal, excursion_id: UUID) -> AssignmentsOut:
    excursion = await owned_excursion(principal, excursion_id)
    coaches = (await coaches_of([excursion_id]))[excursion_id]
    seating = (await seating_of([excursion_id]))[excursion_id]
    return plan_view(excursion, coaches, seating, await travellers_of(excursion.departure_id))


# ---------------------------------------------------------------- changing it


class _Plan:
    """An excursion's coaches and places as they are inside the writer's transaction (which
    holds the excursion's lock), and the changes to write."""

    def __init__(
        self, coaches: list[CoachRow], seating: dict[UUID, Seated], travellers: list[Traveller]
    ) -> None:
        self.coaches = coaches
        self.travellers = {t.line_id: t for t in travellers}
        self.seating = seating
        self.used: dict[UUID, set[int]] = {coach.id: set() for coach in coaches}
        for seated in seating.values():
            self.used[seated.coach_id].add(seated.place)

    def free(self, coach: CoachRow) -> int:
        return coach.capacity - len(self.used[coach.id])

    def coach_of(self, line_id: UUID) -> UUID | None:
        seated = self.seating.get(line_id)
        return seated.coach_id if seated else None

    def take_off(self, lines: Iterable[UUID]) -> list[UUID]:
        gone = [line for line in lines if line in self.seating]
        for line in gone:
            seated = self.seating.pop(line)
            self.used[seated.coach_id].discard(seated.place)
        return gone

    def put_on(self, coach: CoachRow, lines: Iterable[UUID]) -> list[tuple[UUID, int]]:
        """The lowest free places of `coach` for `lines` (the caller checked the room)."""
        placed = []
        used = self.used[coach.id]
        place = 1
        for line in lines:
            while place in used:
                place += 1
            assert place <= coach.capacity
            used.add(place)
            self.seating[line] = Seated(coach_id=coach.id, place=place)
            placed.append((line, place))
        return placed


async def _load_plan(excursion: ExcursionRow) -> _Plan:
    """The plan under the lock, cleared of assignments whose traveller is gone (a booking
    that ended while an automatic assignment was running)."""
    coaches = (await coaches_of([excursion.id]))[excursion.id]
    seating = (await seating_of([excursion.id]))[excursion.id]
    travellers = await travellers_of(excursion.departure_id)
    current = {t.line_id for t in travellers}
    stale = [line for line in seating if line not in current]
    if stale:
        await (
            CoachAssignment.delete()
            .where((CoachAssignment.excursion == excursion.id) & CoachAssignment.line.is_in(stale))
            .run()
        )
        seating = {line: seated for line, seated in seating.items() if line in current}
    return _Plan(coaches, seating, travellers)


async def _write(
    excursion: ExcursionRow,
    plan: _Plan,
    coach: CoachRow,
    placed: list[tuple[UUID, int]],
    actor: str,
) -> None:
    if not placed:
        return
    now = clock.now()
    await CoachAssignment.insert(
        *(
            CoachAssignment(
                excursion=excursion.id,
                coach=coach.id,
                booking=plan.travellers[line].booking_id,
                line=line,
                place=place,
                actor=actor,
                assigned_at=now,
            )
            for line, place in placed
        )
    ).run()


async def _delete(excursion: ExcursionRow, lines: list[UUID]) -> None:
    if lines:
        await (
            CoachAssignment.delete()
            .where((CoachAssignment.excursion == excursion.id) & CoachAssignment.line.is_in(lines))
            .run()
        )


async def change_assignments(
    principal: OperatorPrincipal, excursion_id: UUID, data: AssignmentsIn
) -> AssignmentsOut:
    """Assign automatically, or move a party; returns the plan as it now is, with what this
    request did (`outcome`)."""
    if data.auto and data.reference is not None:
        raise InvalidInput("reference", _("Ask for an automatic assignment or a move, not both."))
    if not data.auto:
        if data.reference is None:
            raise InvalidInput(
                "reference", _("Give the booking to move, or ask for an automatic assignment.")
            )
        if isinstance(data.coach_id, UnsetType):
            raise InvalidInput(
                "coach_id", _("Give the coach to move to (null to take them off the coaches).")
            )
    elif data.seat_labels is not None or not isinstance(data.coach_id, UnsetType):
        field = "seat_labels" if data.seat_labels is not None else "coach_id"
        raise InvalidInput(field, _("An automatic assignment takes no coach or seats."))
    actor = f"staff:{principal.staff_id}"
    async with write_transaction():
        excursion = await lock_excursion(principal, excursion_id)
        # Another operator's departure was ruled out with the excursion; a gone one is 404.
        await owned_departure(principal, excursion.departure_id)
        plan = await _load_plan(excursion)
        if data.auto:
            outcome = await _auto(excursion, plan, redo=data.redo, actor=f"auto:{actor}")
        else:
            outcome = await _move(excursion, plan, data, actor)
        travellers = list(plan.travellers.values())
        travellers.sort(key=lambda t: (t.sort_key, t.seat_label))
        return plan_view(excursion, plan.coaches, plan.seating, travellers, outcome)


async def _auto(
    excursion: ExcursionRow, plan: _Plan, *, redo: bool, actor: str
) -> AssignmentOutcome:
    if redo:
        await _delete(excursion, plan.take_off(list(plan.seating)))
    waiting = [t for t in plan.travellers.values() if t.line_id not in plan.seating]
    parties = _by_car(_parties(waiting))
    placed = 0
    left: list[list[Traveller]] = []
    # Travellers of a party already on a coach (a move by hand of some of them, say) join
    # the rest of their party where there is room.
    for party in parties:
        mates = [plan.coach_of(t.line_id) for t in _whole_party(plan, party)]
        coach = _coach_with(plan, mates, len(party))
        if coach is not None:
            placed += await _place(excursion, plan, coach, party, actor)
        else:
            left.append(party)
    # Coach by coach, first coach first: every party that still fits, in car order.
    for coach in plan.coaches:
        remaining = []
        for party in left:
            if len(party) <= plan.free(coach):
                placed += await _place(excursion, plan, coach, party, actor)
            else:
                remaining.append(party)
        left = remaining
    # A party bigger than every coach cannot ride together: split by car, fullest first.
    largest = max((coach.capacity for coach in plan.coaches), default=0)
    not_placed = []
    for party in left:
        room = sum(plan.free(coach) for coach in plan.coaches)
        if len(party) > largest and len(party) <= room:
            rest = sorted(party, key=lambda t: (t.car or 0, t.sort_key))
            for coach in plan.coaches:
                part, rest = rest[: plan.free(coach)], rest[plan.free(coach) :]
                placed += await _place(excursion, plan, coach, part, actor)
        else:
            not_placed.append(
                NotPlaced(
                    reference=party[0].reference,
                    passengers=len(party),
                    reason=_("No coach has {count} free places together.").format(count=len(party)),
                )
            )
    return AssignmentOutcome(
        action="auto", placed=placed, not_placed=not_placed,
        message=_auto_message(plan, placed, not_placed),
    )  # fmt: skip


def _auto_message(plan: _Plan, placed: int, not_placed: list[NotPlaced]) -> str:
    if not plan.coaches:
        return _("This excursion has no coach yet: add coaches, then assign.")
    done = ngettext(
        "{count} traveller was given a coach.", "{count} travellers were given a coach.", placed
    ).format(count=placed)
    if not not_placed:
        return done
    people = sum(item.passengers for item in not_placed)
    free = sum(plan.free(coach) for coach in plan.coaches)
    missing = ngettext(
        "{people} travellers of {count} booking could not be placed ({references}): the "
        "coaches have {free} free places, none with room for the whole party. Add a coach or "
        "raise a capacity, then assign again.",
        "{people} travellers of {count} bookings could not be placed ({references}): the "
        "coaches have {free} free places, none with room for a whole party. Add a coach or "
        "raise a capacity, then assign again.",
        len(not_placed),
    ).format(
        people=people, count=len(not_placed), free=free,
        references=", ".join(item.reference for item in not_placed),
    )  # fmt: skip
    return f"{done} {missing}"


def _by_car(parties: list[list[Traveller]]) -> list[list[Traveller]]:
    """Parties of one car next to each other (a party's car is where most of it sleeps)."""

    def car_of(party: list[Traveller]) -> tuple[int, int]:
        cars = [t.car for t in party if t.car is not None]
        main = max(set(cars), key=cars.count) if cars else 10_000
        return (main, min(t.sort_key for t in party))

    return sorted(parties, key=car_of)


def _whole_party(plan: _Plan, party: list[Traveller]) -> list[Traveller]:
    booking = party[0].booking_id
    return [t for t in plan.travellers.values() if t.booking_id == booking]


def _coach_with(plan: _Plan, mates: list[UUID | None], size: int) -> CoachRow | None:
    """The coach most of the party is already on, if it has room for `size` more."""
    on = [coach_id for coach_id in mates if coach_id is not None]
    if not on:
        return None
    main = max(set(on), key=on.count)
    coach = next(coach for coach in plan.coaches if coach.id == main)
    return coach if plan.free(coach) >= size else None


async def _place(
    excursion: ExcursionRow, plan: _Plan, coach: CoachRow, party: list[Traveller], actor: str
) -> int:
    placed = plan.put_on(coach, [t.line_id for t in party])
    await _write(excursion, plan, coach, placed, actor)
    return len(placed)


async def _move(
    excursion: ExcursionRow, plan: _Plan, data: AssignmentsIn, actor: str
) -> AssignmentOutcome:
    assert data.reference is not None
    assert not isinstance(data.coach_id, UnsetType)
    reference = normalize_reference(data.reference)
    party = [t for t in plan.travellers.values() if t.reference == reference]
    if not party:
        raise NotFound(
            _("No confirmed booking with this reference travels on this departure."),
            code="booking_not_found",
        )
    if data.seat_labels is not None:
        labels = {t.seat_label: t for t in party}
        for index, label in enumerate(data.seat_labels):
            if label not in labels:
                raise InvalidInput(f"seat_labels[{index}]", _("This booking has no such seat."))
        party = [labels[label] for label in dict.fromkeys(data.seat_labels)]
    lines = [t.line_id for t in party]
    coach_id = data.coach_id
    if coach_id is None:
        gone = plan.take_off(lines)
        await _delete(excursion, gone)
        message = ngettext(
            "{reference}: {count} traveller taken off the coaches.",
            "{reference}: {count} travellers taken off the coaches.",
            len(gone),
        ).format(reference=reference, count=len(gone))
        return AssignmentOutcome(action="move", placed=len(gone), not_placed=[], message=message)
    coach = next((coach for coach in plan.coaches if coach.id == coach_id), None)
    if coach is None:
        raise InvalidInput(
            "coach_id", _("No such coach on this excursion."), code="coach_not_found"
        )
    moving = [line for line in lines if plan.coach_of(line) != coach.id]
    if len(moving) > plan.free(coach):
        raise Conflict(
            ngettext(
                "Coach {label} has {free} free place; {reference} needs {count}.",
                "Coach {label} has {free} free places; {reference} needs {count}.",
                plan.free(coach),
            ).format(label=coach.label, free=plan.free(coach), reference=reference,
                     count=len(moving)),
            code="coach_full",
        )  # fmt: skip
    await _delete(excursion, plan.take_off(moving))
    await _write(excursion, plan, coach, plan.put_on(coach, moving), actor)
    message = ngettext(
        "{reference}: {count} traveller moved to coach {label}.",
        "{reference}: {count} travellers moved to coach {label}.",
        len(moving),
    ).format(reference=reference, count=len(moving), label=coach.label)
    return AssignmentOutcome(action="move", placed=len(moving), not_placed=[], message=message)


# ---------------------------------------------------------------- bookings that end


async def leave_coaches(booking_id: UUID) -> None:
    """A booking that ended (cancelled) leaves every coach, in the cancelling transaction."""
    await CoachAssignment.delete().where(CoachAssignment.booking == booking_id).run()
