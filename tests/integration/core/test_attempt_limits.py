"""Failed-attempt limits hold for concurrent guesses and for every process of the service:
each attempt is counted (Redis, or the database without it) before it is checked."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.booking.controllers import TOKEN_GUESSES_PER_ADDRESS, TOKEN_GUESSES_PER_BOOKING
from app.core import clock
from app.core.tables import AttemptCounter
from app.core.throttle import purge_expired
from tests.assertions import ok, problem
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import published_bus_departure
from tests.integration.core.test_http_security import (
    app_client,
    login,
    new_staff,
    random_ip,
    window_start,
)

BOOKINGS = "/api/v1/bookings"
CONTACT = {"name": "Zhao Min", "email": "zhao.min@example.com", "phone": "+86 138 0000 0000"}


@pytest.fixture(params=["database", "redis"])
def shared_redis(request: pytest.FixtureRequest) -> str:
    """The counters' home: the database (no Redis configured) or Redis."""
    if request.param == "database":
        return ""
    return str(request.getfixturevalue("redis_url"))


@contextlib.asynccontextmanager
async def two_instances(
    addresses: Sequence[str], **overrides: Any
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two app instances (as two server processes would be) sharing the database and the
    Redis of `overrides`, called from `addresses` (alternately)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(app_client(address, **overrides))
            for address in addresses
        ]


def statuses(responses: Sequence[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


async def test_concurrent_wrong_logins_get_no_more_checks_than_the_limit(
    client: httpx.AsyncClient, operator: Account, shared_redis: str
) -> None:
    clerk = await new_staff(client, operator, "clerk")
    address = random_ip()
    async with two_instances([address, address], login_failure_limit=3, redis_url=shared_redis) as (
        one,
        two,
    ):
        # The same burst in an earlier window first: both instances' Redis connections are
        # open before the burst that counts (opening 40 at once on a busy machine can take
        # longer than the client's timeout, and the database then counts instead).
        with clock.frozen(window_start(15 * 60) - timedelta(hours=1)):
            await asyncio.gather(*(login((one, two)[n % 2], clerk, f"warm-{n}") for n in range(40)))
        with clock.frozen(window_start(15 * 60)):
            answers = await asyncio.gather(
                *(login((one, two)[n % 2], clerk, f"wrong-{n}") for n in range(40))
            )
            # Three were checked against the password (wrong: 401); the rest were refused
            # unchecked, until the window ends.
            assert statuses(answers) == {401: 3, 429: 37}, statuses(answers)
            for answer in answers:
                if answer.status_code == 429:
                    problem(answer, 429, "login_throttled")
                    assert int(answer.headers["Retry-After"]) == 15 * 60 - 10
            # The right password waits too, on either instance.
            problem(await login(two, clerk, STAFF_PASSWORD), 429, "login_throttled")
            problem(await login(one, clerk, STAFF_PASSWORD), 429, "login_throttled")


async def test_concurrent_logins_from_one_address_are_limited_together(
    client: httpx.AsyncClient, operator: Account, shared_redis: str
) -> None:
    address = random_ip()
    with clock.frozen(window_start(15 * 60)):
        async with two_instances(
            [address, address], login_failure_limit=2, redis_url=shared_redis
        ) as (one, two):
            answers = await asyncio.gather(
                *(
                    login((one, two)[n % 2], f"guess-{n}-{secrets.token_hex(3)}@t.test", "x1")
                    for n in range(30)
                )
            )
            # 5 x the per-email limit from one address, whatever the accounts.
            assert statuses(answers) == {401: 10, 429: 20}, statuses(answers)


async def test_right_logins_give_their_count_back(
    client: httpx.AsyncClient, operator: Account, shared_redis: str
) -> None:
    clerk = await new_staff(client, operator, "regular")
    with clock.frozen(window_start(15 * 60)):
        async with two_instances(
            [random_ip(), random_ip()], login_failure_limit=2, redis_url=shared_redis
        ) as (one, two):
            problem(await login(one, clerk, "wrong-1"), 401, "invalid_credentials")
            # A right attempt holds a slot only while it is checked.
            for n in range(6):
                assert "access_token" in ok(await login((one, two)[n % 2], clerk, STAFF_PASSWORD))
            problem(await login(two, clerk, "wrong-2"), 401, "invalid_credentials")
            problem(await login(one, clerk, "wrong-3"), 429, "login_throttled")


async def hold(
    client: httpx.AsyncClient, operator: Account, slug: str = "picking-line"
) -> dict[str, Any]:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers, slug)
    body = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "count": 1}],
        "contact": CONTACT,
    }
    return dict(ok(await client.post(BOOKINGS, json=body), 201))


async def test_wrong_booking_tokens_are_limited_per_address_across_instances(
    client: httpx.AsyncClient, operator: Account, shared_redis: str
) -> None:
    created = await hold(client, operator)
    url = f"{BOOKINGS}/{created['booking']['reference']}"
    address = random_ip()
    with clock.frozen(window_start(600)):
        async with two_instances([address, address], redis_url=shared_redis) as (one, two):
            answers = await asyncio.gather(
                *(
                    (one, two)[n % 2].get(url, headers={"X-Booking-Token": f"guess-{n}"})
                    for n in range(TOKEN_GUESSES_PER_ADDRESS + 10)
                )
            )
            assert statuses(answers) == {404: TOKEN_GUESSES_PER_ADDRESS, 429: 10}
            refused = problem(
                await one.get(url, headers={"X-Booking-Token": created["access_token"]}), 429
            )
            assert refused["code"] == "too_many_attempts"
            # The booking page counts against the same limit.
            page = await two.get(f"/bookings/{created['booking']['reference']}?token=guess")
            assert page.status_code == 429
        async with app_client(random_ip(), redis_url=shared_redis) as elsewhere:
            # Another address with the right token is let in.
            seen = await elsewhere.get(url, headers={"X-Booking-Token": created["access_token"]})
            assert ok(seen)["reference"] == created["booking"]["reference"]


async def test_wrong_tokens_for_one_booking_are_limited_from_any_address(
    client: httpx.AsyncClient, operator: Account, shared_redis: str
) -> None:
    created = await hold(client, operator)
    reference = created["booking"]["reference"]
    url = f"{BOOKINGS}/{reference}"
    # Guesses spread over many addresses, each below its own limit.
    addresses = [random_ip() for _ in range(8)]
    guesses = TOKEN_GUESSES_PER_BOOKING + 12
    with clock.frozen(window_start(600)):
        async with two_instances(addresses, redis_url=shared_redis) as instances:
            answers: list[httpx.Response] = []
            # 28 at once at a time: concurrent, without starving the one event loop that
            # serves all the instances here (Redis answering late would count as away).
            for batch in range(0, guesses, 28):
                answers += await asyncio.gather(
                    *(
                        instances[n % len(instances)].get(url, headers={"X-Booking-Token": f"g{n}"})
                        for n in range(batch, min(batch + 28, guesses))
                    )
                )
            assert statuses(answers) == {404: TOKEN_GUESSES_PER_BOOKING, 429: 12}
            problem(
                await instances[0].get(url, headers={"X-Booking-Token": created["access_token"]}),
                429,
                "too_many_attempts",
            )
        # Another booking is not affected.
        other = await hold(client, operator, "other-line")
        async with app_client(addresses[0], redis_url=shared_redis) as api:
            seen = await api.get(
                f"{BOOKINGS}/{other['booking']['reference']}",
                headers={"X-Booking-Token": other["access_token"]},
            )
            assert seen.status_code == 200


async def test_the_database_forgets_counters_of_ended_windows(
    client: httpx.AsyncClient, operator: Account
) -> None:
    with clock.frozen(window_start(15 * 60)):
        async with app_client(random_ip(), login_failure_limit=3, redis_url="") as api:
            problem(await login(api, "nobody@t.test", "wrong-1"), 401)
        assert await AttemptCounter.count().run() == 2  # the email's and the address's
        assert await purge_expired() == 0
        clock.advance(timedelta(minutes=15))
        assert await purge_expired() == 2
    assert await AttemptCounter.count().run() == 0
