"""The background workers on a real Redis: arq burst workers built from the functions of
`workers.settings.WorkerSettings` run the jobs against the test database, in this event
loop (the database is already open: the settings' startup and shutdown are not used).

Each xdist worker (and each pytest run) has an arq queue of its own, and job ids prefixed
with it, so parallel workers never run each other's jobs; only those keys are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import default_queue_name
from arq.jobs import Job, JobStatus
from arq.worker import Worker

from app.booking.rows import BookingRow
from app.booking.schemas import BookingCreate
from app.booking.services import expiry
from app.booking.services.hold import create_booking
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingChannel, BookingEvent, BookingStatus
from app.core import clock, jobs
from app.core.database import write_transaction
from app.core.settings import PROJECT_ROOT, get_settings
from app.core.tables import OutboxMessage
from app.notifications.services import sending as notification_sending
from app.notifications.services.sending import send_lease
from app.notifications.tables import Notification, NotificationStatus
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure
from workers import jobs as worker_jobs
from workers.jobs import expire_booking
from workers.periodic import Periodic
from workers.settings import WorkerSettings

RUN = os.environ.get("TOURLINE_TEST_RUN", str(os.getpid()))
QUEUE = f"tourline-test-{RUN}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
BOOKINGS = "/api/v1/bookings"


# ---------------------------------------------------------------- Redis and workers


async def forget(pool: ArqRedis, job_ids: Sequence[str] = ()) -> None:
    """Delete this worker's queues, health checks and jobs, and the given jobs' keys."""
    # Everything of ours is QUEUE itself or has "QUEUE:" in its name (gw1 is not gw10).
    keys = [QUEUE, *[key async for key in pool.scan_iter(match=f"*{QUEUE}:*")]]
    for job_id in job_ids:
        keys += [f"arq:{kind}:{job_id}" for kind in ("job", "result", "retry", "in-progress")]
    if keys:
        await pool.delete(*keys)


@pytest.fixture
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    """An arq pool whose default queue is this xdist worker's own."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE)
    await forget(pool)
    try:
        yield pool
    finally:
        await forget(pool)
        await pool.aclose()


def burst_worker(pool: ArqRedis, queue: str = QUEUE) -> Worker:
    """A burst worker with the production job functions and retry settings."""
    return Worker(
        functions=WorkerSettings.functions,
        queue_name=queue,
        redis_pool=pool,
        burst=True,
        poll_delay=0,
        handle_signals=False,
        max_tries=WorkerSettings.max_tries,
        job_timeout=WorkerSettings.job_timeout,
    )


async def run_job(
    pool: ArqRedis, function: str, *args: Any, job_id: str, queue: str = QUEUE
) -> tuple[Worker, Any]:
    """Enqueue one job due now, run a burst worker until the queue is empty; the worker
    and the job's stored result."""
    job = await pool.enqueue_job(
        function, *args, _job_id=job_id, _queue_name=queue, _defer_until=datetime.now(UTC)
    )
    assert job is not None, f"job {job_id} already exists"
    worker = burst_worker(pool, queue)
    await worker.run_check()
    info = await job.result_info()
    assert info is not None
    assert info.success, info.result
    return worker, info


# ---------------------------------------------------------------- bookings


def contact(name: str) -> dict[str, str]:
    return {
        "name": name,
        "email": f"{name}@example.cn",
        "phone": "+86 138 0000 0000",
        "locale": "en",
    }


async def hold(
    client: httpx.AsyncClient, departure_id: str, seats: int = 1, who: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "departure_id": departure_id,
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": seats}],
    }
    if who is not None:
        body["contact"] = contact(who)
    response = await client.post(BOOKINGS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


def expires_at(created: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(created["booking"]["expires_at"].replace("Z", "+00:00"))


async def booking_row(created: dict[str, Any]) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == ref(created)).first().run()
    assert row is not None
    return dict(row)


async def booking_id(created: dict[str, Any]) -> str:
    return str((await booking_row(created))["id"])


async def status(client: httpx.AsyncClient, created: dict[str, Any]) -> str:
    """The status a guest reads (with the clock unfrozen, the guest read expires nothing)."""
    response = await client.get(
        f"{BOOKINGS}/{ref(created)}", headers={"X-Booking-Token": created["access_token"]}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def confirm(created: dict[str, Any]) -> None:
    async with write_transaction():
        await transition(
            BookingRow.from_row(await booking_row(created)),
            BookingStatus.confirmed,
            actor="test",
            reason="paid",
        )


async def seats_left(client: httpx.AsyncClient, departure_id: str) -> int:
    response = await client.get(f"/api/v1/departures/{departure_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["seats_left"])


async def expiries(created: dict[str, Any]) -> tuple[int, int]:
    """(expiry audit events, `booking.expired` outbox rows) of a booking."""
    row = await booking_row(created)
    events = await BookingEvent.count().where(
        (BookingEvent.booking == row["id"]) & (BookingEvent.to_status == "expired")
    )
    outbox = await OutboxMessage.count().where(
        (OutboxMessage.kind == "booking.expired") & (OutboxMessage.key.like(f"%{ref(created)}%"))
    )
    return events, outbox


async def notifications(recipient: str) -> list[dict[str, Any]]:
    rows = await Notification.select().where(Notification.recipient == recipient).run()
    return [dict(row) for row in rows]


# ---------------------------------------------------------------- expire_booking


async def test_expire_booking_job_expires_a_hold_at_its_time_and_once(
    client: httpx.AsyncClient, operator: Account, arq_pool: ArqRedis
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, departure["id"], seats=2, who="early")
        assert await seats_left(client, departure["id"]) == 43
    the_id = await booking_id(created)
    deadline = expires_at(created)

    # Run a second too early, the job leaves the hold alone.
    with clock.frozen(deadline - timedelta(seconds=1)):
        _worker, early = await run_job(
            arq_pool, "expire_booking", the_id, job_id=f"{QUEUE}:early:{the_id}"
        )
    assert early.result is False
    assert await status(client, created) == "on_hold"

    with clock.frozen(deadline):
        worker, result = await run_job(
            arq_pool, "expire_booking", the_id, job_id=f"{QUEUE}:expire:{the_id}"
        )
    assert worker.jobs_complete == 1
    assert result.result is True
    assert await status(client, created) == "expired"
    with clock.frozen(start):  # before the deadline: only an expiry can free the seats
        assert await seats_left(client, departure["id"]) == 45
    assert await expiries(created) == (1, 1)

    # Running it again (another job id, or the function itself) changes nothing.
    with clock.frozen(deadline + timedelta(minutes=1)):
        _worker, again = await run_job(
            arq_pool, "expire_booking", the_id, job_id=f"{QUEUE}:again:{the_id}"
        )
        assert again.result is False
        assert await expire_booking({}, the_id) is False
    assert await status(client, created) == "expired"
    assert await expiries(created) == (1, 1)
    with clock.frozen(start):
        assert await seats_left(client, departure["id"]) == 45


async def test_the_same_job_id_enqueued_twice_runs_once(
    client: httpx.AsyncClient, operator: Account, arq_pool: ArqRedis
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, departure["id"])
    the_id = await booking_id(created)
    job_id = f"{QUEUE}:expire:{the_id}"
    now = datetime.now(UTC)
    first = await arq_pool.enqueue_job("expire_booking", the_id, _job_id=job_id, _defer_until=now)
    second = await arq_pool.enqueue_job("expire_booking", the_id, _job_id=job_id, _defer_until=now)
    assert first is not None
    assert second is None
    assert await arq_pool.zcard(QUEUE) == 1

    worker = burst_worker(arq_pool)
    with clock.frozen(expires_at(created)):
        assert await worker.run_check() == 1
    result = await first.result_info()
    assert result is not None
    assert result.success
    assert result.result is True
    assert result.job_try == 1
    assert await expiries(created) == (1, 1)
    # While its result is kept, the id still cannot be enqueued again.
    assert await arq_pool.enqueue_job("expire_booking", the_id, _job_id=job_id) is None
    assert await first.status() == JobStatus.complete


async def test_expiry_job_of_a_hold_made_inside_a_transaction_waits_for_its_commit(
    client: httpx.AsyncClient,
    operator: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A waitlist offer is a hold made inside the transaction that freed its seats (an
    expiry, a cancellation). Its expiry job is scheduled (a Redis call) only once that
    transaction has committed, never while it holds the departure's lock, and not at all
    when it rolls back (its worker killed, a conflict)."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    deferred: list[tuple[str, tuple[Any, ...], str]] = []

    async def scheduled(function: str, *args: Any, at: datetime, job_id: str) -> None:
        deferred.append((function, args, job_id))

    monkeypatch.setattr(jobs, "defer", scheduled)
    request = msgspec.convert(
        {
            "departure_id": departure["id"],
            "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 2}],
            "contact": contact("waiting"),
        },
        BookingCreate,
    )

    async def offer(then_fail: bool) -> None:
        async with write_transaction():
            await create_booking(
                request, channel=BookingChannel.waitlist, actor="waitlist:test", hold_minutes=5
            )
            assert deferred == []  # not while the transaction is open
            if then_fail:
                raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        await offer(then_fail=True)
    assert deferred == []
    assert await Booking.count() == 0

    await offer(then_fail=False)
    [booking] = await Booking.select(Booking.id).run()
    assert deferred == [("expire_booking", (str(booking["id"]),), f"expire:{booking['id']}")]


# ---------------------------------------------------------------- tick


async def test_two_workers_ticking_at_once_do_every_effect_once(
    client: httpx.AsyncClient, operator: Account, arq_pool: ArqRedis, mailbox: Mailbox
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    holds = [await hold(client, departure["id"], who=f"hold{n}") for n in range(2)]
    kept = [await hold(client, departure["id"], who=f"kept{n}") for n in range(2)]
    for created in kept:
        await confirm(created)
    departs_at = datetime.fromisoformat(departure["departs_at"].replace("Z", "+00:00"))

    # 40 hours before departure: the holds have run out and the 48-hour reminder is due.
    with clock.frozen(departs_at - timedelta(hours=40)):
        queues = [f"{QUEUE}:a", f"{QUEUE}:b"]
        workers = [burst_worker(arq_pool, queue) for queue in queues]
        enqueued = [
            await arq_pool.enqueue_job("tick", _job_id=f"{queue}:tick", _queue_name=queue)
            for queue in queues
        ]
        assert await asyncio.gather(*(worker.run_check() for worker in workers)) == [1, 1]
        results = []
        for job in enqueued:
            assert job is not None
            info = await job.result_info()
            assert info is not None
            assert info.success
            results.append(info.result)
        # Whatever one tick left to the next (a row the other one had locked) goes now.
        results.append(await worker_jobs.tick())
        assert not any((await worker_jobs.tick()).values())

    assert sum(result["expired"] for result in results) == len(holds)
    assert sum(result["outbox"] for result in results) == len(holds) + len(kept)
    assert sum(result["reminders"] for result in results) == len(kept)
    # Every message went out once (email, and whatever other channel a reminder uses).
    sent = await Notification.select().where(Notification.status == NotificationStatus.sent).run()
    assert sum(result["sent"] for result in results) == len(sent)
    assert all(row["attempts"] == 1 for row in sent)
    assert await Notification.count() == len(sent)
    assert len([row for row in sent if row["channel"] == "email"]) == len(holds) + 2 * len(kept)
    for created in holds:
        assert await status(client, created) == "expired"
        assert await expiries(created) == (1, 1)
        address = f"{created['booking']['contact']['name']}@example.cn"
        [message] = mailbox.to(address)
        assert "has run out" in message["Subject"]
        assert ref(created) in message["Subject"]
    for created in kept:
        assert await status(client, created) == "confirmed"
        address = f"{created['booking']['contact']['name']}@example.cn"
        subjects = sorted(message["Subject"] for message in mailbox.to(address))
        assert len(subjects) == 2, subjects
        assert subjects[0].startswith(f"Booking {ref(created)} confirmed")
        assert subjects[1].startswith("Reminder:")
        rows = await notifications(address)
        assert sorted(row["kind"] for row in rows) == ["booking.confirmed", "reminder.48h"]
        assert all(row["status"] == NotificationStatus.sent for row in rows)
        assert all(row["attempts"] == 1 for row in rows)
    assert len(mailbox.messages) == len(holds) + 2 * len(kept)


# ---------------------------------------------------------------- a worker dies mid-job


@pytest.mark.parametrize(
    ("step", "committed"),
    # Before: as the expiry publishes that the hold's seats are free again.
    [("publish", False), ("write_transaction", True)],
    ids=["before-commit", "after-commit"],
)
async def test_expiry_job_killed_mid_way_is_retried_and_expires_once(
    client: httpx.AsyncClient,
    operator: Account,
    arq_pool: ArqRedis,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    committed: bool,
) -> None:
    """The worker stops (its job task cancelled) after the expiry was written: before its
    transaction committed (rolled back: the retry expires the hold) or after (the retry
    finds it expired and does nothing). Either way arq runs the job again, and the hold
    expires once."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, departure["id"], seats=2, who="killed")
    the_id = await booking_id(created)
    real_step = getattr(expiry, step)
    calls: list[Any] = []

    async def killed_once(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise asyncio.CancelledError  # the worker is stopped here
        await real_step(*args)

    @contextlib.asynccontextmanager
    async def killed_once_after_commit() -> AsyncIterator[None]:
        async with real_step():
            yield
        calls.append(())
        if len(calls) == 1:
            raise asyncio.CancelledError  # the worker is stopped right after the COMMIT

    killed = killed_once_after_commit if step == "write_transaction" else killed_once
    monkeypatch.setattr(expiry, step, killed)
    with clock.frozen(expires_at(created)):
        worker, result = await run_job(
            arq_pool, "expire_booking", the_id, job_id=f"{QUEUE}:expire:{the_id}"
        )
    assert worker.jobs_retried == 1
    assert result.job_try == 2
    # Committed, the retry found nothing left to do; rolled back, the retry did it all.
    assert result.result is not committed
    # The retry came by the kill point again (and found nothing to do when committed).
    assert len(calls) == 2
    assert await status(client, created) == "expired"
    assert await expiries(created) == (1, 1)
    with clock.frozen(start):
        assert await seats_left(client, departure["id"]) == 45

    with clock.frozen(expires_at(created) + timedelta(minutes=1)):
        _worker, ticked = await run_job(arq_pool, "tick", job_id=f"{QUEUE}:tick")
        assert ticked.result["expired"] == 0
        assert not any((await worker_jobs.tick()).values())
    [message] = mailbox.to("killed@example.cn")
    assert "has run out" in message["Subject"]


async def test_tick_killed_while_sending_sends_once_when_the_lease_runs_out(
    client: httpx.AsyncClient,
    operator: Account,
    arq_pool: ArqRedis,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker dies while delivering a message it had claimed: the retried tick leaves it
    to the dead worker's lease; once the lease runs out it is sent, once."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    created = await hold(client, departure["id"], who="leased")
    await confirm(created)
    send = notification_sending.send_email
    attempts: list[str] = []

    async def killed_once(settings: Any, email: Any, **options: Any) -> None:
        attempts.append(email.to)
        if len(attempts) == 1:
            raise asyncio.CancelledError  # the worker is stopped mid-delivery
        await send(settings, email, **options)

    monkeypatch.setattr(notification_sending, "send_email", killed_once)
    start = clock.now() + timedelta(minutes=1)
    with clock.frozen(start):
        worker, first = await run_job(arq_pool, "tick", job_id=f"{QUEUE}:tick:1")
    assert worker.jobs_retried == 1
    assert first.job_try == 2
    assert first.result["sent"] == 0  # still leased to the dead worker
    assert attempts == ["leased@example.cn"]
    assert mailbox.to("leased@example.cn") == []
    [row] = await notifications("leased@example.cn")
    assert row["status"] == NotificationStatus.sending  # claimed by the stopped worker

    lease = send_lease()
    with clock.frozen(start + lease - timedelta(seconds=1)):
        _worker, early = await run_job(arq_pool, "tick", job_id=f"{QUEUE}:tick:2")
    assert early.result["sent"] == 0
    with clock.frozen(start + lease):
        _worker, late = await run_job(arq_pool, "tick", job_id=f"{QUEUE}:tick:3")
        assert late.result["sent"] == 1
        _worker, after = await run_job(arq_pool, "tick", job_id=f"{QUEUE}:tick:4")
        assert after.result["sent"] == 0
    [message] = mailbox.to("leased@example.cn")
    assert message["Subject"].startswith(f"Booking {ref(created)} confirmed")
    [row] = await notifications("leased@example.cn")
    assert row["status"] == NotificationStatus.sent
    assert row["attempts"] == 2  # the stopped worker's attempt, then the one that sent it
    assert len(attempts) == 2


# ---------------------------------------------------------------- app.core.jobs


async def test_jobs_start_with_redis_defers_each_hold_expiry_and_stop_closes_the_pool(
    client: httpx.AsyncClient, operator: Account, redis_url: str
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    check = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        await jobs.start(dataclasses.replace(get_settings(), redis_url=redis_url), Periodic)
        assert jobs._redis_url == redis_url
        assert jobs._periodic is None  # with Redis, the workers run the periodic jobs
        created = await hold(client, departure["id"])
        the_id = await booking_id(created)
        job = Job(f"expire:{the_id}", redis=check)
        info = await job.info()
        assert info is not None
        assert info.function == "expire_booking"
        assert info.args == (the_id,)
        assert info.score == int(expires_at(created).timestamp() * 1000)
        assert await job.status() == JobStatus.deferred
        assert "expire_booking" in {function.__name__ for function in WorkerSettings.functions}
        # Deferring it again is a no-op: one job per hold.
        await jobs.defer("expire_booking", the_id, at=clock.now(), job_id=f"expire:{the_id}")
        assert await check.zscore(default_queue_name, f"expire:{the_id}") == info.score

        await jobs.stop()
        assert jobs._redis_url == ""
        # Stopped: holds get no job any more (the periodic sweep covers them).
        later = await hold(client, departure["id"])
        assert await Job(f"expire:{await booking_id(later)}", redis=check).status() == (
            JobStatus.not_found
        )
    finally:
        await jobs.stop()
        job_ids = [f"expire:{row['id']}" for row in await Booking.select(Booking.id).run()]
        if job_ids:
            await check.zrem(default_queue_name, *job_ids)
        await forget(check, job_ids)
        await check.aclose()


async def test_jobs_start_without_redis_runs_each_step_in_its_own_loop_and_stop_ends_them(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """Without Redis the API process runs the periodic steps itself, each in a loop of
    its own that runs at once on start; stop ends every loop (a batch in flight first
    finishes)."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, departure["id"], seats=3)
    settings = dataclasses.replace(get_settings(), redis_url="", stripe_secret_key="")
    with clock.frozen(expires_at(created)):
        await jobs.start(settings, Periodic)
        periodic = jobs._periodic
        assert periodic is not None
        loops = list(periodic.tasks)
        try:
            assert jobs._redis_url == ""
            assert sorted(task.get_name() for task in loops) == sorted(
                f"periodic:{step.name}" for step in worker_jobs.STEPS if not step.stripe
            )
            for _ in range(300):
                if await status(client, created) == "expired":
                    break
                await asyncio.sleep(0.1)
        finally:
            await jobs.stop()
    assert all(task.done() for task in loops)
    assert jobs._periodic is None
    assert await status(client, created) == "expired"
    assert await expiries(created) == (1, 1)
    with clock.frozen(start):
        assert await seats_left(client, departure["id"]) == 45


# ---------------------------------------------------------------- tourline worker


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tourline_worker_without_redis_url_is_a_usage_error() -> None:
    result = run_python("-m", "app.cli", "worker")
    assert result.returncode == 2, result.stderr
    assert "REDIS_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_settings_import_and_read_redis_url() -> None:
    code = (
        "from workers.settings import WorkerSettings as S\n"
        "r = S.redis_settings\n"
        "print(r.host, r.port, r.database, sorted(f.__name__ for f in S.functions), S.max_tries)"
    )
    result = run_python("-c", code, REDIS_URL="redis://10.1.2.3:6390/7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "10.1.2.3", "6390", "7", "['expire_booking',", "'tick']", str(WorkerSettings.max_tries),
    ]  # fmt: skip
