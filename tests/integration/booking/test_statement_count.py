"""How many statements a booking hold sends to the database: a regression fails here.

Counted at the engines' boundary (`tests.statement_count`), BEGIN and COMMIT included;
on PostgreSQL each is a round trip. Not timed: statements are counted, not measured.
"""

from __future__ import annotations

import httpx

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
    # Three reads (seats left, the departure's route and operator, fares), then BEGIN, the
    # departure's lock, overdue holds, free seats, the booking, its lines, its audit
    # entry and COMMIT.
    assert len(sent) == 11, sent.describe()
    assert sent.kinds.count("BEGIN") == 1, sent.describe()
