"""`tourline worker`: the periodic loops, and an arq worker for the jobs enqueued on Redis
(each hold's exact expiry), that outlives Redis.

arq's own worker stops for good when its connection to Redis fails (and a Redis that
hangs blocks it forever, its connection having no read timeout). Here the arq worker runs
on a connection with timeouts, inside a loop: when Redis fails, the worker's running jobs
are cancelled (arq runs them again, and each is safe to repeat), and a new worker connects
once Redis answers again, trying after 0.5, 1, 2, 4, then every 5 seconds. The periodic
loops do not use Redis and go on meanwhile. SIGTERM or SIGINT stops everything.
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
from app.core.observability import configure_logging
from app.core.redis_client import close_clients
from app.core.settings import Settings, get_settings
from workers.periodic import Periodic
from workers.settings import WorkerSettings

logger = logging.getLogger("tourline.worker")

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
# The worker's own connection: nothing waits on it per request, so a longer read timeout
# than the API's (arq polls; no command blocks on the server).
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0


def run() -> None:
    settings = get_settings()
    configure_logging(settings.log_format)
    asyncio.run(main(settings))


async def main(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT (or until cancelled)."""
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    assert this is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, this.cancel)
    await database.open_database(settings)
    periodic = Periodic(settings)
    periodic.start()
    try:
        await serve_queue(settings)
    except asyncio.CancelledError:
        logger.info("worker stopping")
    finally:
        await periodic.stop()
        await http_clients.close_all()
        await close_clients()
        await database.close_database()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def serve_queue(settings: Settings) -> None:
    """Run arq workers on `settings.redis_url` one after the other, forever."""
    pause = FIRST_RETRY_SECONDS
    down_since: float | None = None
    while True:
        pool = ArqRedis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=READ_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        pool.default_queue_name = settings.job_queue
        worker = _worker(pool, settings.job_queue)
        try:
            await pool.ping()
            if down_since is not None:
                logger.warning(
                    "Redis is back after %.0f s: taking jobs again", loop_time() - down_since
                )
            down_since, pause = None, FIRST_RETRY_SECONDS
            await worker.main()
        except (RedisError, OSError, TimeoutError) as exc:
            if down_since is None:
                down_since = loop_time()
                logger.warning(
                    "Redis unavailable (%s: %s): periodic work goes on, jobs wait; "
                    "reconnecting", type(exc).__name__, exc,
                )  # fmt: skip
        finally:
            await _close(worker, pool)
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_RETRY_SECONDS)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _worker(pool: ArqRedis, queue_name: str) -> Worker:
    options: dict[str, Any] = {
        "functions": WorkerSettings.functions,
        "redis_pool": pool,
        "handle_signals": False,
        "max_tries": WorkerSettings.max_tries,
        "job_timeout": WorkerSettings.job_timeout,
        "queue_name": queue_name,
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
