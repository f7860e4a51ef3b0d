"""Creating a notification once per key, and the retry policy of sending them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from app.booking.tables import Booking
from app.core import clock
from app.core.backoff import Backoff, RetryPolicy
from app.notifications.tables import Notification

# 1, 2, 4, 8 ... minutes, at most an hour; a message fails after six attempts.
NOTIFICATION_RETRY = RetryPolicy(
    Backoff.doubling(timedelta(minutes=1), timedelta(hours=1)), max_attempts=6
)


async def notify(
    key: str,
    kind: str,
    recipient: str,
    locale: str,
    booking: UUID | None = None,
    departure: UUID | None = None,
    payload: dict[str, Any] | None = None,
    channel: str = "email",
) -> bool:
    """Create a notification once per key (a repeat with the same key is ignored);
    True if this call created it."""
    if not recipient:
        return False
    created = await (
        Notification.insert(
            Notification(
                key=key,
                kind=kind,
                channel=channel,
                recipient=recipient,
                locale=locale,
                booking=booking,
                departure=departure,
                payload=payload,
                next_attempt_at=clock.now(),
            )
        )
        .on_conflict(target=Notification.key, action="DO NOTHING")
        .returning(Notification.id)
        .run()
    )
    return bool(created)


def _without_token(payload: Any) -> dict[str, Any] | None:
    """The payload without the guest's access token it carried; None if it had none."""
    if not isinstance(payload, dict) or "access_token" not in payload:
        return None
    return {k: v for k, v in payload.items() if k != "access_token"}


async def _notify_once(key: str, kind: str, booking: dict[str, Any], **extra: Any) -> int:
    # Counted by the insert itself, so a concurrent worker's creation is not counted twice.
    created = await notify(
        key, kind, booking["contact_email"], booking["locale"], booking=booking["id"],
        departure=booking["departure"], payload=extra or None,
    )  # fmt: skip
    if kind.startswith("reminder") and booking.get("contact_phone"):
        # Reminders also go by SMS: on the day, a phone is what tourists look at.
        await notify(
            f"{key}:sms", kind, booking["contact_phone"], booking["locale"],
            booking=booking["id"], departure=booking["departure"], channel="sms",
        )  # fmt: skip
    return int(created)


async def _notify_bookings(
    departure_id: UUID, statuses: list[str], key_prefix: str, kind: str, **extra: Any
) -> int:
    """One notification per booking of the departure in `statuses`, keyed per booking."""

    bookings = (
        await Booking.select(
            Booking.id,
            Booking.reference,
            Booking.departure,
            Booking.contact_email,
            Booking.contact_phone,
            Booking.locale,
        )
        .where((Booking.departure == departure_id) & Booking.status.is_in(statuses))
        .run()
    )
    created = 0
    for booking in bookings:
        created += await _notify_once(
            f"{key_prefix}:{booking['reference']}", kind, booking, **extra
        )
    return created
