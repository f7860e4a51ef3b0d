"""`tourline worker`: the periodic loops, and an arq worker for the jobs enqueued on Redis
(each hold's exact expiry), that outlives Redis.

arq's own worker stops for good when its connection to Redis fails (and a Redis that
hangs blocks it forever, its connection having no read timeout). Here the arq worker runs
on a connection with timeouts, inside a loop: when Redis fails, the worker's running jobs
are cancelled (arq runs them again, and each is safe to repeat), and a new worker connects
once Redis answers again, trying after 0.5, 1, 2, 4, then every 5 seconds (a Redis that
answers PING but refuses the worker's commands, read-only or out of memory, counts as down
until a worker has run for a while). The periodic loops do not use Redis and go on
meanwhile. A worker started while the database is away waits for it the same way.

SIGTERM or SIGINT stops it: no new job or periodic run starts, the periodic runs in flight
(a mail being sent) finish, for up to `workers.periodic.STOP_GRACE_SECONDS`, then the rest
is cancelled; a second signal cuts that short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from redis.exceptions import RedisError

from app.core import database, http_clients
from app.core.errors import DatabaseUnavailable
from app.core.observability import configure_logging
from app.core.redis_client import close_clients
from app.core.settings import Settings, get_settings
from app.wiring import configure_process, wire_domains
from workers.periodic import Periodic
from workers.settings import WorkerSettings

logger = logging.getLogger("tourline.worker")

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
# The worker's own connection: nothing waits on it per request, so a longer read timeout
# than the API's (arq polls; no command blocks on the server).
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
# A worker that ran this long before failing had Redis back: the next failure is a new
# outage, retried from the first pause. One that fails sooner (PING answered, then every
# command refused) goes on backing off.
STABLE_SECONDS = 2 * MAX_RETRY_SECONDS
# While Redis keeps failing, one log line per this many seconds.
LOG_EVERY_SECONDS = 60.0


class Backoff:
    """The pauses between tries: FIRST_RETRY_SECONDS, doubling up to MAX_RETRY_SECONDS."""

    def __init__(self) -> None:
        self.pause = FIRST_RETRY_SECONDS

    def reset(self) -> None:
        self.pause = FIRST_RETRY_SECONDS

    async def wait(self) -> None:
        await asyncio.sleep(self.pause)
        self.pause = min(self.pause * 2, MAX_RETRY_SECONDS)


def run() -> None:
    settings = get_settings()
    configure_logging(settings.log_format)
    configure_process(settings)
    asyncio.run(main(settings))


async def main(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (or until cancelled)."""
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    assert this is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, this.cancel)
    periodic: Periodic | None = None
    wire_domains()
    try:
        await open_database(settings)
        periodic = Periodic(settings)
        periodic.start()
        await serve_queue(settings)
    except asyncio.CancelledError:
        logger.info("worker stopping")
    finally:
        if periodic is not None:
            try:
                await periodic.stop()
            except asyncio.CancelledError:
                logger.warning("worker stopped again: its periodic runs were cancelled")
        await http_clients.close_all()
        await close_clients()
        await database.close_database()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def open_database(settings: Settings) -> None:
    """Open the database, waiting (with backoff) while it cannot be reached: a worker
    started during an outage starts its work once the database is back."""
    backoff = Backoff()
    down_since: float | None = None
    while True:
        try:
            await database.open_database(settings)
        except DatabaseUnavailable as exc:
            if down_since is None:
                down_since = loop_time()
                logger.warning("database unavailable (%r): waiting for it", exc.__cause__ or exc)
        else:
            if down_since is not None:
                logger.warning("database is back after %.0f s", loop_time() - down_since)
            return
        await backoff.wait()


async def serve_queue(settings: Settings) -> None:
    """Run arq workers on `settings.redis_url` one after the other, forever."""
    backoff = Backoff()
    down_since: float | None = None
    back_logged = False
    logged_at = 0.0
    while True:
        pool = ArqRedis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=READ_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        pool.default_queue_name = settings.job_queue
        worker = _worker(pool, settings)
        started = loop_time()
        try:
            await pool.ping()
            if down_since is not None and not back_logged:
                back_logged = True
                logger.warning(
                    "Redis answers again after %.0f s: taking jobs again",
                    loop_time() - down_since,
                )
            await worker.main()
        except (RedisError, OSError, TimeoutError) as exc:
            now = loop_time()
            if now - started >= STABLE_SECONDS:
                # It worked for a while: this is a new outage.
                down_since, back_logged = None, False
                backoff.reset()
            if down_since is None:
                down_since = logged_at = now
                logger.warning(
                    "Redis unavailable (%s: %s): periodic work goes on, jobs wait; "
                    "reconnecting", type(exc).__name__, exc,
                )  # fmt: skip
            elif now - logged_at >= LOG_EVERY_SECONDS:
                logged_at = now
                logger.warning(
                    "Redis still failing after %.0f s (%s: %s)",
                    now - down_since, type(exc).__name__, exc,
                )  # fmt: skip
        finally:
            await _close(worker, pool)
        await backoff.wait()


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _worker(pool: ArqRedis, settings: Settings) -> Worker:
    options: dict[str, Any] = {
        # What the jobs find in their context (`ctx`).
        "ctx": {"settings": settings},
        "functions": WorkerSettings.functions,
        "redis_pool": pool,
        "handle_signals": False,
        "max_tries": WorkerSettings.max_tries,
        "job_timeout": WorkerSettings.job_timeout,
        "queue_name": settings.job_queue,
    }
    return Worker(**options)


async def _close(worker: Worker, pool: ArqRedis) -> None:
    """Cancel the worker's running jobs (arq runs them again) and drop its connection,
    without asking anything of a Redis that may be gone."""
    tasks = list(worker.tasks.values()) + list(worker.job_tasks.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        await asyncio.wait_for(pool.aclose(), 1)
