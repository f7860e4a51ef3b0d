"""Idempotent POSTs: a retry with the same `Idempotency-Key` gets the first answer again and
does the work once; keys are scoped, bounded, checked against the body, and purged after a day."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.booking.controllers import TOKEN_GUESSES_PER_ADDRESS
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.idempotency import GUEST_COOKIE, IN_PROGRESS_TIMEOUT, purge_expired
from app.core.tables import IdempotencyRecord
from tests.conftest import Account
from tests.factories import create_departure, create_route, set_route_fares

BOOKINGS = "/api/v1/bookings"
SMALL_BUS = {"type": "bus", "rows": 1, "seat_letters": "ABCD"}
CONTACT = {"name": "Zhao Min", "email": "zhao.min@example.com", "phone": "+86 138 0000 0000"}


# ---------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def replayed(response: httpx.Response) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


async def small_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A published departure of a four-seat bus (1A-1D, class standard)."""
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "bus", "name": "Minibus", "code": "MB-4", "layout": SMALL_BUS},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    return await create_departure(client, operator.headers, route, response.json())


def booking_body(departure_id: str, count: int = 1) -> dict[str, Any]:
    return {
        "departure_id": departure_id,
        "counts": [{"seat_class": "standard", "count": count}],
        "contact": CONTACT,
    }


async def post_booking(
    client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.post(BOOKINGS, json=body, headers=headers)


@contextlib.asynccontextmanager
async def guest_client(session: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (cookies apart from the shared one), in guest session `session`
    (a new one by default)."""
    transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        api.cookies.set(GUEST_COOKIE, session or secrets.token_urlsafe(32))
        yield api


async def booking_count() -> int:
    return int(await Booking.count().run())


async def records() -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in await IdempotencyRecord.select().run()}


# ---------------------------------------------------------------- replays


async def test_a_retry_replays_the_first_response_and_books_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"], 2)
    first = await post_booking(client, body, "key-retry-1")
    assert first.status_code == 201, first.text
    assert not replayed(first)
    created = first.json()

    again = await post_booking(client, body, "key-retry-1")
    assert again.status_code == 201
    assert replayed(again)
    assert again.headers["content-type"].startswith("application/json")
    assert again.json() == created
    assert again.json()["access_token"] == created["access_token"]
    assert again.json()["booking"]["reference"] == created["booking"]["reference"]
    assert await booking_count() == 1

    # The replayed token really is the booking's token.
    opened = await client.get(
        f"{BOOKINGS}/{created['booking']['reference']}",
        headers={"X-Booking-Token": again.json()["access_token"]},
    )
    assert opened.status_code == 200, opened.text
    assert len(opened.json()["lines"]) == 2

    # Without a key, the same body is a new booking.
    other = await post_booking(client, body)
    assert other.status_code == 201, other.text
    assert not replayed(other)
    assert other.json()["booking"]["reference"] != created["booking"]["reference"]
    assert await booking_count() == 2


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    first = await post_booking(client, booking_body(departure["id"], 1), "key-reused")
    assert first.status_code == 201, first.text
    response = await post_booking(client, booking_body(departure["id"], 2), "key-reused")
    problem(response, 422, "idempotency_key_reused")
    assert not replayed(response)
    assert await booking_count() == 1
    # The original request still replays.
    again = await post_booking(client, booking_body(departure["id"], 1), "key-reused")
    assert replayed(again)
    assert again.json() == first.json()


async def test_a_retry_while_the_first_request_runs_is_409(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    seed = await post_booking(client, body, "key-seed")
    assert seed.status_code == 201, seed.text
    stored = (await records())["key-seed"]
    # A key committed without an answer, as an earlier version (which claimed keys in a
    # transaction of their own) left them while its request ran, or when it died.
    await IdempotencyRecord.insert(
        IdempotencyRecord(
            scope=stored["scope"],
            key="key-running",
            request_hash=stored["request_hash"],
            owner=stored["owner"],
            status_code=None,
            created_at=clock.now(),
        )
    ).run()

    response = await post_booking(client, body, "key-running")
    problem(response, 409, "idempotency_in_progress")
    assert await booking_count() == 1
    assert (await records())["key-running"]["status_code"] is None

    # An attempt that died without answering is taken over once its time is up.
    with clock.frozen(clock.now() + IN_PROGRESS_TIMEOUT + timedelta(seconds=5)):
        takeover = await post_booking(client, body, "key-running")
    assert takeover.status_code == 201, takeover.text
    assert not replayed(takeover)
    assert await booking_count() == 2
    assert (await records())["key-running"]["status_code"] == 201


async def test_concurrent_duplicates_book_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"], 2)
    # One client, with its guest session (as a browser has after its first request).
    async with guest_client() as guest:
        responses = await asyncio.gather(
            post_booking(guest, body, "key-race"), post_booking(guest, body, "key-race")
        )
    # The second waits for the first (the key is claimed in the booking's transaction),
    # then replays its answer.
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    originals = [r for r in responses if not replayed(r)]
    assert len(originals) == 1
    [copy] = [r for r in responses if r is not originals[0]]
    assert replayed(copy)
    assert copy.json() == originals[0].json()
    assert await booking_count() == 1
    assert await Booking.count().where(Booking.status == BookingStatus.on_hold.value).run() == 1


async def test_a_retry_waits_for_a_running_first_request_for_a_few_seconds_only(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """PostgreSQL: the key of a request still running is an uncommitted index entry; a
    retry waits for it at most IN_PROGRESS_WAIT, then gets 409 with Retry-After."""
    import os

    import asyncpg

    from app.core import database
    from app.core.idempotency import IN_PROGRESS_WAIT

    if database.is_sqlite():
        pytest.skip("SQLite writers queue on the database lock instead")
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    running = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        transaction = running.transaction()
        await transaction.start()
        # The first request's claim, in its transaction that has not ended yet.
        await running.execute(
            "INSERT INTO idempotency_record (id, scope, key, request_hash, status_code, "
            "response_body, created_at) VALUES (gen_random_uuid(), 'public:bookings', "
            "'key-slow', 'x', NULL, '', now())"
        )
        started = asyncio.get_running_loop().time()
        waiting = await post_booking(client, body, "key-slow")
        waited = asyncio.get_running_loop().time() - started
        problem(waiting, 409, "idempotency_in_progress")
        assert waiting.headers["Retry-After"] == str(int(IN_PROGRESS_WAIT.total_seconds()))
        assert IN_PROGRESS_WAIT.total_seconds() - 0.5 <= waited < 30
        await transaction.rollback()  # the first request died: its claim goes with it
    finally:
        await running.close()
    assert await booking_count() == 0
    retry = await post_booking(client, body, "key-slow")
    assert retry.status_code == 201, retry.text
    assert not replayed(retry)
    assert await booking_count() == 1


async def test_an_error_answer_is_stored_and_replayed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    everything = await post_booking(client, booking_body(departure["id"], 4))
    assert everything.status_code == 201, everything.text
    body = booking_body(departure["id"], 1)
    sold_out = await post_booking(client, body, "key-sold-out")
    first = problem(sold_out, 409, "sold_out")

    # Seats come back, but the key keeps its first answer.
    created = everything.json()
    cancelled = await client.post(
        f"{BOOKINGS}/{created['booking']['reference']}/cancel",
        headers={"X-Booking-Token": created["access_token"]},
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await post_booking(client, body, "key-sold-out")
    assert problem(again, 409, "sold_out") == first
    assert replayed(again)
    assert (await records())["key-sold-out"]["status_code"] == 409

    # A new key does the work again, and now finds the seat.
    fresh = await post_booking(client, body, "key-after-release")
    assert fresh.status_code == 201, fresh.text
    assert await booking_count() == 2


async def test_keys_are_scoped_to_their_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    made = []
    for _ in range(2):
        response = await post_booking(client, booking_body(departure["id"]))
        assert response.status_code == 201, response.text
        made.append(response.json())
    answers = []
    for created in made:
        response = await client.post(
            f"{BOOKINGS}/{created['booking']['reference']}/cancel",
            headers={"X-Booking-Token": created["access_token"], "Idempotency-Key": "same-key"},
        )
        assert response.status_code == 200, response.text
        assert not replayed(response)
        answers.append(response.json())
    assert [a["booking"]["reference"] for a in answers] == [c["booking"]["reference"] for c in made]
    assert all(a["booking"]["status"] == "cancelled" for a in answers)
    assert await Booking.count().where(Booking.status == BookingStatus.cancelled.value).run() == 2
    # Each booking replays its own answer.
    again = await client.post(
        f"{BOOKINGS}/{made[0]['booking']['reference']}/cancel",
        headers={"X-Booking-Token": made[0]["access_token"], "Idempotency-Key": "same-key"},
    )
    assert replayed(again)
    assert again.json() == answers[0]
    # The same key also works once on POST /bookings.
    booked = await post_booking(client, booking_body(departure["id"]), "same-key")
    assert booked.status_code == 201, booked.text
    assert not replayed(booked)


async def test_a_replay_needs_the_booking_token(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """A stored answer holds the booking's details: a retry without its token gets 404."""
    departure = await small_departure(client, operator)
    created = (await post_booking(client, booking_body(departure["id"]))).json()
    url = f"{BOOKINGS}/{created['booking']['reference']}/cancel"
    first = await client.post(
        url, headers={"X-Booking-Token": created["access_token"], "Idempotency-Key": "k-owner"}
    )
    assert first.status_code == 200, first.text
    stranger = await client.post(
        url, headers={"X-Booking-Token": "guessed-token", "Idempotency-Key": "k-owner"}
    )
    problem(stranger, 404, "booking_not_found")
    assert "contact" not in stranger.text


async def test_wrong_tokens_with_fresh_keys_are_still_throttled(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    created = (await post_booking(client, booking_body(departure["id"]))).json()
    url = f"{BOOKINGS}/{created['booking']['reference']}/cancel"
    for attempt in range(TOKEN_GUESSES_PER_ADDRESS):
        response = await client.post(
            url, headers={"X-Booking-Token": f"guess-{attempt}", "Idempotency-Key": f"k{attempt}"}
        )
        problem(response, 404, "booking_not_found")
    blocked = await client.post(
        url, headers={"X-Booking-Token": "guess-last", "Idempotency-Key": "k-last"}
    )
    problem(blocked, 429, "too_many_attempts")
    booking = await Booking.select().where(Booking.reference == created["booking"]["reference"])
    assert booking[0]["status"] == "on_hold"


async def test_key_length_is_bounded(client: httpx.AsyncClient, operator: Account) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    too_long = await post_booking(client, body, "k" * 256)
    assert too_long.status_code == 400, too_long.text
    assert too_long.json()["code"] == "validation_error"
    assert await booking_count() == 0
    assert await records() == {}
    longest = await post_booking(client, body, "k" * 255)
    assert longest.status_code == 201, longest.text
    assert list(await records()) == ["k" * 255]


async def test_purge_forgets_keys_older_than_a_day(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    body = booking_body(departure["id"])
    start = clock.now()
    with clock.frozen(start):
        old = await post_booking(client, body, "key-old")
    with clock.frozen(start + timedelta(hours=23)):
        recent = await post_booking(client, body, "key-recent")
    assert old.status_code == recent.status_code == 201

    with clock.frozen(start + timedelta(hours=23, minutes=59)):
        assert await purge_expired() == 0
    assert set(await records()) == {"key-old", "key-recent"}

    with clock.frozen(start + timedelta(hours=24, minutes=1)):
        assert await purge_expired() == 1
        assert set(await records()) == {"key-recent"}
        # The forgotten key is new again; the kept one still replays.
        reused = await post_booking(client, body, "key-old")
        kept = await post_booking(client, body, "key-recent")
    assert reused.status_code == 201, reused.text
    assert not replayed(reused)
    assert reused.json()["booking"]["reference"] != old.json()["booking"]["reference"]
    assert replayed(kept)
    assert kept.json() == recent.json()
    assert await booking_count() == 3
