"""Job functions: thin wrappers that call domain services (ids in, effects out)."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.booking.services.bookings import expire_all_overdue, expire_hold
from app.core.errors import DomainError, NotFound
from app.core.idempotency import purge_expired
from app.core.settings import get_settings
from app.notifications.services import dispatch_outbox, queue_reminders, send_due_notifications
from app.partners.allotments import release_due_allotments
from app.partners.webhooks import deliver_due_webhooks
from app.payments.services import (
    cancel_stale_intents,
    execute_pending_refunds,
    sync_open_payments,
)

logger = logging.getLogger("tourline.jobs")


async def expire_booking(ctx: dict[str, Any], booking_id: str) -> bool:
    """Expire one hold at its time (scheduled when the hold is made). False when there is
    nothing to do: the hold was dealt with, or never committed (a waitlist offer is made
    inside the transaction that freed its seats, and scheduled before that commits)."""
    try:
        return await expire_hold(UUID(booking_id))
    except NotFound:
        return False


async def tick(ctx: dict[str, Any] | None = None) -> dict[str, int]:
    """Everything periodic, each step safe to repeat: expiry sweep, outbox, reminders,
    sending, refund retries, old idempotency keys, allotment releases, partner webhooks,
    Stripe reconciliation."""
    done = {
        "expired": await expire_all_overdue(),
        # Before the outbox: the waiting-list offers a release makes go out in this tick.
        "allotments_released": await release_due_allotments(),
        "outbox": await dispatch_outbox(),
        "reminders": await queue_reminders(),
        "sent": await send_due_notifications(),
        "refunds": await execute_pending_refunds(),
        "idempotency_purged": await purge_expired(),
        "webhooks_delivered": await deliver_due_webhooks(),
    }
    if get_settings().stripe_secret_key:
        try:
            done["intents_cancelled"] = await cancel_stale_intents()
            done["payments_synced"] = await sync_open_payments()
        except DomainError as exc:
            logger.warning("stripe reconciliation skipped: %s", exc.code)
    return done
