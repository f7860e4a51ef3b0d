"""Catalogue rows as typed values: what catalogue services hand to their callers (here and in
the domains above) instead of the mappings Piccolo reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.catalogue.tables import DepartureStatus, RouteKind, RouteStatus


@dataclass(frozen=True, slots=True)
class OperatorRow:
    """Every column of an `Operator` row, as the catalogue reads it (JSON decoded)."""

    id: UUID
    slug: str
    name: dict[str, str]
    contact_email: str
    contact_phone: str
    currency: str
    time_zone: str
    default_locale: str
    hold_minutes: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OperatorRow:
        """From an `Operator.select()` row read with `load_json=True`."""
        return cls(
            id=row["id"], slug=row["slug"], name=row["name"],
            contact_email=row["contact_email"], contact_phone=row["contact_phone"],
            currency=row["currency"], time_zone=row["time_zone"],
            default_locale=row["default_locale"], hold_minutes=row["hold_minutes"],
            created_at=row["created_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RouteRow:
    """Every column of a `Route` row (JSON decoded); foreign keys are named by their id."""

    id: UUID
    operator_id: UUID
    slug: str
    kind: RouteKind
    name: dict[str, str]
    description: dict[str, str]
    duration_days: int
    meeting_point: dict[str, str] | None
    cancellation_policy: list[dict[str, Any]]
    what_to_bring: dict[str, str] | None
    reminder_hours: list[int]
    status: RouteStatus
    search_text: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RouteRow:
        """From a `Route.select()` row read with `load_json=True`."""
        return cls(
            id=row["id"], operator_id=row["operator"], slug=row["slug"],
            kind=RouteKind(row["kind"]), name=row["name"], description=row["description"],
            duration_days=row["duration_days"], meeting_point=row["meeting_point"],
            cancellation_policy=row["cancellation_policy"],
            what_to_bring=row["what_to_bring"], reminder_hours=row["reminder_hours"],
            status=RouteStatus(row["status"]), search_text=row["search_text"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class VehicleRow:
    """Every column of a `Vehicle` row; foreign keys are named by the id they hold."""

    id: UUID
    operator_id: UUID
    kind: RouteKind
    name: str
    code: str
    description: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VehicleRow:
        """From a `Vehicle.select()` row."""
        return cls(
            id=row["id"], operator_id=row["operator"], kind=RouteKind(row["kind"]),
            name=row["name"], code=row["code"], description=row["description"],
            created_at=row["created_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DepartureRow:
    """Every column of a `Departure` row; foreign keys are named by the id they hold."""

    id: UUID
    operator_id: UUID
    route_id: UUID
    vehicle_id: UUID | None
    departs_at: datetime
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    status: DepartureStatus
    notes: str
    guide_phone: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DepartureRow:
        """From a `Departure.select()` row."""
        return cls(
            id=row["id"], operator_id=row["operator"], route_id=row["route"],
            vehicle_id=row["vehicle"], departs_at=row["departs_at"],
            returns_at=row["returns_at"], time_zone=row["time_zone"],
            sales_open_at=row["sales_open_at"], sales_close_at=row["sales_close_at"],
            status=DepartureStatus(row["status"]), notes=row["notes"],
            guide_phone=row["guide_phone"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )  # fmt: skip

    @property
    def sales_end(self) -> datetime:
        """When sales end: their close, else the departure itself."""
        return self.sales_close_at or self.departs_at
