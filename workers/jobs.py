"""Job functions: thin wrappers that call domain services (ids in, effects out)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from app.booking.services.bookings import expire_all_overdue, expire_hold
from app.core import jobs
from app.core.errors import DomainError, NotFound
from app.core.idempotency import purge_expired
from app.core.observability import booking_reference_var
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


# The periodic steps, in order; each is safe to repeat.
TICK_STEPS: list[tuple[str, Callable[[], Awaitable[int]]]] = [
    ("expired", expire_all_overdue),
    # Before the outbox: the waiting-list offers a release makes go out in this tick.
    ("allotments_released", release_due_allotments),
    ("outbox", dispatch_outbox),
    ("reminders", queue_reminders),
    ("sent", send_due_notifications),
    ("refunds", execute_pending_refunds),
    ("idempotency_purged", purge_expired),
    ("webhooks_delivered", deliver_due_webhooks),
]
STRIPE_STEPS: list[tuple[str, Callable[[], Awaitable[int]]]] = [
    ("intents_cancelled", cancel_stale_intents),
    ("payments_synced", sync_open_payments),
]


async def tick(ctx: dict[str, Any] | None = None) -> dict[str, int]:
    """Everything periodic: expiry sweep, allotment releases, outbox, reminders, sending,
    refund retries, old idempotency keys, partner webhooks, Stripe reconciliation.

    A failing step is logged and counted (/metrics) and does not stop the others; the
    next tick tries it again."""
    settings = get_settings()
    steps = TICK_STEPS + (STRIPE_STEPS if settings.stripe_secret_key else [])
    done: dict[str, int] = {}
    for name, step in steps:
        # Log lines of a step name the booking it is working on, never the previous one's.
        booking_reference_var.set(None)
        try:
            done[name] = await step()
        except DomainError as exc:
            # e.g. Stripe not reachable: expected now and then, not a bug.
            logger.warning("job step %s skipped: %s", name, exc.code)
            await jobs.record_run(settings.redis_url, name, ok=False)
            continue
        except Exception:
            logger.exception("job step %s failed", name)
            await jobs.record_run(settings.redis_url, name, ok=False)
            continue
        await jobs.record_run(settings.redis_url, name, ok=True)
    return done
