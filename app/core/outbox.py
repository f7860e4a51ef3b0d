"""The outbox dispatcher: runs the `OUTBOX` handlers of stored events, with retries.

Events are stored by `app.core.events.publish` in the transaction that causes them. A
worker step takes due rows (skipping rows another worker holds), runs each event's
outbox handlers in a savepoint of its own, and marks the row done, or retries it later
with backoff, giving up after `OUTBOX_RETRY` runs out.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from app.core import clock
from app.core.after_commit import savepoint
from app.core.backoff import Backoff, RetryPolicy
from app.core.database import write_transaction
from app.core.engine import is_sqlite
from app.core.events import UnknownEvent, bus
from app.core.tables import OutboxMessage

logger = logging.getLogger("tourline.outbox")

# 1, 2, 4, 8 ... minutes, at most an hour; a row is given up after six attempts.
OUTBOX_RETRY = RetryPolicy(
    Backoff.doubling(timedelta(minutes=1), timedelta(hours=1)), max_attempts=6
)


async def _handle(row: dict[str, Any]) -> dict[str, Any] | None:
    """Run the row's outbox handlers; returns the payload to keep, if it changes."""
    try:
        event = bus.decode(row["kind"], row["payload"])
    except UnknownEvent:
        # Nobody here handles it: the row stays as a record of what happened.
        return None
    await bus.run_outbox_handlers(event)
    payload = row["payload"]
    secrets = event.secret_fields & set(payload) if isinstance(payload, dict) else set()
    if not secrets:
        return None
    # Handed on to its handlers: the outbox keeps no copy of a secret.
    return {name: value for name, value in payload.items() if name not in secrets}


async def dispatch_outbox(limit: int = 100) -> int:
    """Run the outbox handlers of due events; returns how many rows were handled."""
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
                    kept_payload = await _handle(dict(row))
            except Exception as exc:
                attempts = row["attempts"] + 1
                logger.warning("outbox %s failed (attempt %s): %s", row["key"], attempts, exc)
                await (
                    OutboxMessage.update(
                        {
                            OutboxMessage.attempts: attempts,
                            OutboxMessage.last_error: f"{type(exc).__name__}: {exc}"[:2000],
                            OutboxMessage.available_at: now + OUTBOX_RETRY.backoff.after(attempts),
                            OutboxMessage.failed_at: now
                            if OUTBOX_RETRY.exhausted(attempts)
                            else None,
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
            if kept_payload is not None:
                done[OutboxMessage.payload] = kept_payload
            await OutboxMessage.update(done).where(OutboxMessage.id == row["id"]).run()
            handled += 1
    return handled
