"""Public catalogue answers may come from a short per-process cache; bookings never do."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from app.asgi import create_app
from app.core.settings import get_settings
from tests.assertions import ok, problem
from tests.conftest import Account
from tests.factories import published_bus_departure


@pytest.fixture
async def cached_app() -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    app = create_app(dataclasses.replace(get_settings(), public_cache_seconds=30))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield app, client


def _seats_left(body: dict[str, object]) -> object:
    return body["seats_left"]


async def test_a_departure_is_served_from_the_cache_until_it_expires(
    client: httpx.AsyncClient,
    operator: Account,
    cached_app: tuple[Litestar, httpx.AsyncClient],
) -> None:
    app, cached = cached_app
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    path = f"/api/v1/departures/{departure['id']}"
    assert _seats_left(ok(await cached.get(path))) == 45
    # A booking through the cached app itself goes to the database ...
    booked = ok(
        await cached.post(
            "/api/v1/bookings",
            json={
                "departure_id": departure["id"],
                "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 2}],
            },
        ),
        201,
    )
    assert booked["booking"]["status"] == "on_hold"
    # ... while the public view may lag for the cache's lifetime,
    assert _seats_left(ok(await cached.get(path))) == 45
    # an uncached app sees the change at once,
    assert _seats_left(ok(await client.get(path))) == 43
    # and once the entry is gone the cached app does too.
    await app.stores.get("response_cache").delete_all()
    assert _seats_left(ok(await cached.get(path))) == 43


async def test_each_language_has_its_own_entry_and_errors_are_not_kept(
    client: httpx.AsyncClient,
    operator: Account,
    cached_app: tuple[Litestar, httpx.AsyncClient],
) -> None:
    _app, cached = cached_app
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    path = f"/api/v1/routes/{route['slug']}"
    chinese = await cached.get(path, headers={"Accept-Language": "zh-CN"})
    english = await cached.get(path, headers={"Accept-Language": "en"})
    assert chinese.headers["content-language"] == "zh-Hans"
    assert english.headers["content-language"] == "en"
    assert ok(chinese)["name"] != ok(english)["name"]
    # The English entry stays English when asked again, and Chinese stays Chinese.
    assert ok(await cached.get(path, headers={"Accept-Language": "en"})) == ok(english)
    assert ok(await cached.get(path, headers={"Accept-Language": "zh-CN"})) == ok(chinese)
    # A 404 is not kept: the departure appears as soon as it exists.
    missing = "/api/v1/departures/00000000-0000-4000-8000-000000000000"
    problem(await cached.get(missing), 404)
    seats = ok(await cached.get(f"/api/v1/departures/{departure['id']}/seats"))
    assert len(seats["seats"]) == 45
