"""Notification rows as typed values: what notification services take and return instead
of the mappings Piccolo reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from app.notifications.tables import NotificationStatus


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """Every column of a `Notification` row; its booking and departure by their ids."""

    id: UUID
    key: str
    kind: str
    channel: str
    booking_id: UUID | None
    departure_id: UUID | None
    recipient: str
    locale: str
    subject: str
    # JSON as it was read: decoded when the row was claimed for sending (load_json).
    payload: Any
    status: NotificationStatus
    attempts: int
    last_error: str
    next_attempt_at: datetime
    claimed_by: str
    sent_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> NotificationRow:
        """From a `Notification.select()` row."""
        return cls(
            id=row["id"], key=row["key"], kind=row["kind"], channel=row["channel"],
            booking_id=row["booking"], departure_id=row["departure"],
            recipient=row["recipient"], locale=row["locale"], subject=row["subject"],
            payload=row["payload"], status=NotificationStatus(row["status"]),
            attempts=row["attempts"], last_error=row["last_error"],
            next_attempt_at=row["next_attempt_at"], claimed_by=row["claimed_by"],
            sent_at=row["sent_at"], created_at=row["created_at"],
        )  # fmt: skip
