"""Excursions of a departure, the coaches that serve them, and who rides which coach.

A coach's capacity is protected like a seat: an assignment takes one numbered place of its
coach (1 .. capacity), and unique indexes (created in migrations) let a place hold at most
one traveller and a traveller ride at most one coach of an excursion. Writers also lock
the excursion's row first, so that plans of one excursion change one at a time.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
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
from app.booking.tables import Booking, BookingLine
from app.catalogue.tables import Departure


class Excursion(Table):
    """A day's outing by coach: the sight, where the coaches wait at the station and when
    (local clock times of the departure's zone on day `day_number` of the trip, so the
    plan follows the departure if its date moves)."""

    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    departure = ForeignKey(Departure, on_delete=OnDelete.cascade, null=False, index=True)
    day_number = Integer()
    sight = JSON()
    meeting_point = JSON()
    meet_time = Time()
    return_time = Time()
    # The operator's own notes (for the coach company, the guides).
    notes = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Coach(Table):
    """One coach hired for an excursion: its seats for travellers, plate, driver, guide."""

    id = UUID(primary_key=True)
    operator = ForeignKey(Operator, on_delete=OnDelete.restrict, null=False, index=True)
    excursion = ForeignKey(Excursion, on_delete=OnDelete.cascade, null=False, index=True)
    # Order on the plan: automatic assignment fills coach 1 first.
    position = Integer()
    label = Varchar(length=32)
    capacity = Integer()
    plate = Varchar(length=16)
    company = Varchar(length=120, default="")
    driver_name = Varchar(length=120)
    driver_phone = Varchar(length=32)
    guide_name = Varchar(length=120, default="")
    guide_phone = Varchar(length=32, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class CoachAssignment(Table):
    """A traveller (a booking line) on a coach of an excursion, in one of its places.

    Unique (excursion, line) and (coach, place), indexes in migrations. The booking's and the
    line's rows going (a rebooking replaces the lines) take the assignment with them."""

    id = UUID(primary_key=True)
    excursion = ForeignKey(Excursion, on_delete=OnDelete.cascade, null=False, index=True)
    coach = ForeignKey(Coach, on_delete=OnDelete.cascade, null=False, index=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.cascade, null=False, index=True)
    line = ForeignKey(BookingLine, on_delete=OnDelete.cascade, null=False, index=True)
    place = Integer()
    # Who put the traveller there: "auto:staff:<id>" or "staff:<id>".
    actor = Varchar(length=80)
    assigned_at = Timestamptz(default=TimestamptzNow())
