"""Fixed-window rate limits shared by every process through Redis (in-process without it).

A window is counted in one Redis key (`INCR` + `EXPIRE`), so any number of API processes on
any number of machines see the same count. When Redis is away (refused, hanging), a limit
is counted in this process instead (each process then allows the limit on its own): a
limit must never turn a request into an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.core import clock
from app.core.redis_client import RedisUnavailable, call

_local: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after: int


def _window(key: str, window_seconds: int) -> tuple[str, int, int]:
    """The counter's name for the current window, the window, and seconds until it ends."""
    now = int(clock.now().timestamp())
    window = now // window_seconds
    return f"tourline:ratelimit:{key}:{window}", window, (window + 1) * window_seconds - now


async def count(redis_url: str, key: str, window_seconds: int = 60) -> tuple[int, int]:
    """How many hits `key` has in the current window, and seconds until the window ends."""
    name, window, retry_after = _window(key, window_seconds)
    if redis_url:
        try:
            value = await call(redis_url, "ratelimit", lambda client: client.get(name))
            return int(value or 0), retry_after
        except RedisUnavailable:
            pass  # the hits this process counted meanwhile
    seen_window, seen = _local.get(name, (window, 0))
    return (seen if seen_window == window else 0), retry_after


@dataclass(slots=True)
class _Batch:
    """This process's hits on one counter not yet added to Redis, and the shared count
    Redis gave last."""

    window: int
    unsent: int = 0
    shared: int = 0
    sent_at: float = 0.0


_batches: dict[str, _Batch] = {}
# A batched counter is brought up to date at least this often.
BATCH_SECONDS = 1.0


async def _add(redis_url: str, name: str, amount: int, window_seconds: int) -> int:
    async def add(client: Any) -> int:
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, window_seconds + 1)
            count, _ok = await pipe.execute()
        return int(count)

    return await call(redis_url, "ratelimit", add)


def _local_hit(name: str, window: int) -> int:
    seen_window, count = _local.get(name, (window, 0))
    count = count + 1 if seen_window == window else 1
    _local[name] = (window, count)
    if len(_local) > 100_000:
        _local.clear()
    return count


async def hit(
    redis_url: str, key: str, limit: int, window_seconds: int = 60, batch: int = 1
) -> Verdict:
    """Count one request for `key`; refused once `limit` is passed within the window.

    With `batch` > 1 a process adds its hits to Redis `batch` at a time (and at least
    every second, and always before refusing): a busy limit then costs one Redis round trip
    per `batch` requests instead of one each, and the processes together may let through
    at most `batch` - 1 requests each over the limit before they see it."""
    name, window, retry_after = _window(key, window_seconds)
    if redis_url and batch > 1:
        entry = _batches.get(name)
        if entry is None or entry.window != window:
            if len(_batches) > 100_000:
                _batches.clear()
            entry = _batches[name] = _Batch(window)
        entry.unsent += 1
        now = time.monotonic()
        if (
            entry.unsent >= batch
            or now - entry.sent_at >= BATCH_SECONDS
            or entry.shared + entry.unsent > limit
        ):
            sending, entry.unsent = entry.unsent, 0
            entry.sent_at = now
            try:
                entry.shared = await _add(redis_url, name, sending, window_seconds)
            except RedisUnavailable:
                # Added once Redis is back; meanwhile the count is the last one Redis gave
                # plus this process's hits since.
                entry.unsent += sending
        count = entry.shared + entry.unsent
    elif redis_url:
        try:
            count = await _add(redis_url, name, 1, window_seconds)
        except RedisUnavailable:
            count = _local_hit(name, window)
    else:
        count = _local_hit(name, window)
    return _verdict(count, limit, retry_after)


def _verdict(count: int, limit: int, retry_after: int) -> Verdict:
    return Verdict(allowed=count <= limit, remaining=max(0, limit - count), retry_after=retry_after)
