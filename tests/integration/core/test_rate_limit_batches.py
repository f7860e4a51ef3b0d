"""Busy limits are counted in Redis in batches: cheap, and still shared by every process."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from app.core import ratelimit


async def test_a_batched_limit_refuses_exactly_at_the_limit_and_sees_other_processes(
    redis_url: str,
) -> None:
    key = f"test-batch:{uuid.uuid4().hex}"
    verdicts = [await ratelimit.hit(redis_url, key, 100, batch=10) for _ in range(100)]
    assert all(v.allowed for v in verdicts)
    # Before refusing, the process adds what it has not sent yet: the 101st is refused.
    refused = await ratelimit.hit(redis_url, key, 100, batch=10)
    assert not refused.allowed
    assert refused.retry_after > 0
    # Redis holds every hit made so far: nothing was lost in the batches.
    name, _window, _retry = ratelimit._window(key, 60)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert int(await client.get(name) or 0) == 101
    finally:
        await client.aclose()


async def test_hits_of_another_process_are_seen_within_one_batch(redis_url: str) -> None:
    key = f"test-batch:{uuid.uuid4().hex}"
    assert (await ratelimit.hit(redis_url, key, 50, batch=5)).allowed
    # Another process has used 45 of the 50 meanwhile.
    name, _window, _retry = ratelimit._window(key, 60)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.incrby(name, 45)
    finally:
        await client.aclose()
    answers = [(await ratelimit.hit(redis_url, key, 50, batch=5)).allowed for _ in range(10)]
    # This process sees the shared count at its next batch (5 hits): at most 4 go over,
    # and every one after is refused.
    assert answers.count(True) <= 4
    assert not any(answers[4:])
