"""Booking rows as typed values: what booking services take and return instead of the
mappings Piccolo reads (a typo is then a type error, not a KeyError). The departure row
belongs to the catalogue and is re-exported here for booking's callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.booking.tables import BookingChangeStatus, BookingStatus
from app.catalogue.rows import DepartureRow as DepartureRow


@dataclass(frozen=True, slots=True)
class BookingRow:
    """Every column of a `Booking` row; foreign keys are named by the id they hold."""

    id: UUID
    reference: str
    token_hash: str
    operator_id: UUID
    departure_id: UUID
    channel: str
    status: BookingStatus
    expires_at: datetime | None
    pickup_stop_id: UUID | None
    contact_name: str
    contact_email: str
    contact_phone: str
    locale: str
    total_amount: int
    currency: str
    refund_amount: int
    balance_due: int
    cancelled_at: datetime | None
    confirmed_at: datetime | None
    agency_id: UUID | None
    partner_uuid: str | None
    reseller_reference: str
    retail_amount: int | None
    created_at: datetime
    updated_at: datetime
    notes: str
    contact_notes: str
    contact_country: str
    contact_postal_code: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BookingRow:
        """From a `Booking.select()` (or `returning(*Booking.all_columns())`) row."""
        return cls(
            id=row["id"], reference=row["reference"], token_hash=row["token_hash"],
            operator_id=row["operator"], departure_id=row["departure"],
            channel=row["channel"], status=BookingStatus(row["status"]),
            expires_at=row["expires_at"], pickup_stop_id=row["pickup_stop"],
            contact_name=row["contact_name"], contact_email=row["contact_email"],
            contact_phone=row["contact_phone"], locale=row["locale"],
            total_amount=row["total_amount"], currency=row["currency"],
            refund_amount=row["refund_amount"], balance_due=row["balance_due"],
            cancelled_at=row["cancelled_at"], confirmed_at=row["confirmed_at"],
            agency_id=row["agency"], partner_uuid=row["partner_uuid"],
            reseller_reference=row["reseller_reference"], retail_amount=row["retail_amount"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            notes=row["notes"], contact_notes=row["contact_notes"],
            contact_country=row["contact_country"],
            contact_postal_code=row["contact_postal_code"],
        )  # fmt: skip

    @property
    def paid(self) -> int:
        """What the booker has paid: its total less any balance still due."""
        return self.total_amount - self.balance_due


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """Every column of a `BookingChange` row (a paid booking's move awaiting payment)."""

    id: UUID
    booking_id: UUID
    from_departure_id: UUID
    to_departure_id: UUID
    old_total: int
    new_total: int
    amount_due: int
    currency: str
    status: BookingChangeStatus
    expires_at: datetime | None
    actor: str
    created_at: datetime
    decided_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChangeRow:
        return cls(
            id=row["id"], booking_id=row["booking"], from_departure_id=row["from_departure"],
            to_departure_id=row["to_departure"], old_total=row["old_total"],
            new_total=row["new_total"], amount_due=row["amount_due"],
            currency=row["currency"], status=BookingChangeStatus(row["status"]),
            expires_at=row["expires_at"], actor=row["actor"], created_at=row["created_at"],
            decided_at=row["decided_at"],
        )  # fmt: skip
