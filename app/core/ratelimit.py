"""Fixed-window rate limits shared by every process through Redis (in-process without it).

A window is counted in one Redis key (`INCR` + `EXPIRE`), so any number of API processes on
any number of machines see the same count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core import clock

_clients: dict[str, Any] = {}
_local: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after: int


def _redis(url: str) -> Any:
    client = _clients.get(url)
    if client is None:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        _clients[url] = client
    return client


async def hit(redis_url: str, key: str, limit: int, window_seconds: int = 60) -> Verdict:
    """Count one request for `key`; refused once `limit` is passed within the window."""
    now = int(clock.now().timestamp())
    window = now // window_seconds
    retry_after = (window + 1) * window_seconds - now
    name = f"tourline:ratelimit:{key}:{window}"
    if redis_url:
        client = _redis(redis_url)
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
