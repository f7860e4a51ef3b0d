"""Attempts that may fail (a password, a booking token), counted for every process of the
service before they are checked.

An attempt first takes a slot in each of its counters (one per key: the email, the client
address, the booking), in one atomic step per counter: Redis `INCR` (with the window's
expiry) where Redis is configured, else one upsert in the database that adds and returns
the count in the same statement. Only when every count is within its limit is the
attempt checked; a success gives its slots back, a failure keeps them. So any number of
concurrent attempts, from any number of processes sharing the Redis or the database, get
at most `limit` checks per key and window; the others are refused with 429 and
`Retry-After` (the end of the window). When Redis does not answer (in time), the database
counts meanwhile: a window that spans the switch may allow up to twice its limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from app.core import clock
from app.core.errors import TooManyRequests
from app.core.redis_client import RedisUnavailable, call
from app.core.tables import AttemptCounter


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` failed attempts per `key` in windows of `window_seconds`; a limit of
    0 is no limit."""

    key: str
    limit: int
    window_seconds: int


def _counter(limit: Limit, now: int) -> tuple[str, int, int]:
    """The counter's name for the current window, when it expires (Unix seconds) and the
    seconds until the window ends. Keys are hashed: emails and addresses are not stored."""
    window = now // limit.window_seconds
    digest = hashlib.sha256(limit.key.encode()).hexdigest()[:40]
    ends = (window + 1) * limit.window_seconds
    return f"tourline:attempts:{digest}:{limit.window_seconds}:{window}", ends, ends - now


_ADD = (
    "INSERT INTO attempt_counter (name, hits, expires_at) VALUES ({}, 1, {}) "
    "ON CONFLICT (name) DO UPDATE SET hits = attempt_counter.hits + 1 RETURNING hits"
)
_GIVE_BACK = "UPDATE attempt_counter SET hits = hits - 1 WHERE name = {}"


async def _add(redis_url: str, name: str, expires_at: int, amount: int) -> int:
    """Add `amount` (1 or -1) to a counter that lives until `expires_at`; its new count."""
    if redis_url:

        async def add(client: Any) -> int:
            async with client.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                # Relative: Redis's clock, not the service's, measures it.
                pipe.expire(name, max(1, expires_at - int(clock.now().timestamp())) + 1)
                count, _ok = await pipe.execute()
            return int(count)

        try:
            return await call(redis_url, "throttle", add)
        except RedisUnavailable:
            pass  # the database counts meanwhile
    if amount > 0:
        [row] = await AttemptCounter.raw(_ADD, name, expires_at).run()
        return int(row["hits"])
    await AttemptCounter.raw(_GIVE_BACK, name).run()
    return 0


@dataclass(slots=True)
class Attempt:
    """One attempt holding a slot in each of its counters (`attempt()`); the slots are
    given back unless `failed()` is called."""

    redis_url: str
    taken: list[tuple[str, int]] = field(default_factory=list)
    kept: bool = False

    def failed(self) -> None:
        """The attempt was wrong: it stays counted."""
        self.kept = True

    async def give_back(self) -> None:
        taken, self.taken = self.taken, []
        for name, expires_at in taken:
            await _add(self.redis_url, name, expires_at, -1)

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.kept:
            await self.give_back()


async def attempt(redis_url: str, limits: Sequence[Limit], refusal: str, code: str) -> Attempt:
    """Count one attempt under each limit, or refuse it (429 `code`, `Retry-After`) if any
    count is past its limit; use the answer as `async with`, calling `failed()` when the
    attempt turns out wrong."""
    taken = Attempt(redis_url)
    now = int(clock.now().timestamp())
    for limit in limits:
        if limit.limit <= 0:
            continue
        name, expires_at, retry_after = _counter(limit, now)
        count = await _add(redis_url, name, expires_at, 1)
        taken.taken.append((name, expires_at))
        if count > limit.limit:
            # Refused unchecked: it takes no slot.
            await taken.give_back()
            raise TooManyRequests(refusal, code=code, retry_after=max(1, retry_after))
    return taken


async def purge_expired() -> int:
    """Forget the counters of windows that have ended; how many."""
    removed = (
        await AttemptCounter.delete()
        .where(AttemptCounter.expires_at < int(clock.now().timestamp()))
        .returning(AttemptCounter.name)
        .run()
    )
    return len(removed)
