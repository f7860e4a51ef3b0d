"""Excursion and coach rows as typed values (instead of the mappings Piccolo reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ExcursionRow:
    """Every column of an `Excursion` row (JSON decoded); foreign keys by their id."""

    id: UUID
    operator_id: UUID
    departure_id: UUID
    day_number: int
    sight: dict[str, str]
    meeting_point: dict[str, str]
    meet_time: time
    return_time: time
    notes: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ExcursionRow:
        """From an `Excursion.select()` row read with `load_json=True`."""
        return cls(
            id=row["id"], operator_id=row["operator"], departure_id=row["departure"],
            day_number=row["day_number"], sight=row["sight"],
            meeting_point=row["meeting_point"], meet_time=row["meet_time"],
            return_time=row["return_time"], notes=row["notes"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CoachRow:
    """Every column of a `Coach` row; foreign keys by their id."""

    id: UUID
    operator_id: UUID
    excursion_id: UUID
    position: int
    label: str
    capacity: int
    plate: str
    company: str
    driver_name: str
    driver_phone: str
    guide_name: str
    guide_phone: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CoachRow:
        return cls(
            id=row["id"], operator_id=row["operator"], excursion_id=row["excursion"],
            position=row["position"], label=row["label"], capacity=row["capacity"],
            plate=row["plate"], company=row["company"], driver_name=row["driver_name"],
            driver_phone=row["driver_phone"], guide_name=row["guide_name"],
            guide_phone=row["guide_phone"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )  # fmt: skip
