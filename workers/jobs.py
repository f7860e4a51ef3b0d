"""Job functions: thin wrappers that call domain services (ids in, effects out)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from app.booking.services.allotments import release_due_allotments
from app.booking.services.expiry import expire_all_overdue, expire_hold
from app.booking.services.rebook import revert_overdue_changes
from app.core import jobs, throttle
from app.core.errors import DatabaseUnavailable, DomainError, NotFound
from app.core.idempotency import purge_expired
from app.core.observability import booking_reference_var
from app.core.outbox import dispatch_outbox
from app.core.settings import Settings, get_settings
from app.notifications.services.reminders import queue_reminders
from app.notifications.services.sending import send_due_notifications
from app.partners.webhooks import deliver_due_webhooks
from app.payments.services.refunds import execute_pending_refunds
from app.payments.services.sweep import sync_open_payments

logger = logging.getLogger("tourline.jobs")


async def expire_booking(ctx: dict[str, Any], booking_id: str) -> bool:
    """Expire one hold at its time (scheduled when the hold is made). False when there is
    nothing to do: the hold was dealt with, or never committed (a waitlist offer is made
    inside the transaction that freed its seats, and scheduled before that commits)."""
    try:
        return await expire_hold(UUID(booking_id))
    except NotFound:
        return False


# How long one call of a step may take, unless its Step says otherwise.
STEP_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Step:
    """One kind of periodic work, run by its own loop (workers/periodic.py).

    `run(deadline)` handles what is due now (claiming its rows, so several loops of one
    step may run at once) and returns how many it handled. `deadline` (time.monotonic())
    is when the call must be done: a step whose items wait on the network (a mail, a
    webhook, a refund) claims no new item once less time is left than one item may take,
    so that every attempt it makes is recorded, none is left claimed until its lease runs
    out, and the call is never cut off. With `drain`, a run goes on calling it until it
    handles nothing more (a backlog goes out in one run, batch after batch), for at most
    `budget` seconds; a step whose count includes rows that stay due (asking Stripe about
    open payments) runs once per round instead. One call longer than `timeout` seconds
    is cancelled and counted as a failure (a safety net: `deadline` comes first). Between
    runs the loop waits `every` seconds (give or take a tenth, so that workers do not all
    ask at once)."""

    name: str
    run: Callable[[float], Awaitable[int]]
    every: float
    timeout: float = STEP_TIMEOUT
    drain: bool = True
    budget: float = 60.0
    # Asks Stripe: only where card payments are configured.
    stripe: bool = False


# Of a call's `timeout`, the part its deadline leaves for recording the last outcome.
RECORD_MARGIN = 0.1


def _whole_batch(run: Callable[[], Awaitable[int]]) -> Callable[[float], Awaitable[int]]:
    """A step that needs no deadline: its batch is database work, far inside the timeout,
    or (the Stripe sweeps) it stops at the first call Stripe does not answer."""

    async def call(deadline: float) -> int:
        return await run()

    return call


STEPS: list[Step] = [
    Step("expired", _whole_batch(expire_all_overdue), every=10),
    # Rebookings whose difference was not paid in time: their new seats back on sale.
    Step("changes_reverted", _whole_batch(revert_overdue_changes), every=10),
    # Before the outbox (in `tick`): the waiting-list offers a release makes go out with it.
    Step("allotments_released", _whole_batch(release_due_allotments), every=30),
    Step("outbox", _whole_batch(dispatch_outbox), every=2),
    Step("reminders", _whole_batch(queue_reminders), every=60),
    Step("sent", lambda deadline: send_due_notifications(deadline=deadline), every=2),
    Step("refunds", lambda deadline: execute_pending_refunds(deadline=deadline), every=30),
    Step("idempotency_purged", _whole_batch(purge_expired), every=600),
    Step("attempts_purged", _whole_batch(throttle.purge_expired), every=600),
    Step("webhooks_delivered", lambda deadline: deliver_due_webhooks(deadline=deadline), every=5),
    Step("payments_synced", _whole_batch(sync_open_payments), every=60, drain=False, stripe=True),
]


def steps_for(settings: Settings) -> list[Step]:
    return [step for step in STEPS if settings.stripe_secret_key or not step.stripe]


async def run_step(step: Step, settings: Settings, *, drain: bool | None = None) -> int | None:
    """One run of `step` (draining its backlog if it drains), logged and counted in
    /metrics; how many rows it handled, None if it failed."""
    drain = step.drain if drain is None else drain
    deadline = time.monotonic() + step.budget
    done = 0
    try:
        while True:
            # Log lines of a step name the booking it is working on, never the previous one's.
            booking_reference_var.set(None)
            called = time.monotonic()
            call_deadline = called + step.timeout * (1 - RECORD_MARGIN)
            handled = await asyncio.wait_for(step.run(call_deadline), step.timeout)
            done += handled
            if not drain or not handled or time.monotonic() >= deadline:
                break
    except DomainError as exc:
        # e.g. Stripe not reachable: expected now and then, not a bug.
        _failed(step.name, f"skipped: {exc.code}")
    except TimeoutError as exc:
        if time.monotonic() - called >= step.timeout:
            _failed(step.name, f"cancelled after {step.timeout:.0f} s, its time limit")
        else:  # a timeout of its own (a socket, SMTP, a lock): a failure like any other
            _failed(step.name, f"failed: timed out: {type(exc).__name__}: {exc}", exc)
    except DatabaseUnavailable as exc:
        # An outage, not a bug: no traceback; the step runs again when it is due.
        _failed(step.name, f"skipped: {exc.code}")
    except Exception as exc:
        _failed(step.name, f"failed: {type(exc).__name__}: {exc}", exc)
    else:
        if _failing.pop(step.name, None) is not None:
            logger.warning("job step %s works again", step.name)
        await jobs.record_run(settings.redis_url, step.name, ok=True)
        return done
    await jobs.record_run(settings.redis_url, step.name, ok=False)
    return None


# Steps failing in a row (a database outage fails them all, every few seconds): when the
# last failure was logged, and how many since. Every failure is counted in /metrics.
_failing: dict[str, tuple[float, int]] = {}
LOG_FAILURES_EVERY_SECONDS = 60.0


def _failed(name: str, what: str, exc: BaseException | None = None) -> None:
    now = time.monotonic()
    logged, unlogged = _failing.get(name, (None, 0))
    if logged is None:
        # The first of a row; with its traceback, as an error, when it is not one of ours.
        if exc is None:
            logger.warning("job step %s %s", name, what)
        else:
            logger.error("job step %s %s", name, what, exc_info=exc)
        _failing[name] = (now, 0)
    elif now - logged >= LOG_FAILURES_EVERY_SECONDS:
        logger.warning("job step %s still failing (%d times more): %s", name, unlogged + 1, what)
        _failing[name] = (now, 0)
    else:
        _failing[name] = (logged, unlogged + 1)


async def tick(ctx: dict[str, Any] | None = None) -> dict[str, int]:
    """Every periodic step once, one after the other (one batch each): for tests and for
    an operator who wants everything done now (`tick` can be enqueued as a job). The
    workers do not run it: each step has its own loop.

    A failing step is logged and counted (/metrics) and does not stop the others."""
    # A worker's context holds its settings (see workers/runner.py); called by hand (tests,
    # a shell) or by a worker made elsewhere, this process's.
    settings: Settings = (ctx or {}).get("settings") or get_settings()
    done: dict[str, int] = {}
    for step in steps_for(settings):
        handled = await run_step(step, settings, drain=False)
        if handled is not None:
            done[step.name] = handled
    return done
