"""Excursions, coaches, the coach plan and the coach manifest: operators' inputs and views.
Times are shown in the departure's time zone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.schemas.common import Input, SeatLabel
from app.catalogue.tables import PassengerType
from app.core.schemas import ClockTime, Phone, ShortLocalizedText

DayNumber = Annotated[int, msgspec.Meta(ge=1, le=60, description="Day of the trip, 1 = the first")]
PersonName = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
OptionalName = Annotated[str, msgspec.Meta(max_length=120)]
Plate = Annotated[
    str,
    msgspec.Meta(
        min_length=2, max_length=16, pattern=r"^\S(.*\S)?$", examples=["新A·12345", "豫A 8U359"]
    ),
]
CoachLabel = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=32, examples=["1", "A"], description="e.g. 1, 2, A"),
]
Capacity = Annotated[
    int, msgspec.Meta(ge=1, le=120, description="Seats for travellers (driver and guide apart)")
]
Position = Annotated[int, msgspec.Meta(ge=1, le=50, description="Order on the plan; 1 fills first")]
Notes = Annotated[str, msgspec.Meta(max_length=2000)]

# ---------------------------------------------------------------- excursions


class ExcursionIn(Input, kw_only=True):
    day_number: DayNumber
    sight: ShortLocalizedText
    meeting_point: ShortLocalizedText
    meet_time: Annotated[ClockTime, msgspec.Meta(description="Local time the coaches leave")]
    return_time: Annotated[ClockTime, msgspec.Meta(description="Local time back, same day")]
    notes: Notes = ""


class ExcursionUpdate(Input, kw_only=True):
    day_number: DayNumber | UnsetType = UNSET
    sight: ShortLocalizedText | UnsetType = UNSET
    meeting_point: ShortLocalizedText | UnsetType = UNSET
    meet_time: ClockTime | UnsetType = UNSET
    return_time: ClockTime | UnsetType = UNSET
    notes: Notes | UnsetType = UNSET


class CoachIn(Input, kw_only=True):
    label: CoachLabel | None = None
    position: Position | None = None
    capacity: Capacity
    plate: Plate
    company: OptionalName = ""
    driver_name: PersonName
    driver_phone: Phone
    guide_name: OptionalName = ""
    guide_phone: Phone | None = None


class CoachUpdate(Input, kw_only=True):
    label: CoachLabel | UnsetType = UNSET
    position: Position | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    plate: Plate | UnsetType = UNSET
    company: OptionalName | UnsetType = UNSET
    driver_name: PersonName | UnsetType = UNSET
    driver_phone: Phone | UnsetType = UNSET
    guide_name: OptionalName | UnsetType = UNSET
    guide_phone: Phone | UnsetType | None = UNSET


class CoachOut(msgspec.Struct, kw_only=True):
    id: UUID
    excursion_id: UUID
    position: int
    label: str
    capacity: int
    # Travellers assigned, and places left.
    assigned: int
    free: int
    plate: str
    company: str
    driver_name: str
    driver_phone: str
    guide_name: str
    guide_phone: str


class ExcursionOut(msgspec.Struct, kw_only=True):
    id: UUID
    departure_id: UUID
    day_number: int
    date: date
    sight: dict[str, str]
    meeting_point: dict[str, str]
    meet_time: str
    return_time: str
    meet_at: datetime
    return_at: datetime
    time_zone: str
    notes: str
    coaches: list[CoachOut]
    # Seats on the coaches; the departure's confirmed travellers, and how many have a coach.
    capacity: int
    travellers: int
    assigned: int
    unassigned: int
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- assignments


class AssignmentsIn(Input, kw_only=True):
    """`{"auto": true}` (and `"redo": true` to start again from empty coaches), or a move:
    `{"reference": "K7M2Q9XD", "coach_id": "..."}` moves the booking's party (or only its
    `seat_labels`) to that coach; `"coach_id": null` takes them off the coaches."""

    auto: bool = False
    redo: bool = False
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    coach_id: UUID | UnsetType | None = UNSET
    seat_labels: Annotated[list[SeatLabel], msgspec.Meta(min_length=1, max_length=60)] | None = None


class PartyPassenger(msgspec.Struct, kw_only=True):
    seat_label: str
    car: int | None
    passenger_type: PassengerType
    passenger_name: str


class PartyOut(msgspec.Struct, kw_only=True):
    """A booking's travellers on one coach (or without a coach)."""

    reference: str
    contact_name: str
    contact_phone: str
    size: int
    passengers: list[PartyPassenger]


class CoachPlanOut(msgspec.Struct, kw_only=True):
    coach: CoachOut
    parties: list[PartyOut]


class NotPlaced(msgspec.Struct, kw_only=True):
    reference: str
    passengers: int
    reason: str


class AssignmentOutcome(msgspec.Struct, kw_only=True):
    action: Literal["auto", "move"]
    # Travellers given a coach (or taken off one, for a move to none) by this request.
    placed: int
    not_placed: list[NotPlaced]
    message: str


class AssignmentsOut(msgspec.Struct, kw_only=True):
    excursion_id: UUID
    departure_id: UUID
    day_number: int
    travellers: int
    assigned: int
    coaches: list[CoachPlanOut]
    unassigned: list[PartyOut]
    outcome: AssignmentOutcome | None = None


# ---------------------------------------------------------------- manifest


class Headcount(msgspec.Struct, kw_only=True):
    passengers: int
    adults: int
    seniors: int
    children: int


class ManifestPassenger(msgspec.Struct, kw_only=True):
    reference: str
    passenger_name: str
    passenger_type: PassengerType
    seat_label: str
    car: int | None
    contact_name: str
    contact_phone: str


class ManifestCoach(msgspec.Struct, kw_only=True):
    coach: CoachOut
    headcount: Headcount
    passengers: list[ManifestPassenger]


class CoachManifest(msgspec.Struct, kw_only=True):
    """Who rides which coach of an excursion, with the headcount the coach company needs."""

    excursion_id: UUID
    departure_id: UUID
    route_slug: str
    day_number: int
    date: date
    sight: str
    meeting_point: str
    meet_at: datetime
    return_at: datetime
    time_zone: str
    headcount: Headcount
    coaches: list[ManifestCoach]
    unassigned: list[ManifestPassenger]
