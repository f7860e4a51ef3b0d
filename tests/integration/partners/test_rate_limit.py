"""A partner key's rate limit holds across API processes: its count lives in Redis."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import httpx
import redis.asyncio as aioredis

from app.asgi import create_app
from app.core import clock
from app.core.settings import get_settings
from tests.conftest import Account


async def _key(client: httpx.AsyncClient, operator: Account) -> str:
    response = await client.post(
        "/api/v1/operator/agencies",
        json={"name": "Rate Tours", "contact_email": "rate@example.cn"},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/api/v1/operator/agencies/{response.json()['id']}/keys", json={}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _app_client(redis_url: str, limit: int) -> httpx.AsyncClient:
    settings = dataclasses.replace(get_settings(), redis_url=redis_url, partner_rate_limit=limit)
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_limit_is_shared_by_two_api_processes(
    client: httpx.AsyncClient, operator: Account, redis_url: str
) -> None:
    key = await _key(client, operator)
    headers = {"Authorization": f"Bearer {key}"}
    # Mid-window, so the whole test stays in one counting window.
    start = datetime.fromtimestamp((int(clock.now().timestamp()) // 60) * 60 + 10).astimezone()
    with clock.frozen(start):
        async with _app_client(redis_url, 5) as first, _app_client(redis_url, 5) as second:
            answers = [
                (
                    await (first if n % 2 else second).get("/octo/supplier", headers=headers)
                ).status_code
                for n in range(5)
            ]
            assert answers == [200] * 5
            refused = await first.get("/octo/supplier", headers=headers)
            assert refused.status_code == 429
            assert refused.json()["error"] == "TOO_MANY_REQUESTS"
            assert 1 <= int(refused.headers["Retry-After"]) <= 50
            assert (await second.get("/octo/supplier", headers=headers)).status_code == 429
            redis = aioredis.Redis.from_url(redis_url)
            try:
                keys = await redis.keys("tourline:ratelimit:partner-key:*")
                assert keys
                counts = [int(await redis.get(k) or 0) for k in keys]
                assert max(counts) >= 7
            finally:
                await redis.aclose()
        # The next window starts afresh.
        clock.advance(timedelta(seconds=60))
        async with _app_client(redis_url, 5) as first:
            assert (await first.get("/octo/supplier", headers=headers)).status_code == 200


async def test_without_redis_each_process_counts_by_itself(
    client: httpx.AsyncClient, operator: Account
) -> None:
    key = await _key(client, operator)
    headers = {"Authorization": f"Bearer {key}"}
    start = datetime.fromtimestamp((int(clock.now().timestamp()) // 60) * 60 + 10).astimezone()
    with clock.frozen(start):
        async with _app_client("", 3) as app_client:
            answers = [
                (await app_client.get("/octo/products", headers=headers)).status_code
                for _ in range(4)
            ]
    assert answers == [200, 200, 200, 429]
