"""Vehicles and their seat maps: layouts, seats, blocks."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from app.catalogue.schemas.common import BlockReason, Input, SeatClass, SeatLabel, SeatPosition
from app.catalogue.tables import RouteKind

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
