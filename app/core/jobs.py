"""Background jobs: on Redis (arq workers) when REDIS_URL is set, in-process otherwise.

The periodic work (expiry sweep, outbox, mail, refunds, agency webhooks, ...) runs as one
loop per step (workers/periodic.py): in every `tourline worker` process with Redis, in the
API process without it, so the service works on a fresh machine. With Redis, holds also
get an exact expiry job each; enqueueing it never holds up an answer: Redis is connected
on first use (the app starts while Redis is down), the enqueue gives up after a short
timeout, and the sweep expires the hold instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from app.core.redis_client import RedisUnavailable, call, close_clients
from app.core.settings import Settings


class Loops(Protocol):
    """The periodic steps run in this process (`workers.periodic.Periodic`)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


logger = logging.getLogger("tourline.jobs")

# The Redis (and queue) that jobs are enqueued on, once started with one.
_redis_url = ""
_queue = ""
# The periodic loops this process runs (without Redis).
_periodic: Loops | None = None


async def start(settings: Settings, in_process: Callable[[Settings], Loops]) -> None:
    """Enqueue on the settings' Redis; without one, run the periodic steps here
    (`in_process`, given by the process that composes the workers)."""
    global _redis_url, _queue, _periodic
    if settings.redis_url:
        _redis_url, _queue = settings.redis_url, settings.job_queue
    else:
        _periodic = in_process(settings)
        _periodic.start()


async def stop() -> None:
    global _redis_url, _periodic
    if _periodic is not None:
        await _periodic.stop()
        _periodic = None
    if _redis_url:
        _redis_url = ""
        await close_clients()


async def defer(function: str, *args: Any, at: datetime, job_id: str) -> None:
    """Schedule a job on the workers (no-op without Redis: the periodic sweep covers it,
    and covers it too when Redis does not answer in time)."""
    if not _redis_url:
        return
    try:
        await call(
            _redis_url,
            "jobs",
            lambda client: client.enqueue_job(
                function, *args, _job_id=job_id, _defer_until=at, _queue_name=_queue
            ),
        )
    except RedisUnavailable:
        pass  # counted and logged by the breaker; the sweep is the safety net
    except Exception:  # a bug here must not turn a committed booking into an error
        logger.exception("could not schedule %s", job_id)


# Job runs and failures, for /metrics: in Redis when there is one (the workers and every API
# process count into the same hash), in this process otherwise (the in-process loops), and
# in this process too while Redis is away.
_JOB_RUNS_KEY = "tourline:jobs:runs"
_JOB_FAILURES_KEY = "tourline:jobs:failures"
_local_runs: dict[str, int] = {}
_local_failures: dict[str, int] = {}


async def record_run(redis_url: str, job: str, ok: bool) -> None:
    if redis_url:

        async def count(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hincrby(_JOB_RUNS_KEY, job, 1)
                if not ok:
                    pipe.hincrby(_JOB_FAILURES_KEY, job, 1)
                await pipe.execute()

        try:
            await call(redis_url, "job_counts", count)
            return
        except RedisUnavailable:
            pass  # metrics must never stop the jobs
    _local_runs[job] = _local_runs.get(job, 0) + 1
    if not ok:
        _local_failures[job] = _local_failures.get(job, 0) + 1


async def run_counts(redis_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """(runs, failures) per job name."""
    if redis_url:

        async def read(client: Any) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
            return await client.hgetall(_JOB_RUNS_KEY), await client.hgetall(_JOB_FAILURES_KEY)

        def decoded(values: dict[bytes, bytes]) -> dict[str, int]:
            return {key.decode(): int(value) for key, value in values.items()}

        try:
            runs, failures = await call(redis_url, "job_counts", read)
            return decoded(runs), decoded(failures)
        except RedisUnavailable:
            pass  # this process's own, rather than no page at all
    return dict(_local_runs), dict(_local_failures)
