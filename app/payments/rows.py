"""Payment and refund rows as typed values: what payment services take and return instead
of the mappings Piccolo reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.payments.tables import PaymentStatus, RefundStatus


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """Every column of a `Payment` row; foreign keys are named by the id they hold."""

    id: UUID
    booking_id: UUID
    provider: str
    provider_id: str | None
    attempt: int
    amount: int
    currency: str
    status: PaymentStatus
    failure_reason: str
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None
    # The pending change (a dearer rebooking) whose difference this pays, if any.
    change_id: UUID | None
    checked_at: datetime | None
    settled_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PaymentRow:
        """From a `Payment.select()` (or `returning(*Payment.all_columns())`) row."""
        return cls(
            id=row["id"], booking_id=row["booking"], provider=row["provider"],
            provider_id=row["provider_id"], attempt=row["attempt"], amount=row["amount"],
            currency=row["currency"], status=PaymentStatus(row["status"]),
            failure_reason=row["failure_reason"], created_at=row["created_at"],
            updated_at=row["updated_at"], succeeded_at=row["succeeded_at"],
            change_id=row["change"], checked_at=row["checked_at"],
            settled_at=row["settled_at"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class RefundRow:
    """Every column of a `Refund` row; foreign keys are named by the id they hold."""

    id: UUID
    booking_id: UUID
    payment_id: UUID | None
    provider: str
    provider_id: str | None
    key: str
    amount: int
    currency: str
    reason: str
    status: RefundStatus
    attempts: int
    last_error: str
    claim: UUID | None
    claimed_until: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RefundRow:
        """From a `Refund.select()` row."""
        return cls(
            id=row["id"], booking_id=row["booking"], payment_id=row["payment"],
            provider=row["provider"], provider_id=row["provider_id"], key=row["key"],
            amount=row["amount"], currency=row["currency"], reason=row["reason"],
            status=RefundStatus(row["status"]), attempts=row["attempts"],
            last_error=row["last_error"], claim=row["claim"],
            claimed_until=row["claimed_until"], created_at=row["created_at"],
            updated_at=row["updated_at"],
        )  # fmt: skip
