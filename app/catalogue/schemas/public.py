"""What tourists read: published routes, departures, fares, seats left and seat maps."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

import msgspec

from app.catalogue.schemas.routes import PolicyTierOut
from app.catalogue.tables import DepartureStatus, Meal, PassengerType, RouteKind, StopKind
from app.core.money import PriceOut

# ---------------------------------------------------------------- operators


class OperatorBrief(msgspec.Struct, kw_only=True):
    slug: str
    name: str


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


class PublicHotel(msgspec.Struct, kw_only=True):
    name: str
    address: str
    phone: str | None


class PublicItineraryDay(msgspec.Struct, kw_only=True):
    day_number: int
    title: str
    description: str | None
    # "train", a hotel, or null (the trip ends that day).
    overnight: Literal["train"] | PublicHotel | None
    night_on_train: bool
    meals: list[Meal]
    # Local clock time ("20:30") by which travellers are back on the train.
    back_on_board_at: str | None
    stops: list[PublicItineraryStop]


class TripDay(msgspec.Struct, kw_only=True):
    """A day of one departure's trip: the route's day plan on its calendar date."""

    day_number: int
    date: date
    title: str
    description: str | None
    overnight: Literal["train"] | PublicHotel | None
    meals: list[Meal]
    # When travellers must be back on the train, in the departure's time zone.
    back_on_board_at: datetime | None
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
