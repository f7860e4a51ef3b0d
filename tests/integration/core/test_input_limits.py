"""Input no handler can take is a 400 naming the field, never a 500: NUL characters,
dates off the calendar, pages and amounts beyond the columns."""

from __future__ import annotations

import httpx

from tests.assertions import fields, ok, problem
from tests.conftest import Account
from tests.factories import published_bus_departure


async def test_text_with_a_nul_character_is_refused_naming_the_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, _departure = await published_bus_departure(client, operator.headers)
    body = problem(
        await client.patch(
            f"/api/v1/operator/routes/{route['id']}",
            json={"name": {"zh_Hans": "采摘\u0000号"}},
            headers=operator.headers,
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["name.zh_Hans"]
    # Nothing was written.
    detail = ok(
        await client.get(f"/api/v1/operator/routes/{route['id']}", headers=operator.headers)
    )
    assert "\u0000" not in str(detail["name"])
    body = problem(await client.get("/api/v1/routes", params={"q": "a\u0000b"}), 400)
    assert body["errors"] == [
        {"field": "q", "message": body["errors"][0]["message"], "source": "query"}
    ]
    body = problem(
        await client.post(
            "/api/v1/auth/login", json={"email": "a\u0000@example.cn", "password": "x"}
        ),
        400,
    )
    assert fields(body) == ["email"]


async def test_octo_callers_get_octos_error_for_a_nul_character(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency = ok(
        await client.post(
            "/api/v1/operator/agencies",
            json={"name": "Nul Tours", "contact_email": "nul@example.cn"},
            headers=operator.headers,
        ),
        201,
    )
    key = ok(
        await client.post(
            f"/api/v1/operator/agencies/{agency['id']}/keys", json={}, headers=operator.headers
        ),
        201,
    )["key"]
    response = await client.get(
        "/octo/bookings",
        params={"resellerReference": "x\u0000"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "BAD_REQUEST"
    assert response.json()["field"] == "resellerReference"


async def test_dates_pages_and_amounts_beyond_what_is_stored_are_400(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, _departure = await published_bus_departure(client, operator.headers)
    body = problem(await client.get("/api/v1/routes", params={"from": "0001-01-01"}), 400)
    assert fields(body) == ["from"]
    body = problem(
        await client.get(f"/api/v1/routes/{route['slug']}/departures", params={"to": "9999-12-31"}),
        400,
    )
    assert fields(body) == ["to"]
    body = problem(await client.get("/api/v1/routes", params={"page": 10**30}), 400)
    assert fields(body) == ["page"]
    body = problem(
        await client.put(
            f"/api/v1/operator/routes/{route['id']}/fares",
            json={
                "fares": [
                    {"seat_class": "standard", "passenger_type": "adult", "amount": 3_000_000_000}
                ]
            },
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["fares[0].amount"]
