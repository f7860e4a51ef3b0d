"""The OCTO request bodies are in the OpenAPI schema, and say what the server requires:
a hold without a documented required field is an OCTO 400, with all of them it is held."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account
from tests.factories import published_bus_departure

OCTO_BODIES = {
    "/octo/availability/calendar": {"productId", "optionId", "localDateStart", "localDateEnd"},
    "/octo/availability": {"productId", "optionId"},
    "/octo/bookings": {"productId", "optionId", "availabilityId", "unitItems"},
    "/octo/bookings/{uuid}/extend": set(),
    "/octo/bookings/{uuid}/confirm": {"contact"},
    "/octo/bookings/{uuid}/payment": {"contact"},
    "/octo/bookings/{uuid}/cancel": set(),
}
SEARCH_FILTERS = {"resellerReference", "supplierReference", "localDate", "localDateStart",
                  "localDateEnd", "productId", "optionId"}  # fmt: skip


def _body_schema(
    schema: dict[str, Any], path: str, method: str = "post"
) -> tuple[bool, dict[str, Any]]:
    body = schema["paths"][path][method]["requestBody"]
    return body["required"], _resolved(schema, body["content"]["application/json"]["schema"])


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema, or the component its `$ref` names."""
    if "$ref" not in node:
        return node
    found: dict[str, Any] = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return found


async def test_octo_request_bodies_and_search_filters_are_documented(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    for path, required in OCTO_BODIES.items():
        body_required, body = _body_schema(schema, path)
        assert body["type"] == "object", path
        assert set(body.get("required", [])) == required, path
        assert required <= set(body["properties"]), path
        # Only the cancellation may come without a body.
        assert body_required is (not path.endswith("/cancel")), path
    contact = _resolved(
        schema, _body_schema(schema, "/octo/bookings/{uuid}/confirm")[1]["properties"]["contact"]
    )
    assert contact["required"] == ["emailAddress"]
    assert {"fullName", "firstName", "lastName", "locales"} <= set(contact["properties"])
    units = _body_schema(schema, "/octo/bookings")[1]["properties"]["unitItems"]
    assert units["items"]["properties"]["unitId"]["enum"] == ["adult", "child", "senior"]
    # The update (PATCH) documents what it changes, nothing required.
    required, update = _body_schema(schema, "/octo/bookings/{uuid}", "patch")
    assert required is True
    assert not update.get("required")
    assert {"contact", "notes", "resellerReference", "unitItems"} <= set(update["properties"])
    search = schema["paths"]["/octo/bookings"]["get"]["parameters"]
    assert {p["name"] for p in search if p["in"] == "query"} == SEARCH_FILTERS


async def test_a_hold_needs_each_documented_required_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    agency = await client.post(
        "/api/v1/operator/agencies",
        json={"name": "Beijing Tours", "contact_email": "ops@bjtours.example"},
        headers=operator.headers,
    )
    keys = f"/api/v1/operator/agencies/{agency.json()['id']}/keys"
    key = (await client.post(keys, json={"name": "main"}, headers=operator.headers)).json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    hold = {
        "uuid": "doc-hold-1",
        "productId": route["id"],
        "optionId": "standard",
        "availabilityId": departure["id"],
        "unitItems": [{"unitId": "adult"}],
    }
    schema = (await client.get("/schema/openapi.json")).json()
    required = _body_schema(schema, "/octo/bookings")[1]["required"]
    # As in the specification, the agency's uuid is optional (the server makes one).
    assert "uuid" not in required
    for field in required:
        partial = {name: value for name, value in hold.items() if name != field}
        response = await client.post("/octo/bookings", json=partial, headers=headers)
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"].startswith(("BAD_REQUEST", "INVALID_")), field
    response = await client.post("/octo/bookings", json=hold, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ON_HOLD"
    assert response.json()["uuid"] == "doc-hold-1"
    # A search by a documented filter finds it.
    found = await client.get("/octo/bookings", params={"productId": route["id"]}, headers=headers)
    assert [b["uuid"] for b in found.json()] == ["doc-hold-1"]
