"""Sending notifications, delivered at least once, effective once.

A notification is claimed in a committed transaction before the network call: status
`sending`, the attempt's number, the worker and a lease. The claim re-checks the booking's
current state (`SENDABLE_WHILE`): a message that no longer applies is `skipped`, never
sent. The send is cut off after half the lease, so a slow server can never outlast the
claim and let a second worker send a copy; the outcome is recorded only if the claim is
still this attempt's. A claim whose worker died is taken over when its lease runs out
(the outcome is unknown: at least once), and the message goes out with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from app.booking.services.view import booking_out
from app.booking.tables import Booking
from app.catalogue.services.common import as_dict
from app.catalogue.tables import Departure, Route
from app.core import clock
from app.core.database import is_sqlite, write_transaction
from app.core.i18n import localize, use_locale
from app.core.settings import Settings
from app.notifications.channels import (
    DeliveryError,
    LoggingSmsProvider,
    SmsProvider,
    message_id,
    send_email,
)
from app.notifications.services.common import MAX_ATTEMPTS, _without_token, backoff
from app.notifications.tables import Notification, NotificationStatus
from app.web.links import booking_url

logger = logging.getLogger("tourline.notifications")


class NoLongerRelevant(Exception):
    """The message no longer applies (e.g. a reminder for a booking since cancelled)."""


_LIVE = frozenset({"on_hold", "confirmed"})
# The booking statuses a message may still go out in, by kind (`reminder.48h` is
# `reminder`); None: whatever the booking's status. Checked when a message is claimed, so
# that one queued before a change is never sent after it: no "confirmed" once cancelled,
# no "your hold ran out" once paid, no payment reminder unless still on hold.
SENDABLE_WHILE: dict[str, frozenset[str] | None] = {
    "booking.confirmed": frozenset({"confirmed"}),
    "booking.cancelled": frozenset({"cancelled"}),
    "booking.expired": frozenset({"expired"}),
    "payment.reminder": frozenset({"on_hold"}),
    "waitlist.offer": frozenset({"on_hold"}),
    "reminder": _LIVE,
    "advisory": _LIVE,
    "departure.changed": _LIVE,
    "feedback": frozenset({"confirmed"}),
    # Money already sent back, and the guest's own link: true whatever happens next.
    "payment.refunded_late": None,
    "booking.link": None,
}


def sendable_while(kind: str) -> frozenset[str] | None:
    """The statuses of `SENDABLE_WHILE` for a kind; a kind not listed there is a bug."""
    return SENDABLE_WHILE[kind.split(".", 1)[0] if kind.startswith("reminder.") else kind]


# The mail server, sender and lease of this process, set once at startup (`configure`).
_settings: Settings | None = None


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def _configured() -> Settings:
    if _settings is None:
        raise RuntimeError("notifications sending is not configured: call configure(settings)")
    return _settings


def send_lease() -> timedelta:
    return timedelta(seconds=_configured().send_lease_seconds)


def worker_name() -> str:
    """Who holds a claim: shown to operators, and what a test kills."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sms_provider() -> SmsProvider:
    """The SMS provider: no SMS gateway is configured yet, so the text is logged."""
    return LoggingSmsProvider()


def _token_dropped(notification: dict[str, Any]) -> dict[Any, Any]:
    """Once a message is settled (sent, or failed for good), the guest's access token it
    carried is no longer kept in the clear."""
    payload = _without_token(notification["payload"])
    return {} if payload is None else {Notification.payload: payload}


def _due(now: Any) -> Any:
    """Pending and due, or claimed by a worker whose lease has run out."""
    return Notification.status.is_in(
        [NotificationStatus.pending.value, NotificationStatus.sending.value]
    ) & (Notification.next_attempt_at <= now)


async def _no_longer_relevant(notification: dict[str, Any]) -> str | None:
    """Why the message must not go out now, or None."""

    statuses = sendable_while(notification["kind"])
    if notification["booking"] is None:
        return None
    booking = (
        await Booking.select(Booking.status)
        .where(Booking.id == notification["booking"])
        .first()
        .run()
    )
    if booking is None:
        return "the booking is gone"
    if statuses is not None and booking["status"] not in statuses:
        return f"the booking is {booking['status']}"
    return None


async def _claim(notification_id: UUID, lease: timedelta) -> dict[str, Any] | None:
    """Claim a due notification for one attempt, committed before anything is sent; None
    if another worker has it, or it no longer applies (then it is `skipped`)."""
    now = clock.now()
    query = (
        Notification.select()
        .where((Notification.id == notification_id) & _due(now))
        .first()
        .output(load_json=True)
    )
    if not is_sqlite():
        query = query.lock_rows("UPDATE", skip_locked=True)
    async with write_transaction():
        row = await query.run()
        if row is None:
            return None  # Another worker has it, or has just sent it.
        notification = dict(row)
        reason = await _no_longer_relevant(notification)
        status = NotificationStatus.skipped
        if reason is None and notification["attempts"] >= MAX_ATTEMPTS:
            # Its last attempt's worker died: what happened to the message is unknown.
            reason, status = "the last attempt's worker stopped", NotificationStatus.failed
        if reason is not None:
            await (
                Notification.update(
                    {
                        Notification.status: status.value,
                        Notification.last_error: f"not sent: {reason}"[:2000],
                        **_token_dropped(notification),
                    }
                )
                .where(Notification.id == notification_id)
                .run()
            )
            return None
        notification["attempts"] += 1
        await (
            Notification.update(
                {
                    Notification.status: NotificationStatus.sending.value,
                    Notification.attempts: notification["attempts"],
                    Notification.next_attempt_at: now + lease,
                    Notification.claimed_by: worker_name(),
                }
            )
            .where(Notification.id == notification_id)
            .run()
        )
    return notification


async def _record(notification: dict[str, Any], values: dict[Any, Any]) -> bool:
    """Record an attempt's outcome, only if the claim is still this attempt's (fencing: a
    worker that overran its lease must not overwrite its successor's record)."""
    recorded = (
        await Notification.update(values)
        .where(
            (Notification.id == notification["id"])
            & (Notification.status == NotificationStatus.sending.value)
            & (Notification.attempts == notification["attempts"])
        )
        .returning(Notification.id)
        .run()
    )
    if not recorded:
        logger.warning(
            "notification %s: attempt %s lost its claim before its outcome was recorded",
            notification["id"], notification["attempts"],
        )  # fmt: skip
    return bool(recorded)


async def render(notification: dict[str, Any]) -> Any:
    """The email of a notification, in its locale."""
    from app.notifications.messages import booking_email, waitlist_offer_email

    payload = notification["payload"] if isinstance(notification["payload"], dict) else {}
    with use_locale(notification["locale"]):
        if notification["kind"] == "waitlist.offer":
            return waitlist_offer_email(
                notification["recipient"], str(payload.get("reference", "")),
                str(payload.get("access_token", "")), payload.get("expires_at"),
            )  # fmt: skip
        booking = (
            await Booking.select(Booking.id, Booking.departure, Booking.status)
            .where(Booking.id == notification["booking"])
            .first()
            .run()
        )
        if booking is None:
            raise NoLongerRelevant("the booking is gone")
        out = await booking_out(booking["id"])
        departure = (
            await Departure.select(Departure.returns_at, Departure.route, Departure.guide_phone)
            .where(Departure.id == booking["departure"])
            .first()
            .run()
        )
        assert departure is not None
        route = (
            await Route.select(Route.meeting_point, Route.what_to_bring)
            .where(Route.id == departure["route"])
            .first()
            .output(load_json=True)
            .run()
        )
        meeting = as_dict(route["meeting_point"]) if route else None
        kind = notification["kind"]
        if kind.startswith("reminder"):
            kind = "reminder"
            bring = as_dict(route["what_to_bring"]) if route else None
            payload = {
                **payload,
                "what_to_bring": localize(bring) if bring else None,
                "guide_phone": departure["guide_phone"] or None,
            }
        if kind == "booking.link":
            payload = {
                **payload,
                "link": booking_url(out.reference, str(payload.get("access_token", "")),
                                    notification["locale"]),
            }  # fmt: skip
        return booking_email(
            kind, notification["recipient"], out, departure["returns_at"],
            localize(meeting) if meeting else None, payload,
        )  # fmt: skip


async def send_due_notifications(
    limit: int = 100, lease: timedelta | None = None, deadline: float | None = None
) -> int:
    """Send every due notification once; failures wait and are tried again, then fail.
    Returns how many were sent. With a `deadline` (time.monotonic()), no message is
    claimed once less time is left than one send may take."""
    settings = _configured()
    lease = lease or send_lease()
    # Well inside the lease: the claim outlives the attempt, whatever the server does.
    timeout = lease.total_seconds() / 2
    due = (
        await Notification.select(Notification.id)
        .where(_due(clock.now()))
        .order_by(Notification.created_at)
        .limit(limit)
        .run()
    )
    sent = 0
    for row in due:
        if deadline is not None and time.monotonic() + timeout > deadline:
            break  # the next call takes it, with time to record its outcome
        notification = await _claim(row["id"], lease)
        if notification is None:
            continue
        sent += await _attempt(settings, notification, lease, timeout)
    return sent


async def _attempt(
    settings: Any, notification: dict[str, Any], lease: timedelta, seconds: float
) -> int:
    """Send one claimed notification and record the outcome; 1 if it was sent."""
    attempts = notification["attempts"]
    try:
        async with asyncio.timeout(seconds):
            email = await render(notification)
            if notification["channel"] == "sms":
                await sms_provider().send(
                    notification["recipient"], f"{email.subject}\n{email.text}"
                )
            else:
                email = dataclasses.replace(
                    email, message_id=message_id(notification["key"], settings.mail_from)
                )
                await send_email(settings, email, command_timeout=seconds)
    except NoLongerRelevant as exc:
        # The message cannot be made (its booking is missing): it fails for good.
        await _record(
            notification,
            {
                Notification.status: NotificationStatus.failed.value,
                Notification.last_error: f"not sent: {exc}",
                **_token_dropped(notification),
            },
        )
        return 0
    except Exception as exc:
        # A temporary refusal, or an outcome we cannot know (a timeout, a dropped
        # connection: the server may have taken the message), is tried again after the
        # backoff, with the same Message-ID. A permanent refusal is not. Anything else (a
        # bug) is logged and waits at least for the lease: it neither stops the other
        # messages nor is retried forever.
        now = clock.now()
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        failed = permanent or attempts >= MAX_ATTEMPTS
        delay = backoff(attempts)
        if isinstance(exc, DeliveryError):
            error = str(exc)
        elif isinstance(exc, TimeoutError):
            error = f"no answer within {seconds:g} s: the outcome is unknown"
        else:
            logger.exception("notification %s failed unexpectedly", notification["id"])
            error = f"{type(exc).__name__}: {exc}"
            delay = max(delay, lease)
        await _record(
            notification,
            {
                Notification.last_error: error[:2000],
                Notification.status: (
                    NotificationStatus.failed.value if failed else NotificationStatus.pending.value
                ),
                Notification.next_attempt_at: now + delay,
                **(_token_dropped(notification) if failed else {}),
            },
        )
        return 0
    recorded = await _record(
        notification,
        {
            Notification.status: NotificationStatus.sent.value,
            Notification.subject: email.subject[:300],
            Notification.sent_at: clock.now(),
            Notification.last_error: "",
            **_token_dropped(notification),
        },
    )
    return int(recorded)
