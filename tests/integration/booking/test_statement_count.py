"""How many statements a booking hold sends to the database: a regression fails here.

Counted at the engines' boundary (`tests.statement_count`), BEGIN and COMMIT included;
on PostgreSQL each is a round trip. A hold there is one read (departure, route, operator,
stop, fares) and one `booking_hold(...)` run on its own, which commits with its answer.
SQLite keeps a multi-statement IMMEDIATE transaction. Not timed: statements are counted,
not measured.
"""

from __future__ import annotations

import httpx

from app.core import database
from tests.conftest import Account
from tests.factories import published_bus_departure
from tests.statement_count import count_statements


async def _hold(client: httpx.AsyncClient, departure_id: str) -> httpx.Response:
    return await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure_id,
            "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 2}],
            "contact": {"name": "Li Lei", "email": "li@example.com", "phone": "+8613800000000"},
        },
    )


async def test_a_hold_sends_a_pinned_number_of_statements(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    # A first hold warms what is read once per process (none of it is counted below).
    assert (await _hold(client, departure["id"])).status_code == 201
    async with count_statements() as sent:
        response = await _hold(client, departure["id"])
    assert response.status_code == 201, response.text
    assert len(response.json()["booking"]["lines"]) == 2
    if database.is_sqlite():
        # Three reads (seats left, the departure's route and operator, fares), then BEGIN,
        # the departure, overdue holds, free seats, the booking, its lines, its audit
        # entry and COMMIT.
        assert len(sent) == 11, sent.describe()
        assert sent.kinds.count("BEGIN") == 1, sent.describe()
        return
    assert sent.round_trips == 2, sent.describe()
    assert sent.kinds == ["SELECT", "SELECT"], sent.describe()
    assert "booking_hold(" in sent.texts[1], sent.describe()


async def test_a_sold_out_answer_sends_the_same_statements(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    body = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 10}],
    }
    for _ in range(4):
        assert (await client.post("/api/v1/bookings", json=body)).status_code == 201
    async with count_statements() as sent:
        response = await client.post("/api/v1/bookings", json=body)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "not_enough_seats"
    if not database.is_sqlite():
        assert sent.round_trips == 2, sent.describe()
