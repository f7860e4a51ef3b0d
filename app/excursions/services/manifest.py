"""The coach manifest of an excursion: who rides which coach, and the headcount the coach
company needs (passengers, adults, seniors, children per coach), as JSON, CSV or a page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.services.common import owned_departure
from app.catalogue.tables import PassengerType, Route
from app.core.csv_files import csv_text
from app.core.i18n import _, localize
from app.core.labels import passenger_label
from app.excursions.schemas import CoachManifest, Headcount, ManifestCoach, ManifestPassenger
from app.excursions.services.common import (
    Traveller,
    assigned_per_coach,
    coach_out,
    coaches_of,
    excursion_times,
    owned_excursion,
    seating_of,
    travellers_of,
)


def headcount(passengers: Iterable[ManifestPassenger]) -> Headcount:
    kinds = [p.passenger_type for p in passengers]
    return Headcount(
        passengers=len(kinds),
        adults=kinds.count(PassengerType.adult),
        seniors=kinds.count(PassengerType.senior),
        children=kinds.count(PassengerType.child),
    )


def _passenger(traveller: Traveller) -> ManifestPassenger:
    return ManifestPassenger(
        reference=traveller.reference, passenger_name=traveller.passenger_name,
        passenger_type=traveller.passenger_type, seat_label=traveller.seat_label,
        car=traveller.car, contact_name=traveller.contact_name,
        contact_phone=traveller.contact_phone,
    )  # fmt: skip


async def coach_manifest(principal: OperatorPrincipal, excursion_id: UUID) -> CoachManifest:
    excursion = await owned_excursion(principal, excursion_id)
    departure = await owned_departure(principal, excursion.departure_id)
    route = await Route.select(Route.slug).where(Route.id == departure.route_id).first().run()
    coaches = (await coaches_of([excursion_id]))[excursion_id]
    seating = (await seating_of([excursion_id]))[excursion_id]
    travellers = await travellers_of(departure.id)
    per_coach = assigned_per_coach(seating, travellers)
    riders: dict[UUID, list[ManifestPassenger]] = defaultdict(list)
    unassigned = []
    # Parties stay together in the list: by booking, in seat order.
    for traveller in sorted(travellers, key=lambda t: (t.reference, t.position)):
        seated = seating.get(traveller.line_id)
        if seated is None:
            unassigned.append(_passenger(traveller))
        else:
            riders[seated.coach_id].append(_passenger(traveller))
    meet_at, return_at = excursion_times(excursion, departure)
    manifest_coaches = [
        ManifestCoach(
            coach=coach_out(coach, per_coach[coach.id]),
            headcount=headcount(riders[coach.id]),
            passengers=riders[coach.id],
        )
        for coach in coaches
    ]
    return CoachManifest(
        excursion_id=excursion.id,
        departure_id=departure.id,
        route_slug=route["slug"] if route else "",
        day_number=excursion.day_number,
        date=meet_at.date(),
        sight=localize(excursion.sight),
        meeting_point=localize(excursion.meeting_point),
        meet_at=meet_at,
        return_at=return_at,
        time_zone=departure.time_zone,
        headcount=headcount(p for coach in manifest_coaches for p in coach.passengers),
        coaches=manifest_coaches,
        unassigned=unassigned,
    )


def coach_manifest_csv(data: CoachManifest) -> str:
    """One row per traveller on a coach, coach by coach, with the coach's details on each
    row (a spreadsheet filters by coach); translated headers."""
    header = [
        _("Coach"),
        _("Plate"),
        _("Driver"),
        _("Driver's phone"),
        _("Guide"),
        _("Guide's phone"),
        _("Passenger"),
        _("Passenger type"),
        _("Booking"),
        _("Car"),
        _("Berth"),
        _("Contact"),
        _("Phone"),
        _("Sight"),
        _("Meeting point"),
        _("Meet at"),
        _("Back at"),
    ]
    rows = [
        [
            item.coach.label,
            item.coach.plate,
            item.coach.driver_name,
            item.coach.driver_phone,
            item.coach.guide_name,
            item.coach.guide_phone,
            passenger.passenger_name,
            passenger_label(passenger.passenger_type.value),
            passenger.reference,
            passenger.car if passenger.car is not None else "",
            passenger.seat_label,
            passenger.contact_name,
            passenger.contact_phone,
            data.sight,
            data.meeting_point,
            data.meet_at.strftime("%Y-%m-%d %H:%M"),
            data.return_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for item in data.coaches
        for passenger in item.passengers
    ]
    return csv_text(header, rows)
