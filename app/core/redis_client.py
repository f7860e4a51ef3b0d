"""One Redis client per URL, shared by the rate limits, the throttles and the job counters."""

from __future__ import annotations

from typing import Any

_clients: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    client = _clients.get(url)
    if client is None:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        _clients[url] = client
    return client
