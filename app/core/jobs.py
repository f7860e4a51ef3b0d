"""Background jobs: on Redis (arq workers) when REDIS_URL is set, in-process otherwise.

Without Redis the API process runs the periodic `tick` itself every 30 seconds, so the
service works on a fresh machine; with Redis, holds also get an exact expiry job each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from app.core.redis_client import redis_client
from app.core.settings import Settings

logger = logging.getLogger("tourline.jobs")

_pool: Any = None
_runner: asyncio.Task[None] | None = None
TICK_SECONDS = 30


async def start(settings: Settings) -> None:
    global _pool, _runner
    if settings.redis_url:
        from arq import create_pool
        from arq.connections import RedisSettings

        _pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    else:
        _runner = asyncio.create_task(_run_in_process())


async def stop() -> None:
    global _pool, _runner
    if _runner is not None:
        _runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _runner
        _runner = None
    if _pool is not None:
        await _pool.aclose()
        _pool = None


async def _run_in_process() -> None:
    from workers.jobs import tick

    while True:
        try:
            await tick()
        except Exception:  # keep the loop alive; the next tick retries
            logger.exception("in-process jobs failed")
        await asyncio.sleep(TICK_SECONDS)


async def defer(function: str, *args: Any, at: datetime, job_id: str) -> None:
    """Schedule a job on the workers (no-op without Redis: the periodic sweep covers it)."""
    if _pool is None:
        return
    try:
        await _pool.enqueue_job(function, *args, _job_id=job_id, _defer_until=at)
    except Exception:  # the periodic sweep is the safety net
        logger.exception("could not schedule %s", job_id)


# Job runs and failures, for /metrics: in Redis when there is one (the workers and every API
# process count into the same hash), in this process otherwise (the in-process tick).
_JOB_RUNS_KEY = "tourline:jobs:runs"
_JOB_FAILURES_KEY = "tourline:jobs:failures"
_local_runs: dict[str, int] = {}
_local_failures: dict[str, int] = {}


async def record_run(redis_url: str, job: str, ok: bool) -> None:
    if redis_url:
        try:
            client = redis_client(redis_url)
            await client.hincrby(_JOB_RUNS_KEY, job, 1)
            if not ok:
                await client.hincrby(_JOB_FAILURES_KEY, job, 1)
        except Exception:  # metrics must never stop the jobs
            logger.warning("could not count the run of %s", job)
        return
    _local_runs[job] = _local_runs.get(job, 0) + 1
    if not ok:
        _local_failures[job] = _local_failures.get(job, 0) + 1


async def run_counts(redis_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """(runs, failures) per job name."""
    if redis_url:
        client = redis_client(redis_url)
        runs = await client.hgetall(_JOB_RUNS_KEY)
        failures = await client.hgetall(_JOB_FAILURES_KEY)

        def decoded(values: dict[bytes, bytes]) -> dict[str, int]:
            return {key.decode(): int(value) for key, value in values.items()}

        return decoded(runs), decoded(failures)
    return dict(_local_runs), dict(_local_failures)
