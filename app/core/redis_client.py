"""One Redis client per URL (and event loop), shared by the rate limits, the throttles, the
job counters and the enqueueing of jobs; and the breaker that keeps Redis an accelerator.

Nothing a tourist or an agency does needs Redis to succeed: every use goes through `call`,
which gives up after a short timeout and raises `RedisUnavailable`, and the caller goes on
without Redis (a limit counted in this process, a job left to the periodic sweep). After a
failure the breaker skips Redis for `PAUSE_SECONDS`, then one call tries again. So a Redis
that hangs costs a timeout (up to `2 * TIMEOUT_SECONDS`) to every request that was already
waiting on it when it went away (they all time out together), and to the one trying request
per pause; the requests in between skip it at once. Each use that went on
without Redis is counted in /metrics (`tourline_redis_failures_total{use=...}`), and the
outage is logged when it starts, once a minute while it lasts, and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from arq.connections import ArqRedis
from prometheus_client import Counter
from redis.exceptions import RedisError

logger = logging.getLogger("tourline.redis")

# A request waits at most this long for Redis (connecting, or one answer).
TIMEOUT_SECONDS = 0.5
# After a failure, Redis is left alone this long before one call tries it again.
PAUSE_SECONDS = 5.0
# While Redis stays away, one log line per this many seconds.
LOG_EVERY_SECONDS = 60.0

REDIS_FAILURES = Counter(
    "tourline_redis_failures",
    "Uses of Redis that went on without it (refused, timed out, or skipped while it is "
    "away), by use",
    ["use"],
)

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer in time (or is being left alone after failing)."""


@dataclass(slots=True)
class _Breaker:
    retry_at: float = 0.0
    down_since: float | None = None
    logged_at: float = 0.0
    skipped: int = 0


_clients: dict[str, tuple[asyncio.AbstractEventLoop, ArqRedis]] = {}
_breakers: dict[str, _Breaker] = {}


def redis_client(url: str) -> ArqRedis:
    """This event loop's client for `url` (created on first use; connects lazily).

    An arq client (a Redis client that can also enqueue jobs), with short timeouts: it
    serves requests, which must never wait long for Redis."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(url)
    if entry is None or entry[0] is not loop:
        client = ArqRedis.from_url(
            url,
            socket_connect_timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            # Idle connections are checked before use, so one cut by a restart is
            # replaced instead of failing a request.
            health_check_interval=30,
        )
        entry = _clients[url] = (loop, client)
    return entry[1]


async def close_clients() -> None:
    """Close this event loop's clients (on shutdown)."""
    loop = asyncio.get_running_loop()
    for url, (client_loop, client) in list(_clients.items()):
        if client_loop is loop:
            del _clients[url]
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(client.aclose(), TIMEOUT_SECONDS)


async def call(url: str, use: str, operation: Callable[[ArqRedis], Awaitable[T]]) -> T:
    """`operation` on the client for `url`, or `RedisUnavailable` within about
    TIMEOUT_SECONDS (at once while the breaker is open)."""
    breaker = _breakers.setdefault(url, _Breaker())
    now = time.monotonic()
    if now < breaker.retry_at:
        breaker.skipped += 1
        REDIS_FAILURES.labels(use).inc()
        raise RedisUnavailable(use)
    if breaker.down_since is not None:
        # This call tries Redis again; the others keep skipping it meanwhile.
        breaker.retry_at = now + PAUSE_SECONDS
    try:
        # The socket timeouts bound each step; this bounds a pipeline's several steps.
        result = await asyncio.wait_for(operation(redis_client(url)), 2 * TIMEOUT_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        _failed(breaker, use, exc)
        raise RedisUnavailable(use) from exc
    if breaker.down_since is not None:
        logger.warning(
            "Redis is back after %.0f s (%d uses went on without it)",
            time.monotonic() - breaker.down_since, breaker.skipped,
        )  # fmt: skip
        _breakers[url] = _Breaker()
    return result


def _failed(breaker: _Breaker, use: str, exc: BaseException) -> None:
    now = time.monotonic()
    REDIS_FAILURES.labels(use).inc()
    breaker.retry_at = now + PAUSE_SECONDS
    reason = f"{type(exc).__name__}: {exc}"
    if breaker.down_since is None:
        breaker.down_since = breaker.logged_at = now
        logger.warning(
            "Redis unavailable (%s, while used for %s): going on without it, trying again "
            "every %.0f s", reason, use, PAUSE_SECONDS,
        )  # fmt: skip
    elif now - breaker.logged_at >= LOG_EVERY_SECONDS:
        breaker.logged_at = now
        logger.warning(
            "Redis still unavailable after %.0f s (%s; %d uses went on without it)",
            now - breaker.down_since, reason, breaker.skipped,
        )  # fmt: skip


async def ping(url: str) -> str:
    """ "ok", or why Redis cannot be reached (for /ready). Always asks Redis, even while
    the breaker is open, and closes the breaker when Redis answers."""
    breaker = _breakers.get(url)
    if breaker is not None:
        breaker.retry_at = 0.0
    try:
        await call(url, "ready", lambda client: client.ping())
    except RedisUnavailable as exc:
        cause = exc.__cause__
        return f"unavailable: {type(cause).__name__ if cause else 'RedisUnavailable'}"
    return "ok"
