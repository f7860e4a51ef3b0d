"""OCTO flows checked against the OCTO specification itself (octo-types' openapi.yaml,
`tests/octo_spec.py`): every response must validate against the schema the specification
documents for it, and every error must be one of its documented codes, with its fields."""

from __future__ import annotations

from typing import Any

import httpx

from tests.assertions import ok
from tests.conftest import Account
from tests.octo_spec import assert_conforms, error_schemas, response_schema

AGENCIES = "/api/v1/operator/agencies"


async def octo_agency(client: httpx.AsyncClient, operator: Account) -> dict[str, str]:
    """A new on-account agency's request headers (its key as a bearer token)."""
    body = {"name": "Spec Tours", "contact_email": "ops@spec.example", "credit_limit": 10_000_000}
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    created = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    return {"Authorization": f"Bearer {created['key']}"}


def spec_error(response: httpx.Response, code: str, status: int) -> dict[str, Any]:
    """A documented OCTO error: its status, its code, and the fields its schema requires."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    schemas = error_schemas()
    assert code in schemas, f"{code} is not an error code of the specification"
    assert body.get("error") == code, body
    assert_conforms(body, schemas[code])
    return body


async def test_the_supplier_is_what_the_specification_describes(
    client: httpx.AsyncClient, operator: Account
) -> None:
    headers = await octo_agency(client, operator)
    response = await client.get("/octo/supplier", headers=headers)
    assert response.status_code == 200, response.text
    assert_conforms(response.json(), response_schema("/supplier/", "get"))


async def test_an_unknown_product_is_invalid_product_id(
    client: httpx.AsyncClient, operator: Account
) -> None:
    headers = await octo_agency(client, operator)
    response = await client.get("/octo/products/no-such-product", headers=headers)
    spec_error(response, "INVALID_PRODUCT_ID", 400)
