"""One way to deliver an outgoing effect (a mail, an SMS, a partner webhook, a refund):
at least once, with exactly-once effects.

Each effect is one row, made once per natural key in the transaction that causes it. A
`Channel` describes where its rows keep their state (`Ledger`) and how one is sent; this
module does the rest, the same way for every channel:

1. Claim: in a committed transaction, before any network call, a due row is taken for
   one attempt: its attempt count goes up, and it is leased (its due column holds when the
   lease runs out). In that transaction the channel re-checks that the effect still
   applies (`Channel.prepare`): one that no longer does is settled, never sent.
2. Send, outside any transaction, cut off after half the lease at most: a slow server
   can never outlast the claim and let a second worker send a copy. A claim that lapsed
   before its send (a paused worker) sends nothing.
3. Record the outcome only if the claim is still this attempt's (fencing: a worker that
   overran its lease never overwrites its successor's record): done, failed and tried
   again after the backoff, or given up (a permanent refusal, or no retries left): the
   channel's `RetryPolicy` (`app/core/backoff.py`).

A worker killed mid-send leaves its claim to lapse; the next claim sends again under the
same key (Message-ID, event id, idempotency key), so receivers drop the copy. A lapsed
claim of the last attempt is given up instead of sent once more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from piccolo.columns import Column
from piccolo.custom_types import Combinable
from piccolo.table import Table

from app.core import clock
from app.core.backoff import RetryPolicy
from app.core.database import write_transaction
from app.core.engine import is_sqlite
from app.core.settings import Settings

logger = logging.getLogger("tourline.delivery")

T = TypeVar("T")
# A row of a channel's table as Piccolo reads it; a channel turns it into its own item.
Row = Mapping[str, Any]
# Columns of a channel's table and the values an outcome gives them.
Values = Mapping[Column | str, Any]

# The longest an error text is kept.
ERROR_LENGTH = 2000


# How long a claimed mail, SMS or webhook is a worker's (TOURLINE_SEND_LEASE_SECONDS), set
# once at startup by `configure`.
_send_lease: timedelta | None = None


def configure(settings: Settings) -> None:
    global _send_lease
    _send_lease = timedelta(seconds=settings.send_lease_seconds)


def send_lease() -> timedelta:
    if _send_lease is None:
        raise RuntimeError("delivery is not configured: call configure(settings)")
    return _send_lease


def worker_name() -> str:
    """Who holds a claim: shown to operators, and what a test kills."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _name(column: Column | str) -> str:
    return column if isinstance(column, str) else column._meta.name


@dataclass(frozen=True, slots=True)
class Ledger:
    """Where a channel's table keeps each delivery's state."""

    table: type[Table]
    status: Column
    attempts: Column
    # When it may be tried (NULL: now); while claimed, when the claim's lease runs out.
    due_at: Column
    error: Column
    # Statuses of rows waiting for an attempt; the status of a claimed row (it may be one
    # of them); of a row to be tried again; of a row whose retries are over.
    waiting: tuple[str, ...]
    claimed: str
    retrying: str
    given_up: str
    # Due rows are tried in this order.
    order: tuple[Column, ...]
    # Rows of different lanes (e.g. agencies) are sent at once, those of one lane in turn.
    lane: Column | None = None
    # A fresh id for every claim, fenced on and cleared when the outcome is recorded.
    token: Column | None = None
    # The worker holding the claim (`worker_name`).
    claimed_by: Column | None = None
    # Set to the time of every claim and record.
    touched_at: Column | None = None
    # Where `RetryPolicy.window` starts.
    retry_from: Column | None = None


@dataclass(frozen=True, slots=True)
class Unsent:
    """What `Channel.prepare` says of an effect that no longer applies: settled in
    `status`, with "not sent: <reason>" as its error."""

    status: str
    reason: str
    values: Values = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. `status` None: it failed (tried again after the backoff
    unless `permanent` or no retries are left); else it is settled in that status."""

    status: str | None
    error: str = ""
    # The channel's own columns recorded with it (a provider's id, a status code ...).
    values: Values = field(default_factory=dict)
    # Counted as delivered.
    delivered: bool = False
    permanent: bool = False
    # The shortest pause before a retry.
    at_least: timedelta = timedelta(0)

    @classmethod
    def done(
        cls, status: str, *, values: Values | None = None, error: str = "", delivered: bool = True
    ) -> Outcome:
        return cls(status, error, values or {}, delivered)

    @classmethod
    def failed(
        cls,
        error: str,
        *,
        values: Values | None = None,
        permanent: bool = False,
        at_least: timedelta = timedelta(0),
    ) -> Outcome:
        return cls(None, error, values or {}, permanent=permanent, at_least=at_least)


@dataclass(frozen=True, slots=True)
class Claim(Generic[T]):
    """One attempt a worker holds: the row as claimed, and the channel's item for it."""

    id: UUID
    attempt: int
    lease: timedelta
    token: UUID | None
    row: Row
    item: T


class Channel(ABC, Generic[T]):
    """An outgoing channel: its table (`ledger`), its retries, and how one item is sent.
    Subclasses fill in `prepare` and `send` (and the hooks they need); the claim, the
    timing, the fencing and the backoff are this class's."""

    name: str
    ledger: Ledger
    retry: RetryPolicy
    # The longest one send may take, in seconds (half the lease at most).
    longest_send: float
    # Lanes sent at once.
    lanes_at_once: int = 1

    def lease(self) -> timedelta:
        return send_lease()

    def claimable(self, now: datetime) -> Combinable | None:
        """A condition of the channel's own on the rows that may be claimed now."""
        return None

    @abstractmethod
    async def prepare(self, row: Row) -> T | Unsent:
        """Inside the claim's transaction, the row as it will be once claimed: the item to
        send, or why it must not be sent any more."""

    @abstractmethod
    async def send(self, claim: Claim[T], seconds: float) -> Outcome:
        """Send one claimed item (cut off after `seconds`); what came of it."""

    def settled(self, row: Row) -> Values:
        """Values to write when a row is settled for good (e.g. a secret it need not keep)."""
        return {}

    async def unanswered(self, claim: Claim[T], error: str, elapsed: float) -> Outcome:
        """What a send cut off after `elapsed` seconds comes to (its outcome is unknown)."""
        return Outcome.failed(error)

    async def recorded(self, claim: Claim[T], outcome: Outcome) -> None:
        """After an outcome was recorded by this attempt."""

    # ------------------------------------------------------------ the mechanism

    def send_seconds(self, lease: timedelta) -> float:
        """Well inside the lease: the claim outlives the attempt, whatever the server does."""
        return min(self.longest_send, lease.total_seconds() / 2)

    def _due(self, now: datetime) -> Combinable:
        """Waiting and due, or claimed by a worker whose lease has run out (whatever the
        channel's own condition, checked when each one is claimed: an item listed behind
        another may become claimable once that one is sent)."""
        ledger = self.ledger
        waiting: Combinable = ledger.status.is_in(list(ledger.waiting))
        if self.retry.max_attempts is not None:
            waiting = waiting & (ledger.attempts < self.retry.max_attempts)
        return (waiting | (ledger.status == ledger.claimed)) & (
            ledger.due_at.is_null() | (ledger.due_at <= now)
        )

    def _claimable(self, now: datetime) -> Combinable:
        extra = self.claimable(now)
        return self._due(now) if extra is None else self._due(now) & extra

    def _fence(self, claim: Claim[T]) -> Combinable:
        """The row, only while this attempt holds its claim."""
        ledger = self.ledger
        where: Combinable = (
            (ledger.table._meta.primary_key == claim.id)
            & (ledger.status == ledger.claimed)
            & (ledger.attempts == claim.attempt)
        )
        if ledger.token is not None:
            where = where & (ledger.token == claim.token)
        return where

    async def claim(self, row_id: UUID, lease: timedelta | None = None) -> Claim[T] | None:
        """Claim a due row for one attempt, committed before anything is sent; None if
        another worker has it, or it is no longer due, or it must not be sent (then it is
        settled as `prepare` says)."""
        ledger, lease = self.ledger, lease or self.lease()
        key = ledger.table._meta.primary_key
        now = clock.now()
        query = (
            ledger.table.select()
            .where((key == row_id) & self._claimable(now))
            .first()
            .output(load_json=True)
        )
        if not is_sqlite():
            query = query.lock_rows("UPDATE", skip_locked=True)
        async with write_transaction():
            row = await query.run()
            if row is None:
                return None  # Another worker has it, or has just sent it.
            attempts = int(row[ledger.attempts._meta.name])
            claim_values: dict[Column | str, Any] = {
                ledger.status: ledger.claimed,
                ledger.attempts: attempts + 1,
                ledger.due_at: now + lease,
            }
            token = uuid.uuid4() if ledger.token is not None else None
            if ledger.token is not None:
                claim_values[ledger.token] = token
            if ledger.claimed_by is not None:
                claim_values[ledger.claimed_by] = worker_name()
            if ledger.touched_at is not None:
                claim_values[ledger.touched_at] = now
            claimed = {**row, **{_name(column): v for column, v in claim_values.items()}}
            item = await self.prepare(claimed)
            if row[ledger.status._meta.name] == ledger.claimed and self.retry.exhausted(attempts):
                # Its last attempt's worker died: what happened to the effect is unknown.
                item = item if isinstance(item, Unsent) else self._stopped()
            if isinstance(item, Unsent):
                await self._settle_unsent(row, item, now)
                return None
            await ledger.table.update(claim_values).where(key == row_id).run()
        return Claim(row_id, attempts + 1, lease, token, claimed, item)

    def _stopped(self) -> Unsent:
        return Unsent(self.ledger.given_up, "the last attempt's worker stopped")

    async def _settle_unsent(self, row: Row, unsent: Unsent, now: datetime) -> None:
        ledger = self.ledger
        values: dict[Column | str, Any] = {
            ledger.status: unsent.status,
            ledger.error: f"not sent: {unsent.reason}"[:ERROR_LENGTH],
            **self.settled(row),
            **unsent.values,
        }
        if ledger.token is not None:
            values[ledger.token] = None
        if ledger.touched_at is not None:
            values[ledger.touched_at] = now
        key = ledger.table._meta.primary_key
        await ledger.table.update(values).where(key == row[key._meta.name]).run()

    async def still_ours(self, claim: Claim[T]) -> bool:
        """The claim holds and its lease has not run out."""
        return bool(
            await self.ledger.table.exists()
            .where(self._fence(claim) & (self.ledger.due_at > clock.now()))
            .run()
        )

    async def attempt(self, claim: Claim[T], seconds: float) -> bool:
        """Send one claimed item and record the outcome; True if it was delivered and
        recorded by this attempt."""
        if not await self.still_ours(claim):
            return False  # Paused past its lease: the item is another worker's now.
        started = time.monotonic()
        try:
            async with asyncio.timeout(seconds):
                outcome = await self.send(claim, seconds)
        except TimeoutError:
            error = f"no answer within {seconds:g} s: the outcome is unknown"
            outcome = await self.unanswered(claim, error, time.monotonic() - started)
        except Exception as exc:
            # A bug: logged, and tried again after the lease at the earliest; it neither
            # stops the other items nor is retried at once.
            logger.exception("%s %s failed unexpectedly", self.name, claim.id)
            outcome = Outcome.failed(f"{type(exc).__name__}: {exc}", at_least=claim.lease)
        recorded = await self.record(claim, outcome)
        if recorded:
            await self.recorded(claim, outcome)
        return recorded and outcome.delivered

    async def record(self, claim: Claim[T], outcome: Outcome) -> bool:
        """Record an attempt's outcome, only if the claim is still this attempt's."""
        ledger, now = self.ledger, clock.now()
        values: dict[Column | str, Any] = {ledger.error: outcome.error[:ERROR_LENGTH]}
        if outcome.status is not None:
            values[ledger.status] = outcome.status
            values.update(self.settled(claim.row))
        else:
            retry_at = now + max(self.retry.backoff.after(claim.attempt), outcome.at_least)
            since = claim.row[ledger.retry_from._meta.name] if ledger.retry_from else None
            given_up = outcome.permanent or self.retry.gives_up(claim.attempt, retry_at, since)
            values[ledger.due_at] = retry_at
            values[ledger.status] = ledger.given_up if given_up else ledger.retrying
            if given_up:
                values.update(self.settled(claim.row))
        if ledger.token is not None:
            values[ledger.token] = None
        if ledger.touched_at is not None:
            values[ledger.touched_at] = now
        values.update(outcome.values)
        key = ledger.table._meta.primary_key
        recorded = await ledger.table.update(values).where(self._fence(claim)).returning(key).run()
        if not recorded:
            logger.warning(
                "%s %s: attempt %s lost its claim before its outcome was recorded",
                self.name, claim.id, claim.attempt,
            )  # fmt: skip
        return bool(recorded)

    async def deliver_due(
        self,
        *,
        limit: int = 100,
        lease: timedelta | None = None,
        deadline: float | None = None,
        only: Combinable | None = None,
    ) -> int:
        """Send the due items, at most `limit` per lane, lanes at once; how many were
        delivered. With a `deadline` (time.monotonic()), no item is claimed once less time
        is left than one send may take: every attempt made is recorded. `only` narrows the
        rows (e.g. one booking's)."""
        lease = lease or self.lease()
        seconds = self.send_seconds(lease)

        def due() -> Combinable:
            where = self._due(clock.now())
            return where if only is None else where & only

        async def deliver(lane: Any) -> int:
            key = self.ledger.table._meta.primary_key
            where = due() if lane is None else due() & (self.ledger.lane == lane)
            rows = (
                await self.ledger.table.select(key)
                .where(where)
                .order_by(*self.ledger.order)
                .limit(limit)
                .run()
            )
            delivered = 0
            for row in rows:
                if deadline is not None and time.monotonic() + seconds > deadline:
                    break  # the next call takes it, with time to record its outcome
                claim = await self.claim(row[key._meta.name], lease)
                if claim is not None:
                    delivered += await self.attempt(claim, seconds)
            return delivered

        if self.ledger.lane is None:
            return await deliver(None)
        lane_column = self.ledger.lane
        lanes = [
            row[lane_column._meta.name]
            for row in await self.ledger.table.select(lane_column).where(due()).distinct().run()
        ]
        slots = asyncio.Semaphore(self.lanes_at_once)

        async def deliver_in_turn(lane: Any) -> int:
            async with slots:
                return await deliver(lane)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(deliver_in_turn(lane)) for lane in lanes]
        return sum(task.result() for task in tasks)
