"""arq worker: `tourline worker` (or `arq workers.settings.WorkerSettings`)."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

import app  # noqa: F401 - sets PICCOLO_CONF before tables are used
from app.core import database
from app.core.settings import get_settings
from workers.jobs import expire_booking, tick


async def startup(ctx: dict[str, Any]) -> None:
    await database.open_database(get_settings())


async def shutdown(ctx: dict[str, Any]) -> None:
    await database.close_database()


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url or "redis://127.0.0.1:6379/0"
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [expire_booking, tick]
    # Every 30 seconds; each step is idempotent, so two workers running it is harmless.
    cron_jobs: ClassVar[list[Any]] = [cron(tick, second={0, 30}, unique=True, run_at_startup=True)]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    max_tries = 5
    job_timeout = 120
