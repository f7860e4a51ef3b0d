"""Sending notifications (mail and SMS) through the one delivery mechanism
(`app.core.delivery`): claimed in a committed transaction before the network call, sent
once, re-tried with backoff, recorded only by the attempt that holds the claim.

The claim re-checks the booking's current state (`SENDABLE_WHILE`): a message that no
longer applies is `skipped`, never sent. A claim whose worker died is taken over when its
lease runs out (the outcome is unknown: at least once), and the message goes out with the
same Message-ID, derived from its key.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from app.booking.services.view import booking_out
from app.booking.tables import Booking
from app.catalogue.services.common import as_dict
from app.catalogue.services.crew import traveller_contacts
from app.catalogue.tables import Departure, Route
from app.core import clock
from app.core.delivery import (
    Channel,
    Claim,
    Ledger,
    Outcome,
    Row,
    Unsent,
    Values,
    send_lease,
    worker_name,
)
from app.core.i18n import localize, use_locale
from app.core.links import booking_url
from app.core.settings import Settings
from app.notifications.channels import (
    DeliveryError,
    LoggingSmsProvider,
    SmsProvider,
    message_id,
    send_email,
)
from app.notifications.messages import booking_email, waitlist_offer_email
from app.notifications.rows import NotificationRow
from app.notifications.services.common import NOTIFICATION_RETRY, _without_token
from app.notifications.tables import Notification, NotificationStatus

# Re-exported: the lease and the worker's name were defined here before the mechanism
# was shared.
__all__ = ["send_due_notifications", "send_lease", "worker_name"]


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
    "booking.changed": _LIVE,
    # The booking stands as it was: told while it still does.
    "booking.change_reverted": frozenset({"confirmed"}),
    "feedback": frozenset({"confirmed"}),
    # Money already sent back, and the guest's own link: true whatever happens next.
    "payment.refunded_late": None,
    "booking.link": None,
}


def sendable_while(kind: str) -> frozenset[str] | None:
    """The statuses of `SENDABLE_WHILE` for a kind; a kind not listed there is a bug."""
    return SENDABLE_WHILE[kind.split(".", 1)[0] if kind.startswith("reminder.") else kind]


# The mail server and sender of this process, set once at startup (`configure`).
_settings: Settings | None = None


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def _configured() -> Settings:
    if _settings is None:
        raise RuntimeError("notifications sending is not configured: call configure(settings)")
    return _settings


def sms_provider() -> SmsProvider:
    """The SMS provider: no SMS gateway is configured yet, so the text is logged."""
    return LoggingSmsProvider()


def _token_dropped(notification: Row) -> Values:
    """Once a message is settled (sent, or failed for good), the guest's access token it
    carried is no longer kept in the clear."""
    payload = _without_token(notification["payload"])
    return {} if payload is None else {Notification.payload: payload}


async def _no_longer_relevant(notification: Row) -> str | None:
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


class NotificationChannel(Channel[NotificationRow]):
    """Mail and SMS: each notification one message, cut off after half the lease."""

    name = "notification"
    ledger = Ledger(
        table=Notification,
        status=Notification.status,
        attempts=Notification.attempts,
        due_at=Notification.next_attempt_at,
        error=Notification.last_error,
        waiting=(NotificationStatus.pending.value,),
        claimed=NotificationStatus.sending.value,
        retrying=NotificationStatus.pending.value,
        given_up=NotificationStatus.failed.value,
        order=(Notification.created_at,),
        claimed_by=Notification.claimed_by,
    )
    retry = NOTIFICATION_RETRY
    # Only the lease bounds a message: half of it.
    longest_send = float("inf")

    async def prepare(self, row: Row) -> NotificationRow | Unsent:
        reason = await _no_longer_relevant(row)
        if reason is not None:
            return Unsent(NotificationStatus.skipped.value, reason)
        return NotificationRow.from_row(row)

    def settled(self, row: Row) -> Values:
        return _token_dropped(row)

    async def send(self, claim: Claim[NotificationRow], seconds: float) -> Outcome:
        notification = claim.item
        try:
            email = await render(notification)
            if notification.channel == "sms":
                await sms_provider().send(notification.recipient, f"{email.subject}\n{email.text}")
            else:
                settings = _configured()
                email = dataclasses.replace(
                    email, message_id=message_id(notification.key, settings.mail_from)
                )
                await send_email(settings, email, command_timeout=seconds)
        except NoLongerRelevant as exc:
            # The message cannot be made (its booking is missing): it fails for good.
            return Outcome.failed(f"not sent: {exc}", permanent=True)
        except DeliveryError as exc:
            # A temporary refusal, or an outcome we cannot know (a dropped connection: the
            # server may have taken the message), is tried again after the backoff, with
            # the same Message-ID. A permanent refusal is not.
            return Outcome.failed(str(exc), permanent=exc.permanent)
        return Outcome.done(
            NotificationStatus.sent.value,
            values={
                Notification.subject: email.subject[:300],
                Notification.sent_at: clock.now(),
            },
        )


NOTIFICATIONS = NotificationChannel()


async def render(notification: NotificationRow) -> Any:
    """The email of a notification, in its locale."""
    payload = notification.payload if isinstance(notification.payload, dict) else {}
    with use_locale(notification.locale):
        if notification.kind == "waitlist.offer":
            return waitlist_offer_email(
                notification.recipient, str(payload.get("reference", "")),
                str(payload.get("access_token", "")), payload.get("expires_at"),
            )  # fmt: skip
        booking = (
            await Booking.select(Booking.id, Booking.departure, Booking.status)
            .where(Booking.id == notification.booking_id)
            .first()
            .run()
        )
        if booking is None:
            raise NoLongerRelevant("the booking is gone")
        out = await booking_out(booking["id"], with_itinerary=True)
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
        kind = notification.kind
        if kind.startswith("reminder"):
            kind = "reminder"
            bring = as_dict(route["what_to_bring"]) if route else None
            payload = {
                **payload,
                "what_to_bring": localize(bring) if bring else None,
                "guide_phone": departure["guide_phone"] or None,
                "crew_contacts": [
                    {"role": member.role.value, "name": member.name, "phone": member.phone}
                    for member in await traveller_contacts(booking["departure"])
                ],
            }
        if kind == "booking.link":
            payload = {
                **payload,
                "link": booking_url(out.reference, str(payload.get("access_token", "")),
                                    notification.locale),
            }  # fmt: skip
        return booking_email(
            kind, notification.recipient, out, departure["returns_at"],
            localize(meeting) if meeting else None, payload,
        )  # fmt: skip


async def send_due_notifications(
    limit: int = 100, lease: timedelta | None = None, deadline: float | None = None
) -> int:
    """Send every due notification once; failures wait and are tried again, then fail.
    Returns how many were sent. With a `deadline` (time.monotonic()), no message is
    claimed once less time is left than one send may take."""
    return await NOTIFICATIONS.deliver_due(limit=limit, lease=lease, deadline=deadline)
