"""The outbox and the notifications it turns into.

Side effects are written to the outbox in the transaction that causes them (`enqueue`).
The dispatcher turns each outbox row into work: notifications to send (each with a natural
key, so a repeat creates nothing) or a refund to retry.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.after_commit import savepoint
from app.core.database import is_sqlite, write_transaction
from app.notifications.services.common import (
    MAX_ATTEMPTS,
    _notify_bookings,
    _without_token,
    backoff,
    notify,
)
from app.notifications.tables import OutboxMessage

logger = logging.getLogger("tourline.notifications")

# Messages to a booking's contact, by outbox kind.
BOOKING_MESSAGES = {
    "booking.confirmed",
    "booking.cancelled",
    "booking.expired",
    "payment.refunded_late",
}


PARTNER_DEPARTURE_EVENTS = {"departure.changed", "departure.cancelled"}


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


async def _booking_contact(reference: str) -> dict[str, Any] | None:

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
        # partners.webhooks imports this module (enqueue): imported here, not at the top,
        # until the partners domain registers its own handler for departure events.
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
