"""Fixed-window rate limits shared by every process through Redis (in-process without it).

A window is counted in one Redis key (`INCR` + `EXPIRE`), so any number of API processes on
any number of machines see the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core import clock
from app.core.redis_client import redis_client

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
        value = await redis_client(redis_url).get(name)
        return int(value or 0), retry_after
    seen_window, seen = _local.get(name, (window, 0))
    return (seen if seen_window == window else 0), retry_after


async def hit(redis_url: str, key: str, limit: int, window_seconds: int = 60) -> Verdict:
    """Count one request for `key`; refused once `limit` is passed within the window."""
    name, window, retry_after = _window(key, window_seconds)
    if redis_url:
        client = redis_client(redis_url)
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds + 1)
            count, _ok = await pipe.execute()
        count = int(count)
    else:
        seen_window, count = _local.get(name, (window, 0))
        count = count + 1 if seen_window == window else 1
        _local[name] = (window, count)
        if len(_local) > 100_000:
            _local.clear()
    return Verdict(allowed=count <= limit, remaining=max(0, limit - count), retry_after=retry_after)
