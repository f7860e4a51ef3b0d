"""The public seat map shows seats held by live bookings as taken, and run-out holds as free."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from app.core import clock
from tests.conftest import Account
from tests.factories import published_bus_departure


def _free(seat_map: dict[str, object], label: str) -> bool:
    seats = seat_map["seats"]
    assert isinstance(seats, list)
    return bool(next(seat for seat in seats if seat["label"] == label)["free"])


async def test_booked_seats_are_not_free_until_the_hold_runs_out(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.post(
        "/api/v1/bookings",
        json={"departure_id": departure["id"], "seats": [{"label": "3A"}, {"label": "3B"}]},
    )
    assert response.status_code == 201, response.text
    expires_at = datetime.fromisoformat(response.json()["booking"]["expires_at"])

    seat_map = (await client.get(f"/api/v1/departures/{departure['id']}/seats")).json()
    assert not _free(seat_map, "3A")
    assert not _free(seat_map, "3B")
    assert _free(seat_map, "3C")

    with clock.frozen(expires_at + timedelta(seconds=1)):
        seat_map = (await client.get(f"/api/v1/departures/{departure['id']}/seats")).json()
        assert _free(seat_map, "3A")
        assert _free(seat_map, "3B")
