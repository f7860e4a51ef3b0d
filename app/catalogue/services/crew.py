"""A departure's crew roster: the train steward (列车管家), guides, narrators, medical staff
and drivers who travel with it, each with a phone and the car or coach they are in.

Operators read and replace the whole roster; the manifest prints it, and travellers' reminders
give the steward's and the medical staff's contacts."""

from __future__ import annotations

from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.crew import CrewIn, CrewMemberOut, CrewOut
from app.catalogue.services.common import owned_departure
from app.catalogue.tables import CrewRole, DepartureCrewMember, DepartureStatus, Seat
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.i18n import _
from app.core.labels import crew_role_label

# The crew travellers are given the contact of before they leave.
TRAVELLER_CONTACT_ROLES = (CrewRole.steward, CrewRole.medical)


async def crew_of(departure_id: UUID) -> list[CrewMemberOut]:
    """The roster of a departure, in the operator's order (no ownership check: callers
    have checked who asks)."""
    rows = (
        await DepartureCrewMember.select()
        .where(DepartureCrewMember.departure == departure_id)
        .order_by(DepartureCrewMember.position)
        .run()
    )
    return [
        CrewMemberOut(
            name=row["name"],
            role=CrewRole(row["role"]),
            phone=row["phone"],
            car=row["car"],
            coach=row["coach"],
        )
        for row in rows
    ]


async def traveller_contacts(departure_id: UUID) -> list[CrewMemberOut]:
    """The steward and the medical staff of a departure: whom travellers call on the way."""
    return [
        member for member in await crew_of(departure_id) if member.role in TRAVELLER_CONTACT_ROLES
    ]


async def get_crew(principal: OperatorPrincipal, departure_id: UUID) -> CrewOut:
    await owned_departure(principal, departure_id)
    return CrewOut(departure_id=departure_id, members=await crew_of(departure_id))


async def _cars_of(vehicle_id: UUID) -> set[int]:
    rows = (
        await Seat.select(Seat.car)
        .where((Seat.vehicle == vehicle_id) & Seat.car.is_not_null())
        .distinct()
        .run()
    )
    return {int(row["car"]) for row in rows}


async def replace_crew(principal: OperatorPrincipal, departure_id: UUID, data: CrewIn) -> CrewOut:
    """Replace the whole roster of one of the operator's departures."""
    require_operator_admin(principal)
    async with write_transaction():
        departure = await owned_departure(principal, departure_id)
        if departure.status == DepartureStatus.cancelled:
            raise Conflict(
                _("A cancelled departure has no crew to change."), code="departure_cancelled"
            )
        cars = await _cars_of(departure.vehicle_id) if departure.vehicle_id else None
        seen: set[tuple[str, str]] = set()
        for index, member in enumerate(data.members):
            if not member.name.strip():
                raise InvalidInput(f"members[{index}].name", _("This field is required."))
            if member.car is not None and cars is not None and member.car not in cars:
                raise InvalidInput(
                    f"members[{index}].car",
                    _("The departure's vehicle has no car {car}.").format(car=member.car)
                    if cars
                    else _("The departure's vehicle has no cars; write the coach instead."),
                )
            key = (member.name.strip().casefold(), member.role.value)
            if key in seen:
                raise InvalidInput(
                    f"members[{index}].name",
                    _("{name} is already in the crew as {role}.").format(
                        name=member.name.strip(), role=crew_role_label(member.role.value)
                    ),
                )
            seen.add(key)
        await (
            DepartureCrewMember.delete().where(DepartureCrewMember.departure == departure_id).run()
        )
        if data.members:
            await DepartureCrewMember.insert(
                *[
                    DepartureCrewMember(
                        departure=departure_id,
                        position=position,
                        name=member.name.strip(),
                        role=member.role.value,
                        phone=member.phone.strip(),
                        car=member.car,
                        coach=member.coach.strip(),
                    )
                    for position, member in enumerate(data.members, start=1)
                ]
            ).run()
    return await get_crew(principal, departure_id)
