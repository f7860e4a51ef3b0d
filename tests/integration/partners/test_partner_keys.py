"""An agency manages its own API keys with one of them (no staff account needed)."""

from __future__ import annotations

import httpx

from tests.assertions import ok, problem
from tests.conftest import Account


async def _agency_key(client: httpx.AsyncClient, operator: Account) -> tuple[str, str]:
    agency = ok(
        await client.post(
            "/api/v1/operator/agencies",
            json={"name": "Shanghai Leisure", "contact_email": "it@shleisure.example"},
            headers=operator.headers,
        ),
        201,
    )
    created = ok(
        await client.post(
            f"/api/v1/operator/agencies/{agency['id']}/keys",
            json={"name": "first"},
            headers=operator.headers,
        ),
        201,
    )
    return agency["id"], created["key"]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_agency_creates_rotates_and_revokes_its_own_keys(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency_id, first = await _agency_key(client, operator)
    [listed] = ok(await client.get("/api/v1/partner/keys", headers=_bearer(first)))
    assert listed["name"] == "first"
    assert first.startswith(listed["prefix"] + ".")
    assert "key" not in listed
    assert "key_hash" not in listed

    second = ok(
        await client.post("/api/v1/partner/keys", json={"name": "backup"}, headers=_bearer(first)),
        201,
    )
    assert ok(await client.get("/octo/supplier", headers=_bearer(second["key"])))

    rotated = ok(
        await client.post(
            f"/api/v1/partner/keys/{listed['id']}/rotate", headers=_bearer(second["key"])
        )
    )
    assert rotated["api_key"]["name"] == "first"
    # The old key stops at once; the new one works.
    problem(await client.get("/api/v1/partner/keys", headers=_bearer(first)), 401)
    stopped = await client.get("/octo/supplier", headers=_bearer(first))
    assert (stopped.status_code, stopped.json()["error"]) == (400, "FORBIDDEN")
    assert ok(await client.get("/octo/supplier", headers=_bearer(rotated["key"])))
    # A revoked key cannot be rotated back to life.
    problem(
        await client.post(
            f"/api/v1/partner/keys/{listed['id']}/rotate", headers=_bearer(rotated["key"])
        ),
        409,
        "api_key_revoked",
    )

    revoked = ok(
        await client.delete(
            f"/api/v1/partner/keys/{second['api_key']['id']}", headers=_bearer(rotated["key"])
        )
    )
    assert revoked["revoked_at"] is not None
    assert (await client.get("/octo/supplier", headers=_bearer(second["key"]))).status_code == 400
    keys = ok(await client.get("/api/v1/partner/keys", headers=_bearer(rotated["key"])))
    assert sorted((k["name"], k["revoked_at"] is None) for k in keys) == [
        ("backup", False),
        ("first", False),
        ("first", True),
    ]
    # The operator sees the same keys.
    seen = ok(
        await client.get(f"/api/v1/operator/agencies/{agency_id}/keys", headers=operator.headers)
    )
    assert {k["id"] for k in seen} == {k["id"] for k in keys}


async def test_another_agencys_key_is_not_found_and_bad_keys_are_401(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _agency, mine = await _agency_key(client, operator)
    _other, theirs = await _agency_key(client, operator)
    [their_key] = ok(await client.get("/api/v1/partner/keys", headers=_bearer(theirs)))
    for response in (
        await client.post(f"/api/v1/partner/keys/{their_key['id']}/rotate", headers=_bearer(mine)),
        await client.delete(f"/api/v1/partner/keys/{their_key['id']}", headers=_bearer(mine)),
    ):
        problem(response, 404, "api_key_not_found")
    assert ok(await client.get("/octo/supplier", headers=_bearer(theirs)))
    problem(await client.get("/api/v1/partner/keys"), 401, "invalid_api_key")
    problem(await client.get("/api/v1/partner/keys", headers=_bearer("tl_nope.x")), 401)
    # A staff token is not a partner key.
    problem(await client.get("/api/v1/partner/keys", headers=operator.headers), 401)
    body = problem(
        await client.post("/api/v1/partner/keys", json={"name": "x" * 81}, headers=_bearer(mine)),
        400,
    )
    assert body["errors"][0]["field"] == "name"
