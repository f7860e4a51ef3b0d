"""The one delivery mechanism (`app.core.delivery`) on a real table: claimed before the
send, one copy per claim, a lapsed lease taken over, a worker stopped mid-send not causing
a second copy while its claim lasts, backoff, giving up, and fencing.

The probe channel keeps its rows in the notifications' table (any table with a status,
an attempt count and a due column would do) and sends to a list instead of a server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from app.core import clock
from app.core.backoff import Backoff, RetryPolicy
from app.core.delivery import (
    Channel,
    Claim,
    Ledger,
    Outcome,
    Row,
    Unsent,
)
from app.notifications.tables import Notification, NotificationStatus

MINUTE = timedelta(minutes=1)
LEASE = timedelta(seconds=4)

Send = Callable[[Claim[str]], Awaitable[Outcome]]


class Probe(Channel[str]):
    """Sends each row's key; what the "server" does is the test's `behaviour`."""

    name = "probe"
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
    retry = RetryPolicy(Backoff.doubling(MINUTE, 4 * MINUTE), max_attempts=3)
    longest_send = 60.0

    def __init__(self, behaviour: Send | None = None) -> None:
        self.received: list[str] = []
        self.behaviour = behaviour

    def lease(self) -> timedelta:
        return LEASE

    async def prepare(self, row: Row) -> str | Unsent:
        if row["recipient"] == "nobody":
            return Unsent(NotificationStatus.skipped.value, "nobody to send it to")
        return str(row["key"])

    async def send(self, claim: Claim[str], seconds: float) -> Outcome:
        self.received.append(claim.item)
        if self.behaviour is not None:
            return await self.behaviour(claim)
        return Outcome.done(NotificationStatus.sent.value)


async def _row(key: str, recipient: str = "someone@example.com") -> UUID:
    [row] = await (
        Notification.insert(
            Notification(key=key, kind="probe", recipient=recipient, next_attempt_at=clock.now())
        )
        .returning(Notification.id)
        .run()
    )
    return UUID(str(row["id"]))


async def _state(row_id: UUID) -> dict[str, Any]:
    row = await Notification.select().where(Notification.id == row_id).first().run()
    assert row is not None
    return dict(row)


async def test_two_workers_at_once_send_each_item_once() -> None:
    keys = [f"probe:{n}" for n in range(20)]
    ids = [await _row(key) for key in keys]
    probe = Probe()

    done = await asyncio.gather(probe.deliver_due(), probe.deliver_due())

    assert sum(done) == 20
    assert sorted(probe.received) == sorted(keys)
    states = [await _state(row_id) for row_id in ids]
    assert {(s["status"], s["attempts"]) for s in states} == {(NotificationStatus.sent, 1)}
    assert await probe.deliver_due() == 0
    assert len(probe.received) == 20


async def test_an_item_that_no_longer_applies_is_settled_unsent() -> None:
    row_id = await _row("probe:nobody", recipient="nobody")
    probe = Probe()
    assert await probe.deliver_due() == 0
    assert probe.received == []
    state = await _state(row_id)
    assert (state["status"], state["attempts"]) == (NotificationStatus.skipped, 0)
    assert state["last_error"] == "not sent: nobody to send it to"


async def test_failures_back_off_then_give_up_after_the_last_attempt() -> None:
    async def refuse(claim: Claim[str]) -> Outcome:
        return Outcome.failed(f"refused {claim.attempt}")

    row_id = await _row("probe:refused")
    probe = Probe(refuse)
    with clock.frozen(clock.now()):
        for attempt, pause in ((1, MINUTE), (2, 2 * MINUTE)):
            assert await probe.deliver_due() == 0
            assert len(probe.received) == attempt
            state = await _state(row_id)
            assert (state["status"], state["attempts"]) == (NotificationStatus.pending, attempt)
            assert state["last_error"] == f"refused {attempt}"
            assert state["next_attempt_at"] == clock.now() + pause
            clock.advance(pause - timedelta(seconds=1))
            await probe.deliver_due()
            assert len(probe.received) == attempt  # not before its pause is over
            clock.advance(timedelta(seconds=1))
        await probe.deliver_due()
        assert len(probe.received) == 3
        state = await _state(row_id)
        assert (state["status"], state["attempts"]) == (NotificationStatus.failed, 3)
        clock.advance(timedelta(days=1))
        await probe.deliver_due()
    assert len(probe.received) == 3


async def test_a_permanent_refusal_gives_up_at_once() -> None:
    async def gone(claim: Claim[str]) -> Outcome:
        return Outcome.failed("no such mailbox", permanent=True)

    row_id = await _row("probe:gone")
    probe = Probe(gone)
    assert await probe.deliver_due() == 0
    state = await _state(row_id)
    assert (state["status"], state["attempts"]) == (NotificationStatus.failed, 1)


async def test_a_lapsed_lease_is_taken_over_and_the_old_claim_is_fenced_off() -> None:
    row_id = await _row("probe:lapsed")
    probe = Probe()
    with clock.frozen(clock.now()):
        # A worker claims the item and stops before sending (killed, or paused).
        stale = await probe.claim(row_id)
        assert stale is not None
        assert (await _state(row_id))["status"] == NotificationStatus.sending
        # While its lease lasts, nobody else touches it.
        assert await probe.claim(row_id) is None
        clock.advance(LEASE - timedelta(seconds=1))
        assert await probe.deliver_due() == 0
        assert probe.received == []
        # Once it lapses, the next worker sends it, as the next attempt.
        clock.advance(timedelta(seconds=1))
        assert await probe.deliver_due() == 1
        assert probe.received == ["probe:lapsed"]
        state = await _state(row_id)
        assert (state["status"], state["attempts"]) == (NotificationStatus.sent, 2)

        # The first worker comes back: it sends nothing and records nothing.
        assert await probe.attempt(stale, 1.0) is False
        assert await probe.record(stale, Outcome.failed("late")) is False
    assert probe.received == ["probe:lapsed"]
    assert (await _state(row_id))["status"] == NotificationStatus.sent


async def test_a_worker_stopped_mid_send_causes_no_copy_while_its_claim_lasts() -> None:
    """The first worker's send reaches the server and the worker is stopped before it
    records anything (a cancelled task: like a killed process, it leaves its committed
    claim behind). No other worker sends while the claim lasts; after it, the item goes
    once more under the same key (at least once: the receiver dedupes by the key)."""
    reached = asyncio.Event()

    async def hang(claim: Claim[str]) -> Outcome:
        reached.set()
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    row_id = await _row("probe:stopped")
    first = Probe(hang)
    with clock.frozen(clock.now()):
        worker = asyncio.create_task(first.deliver_due())
        await asyncio.wait_for(reached.wait(), 10)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        assert first.received == ["probe:stopped"]
        state = await _state(row_id)
        assert (state["status"], state["attempts"]) == (NotificationStatus.sending, 1)

        second = Probe()
        assert await second.deliver_due() == 0
        clock.advance(LEASE)
        assert await second.deliver_due() == 1
        assert await second.deliver_due() == 0
    assert second.received == ["probe:stopped"]  # the same key as the first send
    state = await _state(row_id)
    assert (state["status"], state["attempts"]) == (NotificationStatus.sent, 2)


async def test_a_lapsed_claim_of_the_last_attempt_is_given_up_not_sent_again() -> None:
    row_id = await _row("probe:last")
    lease_end = clock.now() + LEASE
    await (
        Notification.update(
            {
                Notification.status: NotificationStatus.sending.value,
                Notification.attempts: 3,
                Notification.next_attempt_at: lease_end,
            }
        )
        .where(Notification.id == row_id)
        .run()
    )
    probe = Probe()
    with clock.frozen(lease_end):
        assert await probe.deliver_due() == 0
    assert probe.received == []
    state = await _state(row_id)
    assert (state["status"], state["attempts"]) == (NotificationStatus.failed, 3)
    assert state["last_error"] == "not sent: the last attempt's worker stopped"


async def test_a_send_is_cut_off_inside_the_lease_and_its_outcome_is_unknown() -> None:
    async def stall(claim: Claim[str]) -> Outcome:
        await asyncio.sleep(3600)
        raise AssertionError("never answered")

    row_id = await _row("probe:stalled")
    probe = Probe(stall)
    started = time.monotonic()
    assert await probe.deliver_due() == 0
    assert time.monotonic() - started < LEASE.total_seconds()  # half the lease, and a record
    state = await _state(row_id)
    assert state["status"] == NotificationStatus.pending
    assert state["last_error"] == "no answer within 2 s: the outcome is unknown"


async def test_a_bug_in_a_send_waits_at_least_for_the_lease() -> None:
    async def broken(claim: Claim[str]) -> Outcome:
        raise RuntimeError("a bug")

    row_id = await _row("probe:bug")
    probe = Probe(broken)
    with clock.frozen(clock.now()):
        assert await probe.deliver_due(lease=timedelta(minutes=10)) == 0
        state = await _state(row_id)
        assert state["status"] == NotificationStatus.pending
        assert state["last_error"] == "RuntimeError: a bug"
        assert state["next_attempt_at"] == clock.now() + timedelta(minutes=10)


async def test_nothing_is_claimed_once_the_deadline_leaves_no_time_for_a_send() -> None:
    row_id = await _row("probe:late")
    probe = Probe()
    # Each send may take half the lease (2 s): 1 s left is not enough.
    assert await probe.deliver_due(deadline=time.monotonic() + 1) == 0
    assert probe.received == []
    assert (await _state(row_id))["attempts"] == 0
    assert await probe.deliver_due(deadline=time.monotonic() + 30) == 1
