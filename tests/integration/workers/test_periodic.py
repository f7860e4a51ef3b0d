"""The periodic steps as the workers run them (workers/jobs.py `run_step`): a run drains a
backlog batch after batch, a call over its time limit is cancelled and counted, and agency
webhooks go out through one HTTP client per process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.booking.tables import Booking
from app.core import clock, jobs
from app.core.idempotency import KEEP_FOR, PURGE_BATCH, purge_expired
from app.core.settings import get_settings
from app.core.tables import IdempotencyRecord
from app.notifications.services.common import notify
from app.notifications.tables import Notification, NotificationStatus
from app.partners.webhooks import queue_event
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure
from tests.servers import start_web_endpoint
from workers.jobs import STEPS, Step, run_step, tick
from workers.periodic import Periodic


def step(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)


async def test_a_run_drains_a_backlog_larger_than_one_batch(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    """150 mails due: `tick` sends one batch (100); a worker's run of the mail step sends
    every one of them, batch after batch, and each once."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure["id"],
            "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
            "contact": {
                "name": "Drain",
                "email": "drain@example.cn",
                "phone": "+86 138 0000 0000",
                "locale": "en",
            },
        },
    )
    assert response.status_code == 201, response.text
    row = (
        await Booking.select(Booking.id)
        .where(Booking.reference == response.json()["booking"]["reference"])
        .first()
        .run()
    )
    assert row is not None
    booking_id = row["id"]
    payload = {"advisory_id": str(uuid.uuid4()), "advisory_kind": "general",
               "message": {"en": "Bring a hat."}, "max_temperature_c": None}  # fmt: skip
    for n in range(150):
        assert await notify(
            f"advisory:test:{n}", "advisory", f"p{n}@example.cn", "en",
            booking=booking_id, departure=uuid.UUID(departure["id"]),
            payload=payload,
        )  # fmt: skip
    await Notification.delete().where(Notification.kind != "advisory").run()

    assert (await tick())["sent"] == 100
    assert await run_step(step("sent"), get_settings()) == 50
    sent = await Notification.select().where(Notification.status == NotificationStatus.sent).run()
    assert len(sent) == 150
    assert all(row["attempts"] == 1 for row in sent)
    assert sorted(message["To"] for message in mailbox.messages) == sorted(
        f"p{n}@example.cn" for n in range(150)
    )


async def test_a_step_over_its_time_limit_is_cancelled_and_counted_as_failed() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(deadline: float) -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    settings = dataclasses.replace(get_settings(), redis_url="")
    runs, failures = await jobs.run_counts("")
    name = "test_hangs"
    result = await run_step(Step(name, hangs, every=1, timeout=0.2), settings)
    assert result is None
    assert started.is_set()
    assert cancelled.is_set()
    after_runs, after_failures = await jobs.run_counts("")
    assert after_runs.get(name, 0) == runs.get(name, 0) + 1
    assert after_failures.get(name, 0) == failures.get(name, 0) + 1


async def test_a_step_failing_in_a_row_is_logged_once_and_counted_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database outage fails every step every few seconds: the log gets the first
    failure (with its traceback) and a line when the step works again, /metrics all."""
    outcomes = [RuntimeError("connection refused")] * 3 + [None]

    async def flaky(deadline: float) -> int:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return 0

    settings = dataclasses.replace(get_settings(), redis_url="")
    name = "test_flaky"
    _runs, failures = await jobs.run_counts("")
    with caplog.at_level(logging.WARNING, logger="tourline.jobs"):
        results = [await run_step(Step(name, flaky, every=1), settings) for _ in range(4)]
    assert results == [None, None, None, 0]
    lines = [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records]
    assert lines == [
        ("ERROR", f"job step {name} failed: RuntimeError: connection refused", True),
        ("WARNING", f"job step {name} works again", False),
    ]
    _runs, after = await jobs.run_counts("")
    assert after[name] == failures.get(name, 0) + 3


async def test_a_timeout_inside_a_step_is_not_reported_as_its_time_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An SMTP or socket timeout raised by the step itself is a failure like any other
    (with its traceback), not "cancelled after 120 s"."""

    async def times_out(deadline: float) -> int:
        raise TimeoutError("SMTP server did not answer")

    settings = dataclasses.replace(get_settings(), redis_url="")
    name = "test_times_out"
    with caplog.at_level(logging.WARNING, logger="tourline.jobs"):
        assert await run_step(Step(name, times_out, every=1), settings) is None
    [record] = caplog.records
    assert record.getMessage() == (
        f"job step {name} failed: timed out: TimeoutError: SMTP server did not answer"
    )
    assert record.exc_info


async def test_old_idempotency_keys_are_purged_in_batches() -> None:
    """A day of keys is not one DELETE that may run past the statement timeout (and fail
    the same way every time): each call deletes a batch, the step drains them all."""
    old = clock.now() - KEEP_FOR - timedelta(minutes=1)
    expired = 2 * PURGE_BATCH + 10
    await IdempotencyRecord.insert(
        *(
            IdempotencyRecord(scope="test", key=f"old-{n}", request_hash="x", created_at=old)
            for n in range(expired)
        )
    ).run()
    await IdempotencyRecord.insert(
        IdempotencyRecord(scope="test", key="new", request_hash="x", created_at=clock.now())
    ).run()
    assert await purge_expired() == PURGE_BATCH
    assert await run_step(step("idempotency_purged"), get_settings()) == expired - PURGE_BATCH
    assert [row["key"] for row in await IdempotencyRecord.select(IdempotencyRecord.key)] == ["new"]


async def test_stopping_lets_the_batch_in_flight_finish_and_starts_no_other() -> None:
    """`Periodic.stop()` (SIGTERM to a worker, the API's shutdown): the batch being
    worked on (a mail being sent) finishes; no further batch of the drain starts."""
    sending = asyncio.Event()
    batches: list[str] = []

    async def slow_batch(deadline: float) -> int:
        batches.append("started")
        sending.set()
        await asyncio.sleep(1)
        batches.append("finished")
        return 1  # more to do: a drain would ask for the next batch

    settings = dataclasses.replace(get_settings(), redis_url="")
    periodic = Periodic(settings, [Step("test_slow_batch", slow_batch, every=60)])
    periodic.start()
    await asyncio.wait_for(sending.wait(), 5)
    await asyncio.wait_for(periodic.stop(), 5)
    assert batches == ["started", "finished"]


async def test_stopping_cancels_a_batch_that_outlasts_the_grace() -> None:
    hung = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs(deadline: float) -> int:
        hung.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    settings = dataclasses.replace(get_settings(), redis_url="")
    periodic = Periodic(settings, [Step("test_hangs_on_stop", hangs, every=60)])
    periodic.start()
    await asyncio.wait_for(hung.wait(), 5)
    await asyncio.wait_for(periodic.stop(grace=0.2), 5)
    assert cancelled.is_set()


# ---------------------------------------------------------------- one HTTP client


@pytest.fixture
async def agency_endpoint(
    private_webhook_targets: None,
) -> AsyncIterator[tuple[str, list[tuple[Any, ...]]]]:
    """An agency's webhook endpoint that notes the connection each request came on."""
    connections: list[tuple[Any, ...]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        connections.append(tuple(request.transport.get_extra_info("peername")))
        return web.Response(text="ok")

    runner, base = await start_web_endpoint({"/hook": handle})
    try:
        yield f"{base}/hook", connections
    finally:
        await runner.cleanup()


async def test_webhook_deliveries_reuse_one_connection(
    client: httpx.AsyncClient,
    operator: Account,
    agency_endpoint: tuple[str, list[tuple[Any, ...]]],
) -> None:
    url, connections = agency_endpoint
    response = await client.post(
        "/api/v1/operator/agencies",
        json={"name": "Hook Tours", "contact_email": "hook@example.cn", "webhook_url": url},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    agency_id = uuid.UUID(response.json()["id"])
    deliver = step("webhooks_delivered")
    for n in range(3):
        assert await queue_event(agency_id, "booking.confirmed", f"test:{n}", {"n": n})
        assert await run_step(deliver, get_settings()) == 1
    assert len(connections) == 3
    # One client per process: its keep-alive connection carried every delivery.
    assert len(set(connections)) == 1, connections


# ---------------------------------------------------------------- a deadline per call


async def test_an_unresponsive_agency_holds_up_only_itself_and_every_attempt_is_recorded(
    client: httpx.AsyncClient, operator: Account, private_webhook_targets: None
) -> None:
    """Agency A's endpoint accepts connections and never answers; agency B's answers.
    B's event goes out while A's first POST is still waiting; A gets as many POSTs as
    fit in the call, each recorded (none left claimed for its lease), and the call ends
    on its deadline instead of being cancelled by its timeout."""
    from datetime import timedelta

    from app.partners.tables import WebhookAttempt, WebhookDelivery
    from app.partners.webhooks import deliver_due_webhooks

    a_deliveries: list[uuid.UUID] = []
    a_attempts_when_b_arrived: list[int] = []

    released = asyncio.Event()

    async def hangs(request: web.Request) -> web.Response:
        await released.wait()  # until the test ends
        return web.Response(text="too late")

    async def answers(request: web.Request) -> web.Response:
        await request.read()
        a_attempts_when_b_arrived.append(
            await WebhookAttempt.count().where(WebhookAttempt.delivery.is_in(a_deliveries)).run()
        )
        return web.Response(text="ok")

    runner, base = await start_web_endpoint({"/a": hangs, "/b": answers})
    try:
        agencies = {}
        for name in ("a", "b"):
            response = await client.post(
                "/api/v1/operator/agencies",
                json={"name": f"Agency {name}", "contact_email": f"{name}@example.cn",
                      "webhook_url": f"{base}/{name}"},
                headers=operator.headers,
            )  # fmt: skip
            assert response.status_code == 201, response.text
            agencies[name] = uuid.UUID(response.json()["id"])
        # A's events are the oldest: a batch in order of age has them first.
        past = clock.now() - timedelta(minutes=10)
        for n in range(3):
            with clock.frozen(past + timedelta(seconds=n)):
                assert await queue_event(agencies["a"], "booking.confirmed", f"a:{n}", {"n": n})
        with clock.frozen(past + timedelta(minutes=1)):
            assert await queue_event(agencies["b"], "booking.confirmed", "b:0", {"n": 0})
        a_deliveries += [
            row["id"]
            for row in await WebhookDelivery.select(WebhookDelivery.id)
            .where(WebhookDelivery.agency == agencies["a"])
            .run()
        ]
        # A 2-second lease: each POST is cut off after 1 s; the call has 2.7 s.
        slow = Step(
            "test_webhooks",
            lambda deadline: deliver_due_webhooks(
                claim_lease=timedelta(seconds=2), deadline=deadline
            ),
            every=1,
            timeout=3,
            drain=False,
        )
        settings = dataclasses.replace(get_settings(), redis_url="")
        assert await run_step(slow, settings) == 1
    finally:
        released.set()
        await runner.cleanup()
    assert a_attempts_when_b_arrived == [0]
    rows = (
        await WebhookDelivery.select()
        .where(WebhookDelivery.agency == agencies["a"])
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .run()
    )
    # Two POSTs fit (1 s each); the third was left for the next call, unclaimed.
    assert [row["attempts"] for row in rows] == [1, 1, 0]
    assert all("no answer within 1 s" in row["last_error"] for row in rows[:2])
    attempts = await WebhookAttempt.count().where(WebhookAttempt.delivery.is_in(a_deliveries)).run()
    assert attempts == 2
    [b] = await WebhookDelivery.select().where(WebhookDelivery.agency == agencies["b"]).run()
    assert b["status"] == "delivered"
