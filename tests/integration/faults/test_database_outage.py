"""PostgreSQL taken away under a running server, the ways a network does (refused, cut
mid-request, black-holed), through a TCP proxy between the server process and the database.

During an outage every request is answered at once with a 503 (`database_unavailable`,
`Retry-After`), pages with a 503 page; afterwards the service recovers by itself with its
pool whole; `/ready` follows the database while `/health` stays up; SIGTERM still stops
`tourline serve` within its graceful-shutdown time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
import httpx
import pytest
from piccolo.querystring import QueryString

from app.booking.tables import Booking
from app.cli import GRACEFUL_SHUTDOWN_SECONDS
from app.core import clock, database
from app.core.database import write_transaction
from app.core.errors import DatabaseUnavailable
from app.core.settings import get_settings
from tests.assertions import problem
from tests.conftest import Account
from tests.factories import published_bus_departure
from tests.faults import TcpProxy, tcp_proxy
from tests.integration.faults.test_redis_outage import (
    QUEUE,
    eventually,
    forget_queue,
    server_env,
    status_of,
    tourline_worker,
)
from tests.servers import PROJECT_ROOT, _log_text, api_servers, free_port

postgres_only = pytest.mark.skipif(
    not os.environ["DATABASE_URL"].startswith(("postgresql://", "postgres://")),
    reason="PostgreSQL outages: the embedded SQLite database has no network to lose",
)

POOL_MAX = 4
# Short timeouts keep the test short; the defaults are a few seconds each.
TIMEOUTS = {
    "DATABASE_CONNECT_TIMEOUT": "1",
    "DATABASE_STATEMENT_TIMEOUT": "3",
    "DATABASE_ACQUIRE_TIMEOUT": "2",
}
# "Answered at once": well before any client would give up, never the old endless hang.
ANSWER_BOUND = 5.0
RECOVERY_BOUND = 10.0
BOOKINGS = "/api/v1/bookings"
ONE_SEAT = [{"seat_class": "standard", "passenger_type": "adult", "count": 1}]
# Time to 503 and to recovery per outage kind, printed at the end (pytest -s).
MEASURED: dict[str, float] = {}


def url_through(proxy: TcpProxy) -> str:
    """The test worker's database, reached through the proxy."""
    parsed = urlparse(os.environ["DATABASE_URL"])
    credentials = parsed.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{proxy.url_host_port}" if credentials else proxy.url_host_port
    return urlunparse(parsed._replace(netloc=netloc))


def server_environment(proxy: TcpProxy) -> dict[str, str]:
    return {
        **os.environ,
        **TIMEOUTS,
        "DATABASE_URL": url_through(proxy),
        "DATABASE_POOL_MIN": "1",
        "DATABASE_POOL_MAX": str(POOL_MAX),
    }


@contextlib.asynccontextmanager
async def departure_locked(departure_id: str) -> AsyncIterator[None]:
    """Hold the departure's row lock from beside the proxy: a hold's transaction then waits
    on it with its BEGIN done, i.e. mid-transaction, when the outage strikes."""
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT 1 FROM departure WHERE id = $1 FOR UPDATE", departure_id
            )
            yield
    finally:
        await connection.close()


async def waiting_on_locks(count: int) -> None:
    """Until `count` sessions of this database wait on a lock (the holds are inside)."""
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        deadline = time.monotonic() + 10
        while True:
            waiting = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            assert time.monotonic() < deadline, f"only {waiting} of {count} holds waiting"
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def unavailable(response: httpx.Response) -> None:
    """The 503 a client can act on: a problem with a code and when to come back."""
    problem(response, 503, "database_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= 30


def unavailable_octo(response: httpx.Response) -> None:
    """OCTO's shape of the same answer: its code for a backend that is down."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "INTERNAL_SERVER_ERROR"
    assert 1 <= int(response.headers["Retry-After"]) <= 30


def unavailable_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert 1 <= int(response.headers["Retry-After"]) <= 30


async def answers_during_outage(
    http: httpx.AsyncClient, base: str, departure_id: str
) -> list[tuple[httpx.Response, float]]:
    """What API, OCTO, page and booking clients get while the database is away."""
    return list(
        await asyncio.gather(
            timed(http.get(f"{base}/api/v1/routes")),
            timed(
                http.get(
                    f"{base}/octo/products", headers={"Authorization": "Bearer tl_unknown.secret"}
                )
            ),
            timed(http.get(f"{base}/", headers={"Accept-Language": "en"})),
            timed(http.post(f"{base}{BOOKINGS}", json=hold_body(departure_id))),
            timed(http.get(f"{base}/ready")),
        )
    )


def check_outage_answers(answers: list[tuple[httpx.Response, float]]) -> float:
    (api, api_s), (octo, octo_s), (page, page_s), (hold, hold_s), (ready, ready_s) = answers
    unavailable(api)
    unavailable_octo(octo)
    unavailable_page(page)
    unavailable(hold)
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["database"].startswith("unavailable")
    slowest = max(api_s, octo_s, page_s, hold_s, ready_s)
    assert slowest < ANSWER_BOUND, answers
    return slowest


def hold_body(departure_id: str) -> dict[str, Any]:
    return {"departure_id": departure_id, "counts": ONE_SEAT}


async def holds_in_flight(
    http: httpx.AsyncClient, base: str, departure_id: str
) -> Awaitable[list[tuple[httpx.Response, float]]]:
    """POOL_MAX holds waiting inside their transactions (every pooled connection busy)."""
    flying = asyncio.gather(
        *(
            timed(http.post(f"{base}{BOOKINGS}", json=hold_body(departure_id)))
            for _ in range(POOL_MAX)
        )
    )
    await waiting_on_locks(POOL_MAX)
    return flying


async def recovered(http: httpx.AsyncClient, base: str, since: float) -> float:
    """Seconds from `since` until /ready is green again, by itself."""
    deadline = since + RECOVERY_BOUND
    while (await http.get(f"{base}/ready")).status_code != 200:
        assert time.monotonic() < deadline, "no recovery"
        await asyncio.sleep(0.05)
    return time.monotonic() - since


async def pool_whole(http: httpx.AsyncClient, base: str, departure_id: str) -> None:
    """Three times as many concurrent holds as the pool has connections all succeed."""
    answers = await asyncio.gather(
        *(http.post(f"{base}{BOOKINGS}", json=hold_body(departure_id)) for _ in range(3 * POOL_MAX))
    )
    assert [a.status_code for a in answers] == [201] * (3 * POOL_MAX), [
        (a.status_code, a.text[:200]) for a in answers
    ]


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], log: Path, *args: str) -> AsyncIterator[tuple[Any, str]]:
    """`tourline serve` (migrations, then uvicorn as in production) until /ready is green;
    killed at the end if it is still running."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args,
            cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.returncode is None, _log_text(log)
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/ready")).status_code == 200:
                        break
                assert time.monotonic() < deadline, _log_text(log)
                await asyncio.sleep(0.1)
        yield process, base
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stopped_by_sigterm(process: Any, log: Path) -> float:
    """Send SIGTERM; the seconds it took to exit, cleanly, within the graceful time."""
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        await asyncio.wait_for(process.wait(), timeout=GRACEFUL_SHUTDOWN_SECONDS)
    except TimeoutError:
        raise AssertionError(f"serve hangs after SIGTERM:\n{_log_text(log)}") from None
    assert process.returncode == 0, _log_text(log)
    return time.monotonic() - signalled


@postgres_only
async def test_outages_answer_503_at_once_and_the_pool_survives_three_of_them(
    client: httpx.AsyncClient, operator: Account, tmp_path: Path
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        api_servers(1, server_environment(proxy), tmp_path) as [base],
        httpx.AsyncClient(timeout=30) as http,
    ):
        # 1. Refused: the server stopped. Holds in flight lose their connection mid-
        # transaction; every new request is refused a connection.
        async with departure_locked(departure["id"]):
            flying = await holds_in_flight(http, base, departure["id"])
            await proxy.refuse()
            struck = time.monotonic()
            for hold, _took in await flying:
                unavailable(hold)
            MEASURED["refused: holds in flight answered"] = time.monotonic() - struck
            assert MEASURED["refused: holds in flight answered"] < ANSWER_BOUND
            MEASURED["refused: slowest new request"] = check_outage_answers(
                await answers_during_outage(http, base, departure["id"])
            )
            assert (await http.get(f"{base}/health")).status_code == 200
        await proxy.restore()
        MEASURED["refused: recovered after"] = await recovered(http, base, time.monotonic())
        await pool_whole(http, base, departure["id"])

        # 2. Cut: a restart that came back at once. Holds in flight fail; nothing else does.
        async with departure_locked(departure["id"]):
            flying = await holds_in_flight(http, base, departure["id"])
            proxy.cut()
            struck = time.monotonic()
            for hold, _took in await flying:
                unavailable(hold)
            MEASURED["cut: holds in flight answered"] = time.monotonic() - struck
            assert MEASURED["cut: holds in flight answered"] < ANSWER_BOUND
        MEASURED["cut: recovered after"] = await recovered(http, base, struck)
        await pool_whole(http, base, departure["id"])

        # 3. Black hole: a dead host. Nothing answers; the timeouts do.
        async with departure_locked(departure["id"]):
            flying = await holds_in_flight(http, base, departure["id"])
            proxy.blackhole()
            struck = time.monotonic()
            during = asyncio.ensure_future(answers_during_outage(http, base, departure["id"]))
            for hold, _took in await flying:
                unavailable(hold)
            MEASURED["black hole: holds in flight answered"] = time.monotonic() - struck
            assert MEASURED["black hole: holds in flight answered"] < ANSWER_BOUND
            MEASURED["black hole: slowest new request"] = check_outage_answers(await during)
            assert (await http.get(f"{base}/health")).status_code == 200
        await proxy.restore()
        MEASURED["black hole: recovered after"] = await recovered(http, base, time.monotonic())
        await pool_whole(http, base, departure["id"])
    print("\ndatabase outage timings (s):")
    for name, seconds in MEASURED.items():
        print(f"  {name}: {seconds:.2f}")


@postgres_only
async def test_sigterm_during_an_outage_stops_serve_within_its_graceful_time(
    migrated_database: None, tmp_path: Path
) -> None:
    target = urlparse(os.environ["DATABASE_URL"])
    log = tmp_path / "serve.log"
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        serving(server_environment(proxy), log) as (process, base),
        httpx.AsyncClient(timeout=30) as http,
    ):
        # Every pooled connection opened, then the database dies under two requests in
        # flight and the idle rest (which never acknowledge a goodbye either).
        await asyncio.gather(*(http.get(f"{base}/api/v1/routes") for _ in range(3 * POOL_MAX)))
        proxy.blackhole()
        flying = asyncio.gather(
            *(http.get(f"{base}/api/v1/routes") for _ in range(POOL_MAX // 2)),
            return_exceptions=True,
        )
        await asyncio.sleep(0.3)
        MEASURED["SIGTERM in a black hole: exited after"] = await stopped_by_sigterm(process, log)
        answers = await flying
    # The requests in flight were answered (a 503), not dropped.
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        unavailable(answer)
    print(f"\nSIGTERM exit took {MEASURED['SIGTERM in a black hole: exited after']:.2f} s")


# ---------------------------------------------------------------- the pool itself


@contextlib.asynccontextmanager
async def engine_through(proxy: TcpProxy) -> AsyncIterator[Any]:
    """An engine of the app's own kind on the test database, through the proxy, with a
    pool of POOL_MAX and one-second timeouts."""
    settings = dataclasses.replace(
        get_settings(),
        database_url=url_through(proxy),
        database_pool_min=POOL_MAX,
        database_pool_max=POOL_MAX,
        database_connect_timeout=1,
        database_statement_timeout=1,
        database_acquire_timeout=1,
    )
    # Off the event loop: the engine checks the server's version on creation, waiting
    # (synchronously) for the proxy that this loop runs.
    engine = await asyncio.to_thread(database.create_engine, settings)
    await database.open_database(settings, engine)
    try:
        yield engine
    finally:
        await database.close_database(engine)


async def all_connections_at_once(engine: Any) -> None:
    """POOL_MAX transactions open together: only a whole pool has that many connections
    (one short, and the last one waits for a connection until its acquire timeout)."""
    together = asyncio.Barrier(POOL_MAX)

    async def one() -> None:
        async with engine.transaction():
            await engine.run_ddl("SELECT 1")
            await together.wait()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(POOL_MAX))), timeout=5)


@postgres_only
async def test_a_begin_or_commit_lost_in_a_blip_gives_its_connection_back(
    migrated_database: None,
) -> None:
    """A network blip a little longer than the statement timeout: BEGIN (or COMMIT) times
    out, then the network heals and the connection is alive again. Piccolo's transaction
    kept such a connection out of the pool for good: a few blips, and no connection left."""
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        engine_through(proxy) as engine,
    ):
        await all_connections_at_once(engine)
        for _blip in range(3):
            proxy.blackhole()
            with pytest.raises(DatabaseUnavailable):
                await transaction(engine)  # its BEGIN is lost
            await proxy.restore()
            with pytest.raises(DatabaseUnavailable):
                await transaction(engine, then=proxy.blackhole)  # its COMMIT is lost
            await proxy.restore()
        await all_connections_at_once(engine)


async def transaction(engine: Any, then: Callable[[], None] = lambda: None) -> None:
    async with engine.transaction():
        await engine.run_ddl("SELECT 1")
        then()


@postgres_only
async def test_a_connection_never_given_back_does_not_hold_up_the_shutdown(
    migrated_database: None,
) -> None:
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        engine_through(proxy) as engine,
    ):
        # A request stuck with its connection, as the database goes away.
        stuck = await engine.pool.acquire()
        proxy.blackhole()
        started = time.monotonic()
        await asyncio.wait_for(database.close_database(engine), timeout=30)
        took = time.monotonic() - started
    assert took < database.POOL_CLOSE_SECONDS + 2
    assert stuck is not None


# ---------------------------------------------------------------- SQLite


async def test_sqlite_locked_past_its_timeout_answers_503_busy_and_still_stops(
    tmp_path: Path,
) -> None:
    """The embedded database has one writer at a time; a writer that waits past the
    timeout gets a 503 (busy), and the connection it opened does not outlive it (its
    thread would keep the process from exiting)."""
    file = tmp_path / "busy.sqlite3"
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{file}",
        "DATABASE_STATEMENT_TIMEOUT": "1",
    }
    async with (
        serving(env, log, "--demo") as (process, base),
        httpx.AsyncClient(timeout=30) as http,
    ):
        with sqlite3.connect(file) as reader:
            departure, seat_class, passenger_type = reader.execute(
                "SELECT d.id, f.seat_class, f.passenger_type FROM departure d"
                " JOIN route_fare f ON f.route = d.route WHERE d.status = 'published'"
                " ORDER BY d.departs_at LIMIT 1"
            ).fetchone()
        body = {
            "departure_id": departure,
            "counts": [{"seat_class": seat_class, "passenger_type": passenger_type, "count": 1}],
        }
        writer = sqlite3.connect(file, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            answers = [await timed(http.post(f"{base}{BOOKINGS}", json=body)) for _ in range(3)]
        finally:
            writer.close()
        for answer, took in answers:
            problem(answer, 503, "database_busy")
            assert 1 <= int(answer.headers["Retry-After"]) <= 30
            assert took < ANSWER_BOUND
        created = await http.post(f"{base}{BOOKINGS}", json=body)
        assert created.status_code == 201, created.text
        MEASURED["SQLite locked: stopped after"] = await stopped_by_sigterm(process, log)


# ---------------------------------------------------------------- cancelled, closed, slow


@postgres_only
@pytest.mark.parametrize("outage", ["black hole", "refused"])
async def test_a_task_cancelled_in_a_transaction_during_an_outage_ends_cancelled_at_once(
    migrated_database: None, outage: str
) -> None:
    """SIGTERM, a loop's stop or a time limit cancels a task inside a transaction while the
    database is away: the cancel goes through at once (the rollback used to fail and turn
    it into an outage, so the stopping loop went on and its stop waited forever), and the
    pool is whole once the database is back."""
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        engine_through(proxy) as engine,
    ):
        inside = asyncio.Event()

        async def work() -> None:
            async with engine.transaction():
                await engine.run_ddl("SELECT 1")
                inside.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(work())
        await asyncio.wait_for(inside.wait(), 5)
        if outage == "black hole":
            proxy.blackhole()
        else:
            await proxy.refuse()
        started = time.monotonic()
        task.cancel()
        done, _pending = await asyncio.wait([task], timeout=10)
        took = time.monotonic() - started
        assert task in done, "the cancelled task is still running"
        assert task.cancelled(), task.exception()
        assert took < 0.5
        await proxy.restore()
        await all_connections_at_once(engine)


@postgres_only
async def test_closing_the_pool_under_transactions_in_flight_lets_them_give_back_at_once(
    migrated_database: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopping process closes its pool while transactions are still running, one of
    which then fails at COMMIT (a deferred constraint): each gives its connection back to
    the pool it came from, and the close ends as soon as they have. (The failed one's
    connection was neither given back nor closed: the close waited POOL_CLOSE_SECONDS,
    then cut every connection.)"""
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        engine_through(proxy) as engine,
    ):
        pool = engine.pool
        inside = asyncio.Barrier(POOL_MAX + 1)
        finish = asyncio.Event()

        async def one(fails_at_commit: bool) -> int:
            async with engine.transaction():
                await engine.run_ddl(
                    "CREATE TEMPORARY TABLE once (id int PRIMARY KEY DEFERRABLE INITIALLY"
                    " DEFERRED) ON COMMIT DROP"
                )
                await inside.wait()
                await finish.wait()
                if fails_at_commit:  # checked, and refused, only at COMMIT
                    await engine.run_ddl("INSERT INTO once VALUES (1), (1)")
                [row] = await engine.run_ddl("SELECT 2 AS two")
                return int(row["two"])

        transactions = [asyncio.create_task(one(n == 0)) for n in range(POOL_MAX)]
        await asyncio.wait_for(inside.wait(), 5)
        closing = asyncio.create_task(database.close_database(engine))
        await asyncio.sleep(0.2)
        assert not closing.done()
        finish.set()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="tourline.database"):
            await asyncio.wait_for(closing, timeout=database.POOL_CLOSE_SECONDS + 5)
        took = time.monotonic() - started
        failed, *committed = await asyncio.gather(*transactions, return_exceptions=True)
        assert isinstance(failed, asyncpg.UniqueViolationError), failed
        assert committed == [2] * (POOL_MAX - 1)
        assert took < 2, f"the close waited {took:.1f} s"
        assert not [r for r in caplog.records if "cut instead of closed" in r.getMessage()]
        # Every connection came back to the pool, and the pool closed them politely.
        assert pool._closed
        assert all(holder._con is None for holder in pool._holders)


@postgres_only
async def test_a_statement_stopped_by_the_statement_timeout_is_logged_as_an_error(
    migrated_database: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow statement on a healthy database (a lock wait, an unbounded DELETE) is ended
    by the server: still a 503 for the client, but logged loudly with the statement, not
    taken for an outage."""
    target = urlparse(os.environ["DATABASE_URL"])
    async with (
        tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
        engine_through(proxy) as engine,
    ):
        with caplog.at_level(logging.ERROR, logger="tourline.database"):
            with pytest.raises(DatabaseUnavailable):
                await engine.run_ddl("SELECT pg_sleep(3) AS slow_statement")
            rows = await engine.run_ddl("SELECT 1 AS one")
            assert [dict(row) for row in rows] == [{"one": 1}]
            # A query's values stay out of the log: they may be a person's details.
            slow = QueryString(
                "SELECT pg_sleep({}) AS slow_query, {} AS email", 3, "who@example.cn"
            )
            with pytest.raises(DatabaseUnavailable):
                await engine.run_querystring(slow)
    first, second = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "slow_statement" in first
    assert "statement timeout" in first
    assert "slow_query" in second
    assert "who@example.cn" not in second


@postgres_only
async def test_a_worker_started_during_an_outage_waits_and_works_once_the_database_is_back(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    """`tourline worker` started while PostgreSQL refuses connections keeps running (it
    used to exit at once) and, once the database is back, does its work: here it expires a
    hold that ran out."""
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    created = await client.post(BOOKINGS, json=hold_body(departure["id"]))
    assert created.status_code == 201, created.text
    reference = created.json()["booking"]["reference"]
    async with write_transaction():
        await (
            Booking.update({Booking.expires_at: clock.now() - timedelta(seconds=1)})
            .where(Booking.reference == reference)
            .run()
        )
    log = tmp_path / "worker.log"
    target = urlparse(os.environ["DATABASE_URL"])
    async with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        await proxy.refuse()
        env = {
            **server_env(redis_url),
            **server_environment(proxy),
            "REDIS_URL": redis_url,
            "TOURLINE_JOB_QUEUE": QUEUE,
        }
        try:
            async with tourline_worker(env, log) as worker:

                async def waiting() -> bool:
                    return "database unavailable" in log.read_text()

                # However long the process takes to start on a busy machine: it waits.
                await eventually(waiting, 60, "the worker waiting for the database")
                await asyncio.sleep(1)
                assert worker.returncode is None, log.read_text()
                assert await status_of(reference) == "on_hold"
                await proxy.restore()

                async def expired() -> bool:
                    return await status_of(reference) == "expired"

                await eventually(expired, 20, "the hold expired by the worker")
            assert worker.returncode == 0, log.read_text()
        finally:
            await forget_queue(redis_url)
    assert "database unavailable" in log.read_text()
