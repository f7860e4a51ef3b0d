"""The booking engine under concurrent load: real concurrent transactions through the real app.

Many POST /api/v1/bookings race for the berths of a train and the seats of a bus; holds
expire while new bookings are made; rebookings cross between two departures in opposite
directions. Whatever the interleaving, a seat is never sold twice, a party gets all its seats
or none (409), nothing answers 5xx, and the database's partial unique index on live booking
lines backs the invariant up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.booking.services import expiry
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.tables import Seat
from app.core import clock, database
from app.core.settings import get_settings
from tests.conftest import Account
from tests.factories import (
    BUS_LAYOUT,
    create_departure,
    create_route,
    in_days,
)

BOOKINGS = "/api/v1/bookings"
SOLD_OUT_CODES = {"sold_out", "not_enough_seats"}
PASSENGER_TYPES = ["adult", "child", "senior"]
# More connections than the default 10, so that many transactions really wait on one
# departure's lock at once (two xdist workers stay well under PostgreSQL's 100).
WIDE_POOL = 25

postgres_only = pytest.mark.skipif(
    "database.is_sqlite()",
    reason="hundreds of concurrent writers are a PostgreSQL scenario: SQLite serializes every "
    "writer, so this load only measures its lock queue (the SQLite rush test covers it)",
)


# ---------------------------------------------------------------- set-up


@pytest.fixture(autouse=True)
def quiet_request_log() -> Iterator[None]:
    """Hundreds of "HTTP Request" INFO lines would bury the timings printed under -s."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.fixture
async def wide_pool() -> AsyncIterator[None]:
    """On PostgreSQL, reopen the engine's pool with more connections for one test."""
    engine = database.get_engine()
    if database.is_sqlite():
        yield
        return
    settings = get_settings()
    await engine.close_connection_pool()
    await database.start_pool(1, WIDE_POOL)
    try:
        yield
    finally:
        await engine.close_connection_pool()
        await database.start_pool(settings.database_pool_min, settings.database_pool_max)


async def put_fares(
    client: httpx.AsyncClient, operator: Account, route_id: str, seat_class: str
) -> None:
    fares = [
        {"seat_class": seat_class, "passenger_type": kind, "amount": amount}
        for kind, amount in (("adult", 36000), ("child", 18000), ("senior", 27000))
    ]
    response = await client.put(
        f"/api/v1/operator/routes/{route_id}/fares",
        json={"fares": fares},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text


async def train_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A published sleeper-train departure with exactly 200 berths of one class."""
    layout = {
        "type": "train",
        "cars": [
            {
                "car": car,
                "seat_class": "soft_sleeper",
                "compartments": 10,
                "berths_per_compartment": 4,
            }
            for car in range(1, 6)
        ],
    }
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "train", "name": "Y801", "code": "Y801", "layout": layout},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    vehicle = response.json()
    assert vehicle["capacity_by_class"] == {"soft_sleeper": 200}
    route = await create_route(client, operator.headers, slug="flower-train", kind="train")
    await put_fares(client, operator, route["id"], "soft_sleeper")
    return await create_departure(client, operator.headers, route, vehicle)


async def bus_vehicle(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "bus", "name": "Yutong", "code": "ZZ-45", "layout": BUS_LAYOUT},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    vehicle: dict[str, Any] = response.json()
    assert vehicle["capacity_by_class"] == {"standard": 45}
    return vehicle


async def bus_departures(
    client: httpx.AsyncClient, operator: Account, count: int = 1
) -> list[dict[str, Any]]:
    """`count` published departures of one bus route (45 standard seats each)."""
    route = await create_route(client, operator.headers, slug="picking-line")
    await put_fares(client, operator, route["id"], "standard")
    vehicle = await bus_vehicle(client, operator)
    return [
        await create_departure(client, operator.headers, route, vehicle, in_days(10 + index))
        for index in range(count)
    ]


# ---------------------------------------------------------------- rushes and checks


def party_body(departure_id: str, seat_class: str, party: list[str]) -> dict[str, Any]:
    counts = Counter(party)
    return {
        "departure_id": departure_id,
        "counts": [
            {"seat_class": seat_class, "passenger_type": kind, "count": count}
            for kind, count in sorted(counts.items())
        ],
    }


def random_parties(seed: int, attempts: int, max_party: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [rng.choice(PASSENGER_TYPES) for _ in range(rng.randint(1, max_party))]
        for _ in range(attempts)
    ]


class Attempt:
    """One POST /bookings of the rush and its answer."""

    def __init__(self, party: list[str], response: httpx.Response) -> None:
        self.party = party
        self.response = response
        self.status = response.status_code
        self.body: dict[str, Any] = response.json()

    @property
    def labels(self) -> list[str]:
        return [line["seat_label"] for line in self.body["booking"]["lines"]]


async def rush(
    client: httpx.AsyncClient,
    departure_id: str,
    seat_class: str,
    parties: list[list[str]],
    *extra: Awaitable[Any],
) -> tuple[list[Attempt], list[Any], float]:
    """Every party's POST at once (plus `extra` coroutines in the same gather)."""

    async def attempt(party: list[str]) -> Attempt:
        body = party_body(departure_id, seat_class, party)
        return Attempt(party, await client.post(BOOKINGS, json=body))

    started = time.perf_counter()
    results = await asyncio.gather(*(attempt(party) for party in parties), *extra)
    elapsed = time.perf_counter() - started
    return list(results[: len(parties)]), list(results[len(parties) :]), elapsed


def check_answers(attempts: list[Attempt]) -> tuple[list[Attempt], list[Attempt]]:
    """No 5xx; each answer a 201 with the whole party or a 409 sold_out/not_enough_seats."""
    errors = [(a.status, a.response.text[:300]) for a in attempts if a.status >= 500]
    assert errors == [], errors
    unexpected = [
        (a.status, a.body.get("code"))
        for a in attempts
        if not (a.status == 201 or (a.status == 409 and a.body.get("code") in SOLD_OUT_CODES))
    ]
    assert unexpected == [], unexpected
    won = [a for a in attempts if a.status == 201]
    lost = [a for a in attempts if a.status == 409]
    for a in won:
        assert a.body["booking"]["status"] == "on_hold"
        assert sorted(line["passenger_type"] for line in a.body["booking"]["lines"]) == sorted(
            a.party
        )
    return won, lost


async def live_lines(departure_id: str | UUID) -> list[dict[str, Any]]:
    return await (
        BookingLine.select(BookingLine.booking, BookingLine.seat, BookingLine.seat_label)
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )


async def seats_left(client: httpx.AsyncClient, departure_id: str) -> int:
    response = await client.get(f"/api/v1/departures/{departure_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["seats_left"])


async def check_inventory(
    client: httpx.AsyncClient, departure_id: str, capacity: int, won: list[Attempt]
) -> list[dict[str, Any]]:
    """The database and the public view agree with the successful answers: every seat of a
    201 is one live line, no seat is in two live lines, nothing else holds a seat."""
    labels = [label for a in won for label in a.labels]
    duplicates = [label for label, n in Counter(labels).items() if n > 1]
    assert duplicates == [], f"seats sold twice: {duplicates}"
    lines = await live_lines(departure_id)
    doubled = [seat for seat, n in Counter(line["seat"] for line in lines).items() if n > 1]
    assert doubled == [], f"(departure, seat) twice among live lines: {doubled}"
    assert sorted(line["seat_label"] for line in lines) == sorted(labels)
    assert len(lines) <= capacity
    references = {a.body["booking"]["reference"] for a in won}
    stored = await Booking.select(Booking.reference).where(Booking.departure == departure_id).run()
    # All or none: a 409 left no booking behind.
    assert {row["reference"] for row in stored} == references
    assert await seats_left(client, departure_id) == capacity - len(lines)
    return lines


def check_sold_out(won: list[Attempt], lost: list[Attempt], capacity: int) -> int:
    """Free seats only went down during the rush, so each refused party was bigger than
    what is left now; with refused singles, that means nothing is left at all."""
    sold = sum(len(a.party) for a in won)
    left = capacity - sold
    assert left >= 0
    for a in lost:
        assert len(a.party) > left, (a.party, left)
    return sold


# ---------------------------------------------------------------- the rushes


@postgres_only
async def test_300_concurrent_bookings_sell_exactly_the_200_berths_of_a_train(
    client: httpx.AsyncClient, operator: Account, wide_pool: None
) -> None:
    departure = await train_departure(client, operator)
    assert await seats_left(client, departure["id"]) == 200
    parties = random_parties(seed=20261130, attempts=300, max_party=4)
    # Enough demand to sell out (about 750 berths asked), and refused singles to prove it.
    assert sum(len(p) for p in parties) > 600

    attempts, _extra, elapsed = await rush(client, departure["id"], "soft_sleeper", parties)
    won, lost = check_answers(attempts)
    sold = check_sold_out(won, lost, 200)
    print(
        f"\n300-attempt rush on a 200-berth train: {elapsed:.2f}s "
        f"({len(won)} bookings of {sold} berths, {len(lost)} refused)"
    )
    assert sold == 200
    assert any(len(a.party) == 1 for a in lost)
    lines = await check_inventory(client, departure["id"], 200, won)
    assert len(lines) == 200
    assert await seats_left(client, departure["id"]) == 0
    # Refusals name the reason; those after the last berth went say sold_out.
    assert {a.body["code"] for a in lost} <= SOLD_OUT_CODES
    assert "sold_out" in {a.body["code"] for a in lost}


@postgres_only
async def test_100_concurrent_bookings_on_a_45_seat_bus(
    client: httpx.AsyncClient, operator: Account, wide_pool: None
) -> None:
    [departure] = await bus_departures(client, operator)
    parties = random_parties(seed=45, attempts=100, max_party=4)
    attempts, _extra, elapsed = await rush(client, departure["id"], "standard", parties)
    won, lost = check_answers(attempts)
    sold = check_sold_out(won, lost, 45)
    print(f"\n100-attempt rush on a 45-seat bus: {elapsed:.2f}s ({sold} seats)")
    assert sold == 45
    lines = await check_inventory(client, departure["id"], 45, won)
    assert len(lines) == 45
    assert await seats_left(client, departure["id"]) == 0


async def test_sqlite_sized_rush_on_a_45_seat_bus_never_answers_5xx(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """Fewer clients, run on both databases: on SQLite, writers queue on the database lock
    (BEGIN IMMEDIATE with a busy timeout) and "database is locked" must never become a 5xx."""
    [departure] = await bus_departures(client, operator)
    parties = random_parties(seed=40, attempts=40, max_party=3)
    assert sum(len(p) for p in parties) > 45
    attempts, _extra, elapsed = await rush(client, departure["id"], "standard", parties)
    won, lost = check_answers(attempts)
    sold = check_sold_out(won, lost, 45)
    print(f"\n40-attempt rush on a 45-seat bus: {elapsed:.2f}s ({sold} seats)")
    assert lost, "40 parties asking for more than 45 seats cannot all have succeeded"
    lines = await check_inventory(client, departure["id"], 45, won)
    assert len(lines) == sold
    assert 45 - sold < min(len(a.party) for a in lost)


# ---------------------------------------------------------------- expiry against new bookings


async def test_holds_expiring_during_a_rush_never_give_a_seat_twice(
    client: httpx.AsyncClient, operator: Account, wide_pool: None
) -> None:
    [departure] = await bus_departures(client, operator)
    start = clock.now()
    with clock.frozen(start):
        # Fill the bus with 15 holds of 3 seats, made 30 s apart: they run out one by one.
        old: list[dict[str, Any]] = []
        for _ in range(15):
            body = party_body(departure["id"], "standard", ["adult"] * 3)
            response = await client.post(BOOKINGS, json=body)
            assert response.status_code == 201, response.text
            old.append(response.json()["booking"])
            clock.advance(timedelta(seconds=30))
        assert await seats_left(client, departure["id"]) == 0
        full = await client.post(BOOKINGS, json=party_body(departure["id"], "standard", ["adult"]))
        assert full.status_code == 409
        assert full.json()["code"] == "sold_out"
        old_ids = [
            row["id"]
            for row in await Booking.select(Booking.id)
            .where(Booking.reference.is_in([b["reference"] for b in old]))
            .run()
        ]
        assert len(old_ids) == 15

        # Just past the first hold's end; the clock moves on while the rush runs.
        clock.advance(timedelta(minutes=15) - timedelta(seconds=30 * 15))
        assert clock.now() == start + timedelta(minutes=15)

        async def advance_clock() -> None:
            for _ in range(16):
                await asyncio.sleep(0.005)
                clock.advance(timedelta(seconds=30))

        async def sweep() -> int:
            expired = 0
            for _ in range(6):
                expired += await expiry.expire_all_overdue()
                await asyncio.sleep(0.01)
            return expired

        async def expire_each() -> int:
            results = await asyncio.gather(
                *(expiry.expire_hold(booking_id) for booking_id in old_ids)
            )
            return sum(results)

        parties = random_parties(seed=7, attempts=40, max_party=3)
        attempts, extra, elapsed = await rush(
            client,
            departure["id"],
            "standard",
            parties,
            advance_clock(),
            sweep(),
            expire_each(),
            sweep(),
        )
        won, lost = check_answers(attempts)
        print(f"\nexpiry race: {elapsed:.2f}s ({len(won)} holds made, {len(lost)} refused)")
        # Sweep whatever is still overdue now that the clock has stopped.
        await expiry.expire_all_overdue()

        statuses = {
            row["status"]
            for row in await Booking.select(Booking.status).where(Booking.id.is_in(old_ids)).run()
        }
        assert statuses == {BookingStatus.expired.value}
        assert won, "with 45 seats coming free, some parties must have got seats"
        # No new hold ran out during the rush (they last 15 minutes).
        new_statuses = await (
            Booking.select(Booking.status)
            .where(Booking.reference.is_in([a.body["booking"]["reference"] for a in won]))
            .run()
        )
        assert [row["status"] for row in new_statuses] == [BookingStatus.on_hold.value] * len(won)

        labels = [label for a in won for label in a.labels]
        assert len(labels) == len(set(labels)) <= 45
        lines = await live_lines(departure["id"])
        doubled = [seat for seat, n in Counter(line["seat"] for line in lines).items() if n > 1]
        assert doubled == []
        assert sorted(line["seat_label"] for line in lines) == sorted(labels)
        old_lines = (
            await BookingLine.select(BookingLine.live)
            .where(BookingLine.booking.is_in(old_ids))
            .run()
        )
        assert len(old_lines) == 45
        assert not any(line["live"] for line in old_lines)
        assert await seats_left(client, departure["id"]) == 45 - len(labels)
        # Each hold expired exactly once, whoever got there first.
        expired_events = await Booking.raw(
            "SELECT booking, COUNT(*) AS n FROM booking_event WHERE to_status = 'expired' "
            "GROUP BY booking"
        ).run()
        assert len(expired_events) == 15
        assert {int(row["n"]) for row in expired_events} == {1}
        assert sum(extra[1:]) <= 15


# ---------------------------------------------------------------- crossing rebookings


async def test_crossing_rebookings_between_two_departures_do_not_deadlock(
    client: httpx.AsyncClient, operator: Account, wide_pool: None
) -> None:
    first, second = await bus_departures(client, operator, count=2)
    # 8 parties of 2 on each departure, all on hold, with their guest tokens.
    held: dict[str, list[tuple[str, str]]] = {first["id"]: [], second["id"]: []}
    for departure in (first, second):
        for _ in range(8):
            response = await client.post(
                BOOKINGS, json=party_body(departure["id"], "standard", ["adult", "child"])
            )
            assert response.status_code == 201, response.text
            created = response.json()
            held[departure["id"]].append((created["booking"]["reference"], created["access_token"]))
    other = {first["id"]: second["id"], second["id"]: first["id"]}

    async def move(reference: str, token: str, target: str) -> tuple[str, str, httpx.Response]:
        response = await client.post(
            f"{BOOKINGS}/{reference}/rebook",
            json={"departure_id": target},
            headers={"X-Booking-Token": token},
        )
        return reference, target, response

    moves = [
        move(reference, token, other[source])
        for pair in zip(held[first["id"]], held[second["id"]], strict=True)
        for source, (reference, token) in zip((first["id"], second["id"]), pair, strict=True)
    ]
    # New bookings on both departures at the same time, so that some rebookings may find
    # the target full: 14 parties of 1-3 on each side (at most 27 seats, so at least one
    # rebooking of 2 into each side must fit in its 29 free seats).
    fresh_parties = {
        departure_id: random_parties(seed=seed, attempts=14, max_party=3)
        for seed, departure_id in ((4, first["id"]), (9, second["id"]))
    }
    for parties in fresh_parties.values():
        assert 20 <= sum(len(p) for p in parties) <= 27
    fresh = {
        departure_id: [
            client.post(BOOKINGS, json=party_body(departure_id, "standard", party))
            for party in parties
        ]
        for departure_id, parties in fresh_parties.items()
    }
    started = time.perf_counter()
    results = await asyncio.gather(*moves, *fresh[first["id"]], *fresh[second["id"]])
    elapsed = time.perf_counter() - started
    moved = results[: len(moves)]
    created = results[len(moves) :]
    done = sum(1 for m in moved if m[2].status_code == 200)
    print(f"\ncrossing rebookings: {elapsed:.2f}s ({done} of {len(moves)} moved)")

    errors = [
        (r.status_code, r.text[:300])
        for r in [m[2] for m in moved] + list(created)
        if r.status_code >= 500
    ]
    assert errors == [], errors
    for _reference, target, response in moved:
        if response.status_code == 200:
            assert response.json()["departure_id"] == target
            assert len(response.json()["lines"]) == 2
        else:
            assert response.status_code == 409, response.text
            assert response.json()["code"] in SOLD_OUT_CODES
    for response in created:
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:
            assert response.json()["code"] in SOLD_OUT_CODES

    for departure_id in (first["id"], second["id"]):
        lines = await live_lines(departure_id)
        doubled = [seat for seat, n in Counter(line["seat"] for line in lines).items() if n > 1]
        assert doubled == [], doubled
        assert len(lines) <= 45
        assert await seats_left(client, departure_id) == 45 - len(lines)
        # Every live line belongs to a live booking that now sits on this departure,
        # and every booking on this departure has all its passengers here.
        per_booking = Counter(line["booking"] for line in lines)
        rows = await Booking.select(Booking.id, Booking.departure, Booking.status).run()
        on_here = {row["id"] for row in rows if str(row["departure"]) == departure_id}
        assert set(per_booking) == on_here
    rows = await Booking.select(Booking.id, Booking.departure, Booking.total_amount).run()
    for row in rows:
        lines = await (
            BookingLine.select(BookingLine.departure, BookingLine.price_amount)
            .where(BookingLine.booking == row["id"])
            .run()
        )
        # Rebooked or not, a booking's lines are all on its own departure (old ones deleted).
        assert {line["departure"] for line in lines} == {row["departure"]}
        assert sum(line["price_amount"] for line in lines) == row["total_amount"]
    for target in (first["id"], second["id"]):
        arrived = [m for m in moved if m[1] == target and m[2].status_code == 200]
        assert arrived, "free seats only fell by fresh bookings (<= 27 of 29) or arrivals"


# ---------------------------------------------------------------- the index itself


def unique_violation() -> tuple[type[BaseException], ...]:
    return (asyncpg.exceptions.UniqueViolationError, sqlite3.IntegrityError)


async def test_partial_unique_index_refuses_a_second_live_line_for_a_seat(
    client: httpx.AsyncClient, operator: Account
) -> None:
    first, second = await bus_departures(client, operator, count=2)
    response = await client.post(BOOKINGS, json={"departure_id": first["id"], "seats": [
        {"label": "5C"}
    ]})  # fmt: skip
    assert response.status_code == 201, response.text
    booking = await (
        Booking.select()
        .where(Booking.reference == response.json()["booking"]["reference"])
        .first()
        .run()
    )
    assert booking is not None
    [line] = await BookingLine.select().where(BookingLine.booking == booking["id"]).run()
    assert line["seat_label"] == "5C"
    assert line["live"]
    seat_id = line["seat"]
    other_seat = await Seat.select(Seat.id).where(Seat.label == "5D").first().run()
    assert other_seat is not None

    def copy(departure_id: Any, seat: Any, live: bool) -> BookingLine:
        return BookingLine(
            booking=booking["id"],
            departure=departure_id,
            seat=seat,
            seat_label="5C",
            seat_class="standard",
            passenger_type="adult",
            price_amount=36000,
            currency=line["currency"],
            position=2,
            live=live,
        )

    # A second live line for the same (departure, seat): the database says no.
    with pytest.raises(unique_violation()):
        await BookingLine.insert(copy(first["id"], seat_id, True)).run()
    # Released (not live) lines of the same seat are history, and any number may exist.
    await BookingLine.insert(copy(first["id"], seat_id, False)).run()
    await BookingLine.insert(copy(first["id"], seat_id, False)).run()
    # The same seat of the same vehicle is live on another departure: allowed.
    await BookingLine.insert(copy(second["id"], seat_id, True)).run()
    # Reviving a released line while the seat is live is refused too.
    released = await (
        BookingLine.select(BookingLine.id)
        .where((BookingLine.departure == first["id"]) & (BookingLine.live == False))  # noqa: E712
        .first()
        .run()
    )
    assert released is not None
    with pytest.raises(unique_violation()):
        await (
            BookingLine.update({BookingLine.live: True})
            .where(BookingLine.id == released["id"])
            .run()
        )

    async def take_5d_then_5c() -> None:
        async with database.write_transaction():
            await BookingLine.insert(copy(first["id"], other_seat["id"], True)).run()
            await BookingLine.insert(copy(first["id"], seat_id, True)).run()

    # And inside a write transaction, the failure rolls the whole transaction back.
    with pytest.raises(unique_violation()):
        await take_5d_then_5c()
    live = await live_lines(first["id"])
    assert [row["seat_label"] for row in live] == ["5C"]
    assert len(await live_lines(second["id"])) == 1
    total = await BookingLine.count().where(BookingLine.departure == first["id"]).run()
    assert total == 3
