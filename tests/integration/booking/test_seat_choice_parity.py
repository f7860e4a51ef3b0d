"""The seats a hold gets are those `inventory.choose_seats` chooses.

On PostgreSQL a hold chooses its seats inside `booking_hold(...)` (migration 000031), in
SQL; SQLite and the multi-statement path choose them in Python. Random parties (mixed
classes and passenger types, 1-6 people) are booked one after another until the vehicles
are full, after single seats chosen by label at random have broken the compartments and rows
up, and each answer is compared with what `choose_seats` makes of the seats that were
free just before: the same seats for the same passengers, or the same 409.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any
from uuid import UUID

import httpx
import pytest

from app.booking.services import inventory
from app.catalogue.tables import PassengerType
from app.core.database import write_transaction
from tests.conftest import Account
from tests.factories import create_departure, create_route, create_vehicle

KINDS = [PassengerType.adult, PassengerType.child, PassengerType.senior]


async def _fares(client: httpx.AsyncClient, account: Account, route: dict[str, Any]) -> None:
    fares = [
        {"seat_class": seat_class, "passenger_type": kind.value, "amount": 5000 + 100 * i}
        for seat_class in ("soft_sleeper", "hard_sleeper", "standard")
        for i, kind in enumerate(KINDS)
    ]
    response = await client.put(
        f"/api/v1/operator/routes/{route['id']}/fares", json={"fares": fares},
        headers=account.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text


async def _expected(
    departure_id: str, parties: list[tuple[str, list[PassengerType]]]
) -> list[tuple[str, str, str]] | tuple[str, int]:
    """(label, class, passenger type) per line as `choose_seats` seats the party, or the
    sold-out class and its free seats."""
    async with write_transaction():
        departure = await inventory.lock_departure(UUID(departure_id))
        free = await inventory.free_seats(departure)
    lines: list[tuple[str, str, str]] = []
    for seat_class, party in parties:
        in_class = [seat for seat in free if seat.seat_class == seat_class]
        chosen = inventory.choose_seats(in_class, party)
        if chosen is None:
            return seat_class, len(in_class)
        lines += [(s.label, seat_class, k.value) for s, k in zip(chosen, party, strict=True)]
    return lines


@pytest.mark.parametrize("kind", ["train", "bus"])
async def test_holds_get_the_seats_choose_seats_chooses(
    client: httpx.AsyncClient, operator: Account, kind: str
) -> None:
    route = await create_route(client, operator.headers, slug=f"parity-{kind}", kind=kind)
    await _fares(client, operator, route)
    vehicle = await create_vehicle(client, operator.headers, kind)
    departure = await create_departure(client, operator.headers, route, vehicle)
    classes = ["soft_sleeper", "hard_sleeper"] if kind == "train" else ["standard"]
    rng = random.Random(19)
    outcomes: Counter[str] = Counter()
    async with write_transaction():
        free = await inventory.free_seats(await inventory.lock_departure(UUID(departure["id"])))
    for seat in rng.sample(free, len(free) // 4):
        response = await client.post(
            "/api/v1/bookings",
            json={
                "departure_id": departure["id"],
                "seats": [{"label": seat.label, "passenger_type": rng.choice(KINDS).value}],
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["booking"]["lines"][0]["seat_label"] == seat.label
    for _ in range(40):
        chosen_classes = rng.sample(classes, rng.randint(1, len(classes)))
        parties = [
            (
                seat_class,
                [rng.choice(KINDS) for _ in range(rng.randint(1, 6 // len(chosen_classes)))],
            )
            for seat_class in chosen_classes
        ]
        counts = [
            {"seat_class": seat_class, "passenger_type": k.value, "count": n}
            for seat_class, party in parties
            for k, n in Counter(party).items()
        ]
        # The order the service reads them in: per class, passengers in the order given.
        asked = [
            (seat_class, [PassengerType(c["passenger_type"]) for c in counts
                          if c["seat_class"] == seat_class for _ in range(c["count"])])
            for seat_class in dict.fromkeys(c["seat_class"] for c in counts)
        ]  # fmt: skip
        expected = await _expected(departure["id"], asked)
        response = await client.post(
            "/api/v1/bookings", json={"departure_id": departure["id"], "counts": counts}
        )
        if isinstance(expected, tuple):
            seat_class, free = expected
            assert response.status_code == 409, response.text
            code = "sold_out" if free == 0 else "not_enough_seats"
            assert response.json()["code"] == code
            assert seat_class in response.json()["detail"]
            outcomes["409"] += 1
            continue
        assert response.status_code == 201, response.text
        got = [
            (line["seat_label"], line["seat_class"], line["passenger_type"])
            for line in response.json()["booking"]["lines"]
        ]
        assert got == expected
        outcomes["201"] += 1
    # Both kinds of answer were compared, not only one.
    assert outcomes["201"] >= 3, outcomes
    assert outcomes["409"] >= 3, outcomes
