import httpx

from tests.conftest import Account
from tests.factories import published_bus_departure


async def test_published_departure_is_visible(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.get(f"/api/v1/departures/{departure['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["seats_left"] == 45
    assert body["route_slug"] == route["slug"]
