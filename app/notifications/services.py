"""The outbox and the notifications it turns into, delivered at least once, effective once.

Side effects are written to the outbox in the transaction that causes them (`enqueue`).
The dispatcher turns each outbox row into work: notifications to send (each with a natural
key, so a repeat creates nothing) or a refund to retry.

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

from app.accounts.schemas import OperatorPrincipal
from app.core import clock
from app.core.after_commit import savepoint
from app.core.database import is_sqlite, write_transaction
from app.core.i18n import use_locale
from app.core.settings import get_settings
from app.notifications.channels import (
    DeliveryError,
    LoggingSmsProvider,
    SmsProvider,
    message_id,
    send_email,
)
from app.notifications.tables import Notification, NotificationStatus, OutboxMessage
from app.web.links import booking_url

logger = logging.getLogger("tourline.notifications")

MAX_ATTEMPTS = 6
# Departure reminders are looked for this far ahead (routes allow up to 336 hours).
MAX_REMINDER_AHEAD = timedelta(hours=336)
# An unpaid hold gets a reminder this long before it runs out.
PAYMENT_REMINDER_AHEAD = timedelta(minutes=5)
# The feedback request goes out this long after the trip returns.
FEEDBACK_AFTER = timedelta(hours=2)
# Messages to a booking's contact, by outbox kind.
BOOKING_MESSAGES = {
    "booking.confirmed",
    "booking.cancelled",
    "booking.expired",
    "payment.refunded_late",
}


PARTNER_DEPARTURE_EVENTS = {"departure.changed", "departure.cancelled"}


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


def send_lease() -> timedelta:
    return timedelta(seconds=get_settings().send_lease_seconds)


def worker_name() -> str:
    """Who holds a claim: shown to operators, and what a test kills."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sms_provider() -> SmsProvider:
    """The SMS provider: no SMS gateway is configured yet, so the text is logged."""
    return LoggingSmsProvider()


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes, at most an hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


async def enqueue(kind: str, key: str, payload: dict[str, Any]) -> None:
    """Record an effect to deliver; a second message with the same natural key is a no-op."""
    await (
        OutboxMessage.insert(
            OutboxMessage(
                kind=kind,
                key=key,
                payload=payload,
                created_at=clock.now(),
                available_at=clock.now(),
            )
        )
        .on_conflict(target=OutboxMessage.key, action="DO NOTHING")
        .run()
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


async def _booking_contact(reference: str) -> dict[str, Any] | None:
    from app.booking.tables import Booking

    row = (
        await Booking.select(Booking.id, Booking.departure, Booking.contact_email, Booking.locale)
        .where(Booking.reference == reference)
        .first()
        .run()
    )
    return dict(row) if row else None


async def _handle_outbox(message: dict[str, Any]) -> None:
    kind = message["kind"]
    payload = message["payload"] if isinstance(message["payload"], dict) else {}
    if kind in BOOKING_MESSAGES:
        contact = await _booking_contact(str(payload.get("reference", "")))
        if contact:
            await notify(
                f"{message['key']}:email", kind, contact["contact_email"], contact["locale"],
                booking=contact["id"], departure=contact["departure"], payload=payload,
            )  # fmt: skip
    elif kind == "waitlist.offer":
        contact = await _booking_contact(str(payload.get("reference", "")))
        await notify(
            f"{message['key']}:email", kind, str(payload.get("email", "")),
            str(payload.get("locale", "zh_Hans")),
            booking=contact["id"] if contact else None, payload=payload,
        )  # fmt: skip
    elif kind == "departure.changed":
        from app.booking.tables import BookingStatus

        departure_id = UUID(str(payload["departure_id"]))
        await _notify_bookings(
            departure_id,
            [BookingStatus.confirmed.value, BookingStatus.on_hold.value],
            f"departure.changed:{departure_id}:{payload.get('version', '')}",
            "departure.changed",
            **{"changes": payload.get("changes", [])},
        )
    # "refund.requested": nothing here. The refund row was written with the change and
    # the `refunds` step pays it: the dispatcher never waits on Stripe.
    # Partner agencies hear about the departures they booked on (about their bookings,
    # from the change itself: `tell_agency`).
    if kind in PARTNER_DEPARTURE_EVENTS:
        from app.partners.webhooks import departure_event

        await departure_event(
            kind, message["key"], UUID(str(payload["departure_id"])),
            {"changes": payload.get("changes", [])},
        )  # fmt: skip


async def dispatch_outbox(limit: int = 100) -> int:
    """Turn due outbox rows into their effects; returns how many were handled."""
    now = clock.now()
    query = (
        OutboxMessage.select()
        .where(
            OutboxMessage.done_at.is_null()
            & OutboxMessage.failed_at.is_null()
            & (OutboxMessage.available_at <= now)
        )
        .order_by(OutboxMessage.created_at)
        .limit(limit)
        .output(load_json=True)
    )
    if not is_sqlite():
        query = query.lock_rows("UPDATE", skip_locked=True)
    handled = 0
    async with write_transaction():
        rows = await query.run()
        for row in rows:
            try:
                # A failing row undoes only its own work: on PostgreSQL its error would
                # otherwise abort the whole batch's transaction, the failure could not be
                # recorded, and the same row would stall the outbox every round.
                async with savepoint():
                    await _handle_outbox(dict(row))
            except Exception as exc:
                attempts = row["attempts"] + 1
                logger.warning("outbox %s failed (attempt %s): %s", row["key"], attempts, exc)
                await (
                    OutboxMessage.update(
                        {
                            OutboxMessage.attempts: attempts,
                            OutboxMessage.last_error: f"{type(exc).__name__}: {exc}"[:2000],
                            OutboxMessage.available_at: now + backoff(attempts),
                            OutboxMessage.failed_at: now if attempts >= MAX_ATTEMPTS else None,
                        }
                    )
                    .where(OutboxMessage.id == row["id"])
                    .run()
                )
                continue
            done: dict[Any, Any] = {
                OutboxMessage.done_at: now,
                OutboxMessage.attempts: row["attempts"] + 1,
            }
            payload = _without_token(row["payload"])
            if payload is not None:
                # Handed on to its notification: the outbox keeps no copy of the token.
                done[OutboxMessage.payload] = payload
            await OutboxMessage.update(done).where(OutboxMessage.id == row["id"]).run()
            handled += 1
    return handled


def _without_token(payload: Any) -> dict[str, Any] | None:
    """The payload without the guest's access token it carried; None if it had none."""
    if not isinstance(payload, dict) or "access_token" not in payload:
        return None
    return {k: v for k, v in payload.items() if k != "access_token"}


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
    from app.booking.tables import Booking

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
    from app.booking.services.view import booking_out
    from app.booking.tables import Booking
    from app.catalogue.services.common import as_dict
    from app.catalogue.tables import Departure, Route
    from app.core.i18n import localize
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
    settings = get_settings()
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


async def queue_reminders() -> int:
    """Departure reminders (by default 48 h and 3 h before; set per route), payment
    reminders shortly before a hold runs out, and a feedback request after the trip.
    Each is created exactly once per booking (its key), however often this runs."""
    from app.booking.tables import Booking, BookingStatus
    from app.catalogue.services.common import as_list
    from app.catalogue.tables import Departure, DepartureStatus, Route

    now = clock.now()
    created = 0
    departures = (
        await Departure.select(Departure.id, Departure.departs_at, Departure.route)
        .where(
            Departure.status.is_in([DepartureStatus.published.value, DepartureStatus.closed.value])
            & (Departure.departs_at > now)
            & (Departure.departs_at <= now + MAX_REMINDER_AHEAD)
        )
        .run()
    )
    hours_by_route = {
        row["id"]: as_list(row["reminder_hours"])
        for row in await Route.select(Route.id, Route.reminder_hours)
        .where(Route.id.is_in(sorted({d["route"] for d in departures}, key=str) or [UUID(int=0)]))
        .output(load_json=True)
        .run()
    }
    for departure in departures:
        # Only the latest reminder that is due: a booking made 2 h before departure gets
        # the 3-hour reminder, not the 48-hour one as well.
        due = [
            hours for hours in hours_by_route.get(departure["route"], [48, 3])
            if departure["departs_at"] <= now + timedelta(hours=hours)
        ]  # fmt: skip
        if not due:
            continue
        name = f"{min(due)}h"
        created += await _notify_bookings(
            departure["id"], [BookingStatus.confirmed.value], f"reminder:{name}", f"reminder.{name}"
        )
    # Payment reminders: holds with a contact that run out within PAYMENT_REMINDER_AHEAD.
    holds = (
        await Booking.select(
            Booking.id,
            Booking.reference,
            Booking.departure,
            Booking.contact_email,
            Booking.contact_phone,
            Booking.locale,
        )
        .where(
            (Booking.status == BookingStatus.on_hold.value)
            & (Booking.expires_at > now)
            & (Booking.expires_at <= now + PAYMENT_REMINDER_AHEAD)
            & (Booking.contact_email != "")
        )
        .run()
    )
    for booking in holds:
        created += await _notify_once(
            f"payment-reminder:{booking['reference']}", "payment.reminder", booking
        )
    # Feedback requests: trips that came back in the last three days.
    returned = (
        await Departure.select(Departure.id)
        .where(
            Departure.status.is_in(
                [
                    DepartureStatus.published.value,
                    DepartureStatus.closed.value,
                    DepartureStatus.departed.value,
                ]
            )
            & (Departure.returns_at <= now - FEEDBACK_AFTER)
            & (Departure.returns_at > now - timedelta(days=3))
        )
        .run()
    )
    for departure in returned:
        created += await _notify_bookings(
            departure["id"], [BookingStatus.confirmed.value], "feedback", "feedback"
        )
    return created


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
    from app.booking.tables import Booking

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


HEAT_DAY_CELSIUS = 35.0


async def post_advisory(
    principal: OperatorPrincipal, departure_id: UUID, data: Any, advisory_id: UUID | None = None
) -> tuple[UUID, int]:
    """Queue the advisory for the contact of every live booking of the departure, once.
    Only an operator admin may write to every passenger. The same `advisory_id` again (a
    form sent twice) queues nothing new."""
    import uuid

    from app.accounts.services import require_operator_admin
    from app.booking.tables import Booking, BookingStatus
    from app.catalogue.services.common import owned_departure
    from app.core.database import write_transaction
    from app.core.errors import InvalidInput
    from app.core.i18n import _

    require_operator_admin(principal)
    if data.kind == "heat" and (
        data.max_temperature_c is None or data.max_temperature_c < HEAT_DAY_CELSIUS
    ):
        raise InvalidInput(
            "max_temperature_c",
            _("A heat day is a maximum of 35 °C or more; give the forecast maximum."),
        )
    advisory_id = advisory_id or uuid.uuid4()
    async with write_transaction():
        await owned_departure(principal, departure_id)
        bookings = (
            await Booking.select(
                Booking.id, Booking.reference, Booking.contact_email, Booking.locale
            )
            .where(
                (Booking.departure == departure_id)
                & Booking.status.is_in([BookingStatus.confirmed.value, BookingStatus.on_hold.value])
            )
            .run()
        )
        payload = {
            "advisory_id": str(advisory_id),
            "advisory_kind": data.kind,
            "message": dict(data.message),
            "max_temperature_c": data.max_temperature_c,
        }
        for booking in bookings:
            await notify(
                f"advisory:{advisory_id}:{booking['reference']}", "advisory",
                booking["contact_email"], booking["locale"], booking=booking["id"],
                departure=departure_id, payload=payload,
            )  # fmt: skip
    return advisory_id, sum(1 for b in bookings if b["contact_email"])


async def list_notifications(
    principal: Any, departure_id: UUID | None = None, reference: str | None = None
) -> list[dict[str, Any]]:
    from app.booking.services.access import booking_not_found, normalize_reference
    from app.booking.tables import Booking
    from app.catalogue.services.common import owned_departure

    if departure_id is not None:
        await owned_departure(principal, departure_id)
        where = Notification.departure == departure_id
    else:
        booking = (
            await Booking.select(Booking.id)
            .where(
                (Booking.reference == normalize_reference(reference or ""))
                & (Booking.operator == principal.operator_id)
            )
            .first()
            .run()
        )
        if booking is None:
            raise booking_not_found()
        where = Notification.booking == booking["id"]
    return [
        dict(row)
        for row in await Notification.select().where(where).order_by(Notification.created_at).run()
    ]


async def resend(principal: Any, notification_id: UUID) -> dict[str, Any]:
    """Send a notification again (a failed one, or one the tourist did not get)."""
    from app.booking.tables import Booking
    from app.core.errors import Conflict, NotFound
    from app.core.i18n import _

    row = await Notification.select().where(Notification.id == notification_id).first().run()
    owner = None
    if row is not None and row["booking"] is not None:
        owner = (
            await Booking.select(Booking.operator).where(Booking.id == row["booking"]).first().run()
        )
    if row is None or owner is None or owner["operator"] != principal.operator_id:
        raise NotFound(_("Notification not found."), code="notification_not_found")
    reset = (
        await Notification.update(
            {
                Notification.status: NotificationStatus.pending.value,
                Notification.attempts: 0,
                Notification.next_attempt_at: clock.now(),
                Notification.last_error: "",
            }
        )
        .where(
            (Notification.id == notification_id)
            & (Notification.status != NotificationStatus.sending.value)
        )
        .returning(Notification.id)
        .run()
    )
    if not reset:
        # A worker is sending it right now: a second copy would go out beside it.
        raise Conflict(_("This message is being sent right now."), code="notification_sending")
    updated = await Notification.select().where(Notification.id == notification_id).first().run()
    assert updated is not None
    return dict(updated)
