"""Routes (themed lines), their itineraries and seasonal offers: operators' inputs and views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.schemas.common import Input, Month, ReminderHours, Theme
from app.catalogue.tables import Meal, RouteKind, RouteStatus
from app.core.schemas import (
    ClockTime,
    LocalizedText,
    Phone,
    ShortLocalizedText,
    Slug,
)

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


class HotelIn(Input, kw_only=True):
    """The hotel a night is spent in."""

    name: ShortLocalizedText
    address: ShortLocalizedText
    phone: Phone | None = None


# Where the night after a day is spent: on the train, or in a hotel.
Overnight = Annotated[
    Literal["train"] | HotelIn | None,
    msgspec.Meta(
        description='"train", a hotel (`name`, `address`, optional `phone`), or null when '
        "the night is spent neither (the trip ends)"
    ),
]


class ItineraryDayIn(Input, kw_only=True):
    day_number: Annotated[int, msgspec.Meta(ge=1, le=60)]
    title: ShortLocalizedText
    description: LocalizedText | None = None
    overnight: Overnight = None
    # Kept for clients written before `overnight`: true is `"overnight": "train"`.
    night_on_train: bool = False
    meals: Annotated[
        list[Meal],
        msgspec.Meta(max_length=3, description="Meals included: breakfast, lunch, dinner"),
    ] = []
    back_on_board_at: Annotated[
        ClockTime | None,
        msgspec.Meta(description="Local time by which travellers are back on the train"),
    ] = None
    stops: Annotated[
        list[ItineraryStopIn],
        msgspec.Meta(max_length=30, description="The day's stops and sights, in order"),
    ] = []


class ItineraryIn(Input, kw_only=True):
    days: Annotated[list[ItineraryDayIn], msgspec.Meta(min_length=1, max_length=60)]


class ItineraryStopOut(msgspec.Struct, kw_only=True):
    place: dict[str, str]
    arrive_time: str | None
    depart_time: str | None
    activities: list[dict[str, str]]
    coach_transfer: bool
    notes: dict[str, str] | None


class HotelOut(msgspec.Struct, kw_only=True):
    name: dict[str, str]
    address: dict[str, str]
    phone: str | None


class ItineraryDayOut(msgspec.Struct, kw_only=True):
    day_number: int
    title: dict[str, str]
    description: dict[str, str] | None
    overnight: Literal["train"] | HotelOut | None
    night_on_train: bool
    meals: list[Meal]
    back_on_board_at: str | None
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
