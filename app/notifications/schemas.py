"""Notification structures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from app.core.schemas import LocalizedText
from app.notifications.tables import NotificationStatus


class AdvisoryIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A message for every passenger of a departure (weather, schedule change, heat day)."""

    kind: Literal["weather", "schedule", "heat", "other"]
    message: LocalizedText
    # For a heat day: the forecast maximum, 35 °C or more by the meteorological definition.
    max_temperature_c: Annotated[float, msgspec.Meta(ge=-60, le=60)] | None = None


class AdvisoryOut(msgspec.Struct, kw_only=True):
    advisory_id: UUID
    recipients: int


class NotificationOut(msgspec.Struct, kw_only=True):
    id: UUID
    kind: str
    channel: str
    recipient: str
    locale: str
    subject: str
    status: NotificationStatus
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None
