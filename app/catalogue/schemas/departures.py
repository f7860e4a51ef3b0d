"""Fares and departures: operators' inputs (one, or a bulk schedule) and views."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.schemas.common import BlockReason, Input, SeatClass, SeatLabel
from app.catalogue.tables import DepartureStatus, PassengerType, StopKind
from app.core.money import CurrencyCode, MinorUnits, PriceOut
from app.core.schemas import (
    ClockTime,
    Phone,
    ShortLocalizedText,
    TimeZoneName,
)

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
