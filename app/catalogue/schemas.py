"""Request and response structures of the catalogue.

Inputs forbid unknown fields: a client that sends `status`, `operator_id` or a price where
none belongs gets a 400 naming the field instead of having it silently ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.tables import DepartureStatus, PassengerType, RouteKind, RouteStatus, StopKind
from app.core.money import CurrencyCode, MinorUnits, PriceOut
from app.core.schemas import (
    ClockTime,
    LocalizedText,
    Phone,
    ShortLocalizedText,
    Slug,
    TimeZoneName,
)


class Theme(StrEnum):
    sightseeing = "sightseeing"
    picking = "picking"
    flower_field = "flower_field"
    rural = "rural"
    family = "family"
    culture = "culture"
    nature = "nature"
    food = "food"


class SeatPosition(StrEnum):
    # Upper-case names: `lower` and `upper` would hide the str methods of the same name.
    LOWER = "lower"
    MIDDLE = "middle"
    UPPER = "upper"
    WINDOW = "window"
    AISLE = "aisle"


class BlockReason(StrEnum):
    crew = "crew"
    guide = "guide"
    medical = "medical"
    steward = "steward"
    maintenance = "maintenance"
    other = "other"


SeatClass = Annotated[
    str,
    msgspec.Meta(
        pattern="^[a-z][a-z_]{1,31}$",
        examples=["soft_sleeper"],
        description="e.g. soft_sleeper, hard_sleeper, standard, front, accessible",
    ),
]
SeatLabel = Annotated[
    str, msgspec.Meta(pattern="^[A-Z0-9][A-Z0-9-]{0,15}$", examples=["07-12L", "3C"])
]
Month = Annotated[int, msgspec.Meta(ge=1, le=12)]
ReminderHours = Annotated[
    list[Annotated[int, msgspec.Meta(ge=1, le=336)]],
    msgspec.Meta(max_length=5, description="Hours before departure to remind passengers"),
]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are an error."""


# ---------------------------------------------------------------- operators


class OperatorBrief(msgspec.Struct, kw_only=True):
    slug: str
    name: str


# ---------------------------------------------------------------- routes


class PolicyTier(Input, kw_only=True):
    """Cancelling at least `hours_before` departure refunds `refund_percent` of the price."""

    hours_before: Annotated[int, msgspec.Meta(ge=0, le=24 * 365)]
    refund_percent: Annotated[int, msgspec.Meta(ge=0, le=100)]


class RouteCreate(Input, kw_only=True):
    slug: Slug
    kind: RouteKind
    themes: Annotated[list[Theme], msgspec.Meta(max_length=8)] = []
    name: ShortLocalizedText
    description: LocalizedText
    duration_days: Annotated[int, msgspec.Meta(ge=1, le=60)] = 1
    meeting_point: ShortLocalizedText | None = None
    cancellation_policy: Annotated[list[PolicyTier], msgspec.Meta(max_length=10)] | None = None
    reminder_hours: ReminderHours = msgspec.field(default_factory=lambda: [48, 3])
    what_to_bring: LocalizedText | None = None


class RouteUpdate(Input, kw_only=True):
    slug: Slug | UnsetType = UNSET
    themes: Annotated[list[Theme], msgspec.Meta(max_length=8)] | UnsetType = UNSET
    name: ShortLocalizedText | UnsetType = UNSET
    description: LocalizedText | UnsetType = UNSET
    duration_days: Annotated[int, msgspec.Meta(ge=1, le=60)] | UnsetType = UNSET
    meeting_point: ShortLocalizedText | UnsetType | None = UNSET
    cancellation_policy: Annotated[list[PolicyTier], msgspec.Meta(max_length=10)] | UnsetType = (
        UNSET
    )
    reminder_hours: ReminderHours | UnsetType = UNSET
    what_to_bring: LocalizedText | UnsetType | None = UNSET


class PolicyTierOut(msgspec.Struct, kw_only=True):
    hours_before: int
    refund_percent: int


class RouteOut(msgspec.Struct, kw_only=True):
    """A route as its operator sees it: every translation."""

    id: UUID
    slug: str
    kind: RouteKind
    status: RouteStatus
    themes: list[str]
    name: dict[str, str]
    description: dict[str, str]
    duration_days: int
    meeting_point: dict[str, str] | None
    cancellation_policy: list[PolicyTierOut]
    reminder_hours: list[int]
    what_to_bring: dict[str, str] | None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- itinerary


class ItineraryStopIn(Input, kw_only=True):
    place: ShortLocalizedText
    arrive_time: ClockTime | None = None
    depart_time: ClockTime | None = None
    activities: Annotated[list[ShortLocalizedText], msgspec.Meta(max_length=20)] = []
    coach_transfer: bool = False
    notes: LocalizedText | None = None


class ItineraryDayIn(Input, kw_only=True):
    day_number: Annotated[int, msgspec.Meta(ge=1, le=60)]
    title: ShortLocalizedText
    description: LocalizedText | None = None
    night_on_train: bool = False
    stops: Annotated[list[ItineraryStopIn], msgspec.Meta(max_length=30)] = []


class ItineraryIn(Input, kw_only=True):
    days: Annotated[list[ItineraryDayIn], msgspec.Meta(min_length=1, max_length=60)]


class ItineraryStopOut(msgspec.Struct, kw_only=True):
    place: dict[str, str]
    arrive_time: str | None
    depart_time: str | None
    activities: list[dict[str, str]]
    coach_transfer: bool
    notes: dict[str, str] | None


class ItineraryDayOut(msgspec.Struct, kw_only=True):
    day_number: int
    title: dict[str, str]
    description: dict[str, str] | None
    night_on_train: bool
    stops: list[ItineraryStopOut]


class ItineraryOut(msgspec.Struct, kw_only=True):
    days: list[ItineraryDayOut]


# ---------------------------------------------------------------- seasonal offers


class SeasonalOfferIn(Input, kw_only=True):
    name: ShortLocalizedText
    description: LocalizedText | None = None
    months: Annotated[list[Month], msgspec.Meta(min_length=1, max_length=12)]


class SeasonalOfferUpdate(Input, kw_only=True):
    name: ShortLocalizedText | UnsetType = UNSET
    description: LocalizedText | UnsetType | None = UNSET
    months: Annotated[list[Month], msgspec.Meta(min_length=1, max_length=12)] | UnsetType = UNSET


class SeasonalOfferOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: dict[str, str]
    description: dict[str, str] | None
    months: list[int]


# ---------------------------------------------------------------- vehicles and seat maps


class SeatIn(Input, kw_only=True):
    label: SeatLabel
    seat_class: SeatClass
    position: SeatPosition | None = None
    car: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None
    compartment: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None
    row: Annotated[int, msgspec.Meta(ge=1, le=99)] | None = None
    blocked_reason: BlockReason | None = None


class SleeperCarLayout(Input, kw_only=True):
    car: Annotated[int, msgspec.Meta(ge=1, le=99)]
    seat_class: SeatClass
    compartments: Annotated[int, msgspec.Meta(ge=1, le=20)]
    berths_per_compartment: Literal[2, 4, 6]


class TrainLayout(Input, kw_only=True, tag="train"):
    """Sleeper cars of compartments; berths are labelled car-number+position, e.g. 07-12L."""

    cars: Annotated[list[SleeperCarLayout], msgspec.Meta(min_length=1, max_length=30)]


class BusLayout(Input, kw_only=True, tag="bus"):
    """Rows of seats labelled row+letter, e.g. 3C; the last row may be wider."""

    rows: Annotated[int, msgspec.Meta(ge=1, le=30)]
    seat_letters: Annotated[str, msgspec.Meta(pattern="^[A-F]{2,5}$")] = "ABCD"
    last_row_letters: Annotated[str, msgspec.Meta(pattern="^[A-F]{2,6}$")] | None = None
    seat_class: SeatClass = "standard"
    front_rows: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    accessible_labels: list[SeatLabel] = []


class VehicleCreate(Input, kw_only=True):
    kind: RouteKind
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    code: Annotated[str, msgspec.Meta(max_length=32)] = ""
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    layout: TrainLayout | BusLayout | None = None
    seats: Annotated[list[SeatIn], msgspec.Meta(max_length=1000)] | None = None


class VehicleUpdate(Input, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | UnsetType = UNSET
    code: Annotated[str, msgspec.Meta(max_length=32)] | UnsetType = UNSET
    description: Annotated[str, msgspec.Meta(max_length=2000)] | UnsetType = UNSET


class SeatMapIn(Input, kw_only=True):
    layout: TrainLayout | BusLayout | None = None
    seats: Annotated[list[SeatIn], msgspec.Meta(max_length=1000)] | None = None


class SeatBlockIn(Input, kw_only=True):
    reason: BlockReason


class SeatOut(msgspec.Struct, kw_only=True):
    label: str
    seat_class: str
    position: str | None
    car: int | None
    compartment: int | None
    row: int | None
    blocked_reason: str | None


class VehicleOut(msgspec.Struct, kw_only=True):
    id: UUID
    kind: RouteKind
    name: str
    code: str
    description: str
    capacity_by_class: dict[str, int]
    seats: list[SeatOut]


class VehicleBrief(msgspec.Struct, kw_only=True):
    id: UUID
    kind: RouteKind
    name: str
    code: str
    capacity_by_class: dict[str, int]


# ---------------------------------------------------------------- fares


class FareIn(Input, kw_only=True):
    seat_class: SeatClass
    passenger_type: PassengerType
    amount: MinorUnits
    currency: CurrencyCode | None = None


class FaresIn(Input, kw_only=True):
    fares: Annotated[list[FareIn], msgspec.Meta(max_length=60)]


class FareOut(msgspec.Struct, kw_only=True):
    seat_class: str
    passenger_type: PassengerType
    price: PriceOut
    source: Literal["route", "departure"]


# ---------------------------------------------------------------- departures


class DepartureStopIn(Input, kw_only=True):
    kind: StopKind = StopKind.pickup
    name: ShortLocalizedText
    address: ShortLocalizedText | None = None
    at: datetime


class DepartureCreate(Input, kw_only=True):
    route_id: UUID
    vehicle_id: UUID | None = None
    departs_at: datetime
    returns_at: datetime | None = None
    time_zone: TimeZoneName | None = None
    sales_open_at: datetime | None = None
    sales_close_at: datetime | None = None
    stops: Annotated[list[DepartureStopIn], msgspec.Meta(max_length=30)] = []
    notes: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    guide_phone: Phone | None = None


class DepartureUpdate(Input, kw_only=True):
    vehicle_id: UUID | UnsetType | None = UNSET
    departs_at: datetime | UnsetType = UNSET
    returns_at: datetime | UnsetType = UNSET
    time_zone: TimeZoneName | UnsetType = UNSET
    sales_open_at: datetime | UnsetType | None = UNSET
    sales_close_at: datetime | UnsetType | None = UNSET
    stops: Annotated[list[DepartureStopIn], msgspec.Meta(max_length=30)] | UnsetType = UNSET
    notes: Annotated[str, msgspec.Meta(max_length=2000)] | UnsetType = UNSET
    guide_phone: Phone | UnsetType | None = UNSET


class DepartureSeatBlockIn(Input, kw_only=True):
    label: SeatLabel
    reason: BlockReason


class DepartureBlocksIn(Input, kw_only=True):
    blocks: Annotated[list[DepartureSeatBlockIn], msgspec.Meta(max_length=1000)]


class StopTemplateIn(Input, kw_only=True):
    kind: StopKind = StopKind.pickup
    name: ShortLocalizedText
    address: ShortLocalizedText | None = None
    time: ClockTime
    day_offset: Annotated[int, msgspec.Meta(ge=-1, le=60)] = 0


Weekday = Annotated[int, msgspec.Meta(ge=1, le=7, description="ISO weekday: 1 Monday .. 7 Sunday")]


class BulkScheduleIn(Input, kw_only=True):
    """Every `weekdays` from `start_date` to `end_date` at `departure_time` local, minus skips."""

    vehicle_id: UUID | None = None
    start_date: date
    end_date: date
    weekdays: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)]
    departure_time: ClockTime
    return_time: ClockTime
    skip_dates: Annotated[list[date], msgspec.Meta(max_length=366)] = []
    time_zone: TimeZoneName | None = None
    stops: Annotated[list[StopTemplateIn], msgspec.Meta(max_length=30)] = []
    sales_open_days_before: Annotated[int, msgspec.Meta(ge=0, le=365)] | None = None
    sales_close_minutes_before: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] = 0
    publish: bool = False


class DepartureStopOut(msgspec.Struct, kw_only=True):
    kind: StopKind
    name: dict[str, str]
    address: dict[str, str] | None
    at: datetime


class DepartureOut(msgspec.Struct, kw_only=True):
    """A departure as its operator sees it; times are shown in the departure's time zone."""

    id: UUID
    route_id: UUID
    route_slug: str
    vehicle_id: UUID | None
    status: DepartureStatus
    departs_at: datetime
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    stops: list[DepartureStopOut]
    capacity_by_class: dict[str, int]
    blocked: list[DepartureSeatBlockOut]
    notes: str
    guide_phone: str
    created_at: datetime
    updated_at: datetime


class DepartureSeatBlockOut(msgspec.Struct, kw_only=True):
    label: str
    reason: str


class BulkScheduleOut(msgspec.Struct, kw_only=True):
    created: int
    departures: list[DepartureOut]


# ---------------------------------------------------------------- public views


class PublicSeasonalOffer(msgspec.Struct, kw_only=True):
    name: str
    description: str | None
    months: list[int]


class PublicRouteSummary(msgspec.Struct, kw_only=True):
    slug: str
    kind: RouteKind
    themes: list[str]
    name: str
    description: str
    duration_days: int
    duration: str
    operator: OperatorBrief
    next_departure_at: datetime | None
    lowest_adult_price: PriceOut | None


class PublicItineraryStop(msgspec.Struct, kw_only=True):
    place: str
    arrive_time: str | None
    depart_time: str | None
    activities: list[str]
    coach_transfer: bool
    notes: str | None


class PublicItineraryDay(msgspec.Struct, kw_only=True):
    day_number: int
    title: str
    description: str | None
    night_on_train: bool
    stops: list[PublicItineraryStop]


class PublicRouteDetail(msgspec.Struct, kw_only=True):
    slug: str
    kind: RouteKind
    themes: list[str]
    name: str
    description: str
    duration_days: int
    duration: str
    meeting_point: str | None
    cancellation_policy: list[PolicyTierOut]
    operator: OperatorBrief
    itinerary: list[PublicItineraryDay]
    seasonal_offers: list[PublicSeasonalOffer]
    next_departure_at: datetime | None


class PublicStop(msgspec.Struct, kw_only=True):
    id: UUID
    kind: StopKind
    name: str
    address: str | None
    at: datetime


class ClassAvailability(msgspec.Struct, kw_only=True):
    seat_class: str
    capacity: int
    seats_left: int


class PublicDepartureSummary(msgspec.Struct, kw_only=True):
    id: UUID
    route_slug: str
    status: DepartureStatus
    departs_at: datetime
    # The departure time written out for the reader, in the departure's time zone.
    departs_at_text: str
    returns_at: datetime
    time_zone: str
    on_sale: bool
    seats_left: int
    classes: list[ClassAvailability]
    lowest_adult_price: PriceOut | None
    offers_in_season: list[PublicSeasonalOffer]


class PublicFare(msgspec.Struct, kw_only=True):
    seat_class: str
    passenger_type: PassengerType
    price: PriceOut


class PublicDepartureDetail(msgspec.Struct, kw_only=True):
    id: UUID
    route_slug: str
    route_name: str
    kind: RouteKind
    status: DepartureStatus
    departs_at: datetime
    departs_at_text: str
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    on_sale: bool
    meeting_point: str | None
    stops: list[PublicStop]
    fares: list[PublicFare]
    seats_left: int
    classes: list[ClassAvailability]
    offers_in_season: list[PublicSeasonalOffer]


class PublicSeat(msgspec.Struct, kw_only=True):
    label: str
    seat_class: str
    position: str | None
    car: int | None
    compartment: int | None
    row: int | None
    free: bool


class PublicSeatMap(msgspec.Struct, kw_only=True):
    departure_id: UUID
    kind: RouteKind
    seats: list[PublicSeat]
