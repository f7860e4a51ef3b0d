"""An `Idempotency-Key` belongs to its caller: replaying another caller's key never shows
that caller's booking or access token."""

from __future__ import annotations

import secrets

import httpx

from app.asgi import create_app
from app.booking.tables import Booking
from app.core.idempotency import GUEST_COOKIE
from app.core.tables import IdempotencyRecord
from tests.assertions import ok, problem
from tests.conftest import STAFF_PASSWORD, Account
from tests.integration.booking.test_idempotency import (
    booking_body,
    guest_client,
    post_booking,
    replayed,
    small_departure,
)


def bare_client() -> httpx.AsyncClient:
    """A client with no cookies yet."""
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_another_guest_session_gets_its_own_result(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    async with guest_client() as alice, guest_client() as bob:
        first = ok(await post_booking(alice, body, "order-1"), 201)
        # Bob sends Alice's key (and even her body): a booking of his own, not hers.
        answer = await post_booking(bob, body, "order-1")
        theirs = ok(answer, 201)
        assert not replayed(answer)
        assert theirs["booking"]["reference"] != first["booking"]["reference"]
        assert theirs["access_token"] != first["access_token"]
        assert first["access_token"] not in answer.text
        # Each replays its own answer.
        again = await post_booking(alice, body, "order-1")
        assert replayed(again)
        assert again.json() == first
        bob_again = await post_booking(bob, body, "order-1")
        assert replayed(bob_again)
        assert bob_again.json() == theirs
    assert await Booking.count().run() == 2


async def test_a_caller_without_the_session_gets_nothing_of_the_first_answer(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    async with guest_client() as alice:
        first = ok(await post_booking(alice, body, "order-2"), 201)
    async with bare_client() as bare:
        answer = await post_booking(bare, body, "order-2")
    problem(answer, 409, "idempotency_key_taken")
    assert first["access_token"] not in answer.text
    assert first["booking"]["reference"] not in answer.text
    # Nothing was booked twice either.
    assert await Booking.count().run() == 1


async def test_a_first_request_without_a_session_gets_one_and_retries_in_it(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    async with bare_client() as fresh:
        answer = await post_booking(fresh, body, "order-3")
        first = ok(answer, 201)
        cookie = answer.cookies[GUEST_COOKIE]
        assert "httponly" in answer.headers["set-cookie"].lower()
        again = await post_booking(fresh, body, "order-3")
    assert replayed(again)
    assert again.json()["access_token"] == first["access_token"]
    [record] = await IdempotencyRecord.select().run()
    # The session is stored hashed, never as sent.
    assert record["owner"]
    assert cookie not in str(record)


async def test_a_staff_key_is_scoped_to_the_staff_member(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    email = f"second-admin-{secrets.token_hex(4)}@tourline.test"
    ok(
        await client.post(
            "/api/v1/operator/staff",
            json={"email": email, "name": "Second", "password": STAFF_PASSWORD,
                  "role": "operator_admin"},
            headers=operator.headers,
        ),
        201,
    )  # fmt: skip
    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": STAFF_PASSWORD}
    )
    colleague = {"Authorization": f"Bearer {ok(login)['access_token']}"}
    url = f"/api/v1/operator/departures/{departure['id']}/cancel"
    key = {"Idempotency-Key": "cancel-1"}
    first = await client.post(url, headers={**operator.headers, **key})
    ok(first)
    mine = await client.post(url, headers={**operator.headers, **key})
    assert replayed(mine)
    theirs = await client.post(url, headers={**colleague, **key})
    assert not replayed(theirs)
    ok(theirs)
