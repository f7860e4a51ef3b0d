"""Partner agencies as an operator manages them (contracts, API keys) and the OCTO catalogue
an agency reads with its key: supplier, products, availability and calendar, through the
HTTP API against a real database. OCTO bookings are tested elsewhere."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from app.core import clock
from app.partners.tables import Agency, ApiKey
from tests.assertions import fields, ok
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)

AGENCIES = "/api/v1/operator/agencies"
DEPARTURES = "/api/v1/operator/departures"
BOOKINGS = "/api/v1/bookings"
SHANGHAI = clock.zone("Asia/Shanghai")
# set_route_fares: the first class listed costs 6800 (adult) / 3800 (child), the next 1000 more.
TRAIN_FARES = {
    "soft_sleeper": {"adult": 6800, "child": 3800},
    "hard_sleeper": {"adult": 7800, "child": 4800},
}
REQUIRED_PRODUCT_FIELDS = {
    "id", "internalName", "reference", "locale", "timeZone", "allowFreesale",
    "instantConfirmation", "instantDelivery", "availabilityRequired", "availabilityType",
    "deliveryFormats", "deliveryMethods", "redemptionMethod", "options",
}  # fmt: skip
REQUIRED_OPTION_FIELDS = {
    "id", "default", "internalName", "reference", "availabilityLocalStartTimes",
    "cancellationCutoff", "cancellationCutoffAmount", "cancellationCutoffUnit",
    "requiredContactFields", "restrictions", "units",
}  # fmt: skip
REQUIRED_UNIT_FIELDS = {"id", "internalName", "reference", "type", "requiredContactFields",
                        "restrictions"}  # fmt: skip
REQUIRED_AVAILABILITY_FIELDS = {
    "id", "localDateTimeStart", "localDateTimeEnd", "allDay", "available", "status",
    "vacancies", "capacity", "maxUnits", "utcCutoffAt", "openingHours",
}  # fmt: skip
REQUIRED_CALENDAR_FIELDS = {"localDate", "available", "status", "vacancies", "capacity",
                            "openingHours"}  # fmt: skip

MakeOperator = Callable[..., Awaitable[Account]]


# ---------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem (the operator API's errors) with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def octo_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    """An OCTO error body: {"error": CODE, "errorMessage": ...}, never problem+json."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["errorMessage"], str)
    assert body["errorMessage"]
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_agency(client: httpx.AsyncClient, account: Account, **terms: Any) -> dict[str, Any]:
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example", **terms}
    return dict(ok(await client.post(AGENCIES, json=body, headers=account.headers), 201))


async def make_key(
    client: httpx.AsyncClient, account: Account, agency_id: str, name: str = "main"
) -> dict[str, Any]:
    response = await client.post(
        f"{AGENCIES}/{agency_id}/keys", json={"name": name}, headers=account.headers
    )
    return dict(ok(response, 201))


async def partner(client: httpx.AsyncClient, account: Account, **terms: Any) -> tuple[str, str]:
    """A new agency of the account's operator and a working key: (agency id, key)."""
    agency = await make_agency(client, account, **terms)
    return agency["id"], (await make_key(client, account, agency["id"]))["key"]


async def supplier_status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/octo/supplier", headers=bearer(key))).status_code


async def octo_availability(
    client: httpx.AsyncClient, key: str, body: Any, path: str = "/octo/availability"
) -> httpx.Response:
    headers = {**bearer(key), "Octo-Capabilities": "octo/pricing"}
    return await client.post(path, json=body, headers=headers)


async def slots(client: httpx.AsyncClient, key: str, **body: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = ok(await octo_availability(client, key, body))
    return result


async def calendar(client: httpx.AsyncClient, key: str, **body: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = ok(
        await octo_availability(client, key, body, "/octo/availability/calendar")
    )
    return result


async def train_route(
    client: httpx.AsyncClient, account: Account, slug: str = "flower-train"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A published train route with fares for both classes, and its train: 8 soft sleeper
    berths (2 compartments of 4) and 12 hard (2 of 6)."""
    route = await create_route(client, account.headers, slug=slug, kind="train")
    vehicle = await create_vehicle(client, account.headers, "train")
    await set_route_fares(client, account.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    return route, vehicle


async def departure_with(
    client: httpx.AsyncClient,
    account: Account,
    route: dict[str, Any],
    vehicle: dict[str, Any],
    departs_at: datetime,
    **extra: Any,
) -> dict[str, Any]:
    """A published departure with extra fields (time_zone, sales_open_at, sales_close_at)."""
    payload: dict[str, Any] = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": [
            {
                "kind": "pickup",
                "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"},
                "at": departs_at.isoformat(),
            }
        ],
        **{
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in extra.items()
        },
    }
    departure = ok(await client.post(DEPARTURES, json=payload, headers=account.headers), 201)
    response = await client.post(f"{DEPARTURES}/{departure['id']}/publish", headers=account.headers)
    return dict(ok(response))


async def take_seats(client: httpx.AsyncClient, departure_id: str, seat_class: str, n: int) -> None:
    """Hold n seats of a class through the public booking API (10 a booking at most)."""
    while n > 0:
        party = min(n, 10)
        body = {
            "departure_id": departure_id,
            "counts": [{"seat_class": seat_class, "passenger_type": "adult", "count": party}],
        }
        ok(await client.post(BOOKINGS, json=body), 201)
        n -= party


async def public_classes(client: httpx.AsyncClient, departure_id: str) -> dict[str, dict[str, int]]:
    """Capacity and seats left per class, as the public departure page shows them."""
    body = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    return {
        c["seat_class"]: {"capacity": c["capacity"], "seats_left": c["seats_left"]}
        for c in body["classes"]
    }


def local(moment: datetime, zone: str = "Asia/Shanghai") -> str:
    return moment.astimezone(clock.zone(zone)).isoformat()


def day(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).date().isoformat()


# ---------------------------------------------------------------- agencies


async def test_create_read_list_and_patch_an_agency(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    before = clock.now()
    created = await make_agency(client, operator, name="Zhengzhou Travel")
    assert created["name"] == "Zhengzhou Travel"
    assert created["contact_email"] == "ops@bjtours.example"
    # The contract's defaults.
    assert created["status"] == "active"
    assert created["commission_bp"] == 0
    assert created["payment_terms"] == "on_account"
    assert created["credit_limit"] == 0
    assert created["allowed_routes"] == []
    assert created["cancellation_cutoff_hours"] == 24
    assert created["webhook_url"] is None
    assert datetime.fromisoformat(created["created_at"]) >= before
    # The webhook secret is never shown.
    assert "webhook_secret" not in created

    full = await make_agency(
        client,
        operator,
        name="Anyang Adventures",
        contact_email="desk@anyang.example",
        commission_bp=10_000,
        payment_terms="prepay",
        credit_limit=500_000,
        allowed_routes=[route["id"]],
        cancellation_cutoff_hours=48,
        webhook_url="https://anyang.example/hooks/tourline",
    )
    assert full["commission_bp"] == 10_000
    assert full["payment_terms"] == "prepay"
    assert full["credit_limit"] == 500_000
    assert full["allowed_routes"] == [route["id"]]
    assert full["cancellation_cutoff_hours"] == 48
    assert full["webhook_url"] == "https://anyang.example/hooks/tourline"

    assert ok(await client.get(f"{AGENCIES}/{created['id']}", headers=operator.headers)) == created
    listed = ok(await client.get(AGENCIES, headers=operator.headers))
    assert [a["name"] for a in listed] == ["Anyang Adventures", "Zhengzhou Travel"]

    patched = ok(
        await client.patch(
            f"{AGENCIES}/{full['id']}",
            json={
                "commission_bp": 1250,
                "status": "suspended",
                "allowed_routes": [],
                "webhook_url": None,
            },
            headers=operator.headers,
        )
    )
    assert patched["commission_bp"] == 1250
    assert patched["status"] == "suspended"
    assert patched["allowed_routes"] == []
    assert patched["webhook_url"] is None
    # What the PATCH did not name is unchanged.
    unchanged = ("id", "name", "contact_email", "payment_terms", "credit_limit",
                 "cancellation_cutoff_hours", "created_at")  # fmt: skip
    assert {k: patched[k] for k in unchanged} == {k: full[k] for k in unchanged}
    assert ok(await client.get(f"{AGENCIES}/{full['id']}", headers=operator.headers)) == patched
    row = await Agency.select().where(Agency.id == full["id"]).first().run()
    assert row is not None
    assert row["commission_bp"] == 1250
    assert row["status"] == "suspended"
    assert len(row["webhook_secret"]) == 64


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"commission_bp": 10_001}, "commission_bp"),
        ({"commission_bp": -1}, "commission_bp"),
        ({"credit_limit": -1}, "credit_limit"),
        ({"payment_terms": "barter"}, "payment_terms"),
        ({"webhook_url": "ftp://anyang.example"}, "webhook_url"),
        ({"webhook_secret": "mine"}, "webhook_secret"),
        ({"operator_id": "00000000-0000-0000-0000-000000000000"}, "operator_id"),
    ],
)
async def test_invalid_or_unknown_fields_are_refused_by_name(
    client: httpx.AsyncClient, operator: Account, change: dict[str, Any], field: str
) -> None:
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example", **change}
    refused = problem(
        await client.post(AGENCIES, json=body, headers=operator.headers), 400, "validation_error"
    )
    assert fields(refused) == [field]
    assert ok(await client.get(AGENCIES, headers=operator.headers)) == []

    agency = await make_agency(client, operator)
    refused = problem(
        await client.patch(f"{AGENCIES}/{agency['id']}", json=change, headers=operator.headers),
        400,
        "validation_error",
    )
    assert fields(refused) == [field]
    assert ok(await client.get(f"{AGENCIES}/{agency['id']}", headers=operator.headers)) == agency


async def test_allowed_routes_must_be_routes_of_the_operator(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    mine = await create_route(client, operator.headers, slug="my-line")
    other = await make_operator("yy-rail")
    theirs = await create_route(client, other.headers, slug="their-line")

    for routes, index in (([str(uuid4())], 0), ([mine["id"], theirs["id"]], 1)):
        body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example",
                "allowed_routes": routes}  # fmt: skip
        refused = problem(
            await client.post(AGENCIES, json=body, headers=operator.headers),
            400,
            "validation_error",
        )
        assert fields(refused) == [f"allowed_routes[{index}]"]
    assert ok(await client.get(AGENCIES, headers=operator.headers)) == []

    agency = await make_agency(client, operator, allowed_routes=[mine["id"]])
    refused = problem(
        await client.patch(
            f"{AGENCIES}/{agency['id']}",
            json={"allowed_routes": [theirs["id"]]},
            headers=operator.headers,
        ),
        400,
        "validation_error",
    )
    assert fields(refused) == ["allowed_routes[0]"]
    got = ok(await client.get(f"{AGENCIES}/{agency['id']}", headers=operator.headers))
    assert got["allowed_routes"] == [mine["id"]]
    # A draft route of the operator may be in the contract (it is simply not on sale yet).
    draft = await create_route(client, operator.headers, slug="draft-line", publish=False)
    got = ok(
        await client.patch(
            f"{AGENCIES}/{agency['id']}",
            json={"allowed_routes": [draft["id"], mine["id"]]},
            headers=operator.headers,
        )
    )
    assert got["allowed_routes"] == [draft["id"], mine["id"]]


async def test_another_operators_agency_is_not_found(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    agency = await make_agency(client, operator)
    key = await make_key(client, operator, agency["id"])
    key_id = key["api_key"]["id"]
    other = await make_operator("yy-rail")
    url = f"{AGENCIES}/{agency['id']}"

    assert ok(await client.get(AGENCIES, headers=other.headers)) == []
    for response in (
        await client.get(url, headers=other.headers),
        await client.patch(url, json={"commission_bp": 9000}, headers=other.headers),
        await client.post(f"{url}/keys", json={"name": "mine now"}, headers=other.headers),
        await client.get(f"{url}/keys", headers=other.headers),
        await client.delete(f"{url}/keys/{key_id}", headers=other.headers),
        await client.post(f"{url}/keys/{key_id}/rotate", headers=other.headers),
    ):
        problem(response, 404, "agency_not_found")
    problem(
        await client.get(f"{AGENCIES}/{uuid4()}", headers=operator.headers),
        404,
        "agency_not_found",
    )
    # Nothing changed, and the key still works.
    assert ok(await client.get(url, headers=operator.headers)) == agency
    keys = ok(await client.get(f"{url}/keys", headers=operator.headers))
    assert [(k["id"], k["revoked_at"]) for k in keys] == [(key_id, None)]
    assert await supplier_status(client, key["key"]) == 200


async def test_a_key_of_another_agency_is_not_found(
    client: httpx.AsyncClient, operator: Account
) -> None:
    first = await make_agency(client, operator, name="First")
    second = await make_agency(client, operator, name="Second")
    key = await make_key(client, operator, first["id"])
    wrong = f"{AGENCIES}/{second['id']}/keys/{key['api_key']['id']}"
    problem(await client.delete(wrong, headers=operator.headers), 404, "api_key_not_found")
    problem(
        await client.post(f"{wrong}/rotate", headers=operator.headers), 404, "api_key_not_found"
    )
    assert await supplier_status(client, key["key"]) == 200


async def test_operator_staff_can_read_but_not_sign_or_change(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    agency = await make_agency(client, operator)
    key = await make_key(client, operator, agency["id"])
    staff = await make_operator("zz-bus", role="operator_staff")
    url = f"{AGENCIES}/{agency['id']}"
    body = {"name": "Staff Tours", "contact_email": "staff@tours.example"}

    problem(
        await client.post(AGENCIES, json=body, headers=staff.headers),
        403,
        "operator_admin_required",
    )
    for response in (
        await client.patch(url, json={"commission_bp": 9000}, headers=staff.headers),
        await client.post(f"{url}/keys", json={"name": "staff"}, headers=staff.headers),
        await client.delete(f"{url}/keys/{key['api_key']['id']}", headers=staff.headers),
        await client.post(f"{url}/keys/{key['api_key']['id']}/rotate", headers=staff.headers),
    ):
        problem(response, 403, "operator_admin_required")
    assert [a["id"] for a in ok(await client.get(AGENCIES, headers=staff.headers))] == [
        agency["id"]
    ]
    assert ok(await client.get(url, headers=staff.headers)) == agency
    assert len(ok(await client.get(f"{url}/keys", headers=staff.headers))) == 1
    assert await supplier_status(client, key["key"]) == 200
    # Without a token at all it is a 401.
    problem(await client.get(AGENCIES), 401)


# ---------------------------------------------------------------- API keys


async def test_key_is_shown_once_and_stored_as_a_sha256_hash(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency = await make_agency(client, operator)
    created = await make_key(client, operator, agency["id"], name="booking engine")
    key, api_key = created["key"], created["api_key"]
    assert set(created) == {"key", "api_key"}
    assert api_key["name"] == "booking engine"
    assert api_key["prefix"].startswith("tl_")
    assert key.startswith(api_key["prefix"] + ".")
    # At least 256 bits of secret after the prefix.
    assert len(key) - len(api_key["prefix"]) - 1 >= 43
    assert api_key["last_used_at"] is None
    assert api_key["revoked_at"] is None

    response = await client.get(f"{AGENCIES}/{agency['id']}/keys", headers=operator.headers)
    listed = ok(response)
    assert listed == [api_key]
    assert "key" not in listed[0]
    secret = key.split(".", 1)[1]
    assert secret not in response.text

    row = await ApiKey.select().where(ApiKey.id == api_key["id"]).first().run()
    assert row is not None
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == api_key["prefix"]
    assert all(secret not in str(value) for value in row.values())

    another = await make_key(client, operator, agency["id"], name="backup")
    assert another["key"] != key
    assert another["api_key"]["prefix"] != api_key["prefix"]

    response = await client.get("/octo/supplier", headers=bearer(key))
    supplier = ok(response)
    assert supplier["id"] == operator.operator_id
    assert supplier["name"] == "zz-bus 公司"
    assert supplier["endpoint"] == "/octo"
    assert supplier["contact"]["email"] == "contact@zz-bus.test"
    assert supplier["contact"]["telephone"] == "+86 371 6000 0000"
    assert set(supplier["contact"]) == {"website", "email", "telephone", "address"}
    assert "octo-capabilities" in response.headers
    listed = ok(await client.get(f"{AGENCIES}/{agency['id']}/keys", headers=operator.headers))
    used = {k["id"]: k["last_used_at"] for k in listed}
    assert used[api_key["id"]] is not None
    assert used[another["api_key"]["id"]] is None


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer nonsense",
        "Bearer tl_00000000.wrong",
        "Bearer {prefix}.wrong-secret",
        "Bearer {prefix}",
        "Basic {key}",
        "Bearer {key}x",
    ],
)
async def test_missing_or_wrong_key_is_an_octo_unauthorized_or_forbidden(
    client: httpx.AsyncClient, operator: Account, authorization: str | None
) -> None:
    # The specification: no key sent is UNAUTHORIZED, a key that is not valid FORBIDDEN,
    # both with status 400.
    sent = authorization is not None and authorization.startswith("Bearer ")
    expected = "FORBIDDEN" if sent else "UNAUTHORIZED"
    agency = await make_agency(client, operator)
    created = await make_key(client, operator, agency["id"])
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(
            key=created["key"], prefix=created["api_key"]["prefix"]
        )
    for response in (
        await client.get("/octo/supplier", headers=headers),
        await client.get("/octo/products", headers=headers),
        await client.post("/octo/availability", json={}, headers=headers),
    ):
        body = octo_error(response, expected, 400)
        assert set(body) == {"error", "errorMessage"}
    # A wrong key does not count as a use of the right one.
    row = await ApiKey.select().where(ApiKey.id == created["api_key"]["id"]).first().run()
    assert row is not None
    assert row["last_used_at"] is None
    assert await supplier_status(client, created["key"]) == 200


async def test_revoked_key_is_forbidden_and_others_keep_working(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency = await make_agency(client, operator)
    first = await make_key(client, operator, agency["id"], name="first")
    second = await make_key(client, operator, agency["id"], name="second")
    assert await supplier_status(client, first["key"]) == 200

    url = f"{AGENCIES}/{agency['id']}/keys/{first['api_key']['id']}"
    revoked = ok(await client.delete(url, headers=operator.headers))
    assert revoked["id"] == first["api_key"]["id"]
    assert revoked["revoked_at"] is not None
    assert "key" not in revoked

    response = await client.get("/octo/supplier", headers=bearer(first["key"]))
    assert response.json() == {
        "error": "FORBIDDEN",
        "errorMessage": response.json()["errorMessage"],
    }
    octo_error(response, "FORBIDDEN", 400)
    octo_error(await client.get("/octo/products", headers=bearer(first["key"])), "FORBIDDEN", 400)
    assert await supplier_status(client, second["key"]) == 200

    # Revoking again changes nothing.
    again = ok(await client.delete(url, headers=operator.headers))
    assert again == revoked
    listed = ok(await client.get(f"{AGENCIES}/{agency['id']}/keys", headers=operator.headers))
    assert {k["name"]: k["revoked_at"] is not None for k in listed} == {
        "first": True,
        "second": False,
    }
    problem(
        await client.delete(f"{AGENCIES}/{agency['id']}/keys/{uuid4()}", headers=operator.headers),
        404,
        "api_key_not_found",
    )


async def test_rotate_returns_a_new_working_key_and_the_old_one_stops(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency = await make_agency(client, operator)
    old = await make_key(client, operator, agency["id"], name="channel manager")
    assert await supplier_status(client, old["key"]) == 200

    rotated = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys/{old['api_key']['id']}/rotate",
            headers=operator.headers,
        )
    )
    assert rotated["key"] != old["key"]
    assert rotated["api_key"]["id"] != old["api_key"]["id"]
    assert rotated["api_key"]["prefix"] != old["api_key"]["prefix"]
    assert rotated["api_key"]["name"] == "channel manager"
    assert rotated["api_key"]["revoked_at"] is None
    assert rotated["key"].startswith(rotated["api_key"]["prefix"] + ".")

    octo_error(await client.get("/octo/supplier", headers=bearer(old["key"])), "FORBIDDEN", 400)
    assert await supplier_status(client, rotated["key"]) == 200
    listed = ok(await client.get(f"{AGENCIES}/{agency['id']}/keys", headers=operator.headers))
    assert {k["id"]: k["revoked_at"] is not None for k in listed} == {
        old["api_key"]["id"]: True,
        rotated["api_key"]["id"]: False,
    }
    row = await ApiKey.select().where(ApiKey.id == rotated["api_key"]["id"]).first().run()
    assert row is not None
    assert row["key_hash"] == hashlib.sha256(rotated["key"].encode()).hexdigest()


async def test_suspended_agencys_keys_fail_until_it_is_active_again(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency_id, key = await partner(client, operator)
    assert await supplier_status(client, key) == 200
    url = f"{AGENCIES}/{agency_id}"
    ok(await client.patch(url, json={"status": "suspended"}, headers=operator.headers))
    octo_error(await client.get("/octo/supplier", headers=bearer(key)), "FORBIDDEN", 400)
    octo_error(await client.get("/octo/products", headers=bearer(key)), "FORBIDDEN", 400)
    # A key made while suspended does not work either.
    fresh = await make_key(client, operator, agency_id)
    assert await supplier_status(client, fresh["key"]) == 400
    ok(await client.patch(url, json={"status": "active"}, headers=operator.headers))
    assert await supplier_status(client, key) == 200
    assert await supplier_status(client, fresh["key"]) == 200


async def test_a_key_sees_only_its_own_operators_products(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    mine, _vehicle, my_departure = await published_bus_departure(
        client, operator.headers, slug="my-line"
    )
    other = await make_operator("yy-rail")
    theirs, _their_vehicle, their_departure = await published_bus_departure(
        client, other.headers, slug="their-line"
    )
    _agency, key = await partner(client, operator)
    _their_agency, their_key = await partner(client, other)

    assert [p["id"] for p in ok(await client.get("/octo/products", headers=bearer(key)))] == [
        mine["id"]
    ]
    their_products = ok(await client.get("/octo/products", headers=bearer(their_key)))
    assert [p["id"] for p in their_products] == [theirs["id"]]
    assert ok(await client.get("/octo/supplier", headers=bearer(key)))["id"] == operator.operator_id
    assert (
        ok(await client.get("/octo/supplier", headers=bearer(their_key)))["id"] == other.operator_id
    )

    body = octo_error(
        await client.get(f"/octo/products/{theirs['id']}", headers=bearer(key)),
        "INVALID_PRODUCT_ID",
    )
    assert body["productId"] == theirs["id"]
    for request in (
        {"productId": theirs["id"], "optionId": "standard",
         "availabilityIds": [their_departure["id"]]},
        {"productId": theirs["id"], "optionId": "standard",
         "localDateStart": day(in_days(0)), "localDateEnd": day(in_days(30))},
    ):  # fmt: skip
        body = octo_error(await octo_availability(client, key, request), "INVALID_PRODUCT_ID")
        assert body["productId"] == theirs["id"]
    # Its own product does not reach the other operator's departures by id either.
    assert (
        await slots(
            client,
            key,
            productId=mine["id"],
            optionId="standard",
            availabilityIds=[their_departure["id"]],
        )
        == []
    )
    found = await slots(
        client, key, productId=mine["id"], optionId="standard",
        availabilityIds=[my_departure["id"]],
    )  # fmt: skip
    assert [s["id"] for s in found] == [my_departure["id"]]


# ---------------------------------------------------------------- supplier and products


async def test_products_are_published_routes_with_seat_classes_and_passenger_types(
    client: httpx.AsyncClient, operator: Account
) -> None:
    train, vehicle = await train_route(client, operator)
    await create_departure(client, operator.headers, train, vehicle)
    bus, _bus_vehicle, _bus_departure = await published_bus_departure(
        client, operator.headers, slug="apple-bus"
    )
    await create_route(client, operator.headers, slug="draft-line", publish=False)
    _agency, key = await partner(client, operator)

    response = await client.get("/octo/products", headers=bearer(key))
    products = ok(response)
    # Published routes only, in slug order.
    assert [p["id"] for p in products] == [bus["id"], train["id"]]
    by_id = {p["id"]: p for p in products}

    product = by_id[train["id"]]
    assert REQUIRED_PRODUCT_FIELDS - set(product) == set()
    assert product["internalName"] == "采摘号"
    assert product["reference"] == "flower-train"
    assert product["locale"] == "zh-Hans"
    assert product["timeZone"] == "Asia/Shanghai"
    assert product["allowFreesale"] is False
    assert product["instantConfirmation"] is True
    assert product["instantDelivery"] is True
    assert product["availabilityRequired"] is True
    assert product["availabilityType"] == "START_TIME"
    assert product["deliveryFormats"] == ["QRCODE"]
    assert product["deliveryMethods"] == ["VOUCHER"]
    assert product["redemptionMethod"] == "DIGITAL"
    # Without octo/content, no content fields.
    assert "title" not in product
    assert "description" not in product

    options = product["options"]
    assert [o["id"] for o in options] == ["hard_sleeper", "soft_sleeper"]
    assert [o["default"] for o in options] == [True, False]
    for option in options:
        assert REQUIRED_OPTION_FIELDS - set(option) == set()
        assert option["restrictions"]["minUnits"] >= 1
        assert option["restrictions"]["maxUnits"] == 10
        assert option["cancellationCutoffUnit"] in {"hour", "minute", "day"}
        # The passenger types the route has a fare for (adult and child, no senior).
        assert [u["id"] for u in option["units"]] == ["adult", "child"]
        assert [u["type"] for u in option["units"]] == ["ADULT", "CHILD"]
        for unit in option["units"]:
            assert REQUIRED_UNIT_FIELDS - set(unit) == set()
            restrictions = unit["restrictions"]
            assert {"minAge", "maxAge", "idRequired", "minQuantity", "maxQuantity",
                    "paxCount", "accompaniedBy"} <= set(restrictions)  # fmt: skip
            assert restrictions["paxCount"] == 1

    assert [o["id"] for o in by_id[bus["id"]]["options"]] == ["standard"]
    assert by_id[bus["id"]]["reference"] == "apple-bus"

    # One product reads the same as in the list.
    single = ok(await client.get(f"/octo/products/{train['id']}", headers=bearer(key)))
    assert single == product


async def test_allowed_routes_restrict_the_products(
    client: httpx.AsyncClient, operator: Account
) -> None:
    train, vehicle = await train_route(client, operator)
    train_departure = await create_departure(client, operator.headers, train, vehicle)
    bus, _bus_vehicle, _bus_departure = await published_bus_departure(
        client, operator.headers, slug="apple-bus"
    )
    draft = await create_route(client, operator.headers, slug="draft-line", publish=False)
    agency_id, key = await partner(client, operator, allowed_routes=[train["id"], draft["id"]])

    products = ok(await client.get("/octo/products", headers=bearer(key)))
    # The draft stays off sale even when the contract names it.
    assert [p["id"] for p in products] == [train["id"]]
    for product_id in (bus["id"], draft["id"]):
        body = octo_error(
            await client.get(f"/octo/products/{product_id}", headers=bearer(key)),
            "INVALID_PRODUCT_ID",
        )
        assert body["productId"] == product_id
    body = octo_error(
        await octo_availability(
            client,
            key,
            {
                "productId": bus["id"],
                "optionId": "standard",
                "localDateStart": day(in_days(0)),
                "localDateEnd": day(in_days(30)),
            },
        ),
        "INVALID_PRODUCT_ID",
    )
    assert body["productId"] == bus["id"]
    found = await slots(
        client, key, productId=train["id"], optionId="soft_sleeper",
        availabilityIds=[train_departure["id"]],
    )  # fmt: skip
    assert [s["id"] for s in found] == [train_departure["id"]]

    ok(
        await client.patch(
            f"{AGENCIES}/{agency_id}", json={"allowed_routes": []}, headers=operator.headers
        )
    )
    products = ok(await client.get("/octo/products", headers=bearer(key)))
    assert [p["id"] for p in products] == [bus["id"], train["id"]]


@pytest.mark.parametrize("product_id", ["{uuid}", "not-a-uuid", "{draft}", " {route}"])
async def test_unknown_product_is_invalid_product_id(
    client: httpx.AsyncClient, operator: Account, product_id: str
) -> None:
    route, _vehicle, _departure = await published_bus_departure(client, operator.headers)
    draft = await create_route(client, operator.headers, slug="draft-line", publish=False)
    _agency, key = await partner(client, operator)
    wanted = product_id.format(uuid=uuid4(), draft=draft["id"], route=route["id"])
    body = octo_error(
        await client.get(f"/octo/products/{wanted}", headers=bearer(key)), "INVALID_PRODUCT_ID"
    )
    assert body["productId"] == wanted
    assert (
        ok(await client.get(f"/octo/products/{route['id']}", headers=bearer(key)))["id"]
        == (route["id"])
    )


async def test_capabilities_are_echoed_as_the_supported_subset_and_content_adds_text(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, _departure = await published_bus_departure(client, operator.headers)
    _agency, key = await partner(client, operator)
    headers = {**bearer(key), "Octo-Capabilities": "octo/content, octo/pricing, octo/unknown"}

    for path in ("/octo/products", f"/octo/products/{route['id']}", "/octo/supplier"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["octo-capabilities"] == "octo/content, octo/pricing"
    plain = await client.get(f"/octo/products/{route['id']}", headers=bearer(key))
    assert plain.headers["octo-capabilities"] == ""
    assert "title" not in plain.json()

    product = ok(await client.get(f"/octo/products/{route['id']}", headers=headers))
    assert product["title"] == "采摘号"
    assert product["description"] == "周末采摘樱桃和桑葚"
    listed = ok(await client.get("/octo/products", headers=headers))
    assert listed == [product]
    only_pricing = await client.get(
        f"/octo/products/{route['id']}",
        headers={**bearer(key), "Octo-Capabilities": "octo/pricing"},
    )
    assert only_pricing.headers["octo-capabilities"] == "octo/pricing"
    assert "title" not in only_pricing.json()
    # Errors carry the header too.
    missing = await client.get(f"/octo/products/{uuid4()}", headers=headers)
    octo_error(missing, "INVALID_PRODUCT_ID")
    assert missing.headers["octo-capabilities"] == "octo/content, octo/pricing"


# ---------------------------------------------------------------- availability


async def test_availability_by_local_date_range_and_by_ids(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    morning = in_days(10)
    late = in_days(12, hour=23) + timedelta(minutes=30)
    just_after_midnight = in_days(13, hour=0) + timedelta(minutes=30)
    first = await create_departure(client, operator.headers, route, vehicle, morning)
    second = await create_departure(client, operator.headers, route, vehicle, late)
    third = await create_departure(client, operator.headers, route, vehicle, just_after_midnight)
    # A draft departure is not for sale.
    await create_departure(client, operator.headers, route, vehicle, in_days(11), publish=False)
    # One soft sleeper berth of the first departure is blocked for the guide.
    seats = ok(await client.get(f"/api/v1/departures/{first['id']}/seats"))["seats"]
    berth = next(s["label"] for s in seats if s["seat_class"] == "soft_sleeper")
    ok(
        await client.put(
            f"{DEPARTURES}/{first['id']}/blocks",
            json={"blocks": [{"label": berth, "reason": "guide"}]},
            headers=operator.headers,
        )
    )
    await take_seats(client, first["id"], "soft_sleeper", 2)
    _agency, key = await partner(client, operator)
    product = {"productId": route["id"], "optionId": "soft_sleeper"}

    found = await slots(client, key, **product, localDateStart=day(morning), localDateEnd=day(late))
    assert [s["id"] for s in found] == [first["id"], second["id"]]
    for slot, departure in zip(found, (first, second), strict=True):
        assert REQUIRED_AVAILABILITY_FIELDS - set(slot) == set()
        starts = datetime.fromisoformat(departure["departs_at"])
        assert slot["localDateTimeStart"] == local(starts)
        assert slot["localDateTimeStart"].endswith("+08:00")
        assert slot["localDateTimeEnd"] == local(datetime.fromisoformat(departure["returns_at"]))
        assert slot["allDay"] is False
        assert slot["status"] == "AVAILABLE"
        assert slot["available"] is True
        assert slot["openingHours"] == []
        # No sales close: bookings are taken until departure.
        assert slot["utcCutoffAt"] == starts.astimezone(clock.zone("UTC")).isoformat().replace(
            "+00:00", "Z"
        )
        public = (await public_classes(client, departure["id"]))["soft_sleeper"]
        assert slot["vacancies"] == public["seats_left"]
        assert slot["capacity"] == public["capacity"]
        assert slot["maxUnits"] == min(10, public["seats_left"])
    assert found[0]["localDateTimeStart"] == f"{day(morning)}T08:00:00+08:00"
    assert (found[0]["capacity"], found[0]["vacancies"]) == (7, 5)
    assert (found[1]["capacity"], found[1]["vacancies"]) == (8, 8)

    # Local days: 00:30 on the 13th is not on the 12th, though it is in UTC.
    assert [
        s["id"]
        for s in await slots(
            client, key, **product, localDateStart=day(late), localDateEnd=day(late)
        )
    ] == [second["id"]]
    assert [
        s["id"]
        for s in await slots(
            client,
            key,
            **product,
            localDateStart=day(just_after_midnight),
            localDateEnd=day(just_after_midnight),
        )
    ] == [third["id"]]
    assert (
        await slots(
            client, key, **product, localDateStart=day(in_days(11)), localDateEnd=day(in_days(11))
        )
        == []
    )

    by_ids = await slots(client, key, **product, availabilityIds=[third["id"], first["id"]])
    assert [s["id"] for s in by_ids] == [first["id"], third["id"]]
    assert by_ids[0] == found[0]
    # The other option of the same departure: hard sleepers, untouched.
    hard = await slots(
        client, key, productId=route["id"], optionId="hard_sleeper", availabilityIds=[first["id"]]
    )
    assert [(s["capacity"], s["vacancies"], s["status"]) for s in hard] == [(12, 12, "AVAILABLE")]
    # An id that is well formed but no departure of the product finds nothing.
    assert await slots(client, key, **product, availabilityIds=[str(uuid4())]) == []


@pytest.mark.parametrize(
    ("seat_class", "taken", "status"),
    [
        ("soft_sleeper", 0, "AVAILABLE"),
        # 2 of 8 left is 25 %: still AVAILABLE; 1 of 8 (12.5 %) is LIMITED.
        ("soft_sleeper", 6, "AVAILABLE"),
        ("soft_sleeper", 7, "LIMITED"),
        ("soft_sleeper", 8, "SOLD_OUT"),
        # 3 of 12 is 25 %, 2 of 12 is 16.7 %.
        ("hard_sleeper", 9, "AVAILABLE"),
        ("hard_sleeper", 10, "LIMITED"),
        ("hard_sleeper", 11, "LIMITED"),
        ("hard_sleeper", 12, "SOLD_OUT"),
    ],
)
async def test_status_follows_the_seats_left(
    client: httpx.AsyncClient, operator: Account, seat_class: str, taken: int, status: str
) -> None:
    route, vehicle = await train_route(client, operator)
    departure = await create_departure(client, operator.headers, route, vehicle)
    await take_seats(client, departure["id"], seat_class, taken)
    _agency, key = await partner(client, operator)

    [slot] = await slots(
        client, key, productId=route["id"], optionId=seat_class, availabilityIds=[departure["id"]]
    )
    public = (await public_classes(client, departure["id"]))[seat_class]
    assert slot["status"] == status
    assert slot["available"] is (status in ("AVAILABLE", "LIMITED"))
    assert slot["vacancies"] == public["seats_left"] == public["capacity"] - taken
    assert slot["capacity"] == public["capacity"]
    assert slot["maxUnits"] == min(10, public["seats_left"])
    # The other class is not affected.
    other_class = "hard_sleeper" if seat_class == "soft_sleeper" else "soft_sleeper"
    [other] = await slots(
        client, key, productId=route["id"], optionId=other_class, availabilityIds=[departure["id"]]
    )
    assert other["status"] == "AVAILABLE"
    assert other["vacancies"] == other["capacity"]


async def test_run_out_hold_gives_its_seats_back(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    departure = await create_departure(client, operator.headers, route, vehicle)
    _agency, key = await partner(client, operator)
    body = {"productId": route["id"], "optionId": "soft_sleeper",
            "availabilityIds": [departure["id"]]}  # fmt: skip
    start = clock.now()
    with clock.frozen(start):
        await take_seats(client, departure["id"], "soft_sleeper", 8)
        [slot] = ok(await octo_availability(client, key, body))
        assert (slot["status"], slot["vacancies"]) == ("SOLD_OUT", 0)
    with clock.frozen(start + timedelta(minutes=15)):
        [slot] = ok(await octo_availability(client, key, body))
        assert (slot["status"], slot["vacancies"]) == ("AVAILABLE", 8)


async def test_closed_cancelled_and_out_of_sales_departures_are_closed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    closed = await create_departure(client, operator.headers, route, vehicle, in_days(10))
    cancelled = await create_departure(client, operator.headers, route, vehicle, in_days(11))
    departs_at = in_days(12)
    opens, closes = departs_at - timedelta(days=5), departs_at - timedelta(hours=2)
    windowed = await departure_with(
        client, operator, route, vehicle, departs_at, sales_open_at=opens, sales_close_at=closes
    )
    ok(await client.post(f"{DEPARTURES}/{closed['id']}/close", headers=operator.headers))
    ok(await client.post(f"{DEPARTURES}/{cancelled['id']}/cancel", headers=operator.headers))
    _agency, key = await partner(client, operator)
    body = {"productId": route["id"], "optionId": "hard_sleeper",
            "localDateStart": day(in_days(10)), "localDateEnd": day(departs_at)}  # fmt: skip

    def statuses(found: list[dict[str, Any]]) -> dict[str, tuple[str, bool]]:
        return {s["id"]: (s["status"], s["available"]) for s in found}

    # Before the window opens, the windowed departure is closed too.
    assert statuses(ok(await octo_availability(client, key, body))) == {
        closed["id"]: ("CLOSED", False),
        cancelled["id"]: ("CLOSED", False),
        windowed["id"]: ("CLOSED", False),
    }
    [slot] = [s for s in ok(await octo_availability(client, key, body)) if s["id"] == closed["id"]]
    # A closed departure still shows its seats.
    assert (slot["vacancies"], slot["capacity"]) == (12, 12)

    with clock.frozen(opens):
        found = statuses(ok(await octo_availability(client, key, body)))
        assert found[windowed["id"]] == ("AVAILABLE", True)
    with clock.frozen(closes - timedelta(seconds=1)):
        [slot] = await slots(
            client, key, productId=route["id"], optionId="hard_sleeper",
            availabilityIds=[windowed["id"]],
        )  # fmt: skip
        assert slot["status"] == "AVAILABLE"
        assert slot["utcCutoffAt"] == closes.astimezone(clock.zone("UTC")).isoformat().replace(
            "+00:00", "Z"
        )
    with clock.frozen(closes):
        found = statuses(ok(await octo_availability(client, key, body)))
        assert found[windowed["id"]] == ("CLOSED", False)

    ok(await client.post(f"{DEPARTURES}/{closed['id']}/reopen", headers=operator.headers))
    with clock.frozen(opens):
        assert statuses(ok(await octo_availability(client, key, body))) == {
            closed["id"]: ("AVAILABLE", True),
            cancelled["id"]: ("CLOSED", False),
            windowed["id"]: ("AVAILABLE", True),
        }


async def test_departure_after_its_time_is_closed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    departure = await create_departure(client, operator.headers, route, vehicle, in_days(10))
    _agency, key = await partner(client, operator)
    body = {"productId": route["id"], "optionId": "soft_sleeper",
            "availabilityIds": [departure["id"]]}  # fmt: skip
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(seconds=1)):
        assert ok(await octo_availability(client, key, body))[0]["status"] == "AVAILABLE"
    with clock.frozen(departs_at):
        assert ok(await octo_availability(client, key, body))[0]["status"] == "CLOSED"


async def test_unit_pricing_has_retail_and_net_after_the_agencys_commission(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    departure = await create_departure(client, operator.headers, route, vehicle)
    agency_id, key = await partner(client, operator, commission_bp=1250)

    def pricing(slot: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {p["unitId"]: p for p in slot["unitPricing"]}

    for seat_class, fares in TRAIN_FARES.items():
        [slot] = await slots(
            client, key, productId=route["id"], optionId=seat_class,
            availabilityIds=[departure["id"]],
        )  # fmt: skip
        prices = pricing(slot)
        # No senior fare: no senior price.
        assert set(prices) == {"adult", "child"}
        for unit, amount in fares.items():
            assert prices[unit] == {
                "unitId": unit,
                "original": amount,
                "retail": amount,
                "net": amount - amount * 1250 // 10_000,
                "currency": "CNY",
                "currencyPrecision": 2,
                "includedTaxes": [],
            }
    assert pricing(slot)["adult"]["net"] == 6825  # hard sleeper adult: 7800 less 12.5 %

    # A departure's own fare wins over the route's; a new commission applies at once.
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/fares",
            json={
                "fares": [{"seat_class": "soft_sleeper", "passenger_type": "adult", "amount": 9999}]
            },
            headers=operator.headers,
        )
    )
    ok(
        await client.patch(
            f"{AGENCIES}/{agency_id}", json={"commission_bp": 333}, headers=operator.headers
        )
    )
    [slot] = await slots(
        client, key, productId=route["id"], optionId="soft_sleeper",
        availabilityIds=[departure["id"]],
    )  # fmt: skip
    prices = pricing(slot)
    assert (prices["adult"]["retail"], prices["adult"]["net"]) == (9999, 9999 - 332)
    assert (prices["child"]["retail"], prices["child"]["net"]) == (3800, 3800 - 126)
    # Without commission the net price is the retail one.
    ok(await client.patch(f"{AGENCIES}/{agency_id}", json={"commission_bp": 0},
                          headers=operator.headers))  # fmt: skip
    [slot] = await slots(
        client, key, productId=route["id"], optionId="soft_sleeper",
        availabilityIds=[departure["id"]],
    )  # fmt: skip
    assert all(p["net"] == p["retail"] for p in slot["unitPricing"])


@pytest.mark.parametrize(
    ("body", "error", "extra"),
    [
        ({"optionId": "first_class"}, "INVALID_OPTION_ID", {"optionId": "first_class"}),
        ({"optionId": None}, "INVALID_OPTION_ID", {"optionId": ""}),
        ({"productId": "{uuid}"}, "INVALID_PRODUCT_ID", {"productId": "{uuid}"}),
        ({"productId": None}, "INVALID_PRODUCT_ID", {"productId": ""}),
        ({"availabilityIds": ["not-an-id"], "localDateStart": None, "localDateEnd": None},
         "INVALID_AVAILABILITY_ID", {"availabilityId": "not-an-id"}),
        # Dates and availabilityIds together are not one of OCTO's combinations.
        ({"availabilityIds": ["{departure}", "12345"]}, "BAD_REQUEST", {}),
        ({"availabilityIds": ["{departure}", "12345"], "localDateStart": None,
          "localDateEnd": None}, "INVALID_AVAILABILITY_ID", {"availabilityId": "12345"}),
        ({"availabilityIds": "{departure}"}, "BAD_REQUEST", {}),
        ({"localDateStart": "2030-02-30"}, "BAD_REQUEST", {}),
        ({"localDateEnd": "tomorrow"}, "BAD_REQUEST", {}),
        ({"localDateStart": None}, "BAD_REQUEST", {}),
        ({"localDateStart": "{end}", "localDateEnd": "{start}"}, "BAD_REQUEST", {}),
    ],
)  # fmt: skip
async def test_availability_request_errors(
    client: httpx.AsyncClient,
    operator: Account,
    body: dict[str, Any],
    error: str,
    extra: dict[str, str],
) -> None:
    route, vehicle = await train_route(client, operator)
    departure = await create_departure(client, operator.headers, route, vehicle)
    _agency, key = await partner(client, operator)
    unknown = str(uuid4())
    values = {"uuid": unknown, "departure": departure["id"],
              "start": day(in_days(9)), "end": day(in_days(11))}  # fmt: skip

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**values)
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    request = {"productId": route["id"], "optionId": "soft_sleeper",
               "localDateStart": values["start"], "localDateEnd": values["end"]}  # fmt: skip
    request.update({name: fill(value) for name, value in body.items()})
    request = {name: value for name, value in request.items() if value is not None}
    for path in ("/octo/availability", "/octo/availability/calendar"):
        if path.endswith("calendar") and "availabilityIds" in body:
            continue
        found = octo_error(await octo_availability(client, key, request, path), error)
        assert {name: found[name] for name in extra} == {k: fill(v) for k, v in extra.items()}
    # The same request made right works.
    found_right = await slots(
        client, key, productId=route["id"], optionId="soft_sleeper",
        localDateStart=values["start"], localDateEnd=values["end"],
    )  # fmt: skip
    assert [s["id"] for s in found_right] == [departure["id"]]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[]", b'"a string"', b"42", b"null", b'[{"productId": "x"}]'],
)
@pytest.mark.parametrize("path", ["/octo/availability", "/octo/availability/calendar"])
async def test_malformed_or_non_object_body_is_a_bad_request(
    client: httpx.AsyncClient, operator: Account, content: bytes, path: str
) -> None:
    _agency, key = await partner(client, operator)
    response = await client.post(
        path, content=content, headers={**bearer(key), "Content-Type": "application/json"}
    )
    body = octo_error(response, "BAD_REQUEST")
    assert set(body) == {"error", "errorMessage"}


async def test_calendar_has_every_local_date_with_the_best_status_of_the_day(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    first_day = in_days(10)
    # Day 1: one sold-out and one limited departure -> LIMITED.
    sold_out = await create_departure(client, operator.headers, route, vehicle, first_day)
    limited = await create_departure(
        client, operator.headers, route, vehicle, first_day + timedelta(hours=6)
    )
    await take_seats(client, sold_out["id"], "soft_sleeper", 8)
    await take_seats(client, limited["id"], "soft_sleeper", 7)
    # Day 2: nothing. Day 3: a closed and an available departure -> AVAILABLE.
    closed = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    ok(await client.post(f"{DEPARTURES}/{closed['id']}/close", headers=operator.headers))
    available = await create_departure(client, operator.headers, route, vehicle, in_days(12, 20))
    await take_seats(client, available["id"], "soft_sleeper", 3)
    # Day 4: only a cancelled departure -> CLOSED. Day 5: only a sold-out one -> SOLD_OUT.
    cancelled = await create_departure(client, operator.headers, route, vehicle, in_days(13))
    ok(await client.post(f"{DEPARTURES}/{cancelled['id']}/cancel", headers=operator.headers))
    full = await create_departure(client, operator.headers, route, vehicle, in_days(14))
    await take_seats(client, full["id"], "soft_sleeper", 8)
    # Day 6: a draft only -> CLOSED.
    await create_departure(client, operator.headers, route, vehicle, in_days(15), publish=False)
    _agency, key = await partner(client, operator)

    days = await calendar(
        client, key, productId=route["id"], optionId="soft_sleeper",
        localDateStart=day(in_days(9)), localDateEnd=day(in_days(16)),
    )  # fmt: skip
    start = in_days(9).astimezone(SHANGHAI).date()
    assert [d["localDate"] for d in days] == [(start + timedelta(days=n)).isoformat()
                                              for n in range(8)]  # fmt: skip
    for entry in days:
        assert REQUIRED_CALENDAR_FIELDS - set(entry) == set()
        assert entry["available"] is (entry["status"] in ("AVAILABLE", "LIMITED"))
        assert entry["openingHours"] == []
    assert [d["status"] for d in days] == [
        "CLOSED",  # day 0: no departure
        "LIMITED",
        "CLOSED",
        "AVAILABLE",
        "CLOSED",
        "SOLD_OUT",
        "CLOSED",  # a draft is not on sale
        "CLOSED",
    ]
    by_date = {d["localDate"]: d for d in days}
    assert (by_date[day(in_days(9))]["vacancies"], by_date[day(in_days(9))]["capacity"]) == (0, 0)
    assert by_date[day(in_days(14))]["vacancies"] == 0
    assert by_date[day(in_days(14))]["capacity"] == 8
    assert by_date[day(first_day)]["capacity"] == 16

    # One day asked for: one entry.
    [only] = await calendar(
        client, key, productId=route["id"], optionId="soft_sleeper",
        localDateStart=day(in_days(12)), localDateEnd=day(in_days(12)),
    )  # fmt: skip
    assert (only["localDate"], only["status"]) == (day(in_days(12)), "AVAILABLE")
    # The calendar agrees with the availability of that day.
    found = await slots(
        client, key, productId=route["id"], optionId="soft_sleeper",
        localDateStart=day(in_days(12)), localDateEnd=day(in_days(12)),
    )  # fmt: skip
    assert {s["id"]: s["status"] for s in found} == {
        closed["id"]: "CLOSED",
        available["id"]: "AVAILABLE",
    }
    assert only["capacity"] == sum(s["capacity"] for s in found)


async def test_calendar_refuses_a_reversed_or_overlong_range(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle = await train_route(client, operator)
    await create_departure(client, operator.headers, route, vehicle)
    _agency, key = await partner(client, operator)
    start = in_days(1).astimezone(SHANGHAI).date()
    product = {"productId": route["id"], "optionId": "soft_sleeper"}
    for first, last in (
        (start, start - timedelta(days=1)),
        (start, start + timedelta(days=367)),
    ):
        octo_error(
            await octo_availability(
                client,
                key,
                {**product, "localDateStart": first.isoformat(), "localDateEnd": last.isoformat()},
                "/octo/availability/calendar",
            ),
            "BAD_REQUEST",
        )
    days = await calendar(
        client,
        key,
        **product,
        localDateStart=start.isoformat(),
        localDateEnd=(start + timedelta(days=366)).isoformat(),
    )
    assert len(days) == 367
    assert sum(d["status"] != "CLOSED" for d in days) == 1


async def test_a_departure_in_another_zone_is_on_its_own_local_date(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """A departure keeps its own time zone: 02:00 in Shanghai is 21:00 the evening
    before in Moscow, and that evening is its local date in availability and calendar."""
    route, vehicle = await train_route(client, operator)
    departs_at = in_days(10, hour=2)
    departure = await departure_with(
        client, operator, route, vehicle, departs_at, time_zone="Europe/Moscow"
    )
    _agency, key = await partner(client, operator)
    moscow_day = departs_at.astimezone(clock.zone("Europe/Moscow")).date()
    assert moscow_day == departs_at.astimezone(SHANGHAI).date() - timedelta(days=1)
    product = {"productId": route["id"], "optionId": "soft_sleeper"}

    [slot] = await slots(client, key, **product, availabilityIds=[departure["id"]])
    assert slot["localDateTimeStart"] == local(departs_at, "Europe/Moscow")
    assert slot["localDateTimeStart"] == f"{moscow_day.isoformat()}T21:00:00+03:00"

    def one_day(moment: date) -> dict[str, str]:
        return {"localDateStart": moment.isoformat(), "localDateEnd": moment.isoformat()}

    assert [s["id"] for s in await slots(client, key, **product, **one_day(moscow_day))] == [
        departure["id"]
    ]
    after = moscow_day + timedelta(days=1)
    assert await slots(client, key, **product, **one_day(after)) == []
    [entry] = await calendar(client, key, **product, **one_day(moscow_day))
    assert (entry["localDate"], entry["status"]) == (moscow_day.isoformat(), "AVAILABLE")
    [entry] = await calendar(client, key, **product, **one_day(after))
    assert (entry["localDate"], entry["status"]) == (after.isoformat(), "CLOSED")
