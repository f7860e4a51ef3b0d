"""The OCTO catalogue (supplier, products, availability calendar and availability) as a
generic OCTO client written from the specification sees it (octo-types' openapi.yaml,
`tests/octo_spec.py`): every response body validates against the schema the specification
documents for it; the fields a capability adds (`x-capability-data` in the specification)
appear when, and only when, the client asks for that capability with `Octo-Capabilities`;
every error is a documented code with its fields."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import httpx
import pytest

from app.core import clock
from app.core.settings import get_settings
from app.demo.data import DEMO_PARTNER_KEY, load_demo
from tests.assertions import ok
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    set_route_fares,
)
from tests.integration.partners.test_octo_spec import spec_error
from tests.octo_spec import assert_conforms, component, response_schema

AGENCIES = "/api/v1/operator/agencies"
CAPABILITIES = ("octo/pricing", "octo/content", "octo/pickups")
# The capabilities whose fields the specification marks with `x-capability-data`.
SPEC_CAPABILITIES = ("octo/pricing", "octo/content")
CUTOFF_HOURS = 48
COMMISSION_BP = 1000  # 10 %: the agency's net is 90 % of the retail price


# ---------------------------------------------------------------- a client from the spec


@cache
def capability_fields(schema_name: str, capability: str) -> frozenset[str]:
    """The fields of a schema that a capability adds and makes required when requested."""
    properties: dict[str, Any] = component(schema_name).get("properties", {})
    return frozenset(
        name
        for name, prop in properties.items()
        if prop.get("x-capability-data", {}).get("capability") == capability
        and prop["x-capability-data"].get("required")
    )


def assert_capabilities(body: dict[str, Any], schema_name: str, requested: set[str]) -> None:
    """A capability's fields are all there when it was requested, and none otherwise."""
    for capability in SPEC_CAPABILITIES:
        fields = capability_fields(schema_name, capability)
        present = fields & body.keys()
        if capability in requested:
            assert present == fields, f"{schema_name} lacks {sorted(fields - present)}"
        else:
            assert not present, f"{schema_name} has {sorted(present)} without {capability}"


def headers_with(headers: dict[str, str], capabilities: tuple[str, ...] = ()) -> dict[str, str]:
    """The agency's headers with an `Octo-Capabilities` request header (required by the
    specification: empty when none is wanted)."""
    return {**headers, "Octo-Capabilities": ", ".join(capabilities)}


def echoed(response: httpx.Response) -> set[str]:
    return {c.strip() for c in response.headers["Octo-Capabilities"].split(",") if c.strip()}


def conforming(response: httpx.Response, path: str, method: str) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conforms(body, response_schema(path, method))
    return body


def capability_sets() -> list[tuple[str, ...]]:
    return [(), *((c,) for c in CAPABILITIES), CAPABILITIES]


# ---------------------------------------------------------------- the catalogue


async def catalogue(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A published bus line (adult and child fares) with two departures, one at 08:00 and
    one at 14:00 local time, and an agency whose contract has a 48-hour cut-off and 10 %
    commission: {"headers", "route", "departures"}."""
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    morning = await create_departure(client, operator.headers, route, vehicle, in_days(10, 8))
    afternoon = await create_departure(client, operator.headers, route, vehicle, in_days(11, 14))
    body = {
        "name": "Spec Tours",
        "contact_email": "ops@spec.example",
        "credit_limit": 10_000_000,
        "commission_bp": COMMISSION_BP,
        "cancellation_cutoff_hours": CUTOFF_HOURS,
    }
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    created = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    return {
        "headers": {"Authorization": f"Bearer {created['key']}"},
        "route": route,
        "departures": [morning, afternoon],
    }


def local_day(departure: dict[str, Any], days: int = 0) -> str:
    moment = datetime.fromisoformat(departure["departs_at"]).astimezone(clock.zone("Asia/Shanghai"))
    return (moment.date() + timedelta(days=days)).isoformat()


def window(shop: dict[str, Any]) -> dict[str, str]:
    first, last = shop["departures"]
    return {"localDateStart": local_day(first, -1), "localDateEnd": local_day(last, 1)}


# ---------------------------------------------------------------- supplier, capabilities


@pytest.mark.parametrize("capabilities", capability_sets())
async def test_the_supplier_conforms_with_and_without_each_capability(
    client: httpx.AsyncClient, operator: Account, capabilities: tuple[str, ...]
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get(
        "/octo/supplier", headers=headers_with(shop["headers"], capabilities)
    )
    supplier = conforming(response, "/supplier/", "get")
    assert echoed(response) == set(capabilities)
    assert_capabilities(supplier, "Supplier", set(capabilities))
    if "octo/content" in capabilities:
        assert response.headers["Content-Language"]
        assert response.headers["Available-Languages"]


async def test_capabilities_are_listed_as_the_specification_describes(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get("/octo/capabilities", headers=headers_with(shop["headers"]))
    listed = conforming(response, "/capabilities/", "get")
    assert {c["id"] for c in listed} == set(CAPABILITIES)


async def test_an_unknown_capability_is_left_out_of_the_echo(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get(
        "/octo/products",
        headers=headers_with(shop["headers"], ("octo/pricing", "octo/no-such-thing")),
    )
    conforming(response, "/products/", "get")
    assert echoed(response) == {"octo/pricing"}


# ---------------------------------------------------------------- products


@pytest.mark.parametrize("capabilities", capability_sets())
async def test_products_conform_with_and_without_each_capability(
    client: httpx.AsyncClient, operator: Account, capabilities: tuple[str, ...]
) -> None:
    shop = await catalogue(client, operator)
    headers = headers_with(shop["headers"], capabilities)
    response = await client.get("/octo/products", headers=headers)
    products = conforming(response, "/products/", "get")
    assert echoed(response) == set(capabilities)
    assert [p["id"] for p in products] == [shop["route"]["id"]]
    response = await client.get(f"/octo/products/{shop['route']['id']}", headers=headers)
    product = conforming(response, "/products/{id}", "get")
    assert product == products[0]
    requested = set(capabilities)
    assert_capabilities(product, "Product", requested)
    for option in product["options"]:
        assert_capabilities(option, "Option", requested)
        for unit in option["units"]:
            assert_capabilities(unit, "Unit", requested)
        assert ("pickupAvailable" in option) is ("octo/pickups" in requested)


async def test_options_start_at_their_departures_local_times(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get(
        f"/octo/products/{shop['route']['id']}", headers=headers_with(shop["headers"])
    )
    product = conforming(response, "/products/{id}", "get")
    assert product["availabilityType"] == "START_TIME"
    assert product["timeZone"] == "Asia/Shanghai"
    (option,) = product["options"]
    assert option["availabilityLocalStartTimes"] == ["08:00", "14:00"]


async def test_the_cancellation_cutoff_is_the_agencys_contract(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get("/octo/products", headers=headers_with(shop["headers"]))
    (product,) = conforming(response, "/products/", "get")
    for option in product["options"]:
        assert option["cancellationCutoffAmount"] == CUTOFF_HOURS
        assert option["cancellationCutoffUnit"] == "hour"
        assert option["cancellationCutoff"] == f"{CUTOFF_HOURS} hours"


async def test_units_are_the_fares_passenger_types_with_their_ages(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get("/octo/products", headers=headers_with(shop["headers"]))
    (product,) = conforming(response, "/products/", "get")
    (option,) = product["options"]
    units = {unit["id"]: unit for unit in option["units"]}
    # Only the passenger types the route has a fare for (no senior fare here).
    assert set(units) == {"adult", "child"}
    assert units["adult"]["type"] == "ADULT"
    assert units["child"]["type"] == "CHILD"
    child, adult = units["child"]["restrictions"], units["adult"]["restrictions"]
    assert child["minAge"] == 0
    assert child["maxAge"] < adult["minAge"]
    assert adult["minAge"] > 0
    assert (child["minAge"], child["maxAge"]) != (0, 120)


async def test_pricing_is_retail_and_the_contracts_net(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get(
        "/octo/products", headers=headers_with(shop["headers"], ("octo/pricing",))
    )
    (product,) = conforming(response, "/products/", "get")
    assert product["defaultCurrency"] == "CNY"
    (option,) = product["options"]
    prices = {unit["id"]: unit["pricingFrom"][0] for unit in option["units"]}
    assert prices["adult"]["retail"] == 6800
    assert prices["adult"]["net"] == 6120
    assert prices["child"]["retail"] == 3800
    assert prices["child"]["net"] == 3420
    assert option["pricingFrom"][0]["retail"] == 3800


async def test_content_follows_accept_language(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    url = f"/octo/products/{shop['route']['id']}"
    for language, title in (("en-GB,en;q=0.9", "Picking Line"), ("zh-CN", "采摘号")):
        headers = {
            **headers_with(shop["headers"], ("octo/content",)),
            "Accept-Language": language,
        }
        response = await client.get(url, headers=headers)
        product = conforming(response, "/products/{id}", "get")
        assert product["title"] == title
        assert response.headers["Content-Language"] == ("en" if title[0] == "P" else "zh-Hans")
    # The itinerary per day: the route's one day, with its stop.
    features = product["features"]
    assert any("樱桃园" in (feature["shortDescription"] or "") for feature in features)


# ---------------------------------------------------------------- availability


@pytest.mark.parametrize("capabilities", capability_sets())
async def test_availability_conforms_with_and_without_each_capability(
    client: httpx.AsyncClient, operator: Account, capabilities: tuple[str, ...]
) -> None:
    shop = await catalogue(client, operator)
    headers = headers_with(shop["headers"], capabilities)
    body = {"productId": shop["route"]["id"], "optionId": "standard", **window(shop)}
    response = await client.post("/octo/availability", json=body, headers=headers)
    slots = conforming(response, "/availability/", "post")
    assert echoed(response) == set(capabilities)
    assert [slot["id"] for slot in slots] == [d["id"] for d in shop["departures"]]
    for slot in slots:
        assert_capabilities(slot, "Availability", set(capabilities))
    response = await client.post("/octo/availability/calendar", json=body, headers=headers)
    days = conforming(response, "/availability/calendar", "post")
    assert len(days) == 4
    for day in days:
        assert_capabilities(day, "AvailabilityCalendar", set(capabilities))


async def test_availability_times_are_local_with_offset_and_the_start_times_match(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    headers = headers_with(shop["headers"])
    product = conforming(
        await client.get(f"/octo/products/{shop['route']['id']}", headers=headers),
        "/products/{id}",
        "get",
    )
    starts = product["options"][0]["availabilityLocalStartTimes"]
    body = {"productId": shop["route"]["id"], "optionId": "standard", **window(shop)}
    slots = conforming(
        await client.post("/octo/availability", json=body, headers=headers),
        "/availability/",
        "post",
    )
    for slot, departure in zip(slots, shop["departures"], strict=True):
        start = datetime.fromisoformat(slot["localDateTimeStart"])
        assert start.utcoffset() == timedelta(hours=8)
        assert start == datetime.fromisoformat(departure["departs_at"])
        assert slot["localDateTimeStart"][11:16] in starts
        cutoff = datetime.fromisoformat(slot["utcCutoffAt"].replace("Z", "+00:00"))
        assert cutoff.utcoffset() == timedelta(0)
        assert cutoff <= start


async def test_availability_by_local_date(client: httpx.AsyncClient, operator: Account) -> None:
    shop = await catalogue(client, operator)
    first = shop["departures"][0]
    body = {"productId": shop["route"]["id"], "optionId": "standard", "localDate": local_day(first)}
    slots = conforming(
        await client.post("/octo/availability", json=body, headers=headers_with(shop["headers"])),
        "/availability/",
        "post",
    )
    assert [slot["id"] for slot in slots] == [first["id"]]


async def test_availability_by_ids(client: httpx.AsyncClient, operator: Account) -> None:
    shop = await catalogue(client, operator)
    second = shop["departures"][1]
    body = {
        "productId": shop["route"]["id"],
        "optionId": "standard",
        "availabilityIds": [second["id"]],
    }
    slots = conforming(
        await client.post("/octo/availability", json=body, headers=headers_with(shop["headers"])),
        "/availability/",
        "post",
    )
    assert [slot["id"] for slot in slots] == [second["id"]]


@pytest.mark.parametrize(
    "dates",
    [
        {"availabilityIds": "ids", "localDateStart": "start", "localDateEnd": "end"},
        {"availabilityIds": "ids", "localDate": "start"},
        {"localDate": "start", "localDateStart": "start", "localDateEnd": "end"},
        {"localDateStart": "start"},
        {"localDateEnd": "end"},
        {},
    ],
    ids=["ids-and-range", "ids-and-date", "date-and-range", "start-only", "end-only", "none"],
)
async def test_availability_needs_exactly_one_allowed_combination(
    client: httpx.AsyncClient, operator: Account, dates: dict[str, str]
) -> None:
    shop = await catalogue(client, operator)
    first = shop["departures"][0]
    values = {"ids": [first["id"]], "start": local_day(first), "end": local_day(first, 1)}
    body = {
        "productId": shop["route"]["id"],
        "optionId": "standard",
        **{field: values[value] for field, value in dates.items()},
    }
    response = await client.post(
        "/octo/availability", json=body, headers=headers_with(shop["headers"])
    )
    error = spec_error(response, "BAD_REQUEST", 400)
    assert_conforms(error, response_schema("/availability/", "post", "400"))


async def test_the_calendar_needs_its_date_range(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    body = {"productId": shop["route"]["id"], "optionId": "standard"}
    response = await client.post(
        "/octo/availability/calendar", json=body, headers=headers_with(shop["headers"])
    )
    error = spec_error(response, "BAD_REQUEST", 400)
    assert_conforms(error, response_schema("/availability/calendar", "post", "400"))


# ---------------------------------------------------------------- documented errors


@pytest.mark.parametrize("path", ["/availability/", "/availability/calendar"])
async def test_unknown_ids_are_the_documented_errors(
    client: httpx.AsyncClient, operator: Account, path: str
) -> None:
    shop = await catalogue(client, operator)
    headers = headers_with(shop["headers"])
    url = "/octo" + path.rstrip("/")
    base = {"productId": shop["route"]["id"], "optionId": "standard", **window(shop)}
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        ({**base, "productId": "no-such-product"}, "INVALID_PRODUCT_ID", "productId",
         "no-such-product"),
        ({**base, "optionId": "no-such-option"}, "INVALID_OPTION_ID", "optionId",
         "no-such-option"),
        ({**base, "units": [{"id": "no-such-unit", "quantity": 1}]}, "INVALID_UNIT_ID",
         "unitId", "no-such-unit"),
    ]  # fmt: skip
    for body, code, field, value in cases:
        response = await client.post(url, json=body, headers=headers)
        error = spec_error(response, code, 400)
        assert error[field] == value
        assert_conforms(error, response_schema(path, "post", "400"))
    if path == "/availability/":
        body = {**{k: v for k, v in base.items() if not k.startswith("localDate")},
                "availabilityIds": ["no-such-availability"]}  # fmt: skip
        response = await client.post(url, json=body, headers=headers)
        error = spec_error(response, "INVALID_AVAILABILITY_ID", 400)
        assert error["availabilityId"] == "no-such-availability"


async def test_an_unknown_product_is_invalid_product_id_with_its_id(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    response = await client.get(
        "/octo/products/no-such-product", headers=headers_with(shop["headers"])
    )
    error = spec_error(response, "INVALID_PRODUCT_ID", 400)
    assert error["productId"] == "no-such-product"
    assert_conforms(error, response_schema("/products/{id}", "get", "400"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/supplier/"),
        ("get", "/products/"),
        ("get", "/products/{id}"),
        ("post", "/availability/calendar"),
        ("post", "/availability/"),
    ],
)
async def test_without_a_key_it_is_unauthorized_with_a_wrong_one_forbidden(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    url = "/octo" + path.replace("{id}", "any").rstrip("/")
    for headers, code in (
        ({}, "UNAUTHORIZED"),
        ({"Authorization": "Bearer not-a-key"}, "FORBIDDEN"),
    ):
        response = await client.request(
            method, url, headers=headers, json={} if method == "post" else None
        )
        error = spec_error(response, code, 400)
        assert_conforms(error, response_schema(path, method, "400"))


async def test_error_messages_follow_accept_language(
    client: httpx.AsyncClient, operator: Account
) -> None:
    shop = await catalogue(client, operator)
    url = "/octo/products/no-such-product"
    english = await client.get(
        url, headers={**headers_with(shop["headers"]), "Accept-Language": "en"}
    )
    chinese = await client.get(
        url, headers={**headers_with(shop["headers"]), "Accept-Language": "zh-CN"}
    )
    spec_error(english, "INVALID_PRODUCT_ID", 400)
    spec_error(chinese, "INVALID_PRODUCT_ID", 400)
    assert english.headers["Content-Language"] == "en"
    assert chinese.headers["Content-Language"] == "zh-Hans"
    assert english.json()["errorMessage"] != chinese.json()["errorMessage"]


# ---------------------------------------------------------------- the demo


async def test_the_demo_has_availability_in_the_next_30_days_after_loading_twice(
    client: httpx.AsyncClient,
) -> None:
    await load_demo(get_settings())
    await load_demo(get_settings())
    headers = headers_with({"Authorization": f"Bearer {DEMO_PARTNER_KEY}"})
    products = conforming(await client.get("/octo/products", headers=headers), "/products/", "get")
    assert products
    today = clock.now().astimezone(clock.zone("Asia/Shanghai")).date()
    available = []
    for product in products:
        for option in product["options"]:
            body = {
                "productId": product["id"],
                "optionId": option["id"],
                "localDateStart": (today + timedelta(days=1)).isoformat(),
                "localDateEnd": (today + timedelta(days=30)).isoformat(),
            }
            slots = conforming(
                await client.post("/octo/availability", json=body, headers=headers),
                "/availability/",
                "post",
            )
            available += [slot for slot in slots if slot["available"]]
    assert available
    assert all(
        today < date.fromisoformat(slot["localDateTimeStart"][:10]) <= today + timedelta(days=30)
        for slot in available
    )
