"""Notifications: one message to one person on one channel, sent once."""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import JSON, UUID, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class NotificationStatus(StrEnum):
    pending = "pending"
    # Claimed by a worker (`claimed_by`) until `next_attempt_at`, for attempt `attempts`.
    sending = "sending"
    sent = "sent"
    failed = "failed"
    # No longer relevant when its turn came (e.g. "confirmed" for a booking since
    # cancelled): never sent.
    skipped = "skipped"


class Notification(Table):
    """One message to one person on one channel; `key` makes it be sent once, or, if a
    worker dies between the server's acceptance and the record, again with the same
    Message-ID (derived from the key)."""

    id = UUID(primary_key=True)
    key = Varchar(length=200, unique=True)
    kind = Varchar(length=64, index=True)
    channel = Varchar(length=16, default="email")
    booking = UUID(null=True, default=None, index=True)
    departure = UUID(null=True, default=None, index=True)
    recipient = Varchar(length=254)
    locale = Varchar(length=16, default="zh_Hans")
    subject = Varchar(length=300, default="")
    # What the message needs beyond the booking (an advisory's text, an offer's token).
    payload = JSON(null=True, default=None)
    status = Varchar(length=16, choices=NotificationStatus, default=NotificationStatus.pending)
    attempts = Integer(default=0)
    last_error = Text(default="")
    # When pending: when it may be tried; when sending: when the claim's lease runs out.
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    # The worker (host:pid) that claimed the current attempt.
    claimed_by = Varchar(length=120, default="")
    sent_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
