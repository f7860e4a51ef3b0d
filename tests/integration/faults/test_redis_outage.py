"""Redis taken away under a real server and a real `tourline worker`: a TCP proxy (in this
process) sits between them and Redis and refuses or black-holes the traffic.

Redis is an accelerator: while it is away the public and partner APIs answer as usual
(limits counted per process), a booking is answered at once (its expiry job is left to
the sweep), the failures are counted in /metrics, and a worker keeps running and takes
jobs again once Redis is back. A step that hangs (an SMTP server that does not answer)
holds up no other step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.jobs import Job

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.settings import get_settings
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure
from tests.faults import TcpProxy, tcp_proxy
from tests.servers import PROJECT_ROOT, api_servers
from workers.jobs import STEPS, run_step

RUN = os.environ.get("TOURLINE_TEST_RUN", str(os.getpid()))
QUEUE = f"tourline-faults-{RUN}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
BOOKINGS = "/api/v1/bookings"


# ---------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def redis_behind_proxy(redis_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test Redis, and the URL of the same database through it."""
    target = urlparse(redis_url)
    async with tcp_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy, target._replace(netloc=proxy.url_host_port).geturl()


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "TOURLINE_JOB_QUEUE": QUEUE,
        # The limits are on, as in production (the test environment turns them off).
        "TOURLINE_PUBLIC_RATE_LIMIT": "600",
        "TOURLINE_LOGIN_FAILURE_LIMIT": "10",
        # Each test is its own caller (X-Forwarded-For from the proxy in front).
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        **extra,
    }


def random_ip() -> str:
    """A documentation address (only ever a header value here), its own for this test."""
    return f"2001:db8::{random.randint(1, 0xFFFF):x}:{random.randint(1, 0xFFFF):x}"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus page (0 when it is not there)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def partner_key(client: httpx.AsyncClient, operator: Account) -> str:
    response = await client.post(
        "/api/v1/operator/agencies",
        json={"name": "Outage Tours", "contact_email": "outage@example.cn"},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/api/v1/operator/agencies/{response.json()['id']}/keys", json={}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def hold_body(departure_id: str, who: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "departure_id": departure_id,
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
    }
    if who is not None:
        body["contact"] = {
            "name": who, "email": f"{who}@example.cn", "phone": "+86 138 0000 0000",
            "locale": "en",
        }  # fmt: skip
    return body


async def status_of(reference: str) -> str:
    row = await Booking.select(Booking.status).where(Booking.reference == reference).first().run()
    assert row is not None
    return str(row["status"])


@contextlib.asynccontextmanager
async def tourline_worker(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `tourline worker` process; stopped with SIGTERM, which it must obey."""
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "worker", cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise AssertionError("worker ignored SIGTERM") from None


async def eventually(check: Any, seconds: float, what: str) -> float:
    """Wait until `await check()` is true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def forget_queue(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        keys = [QUEUE, *[key async for key in redis.scan_iter(match=f"*{QUEUE}:*")]]
        await redis.delete(*keys)
    finally:
        await redis.aclose()


# ---------------------------------------------------------------- the API


async def test_with_redis_refused_public_octo_and_login_answer_as_usual(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    octo = {"Authorization": f"Bearer {await partner_key(client, operator)}"}
    me = {"X-Forwarded-For": random_ip()}
    async with (
        redis_behind_proxy(redis_url) as (proxy, proxied_url),
        api_servers(1, server_env(proxied_url), tmp_path) as [base],
        httpx.AsyncClient(base_url=base, timeout=10, headers=me) as http,
    ):
        assert (await http.get("/api/v1/routes")).status_code == 200
        await proxy.refuse()
        started = time.monotonic()
        answers = {
            "routes": await http.get("/api/v1/routes"),
            "departure": await http.get(f"/api/v1/departures/{departure['id']}"),
            "octo": await http.get("/octo/supplier", headers=octo),
            "octo products": await http.get("/octo/products", headers=octo),
            "login": await http.post(
                "/api/v1/auth/login", json={"email": operator.email, "password": "wrong-one"}
            ),
            "hold": await http.post(BOOKINGS, json=hold_body(departure["id"])),
        }
        elapsed = time.monotonic() - started
        ready = await http.get("/ready")
        metrics = (await http.get("/metrics")).text

        # Back: the limits are counted in Redis again.
        await proxy.restore()
        await eventually(lambda: _is_ready(http), 15, "/ready after Redis came back")
        await asyncio.sleep(1.1)  # the per-address count goes to Redis at least every second
        assert (await http.get("/api/v1/routes")).status_code == 200

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "routes": 200, "departure": 200, "octo": 200, "octo products": 200, "login": 401,
        "hold": 201,
    }, {name: answer.text[:300] for name, answer in answers.items()}  # fmt: skip
    assert answers["login"].json()["code"] == "invalid_credentials"
    assert elapsed < 5, elapsed
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    assert metric(metrics, "tourline_redis_failures_total", use="ratelimit") >= 1
    assert metric(metrics, "tourline_redis_failures_total", use="jobs") >= 1
    redis = aioredis.Redis.from_url(redis_url)
    try:
        counted = [
            key
            async for key in redis.scan_iter(
                match=f"tourline:ratelimit:ip:{me['X-Forwarded-For']}:*"
            )
        ]
    finally:
        await redis.aclose()
    assert counted, "the per-address limit is counted in Redis again"


async def _is_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/ready")).status_code == 200


async def test_with_redis_black_holed_a_booking_is_answered_at_once_and_the_sweep_expires_it(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    async with (
        redis_behind_proxy(redis_url) as (proxy, proxied_url),
        api_servers(1, server_env(proxied_url), tmp_path) as [base],
        httpx.AsyncClient(
            base_url=base, timeout=30, headers={"X-Forwarded-For": random_ip()}
        ) as http,
    ):
        assert (await http.get("/api/v1/routes")).status_code == 200
        proxy.blackhole()
        timings = []
        created = []
        for _ in range(2):
            started = time.monotonic()
            response = await http.post(BOOKINGS, json=hold_body(departure["id"]))
            timings.append(time.monotonic() - started)
            assert response.status_code == 201, response.text
            created.append(response.json())
        started = time.monotonic()
        ready = await http.get("/ready")
        ready_took = time.monotonic() - started
        metrics = (await http.get("/metrics")).text
        await proxy.restore()

    # Half a second for Redis at most, then the breaker skips it.
    assert timings[0] < 2.0, timings
    assert timings[1] < 1.0, timings
    assert ready.status_code == 503
    assert ready_took < 3, ready_took
    assert metric(metrics, "tourline_redis_failures_total", use="jobs") >= 2
    # No expiry job was scheduled; the sweep expires the holds once they run out.
    check = aioredis.Redis.from_url(redis_url)
    try:
        for booking in created:
            row = (
                await Booking.select(Booking.id)
                .where(Booking.reference == booking["booking"]["reference"])
                .first()
                .run()
            )
            assert row is not None
            assert not await check.exists(f"arq:job:expire:{row['id']}")
    finally:
        await check.aclose()
    expires_at = datetime.fromisoformat(created[0]["booking"]["expires_at"].replace("Z", "+00:00"))
    sweep = next(step for step in STEPS if step.name == "expired")
    with clock.frozen(expires_at + timedelta(seconds=1)):
        assert await run_step(sweep, get_settings()) == 2
    for booking in created:
        assert await status_of(booking["booking"]["reference"]) == "expired"


async def test_the_app_starts_while_redis_is_down_and_schedules_jobs_once_it_is_back(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    check = aioredis.Redis.from_url(redis_url)
    job_keys: list[str] = []
    try:
        async with redis_behind_proxy(redis_url) as (proxy, proxied_url):
            await proxy.refuse()
            async with (
                api_servers(1, server_env(proxied_url), tmp_path) as [base],
                httpx.AsyncClient(
                    base_url=base, timeout=10, headers={"X-Forwarded-For": random_ip()}
                ) as http,
            ):
                before = await http.post(BOOKINGS, json=hold_body(departure["id"]))
                assert (await http.get("/ready")).status_code == 503
                await proxy.restore()
                await eventually(lambda: _is_ready(http), 15, "/ready after Redis came up")
                after = await http.post(BOOKINGS, json=hold_body(departure["id"]))
        assert before.status_code == 201, before.text
        assert after.status_code == 201, after.text
        for created in (before, after):
            row = (
                await Booking.select(Booking.id)
                .where(Booking.reference == created.json()["booking"]["reference"])
                .first()
                .run()
            )
            assert row is not None
            job_keys.append(f"arq:job:expire:{row['id']}")
        # Only the hold made once Redis was up has its expiry job (the sweep has the other).
        assert [bool(await check.exists(key)) for key in job_keys] == [False, True]
    finally:
        if job_keys:
            await check.delete(*job_keys)
        await forget_queue(redis_url)
        await check.aclose()


# ---------------------------------------------------------------- the worker


async def test_tourline_worker_starts_without_redis_outlives_a_refusal_and_runs_a_new_job(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.post(BOOKINGS, json=hold_body(departure["id"]))
    assert response.status_code == 201, response.text
    reference = response.json()["booking"]["reference"]
    row = await Booking.select(Booking.id).where(Booking.reference == reference).first().run()
    assert row is not None
    booking_id = str(row["id"])
    log = tmp_path / "worker.log"
    await forget_queue(redis_url)
    check = aioredis.Redis.from_url(redis_url)
    try:
        async with redis_behind_proxy(redis_url) as (proxy, proxied_url):
            # It starts while Redis is down, and waits for it.
            await proxy.refuse()
            async with tourline_worker(server_env(proxied_url), log) as worker:
                await asyncio.sleep(2)
                assert worker.returncode is None, log.read_text()
                await proxy.restore()
                # Connected: arq's health check key appears with its first poll.
                await eventually(
                    lambda: check.exists(f"{QUEUE}:health-check"), 30, "worker connected"
                )
                await proxy.refuse()
                await asyncio.sleep(4)
                assert worker.returncode is None, log.read_text()
                await proxy.restore()

                # The hold runs out now; a job enqueued after the outage expires it.
                async with write_transaction():
                    await (
                        Booking.update({Booking.expires_at: clock.now() - timedelta(seconds=1)})
                        .where(Booking.id == row["id"])
                        .run()
                    )
                job_id = f"{QUEUE}:expire:{booking_id}"
                pool = ArqRedis.from_url(redis_url)
                try:
                    job = await pool.enqueue_job(
                        "expire_booking", booking_id, _job_id=job_id, _queue_name=QUEUE,
                        _defer_until=datetime.now(UTC),
                    )  # fmt: skip
                    assert job is not None

                    async def finished() -> bool:
                        return await Job(job_id, redis=pool).result_info() is not None

                    await eventually(finished, 20, "the job after the outage")
                    info = await Job(job_id, redis=pool).result_info()
                finally:
                    await pool.aclose()
                assert worker.returncode is None
            assert worker.returncode == 0, log.read_text()
    finally:
        await forget_queue(redis_url)
        await check.aclose()
    assert info is not None
    assert info.success, info.result
    # The job expired it, or the worker's own sweep was quicker: once, either way.
    assert await status_of(reference) == "expired"
    assert "Redis unavailable" in log.read_text()


async def test_a_hanging_smtp_server_does_not_hold_up_the_expiry_sweep(
    client: httpx.AsyncClient, operator: Account, redis_url: str, mailbox: Mailbox, tmp_path: Path
) -> None:
    """The mail step hangs on an SMTP server that accepts and never answers; meanwhile
    a hold that runs out is expired by the worker within one sweep period, not after
    the mail step gives up (15 s a message)."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    for n in range(3):
        response = await client.post(BOOKINGS, json=hold_body(departure["id"], who=f"mail{n}"))
        assert response.status_code == 201, response.text
        confirmed = (
            await Booking.select()
            .where(Booking.reference == response.json()["booking"]["reference"])
            .first()
            .run()
        )
        assert confirmed is not None
        async with write_transaction():
            await transition(
                BookingRow.from_row(confirmed), BookingStatus.confirmed, actor="test", reason="paid"
            )
    late = await client.post(BOOKINGS, json=hold_body(departure["id"]))
    assert late.status_code == 201, late.text
    reference = late.json()["booking"]["reference"]
    await forget_queue(redis_url)
    smtp = urlparse(f"smtp://{os.environ['SMTP_HOST']}:{os.environ['SMTP_PORT']}")
    try:
        async with tcp_proxy(smtp.hostname or "127.0.0.1", smtp.port or 25) as smtp_proxy:
            smtp_proxy.blackhole()
            env = server_env(redis_url, SMTP_PORT=str(smtp_proxy.port))
            async with tourline_worker(env, tmp_path / "worker.log") as worker:
                # The worker's mail step is stuck talking to the SMTP server.
                await eventually(_accepted(smtp_proxy), 30, "the mail step reached the SMTP server")
                async with write_transaction():
                    await (
                        Booking.update({Booking.expires_at: clock.now() - timedelta(seconds=1)})
                        .where(Booking.reference == reference)
                        .run()
                    )

                async def expired() -> bool:
                    return await status_of(reference) == "expired"

                await eventually(expired, 15, "the hold expired while mail hangs")
                assert worker.returncode is None
                assert mailbox.messages == []
    finally:
        await forget_queue(redis_url)


def _accepted(proxy: TcpProxy) -> Any:
    async def check() -> bool:
        return proxy.accepted > 0

    return check
