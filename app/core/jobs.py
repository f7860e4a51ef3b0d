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
