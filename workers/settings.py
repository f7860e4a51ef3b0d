"""arq worker settings. Run `tourline worker` (workers/runner.py): it also runs the
periodic loops and outlives Redis outages. `arq workers.settings.WorkerSettings` works too,
but arq's own runner stops for good when Redis goes away."""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings

import app  # noqa: F401 - sets PICCOLO_CONF before tables are used
from app.core import database, http_clients
from app.core.settings import get_settings
from app.wiring import configure_process, wire_domains
from workers.jobs import expire_booking, tick
from workers.periodic import Periodic


async def startup(ctx: dict[str, Any]) -> None:
    ctx["settings"] = settings = get_settings()
    wire_domains()
    configure_process(settings)
    await database.open_database(settings)
    ctx["periodic"] = periodic = Periodic(settings)
    periodic.start()


async def shutdown(ctx: dict[str, Any]) -> None:
    periodic = ctx.pop("periodic", None)
    if periodic is not None:
        await periodic.stop()
    await http_clients.close_all()
    await database.close_database()


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url or "redis://127.0.0.1:6379/0"
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    # The jobs enqueued on Redis: each hold's expiry at its time, and `tick` (every
    # periodic step once) when someone wants it now. The periodic work itself runs in
    # loops beside the worker (workers/periodic.py), not as cron jobs.
    functions: ClassVar[list[Any]] = [expire_booking, tick]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    queue_name = get_settings().job_queue
    max_tries = 5
    job_timeout = 120
