"""Typed events: how a domain tells the others what happened without importing them.

A domain that changes state publishes an event (`BookingCancelled`, `DepartureChanged`,
...) from inside its write transaction. The domains that care subscribe at start-up
(`app/wiring.py`), each handler in one phase:

- `IN_TRANSACTION`: runs inside the publisher's transaction, so what it writes commits or
  rolls back with the change (a refund owed, an agency's webhook row, a message to send).
  It writes only its own domain's rows and never calls the network.
- `AFTER_COMMIT`: runs once the change has committed (e.g. ask the provider to cancel an
  open payment). Best effort: the workers' sweeps make up for a process that died.
- `OUTBOX`: runs later, from the outbox row stored with the change, retried with backoff
  until it succeeds (`app.core.outbox.dispatch_outbox`).

Every published event is stored in the outbox under its natural key, so publishing the
same fact twice is a no-op there, and the outbox doubles as a log of what happened.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import msgspec

from app.core import clock
from app.core.after_commit import after_commit
from app.core.tables import OutboxMessage


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A fact one domain publishes. Subclasses name it and give its natural key."""

    # The outbox `kind`, e.g. "booking.cancelled".
    name: ClassVar[str]
    # Fields the outbox forgets once every handler has run (e.g. a guest's access token).
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # False for a signal inside one transaction that is no news to keep (and has no
    # outbox handlers): not stored.
    stored: ClassVar[bool] = True

    @property
    def key(self) -> str:
        """What makes two publications the same fact (the outbox's unique key)."""
        raise NotImplementedError


class Phase(StrEnum):
    IN_TRANSACTION = "in_transaction"
    AFTER_COMMIT = "after_commit"
    OUTBOX = "outbox"


E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None]]


class UnknownEvent(LookupError):
    """An outbox row whose kind no subscriber registered (e.g. written by a newer version)."""


class EventBus:
    def __init__(self) -> None:
        self._types: dict[str, type[Event]] = {}
        self._handlers: dict[tuple[type[Event], Phase], list[Handler]] = {}

    def subscribe(
        self, event_type: type[E], phase: Phase, handler: Callable[[E], Awaitable[None]]
    ) -> None:
        """Run `handler` for every `event_type` published; subscribing twice is a no-op."""
        if phase is Phase.OUTBOX and not event_type.stored:
            raise ValueError(f"{event_type.name} is not stored: it has no outbox phase")
        self.know(event_type)
        handlers = self._handlers.setdefault((event_type, phase), [])
        if handler not in handlers:
            handlers.append(handler)

    def know(self, *event_types: type[Event]) -> None:
        """Make events decodable from the outbox, also when nobody subscribes to them."""
        for event_type in event_types:
            known = self._types.setdefault(event_type.name, event_type)
            if known is not event_type:
                raise ValueError(f"two events are named {event_type.name!r}")

    def handlers(self, event_type: type[Event], phase: Phase) -> list[Handler]:
        return list(self._handlers.get((event_type, phase), ()))

    def decode(self, name: str, payload: Any) -> Event:
        event_type = self._types.get(name)
        if event_type is None:
            raise UnknownEvent(name)
        return msgspec.convert(payload, event_type, strict=False)

    async def publish(self, event: Event) -> None:
        """Inside the publisher's write transaction: run the in-transaction handlers,
        schedule the after-commit ones and store the event in the outbox."""
        for handler in self.handlers(type(event), Phase.IN_TRANSACTION):
            await handler(event)
        for handler in self.handlers(type(event), Phase.AFTER_COMMIT):
            await after_commit(functools.partial(handler, event))
        if event.stored:
            await _store(event)

    async def run_outbox_handlers(self, event: Event) -> None:
        for handler in self.handlers(type(event), Phase.OUTBOX):
            await handler(event)

    def clear(self) -> None:
        """Forget every subscription (tests that install their own handlers)."""
        self._types.clear()
        self._handlers.clear()


async def _store(event: Event) -> None:
    now = clock.now()
    await (
        OutboxMessage.insert(
            OutboxMessage(
                kind=event.name,
                key=event.key,
                payload=msgspec.to_builtins(event),
                created_at=now,
                available_at=now,
            )
        )
        .on_conflict(target=OutboxMessage.key, action="DO NOTHING")
        .run()
    )


# The process's one bus: domains publish to it, `app/wiring.py` subscribes them.
bus = EventBus()


async def publish(event: Event) -> None:
    await bus.publish(event)
