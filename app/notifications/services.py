"""Writing side effects to the outbox, in the caller's transaction (the workers deliver them)."""

from __future__ import annotations

from typing import Any

from app.notifications.tables import OutboxMessage


async def enqueue(kind: str, key: str, payload: dict[str, Any]) -> None:
    """Record an effect to deliver; a second message with the same natural key is a no-op."""
    await (
        OutboxMessage.insert(OutboxMessage(kind=kind, key=key, payload=payload))
        .on_conflict(target=OutboxMessage.key, action="DO NOTHING")
        .run()
    )
