"""Catalogue tables: routes, itineraries, vehicles and seat maps, departures, fares.

Translatable content is stored as JSON objects keyed by locale (`{"zh_Hans": ..., "en": ...}`).
Composite unique keys (a theme once per route, a day number once per route, a seat label once
per vehicle, one fare per class and passenger type, one block per seat and departure) are
unique indexes created in migrations with plain SQL, which PostgreSQL and SQLite both accept.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Time,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.accounts.tables import Operator


class RouteKind(StrEnum):
    train = "train"
    bus = "bus"


class RouteStatus(StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"


class DepartureStatus(StrEnum):
    draft = "draft"
    published = "published"
    closed = "closed"
    cancelled = "cancelled"
    departed = "departed"


class PassengerType(StrEnum):
    adult = "adult"
    child = "child"
    senior = "senior"


# The ages (in whole years, both ends included) a passenger type's fare is sold for: what a
# reseller tells its customers (OCTO units' minAge and maxAge). Adults may be any age from
# 14; seniors from 60 may choose the senior fare.
PASSENGER_AGES: dict[PassengerType, tuple[int, int]] = {
    PassengerType.child: (0, 13),
    PassengerType.adult: (14, 120),
    PassengerType.senior: (60, 120),
}


class StopKind(StrEnum):
    boarding = "boarding"
    pickup = "pickup"
    dropoff = "dropoff"


class Route(Table):
    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    slug = Varchar(length=80, unique=True)
    kind = Varchar(length=16, choices=RouteKind)
    name = JSON()
    description = JSON()
    duration_days = Integer(default=1)
    meeting_point = JSON(null=True, default=None)
    cancellation_policy = JSON()
    # What passengers should bring (translated); repeated in the reminders.
    what_to_bring = JSON(null=True, default=None)
    # Hours before departure at which passengers get a reminder (default 48 and 3).
    reminder_hours = JSON(default=[48, 3])
    status = Varchar(length=16, choices=RouteStatus, default=RouteStatus.draft, index=True)
    # Lower-cased names and descriptions in every language, for the public text search.
    search_text = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class RouteTheme(Table):
    id = UUID(primary_key=True)
    route = ForeignKey(Route, on_delete=OnDelete.cascade, null=False, index=True)
    theme = Varchar(length=32, index=True)


class Meal(StrEnum):
    """The meals a day of the trip includes, in the order they are eaten."""

    breakfast = "breakfast"
    lunch = "lunch"
    dinner = "dinner"


class ItineraryDay(Table):
    id = UUID(primary_key=True)
    route = ForeignKey(Route, on_delete=OnDelete.cascade, null=False, index=True)
    day_number = Integer()
    title = JSON()
    description = JSON(null=True, default=None)
    # Where the night after this day is spent: on the train, in `hotel` (translated name
    # and address, and a phone), or neither (the trip ends, or the traveller is home).
    night_on_train = Boolean(default=False)
    hotel = JSON(null=True, default=None)
    # The meals included this day (`Meal` values, in the order eaten).
    meals = JSON(default=[])
    # The local clock time by which travellers must be back on the train.
    back_on_board_at = Time(null=True, default=None)


class ItineraryStop(Table):
    id = UUID(primary_key=True)
    day = ForeignKey(ItineraryDay, on_delete=OnDelete.cascade, null=False, index=True)
    stop_order = Integer()
    place = JSON()
    # Local clock times on this itinerary day; None when the stop has no fixed time.
    arrive_time = Time(null=True, default=None)
    depart_time = Time(null=True, default=None)
    activities = JSON()
    coach_transfer = Boolean(default=False)
    notes = JSON(null=True, default=None)


class SeasonalOffer(Table):
    id = UUID(primary_key=True)
    route = ForeignKey(Route, on_delete=OnDelete.cascade, null=False, index=True)
    name = JSON()
    description = JSON(null=True, default=None)
    # Months of the year (1-12) in which the offer is in season.
    months = JSON()


class Vehicle(Table):
    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    kind = Varchar(length=16, choices=RouteKind)
    name = Varchar(length=120)
    code = Varchar(length=32, default="")
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class Seat(Table):
    id = UUID(primary_key=True)
    vehicle = ForeignKey(Vehicle, on_delete=OnDelete.cascade, null=False, index=True)
    label = Varchar(length=16)
    seat_class = Varchar(length=32)
    position = Varchar(length=16, null=True, default=None)
    car = Integer(null=True, default=None)
    compartment = Integer(null=True, default=None)
    seat_row = Integer(null=True, default=None)
    sort_key = Integer(default=0)
    # Set when the seat is kept for crew, guides or medical staff on every departure.
    blocked_reason = Varchar(length=32, null=True, default=None)


class Departure(Table):
    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    route = ForeignKey(Route, on_delete=OnDelete.restrict, null=False, index=True)
    vehicle = ForeignKey(Vehicle, on_delete=OnDelete.restrict, null=True, default=None)
    departs_at = Timestamptz(index=True)
    returns_at = Timestamptz()
    time_zone = Varchar(length=64)
    sales_open_at = Timestamptz(null=True, default=None)
    sales_close_at = Timestamptz(null=True, default=None)
    status = Varchar(length=16, choices=DepartureStatus, default=DepartureStatus.draft, index=True)
    notes = Text(default="")
    # The guide's phone for this run, given to passengers in the reminders.
    guide_phone = Varchar(length=32, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class CrewRole(StrEnum):
    steward = "steward"  # 列车管家: looks after the travellers on board
    guide = "guide"
    narrator = "narrator"
    medical = "medical"
    driver = "driver"
    other = "other"


class DepartureCrewMember(Table):
    """One member of a departure's crew: who travels with it, what they do and where."""

    id = UUID(primary_key=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    # The member's place in the roster as the operator wrote it (1, 2, ...).
    position = Integer()
    name = Varchar(length=120)
    role = Varchar(length=16, choices=CrewRole)
    phone = Varchar(length=32, default="")
    # The car of the train they travel in, or the coach they ride (free text for now).
    car = Integer(null=True, default=None)
    coach = Varchar(length=60, default="")


class DepartureStop(Table):
    id = UUID(primary_key=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    stop_order = Integer()
    kind = Varchar(length=16, choices=StopKind, default=StopKind.pickup)
    name = JSON()
    address = JSON(null=True, default=None)
    at = Timestamptz()


class DepartureSeatBlock(Table):
    """A seat kept off sale on one departure (e.g. this run's medical staff)."""

    id = UUID(primary_key=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    seat = ForeignKey(Seat, on_delete=OnDelete.cascade, null=False)
    reason = Varchar(length=32)


class RouteFare(Table):
    """The default price of a seat class and passenger type on every departure of a route."""

    id = UUID(primary_key=True)
    route = ForeignKey(Route, on_delete=OnDelete.cascade, null=False, index=True)
    seat_class = Varchar(length=32)
    passenger_type = Varchar(length=16, choices=PassengerType)
    amount = Integer()
    currency = Varchar(length=3)


class DepartureFare(Table):
    """A departure's own price, overriding the route's fare of the same class and type."""

    id = UUID(primary_key=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    seat_class = Varchar(length=32)
    passenger_type = Varchar(length=16, choices=PassengerType)
    amount = Integer()
    currency = Varchar(length=3)
