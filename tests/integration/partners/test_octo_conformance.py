"""The OCTO API as an agency's own conformance checker sees it: capabilities echoed,
pick-ups through a whole booking flow, every required booking field in every status,
localized content, OCTO error bodies, booking search filters, and the partner rate limit
shared by two real server processes."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from app.booking.tables import Booking
from app.core import clock
from tests.assertions import ok
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    published_bus_departure,
    set_route_fares,
)
from tests.servers import api_servers, inside_one_minute
from workers.jobs import tick

ROOT = Path(__file__).resolve().parents[3]
AGENCIES = "/api/v1/operator/agencies"
DEPARTURES = "/api/v1/operator/departures"
UTC = clock.zone("UTC")
URUMQI = clock.zone("Asia/Urumqi")  # UTC+6, unlike the operator's Asia/Shanghai (UTC+8)

BOOKING_FIELDS = {
    "id", "uuid", "testMode", "resellerReference", "supplierReference", "status",
    "utcCreatedAt", "utcUpdatedAt", "utcExpiresAt", "utcRedeemedAt", "utcConfirmedAt",
    "productId", "optionId", "cancellable", "cancellation", "freesale", "availabilityId",
    "availability", "contact", "notes", "deliveryMethods", "voucher", "unitItems",
}  # fmt: skip
UNIT_ITEM_FIELDS = {
    "uuid", "resellerReference", "supplierReference", "unitId", "status", "utcRedeemedAt",
    "contact", "ticket",
}  # fmt: skip
PRICING_FIELDS = {"original", "retail", "net", "currency", "currencyPrecision", "includedTaxes"}
CONTACT_FIELDS = {"fullName", "firstName", "lastName", "emailAddress", "phoneNumber", "locales",
                  "postalCode", "country", "notes"}  # fmt: skip
BOOKING_AVAILABILITY_FIELDS = {"id", "localDateTimeStart", "localDateTimeEnd", "allDay",
                               "openingHours"}  # fmt: skip
PICKUP_LOCATION_FIELDS = {"id", "title", "shortDescription", "place"}
CONTACT = {
    "contact": {
        "fullName": "Wang Fang",
        "emailAddress": "wang@example.cn",
        "phoneNumber": "+86 139 0000 0000",
        "locales": ["zh-CN"],
    }
}
ZHENGZHOU_EAST = {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"}
ERQI_SQUARE = {"zh_Hans": "二七广场", "en": "Erqi Square"}
ZHENGZHOU_ADDRESS = {"zh_Hans": "郑州市金水区心怡路", "en": "Xinyi Road, Zhengzhou"}


# ---------------------------------------------------------------- helpers


async def agency_key(
    client: httpx.AsyncClient, operator: Account, name: str = "Beijing Tours", **terms: Any
) -> dict[str, Any]:
    """A new on-account agency and a key: {"agency_id", "key", "key_id", "headers"}."""
    body = {"name": name, "contact_email": "ops@bjtours.example", "credit_limit": 10_000_000,
            **terms}  # fmt: skip
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    created = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    return {
        "agency_id": agency["id"],
        "key": created["key"],
        "key_id": created["api_key"]["id"],
        "headers": {"Authorization": f"Bearer {created['key']}"},
    }


def octo_ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def octo_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    """An OCTO error body ({"error", "errorMessage"}), never problem+json."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["errorMessage"], str), body
    assert body["errorMessage"], body
    return body


def utc_moment(text: Any) -> datetime:
    """An OCTO UTC time: ISO 8601 ending in Z, which parses to a UTC moment."""
    assert isinstance(text, str), text
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text[:-1] + "+00:00")
    assert moment.utcoffset() == timedelta(0)
    return moment


def capabilities_of(response: httpx.Response) -> set[str]:
    return {c.strip() for c in response.headers["Octo-Capabilities"].split(",") if c.strip()}


async def departure_with_stops(
    client: httpx.AsyncClient,
    operator: Account,
    route: dict[str, Any],
    vehicle: dict[str, Any],
    departs_at: datetime,
    stops: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """A published departure (9 hours long) with these stops."""
    payload = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": stops,
        **extra,
    }
    departure = ok(await client.post(DEPARTURES, json=payload, headers=operator.headers), 201)
    published = await client.post(
        f"{DEPARTURES}/{departure['id']}/publish", headers=operator.headers
    )
    return dict(ok(published))


def stop(kind: str, name: dict[str, str], at: datetime, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "at": at.isoformat(), **extra}


def hold_body(
    uuid: str, product_id: str, option_id: str, availability_id: str, units: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "productId": product_id,
        "optionId": option_id,
        "availabilityId": availability_id,
        "unitItems": [{"unitId": unit} for unit in units],
        **extra,
    }


def assert_conformant_booking(booking: dict[str, Any], status: str) -> None:
    """Every field OCTO requires, with the values it allows for this status."""
    missing = BOOKING_FIELDS - booking.keys()
    assert not missing, f"{status} booking lacks {sorted(missing)}"
    assert booking["status"] == status
    assert isinstance(booking["id"], str)
    assert booking["id"]
    assert isinstance(booking["uuid"], str)
    assert booking["uuid"]
    assert booking["testMode"] is False
    assert booking["resellerReference"] is None or isinstance(booking["resellerReference"], str)
    assert isinstance(booking["supplierReference"], str)
    assert booking["supplierReference"]
    created = utc_moment(booking["utcCreatedAt"])
    assert utc_moment(booking["utcUpdatedAt"]) >= created
    assert booking["utcRedeemedAt"] is None
    if status == "ON_HOLD":
        assert utc_moment(booking["utcExpiresAt"]) > created
    else:
        assert booking["utcExpiresAt"] is None, booking["utcExpiresAt"]
    if status == "CONFIRMED":
        assert utc_moment(booking["utcConfirmedAt"]) >= created
    else:
        assert booking["utcConfirmedAt"] is None, booking["utcConfirmedAt"]
    assert isinstance(booking["productId"], str)
    assert booking["productId"]
    assert isinstance(booking["optionId"], str)
    assert booking["optionId"]
    assert booking["cancellable"] is (status in ("ON_HOLD", "CONFIRMED"))
    if status == "CANCELLED":
        cancellation = booking["cancellation"]
        assert isinstance(cancellation, dict)
        assert cancellation.keys() >= {"refund", "reason", "utcCancelledAt"}
        assert cancellation["refund"] in ("FULL", "PARTIAL", "NONE")
        assert utc_moment(cancellation["utcCancelledAt"]) >= created
    else:
        assert booking["cancellation"] is None, booking["cancellation"]
    assert booking["freesale"] is False
    availability = booking["availability"]
    assert availability.keys() >= BOOKING_AVAILABILITY_FIELDS
    assert booking["availabilityId"] == availability["id"]
    start = datetime.fromisoformat(availability["localDateTimeStart"])
    end = datetime.fromisoformat(availability["localDateTimeEnd"])
    assert start.utcoffset() is not None
    assert start < end
    assert availability["allDay"] is False
    assert booking["contact"].keys() >= CONTACT_FIELDS
    assert isinstance(booking["contact"]["locales"], list)
    assert booking["notes"] is None or isinstance(booking["notes"], str)
    assert booking["deliveryMethods"] == ["VOUCHER"]
    assert (booking["voucher"] is not None) is (status == "CONFIRMED")
    items = booking["unitItems"]
    assert items, "a booking has at least one unit item"
    assert len({item["uuid"] for item in items}) == len(items)
    for item in items:
        missing = UNIT_ITEM_FIELDS - item.keys()
        assert not missing, f"{status} unit item lacks {sorted(missing)}"
        assert isinstance(item["uuid"], str)
        assert item["uuid"]
        assert item["unitId"] in ("adult", "child", "senior")
        assert item["status"] == status
        assert item["utcRedeemedAt"] is None
        assert isinstance(item["contact"], dict)
    # Prices are the octo/pricing capability's: there when it was asked for, else absent.
    if "pricing" not in booking:
        assert all("pricing" not in item for item in items)
        return
    for item in items:
        assert item["pricing"].keys() >= PRICING_FIELDS
    assert booking["pricing"].keys() >= PRICING_FIELDS
    assert booking["pricing"]["currency"] == "CNY"
    assert booking["pricing"]["currencyPrecision"] == 2
    assert booking["pricing"]["net"] == sum(item["pricing"]["net"] for item in items)
    assert booking["pricing"]["retail"] == sum(item["pricing"]["retail"] for item in items)


# ---------------------------------------------------------------- 1. pick-ups, whole flow


async def test_whole_octo_flow_on_a_bus_line_with_pickups(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, slug="pickup-line")
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    first_at = in_days(10)
    # The first departure is shown in UTC+6: its local times must carry that offset.
    first = await departure_with_stops(
        client, operator, route, vehicle, first_at,
        [
            stop("pickup", ZHENGZHOU_EAST, first_at - timedelta(minutes=60),
                 address=ZHENGZHOU_ADDRESS),
            stop("pickup", ERQI_SQUARE, first_at - timedelta(minutes=30)),
            stop("dropoff", {"zh_Hans": "樱桃园", "en": "Cherry orchard"},
                 first_at + timedelta(hours=2)),
        ],
        time_zone="Asia/Urumqi",
    )  # fmt: skip
    second_at = in_days(11)
    second = await departure_with_stops(
        client, operator, route, vehicle, second_at,
        [stop("pickup", ZHENGZHOU_EAST, second_at - timedelta(minutes=45),
              address=ZHENGZHOU_ADDRESS)],
    )  # fmt: skip
    agency = await agency_key(client, operator)
    headers = {**agency["headers"], "Octo-Capabilities": "octo/pickups"}

    # Without the capability, no pick-up fields.
    plain = octo_ok(await client.get(f"/octo/products/{route['id']}", headers=agency["headers"]))
    assert "pickupLocations" not in plain["options"][0]
    assert "pickupAvailable" not in plain["options"][0]

    # With it: both places once each (the shared one de-duplicated), the drop-off not at all.
    response = await client.get(
        f"/octo/products/{route['id']}", headers={**headers, "Accept-Language": "en"}
    )
    product = octo_ok(response)
    assert capabilities_of(response) == {"octo/pickups"}
    [option] = product["options"]
    assert option["pickupAvailable"] is True
    assert option["pickupRequired"] is False
    locations = {location["title"]: location for location in option["pickupLocations"]}
    assert set(locations) == {"Zhengzhou East Station", "Erqi Square"}
    for location in locations.values():
        assert location.keys() >= PICKUP_LOCATION_FIELDS
        assert isinstance(location["id"], str)
        assert location["id"]
        assert isinstance(location["place"], dict)
    east = locations["Zhengzhou East Station"]
    erqi = locations["Erqi Square"]
    assert east["id"] != erqi["id"]
    assert east["shortDescription"] == "Xinyi Road, Zhengzhou"
    assert erqi["shortDescription"] is None
    # Read in Chinese: the same ids, Chinese titles.
    chinese = octo_ok(await client.get(f"/octo/products/{route['id']}", headers=headers))
    assert {loc["id"]: loc["title"] for loc in chinese["options"][0]["pickupLocations"]} == {
        east["id"]: "郑州东站",
        erqi["id"]: "二七广场",
    }

    # The shared place's id picks up on both departures, at each one's time, in its zone.
    query = {
        "productId": route["id"],
        "optionId": "standard",
        "availabilityIds": [first["id"], second["id"]],
    }
    slots = octo_ok(
        await client.post(
            "/octo/availability", json={**query, "pickupLocationId": east["id"]}, headers=headers
        )
    )
    by_id = {slot["id"]: slot for slot in slots}
    assert set(by_id) == {first["id"], second["id"]}
    first_pickup = datetime.fromisoformat(by_id[first["id"]]["localPickupDateTimeStart"])
    assert first_pickup == first_at - timedelta(minutes=60)
    assert first_pickup.utcoffset() == timedelta(hours=6)
    assert by_id[first["id"]]["localPickupDateTimeEnd"] == first_pickup.isoformat()
    second_pickup = datetime.fromisoformat(by_id[second["id"]]["localPickupDateTimeStart"])
    assert second_pickup == second_at - timedelta(minutes=45)
    assert second_pickup.utcoffset() == timedelta(hours=8)
    slots = octo_ok(
        await client.post(
            "/octo/availability", json={**query, "pickupLocationId": erqi["id"]}, headers=headers
        )
    )
    by_id = {slot["id"]: slot for slot in slots}
    assert datetime.fromisoformat(by_id[first["id"]]["localPickupDateTimeStart"]) == (
        first_at - timedelta(minutes=30)
    )
    assert by_id[second["id"]]["localPickupDateTimeStart"] is None

    # Pick-ups that are not this departure's are bad requests, and hold nothing.
    base = hold_body("pickup-1", route["id"], "standard", first["id"], ["adult", "child"])
    for wrong in (
        {"pickupRequested": True, "pickupLocationId": "pickup-000000000000"},
        {"pickupRequested": True, "pickupLocationId": "no-such-place"},
        {"pickupRequested": True},
    ):
        octo_error(
            await client.post("/octo/bookings", json={**base, **wrong}, headers=headers),
            "BAD_REQUEST",
        )
    octo_error(
        await client.post(
            "/octo/bookings",
            json={**base, "availabilityId": second["id"], "pickupRequested": True,
                  "pickupLocationId": erqi["id"]},
            headers=headers,
        ),
        "BAD_REQUEST",
    )  # fmt: skip
    assert await Booking.count().run() == 0

    held = octo_ok(
        await client.post(
            "/octo/bookings",
            json={**base, "pickupRequested": True, "pickupLocationId": erqi["id"]},
            headers=headers,
        )
    )
    assert_conformant_booking(held, "ON_HOLD")

    def assert_picked_up_at_erqi(booking: dict[str, Any]) -> None:
        assert booking["pickupRequested"] is True
        assert booking["pickupLocationId"] == erqi["id"]
        assert booking["pickupLocation"]["id"] == erqi["id"]
        assert booking["pickupLocation"]["title"] == "二七广场"
        start = datetime.fromisoformat(booking["localPickupDateTimeStart"])
        assert start == first_at - timedelta(minutes=30)
        assert start.utcoffset() == timedelta(hours=6)
        assert booking["localPickupDateTimeEnd"] == booking["localPickupDateTimeStart"]

    assert_picked_up_at_erqi(held)
    manifest = ok(
        await client.get(f"{DEPARTURES}/{first['id']}/manifest", headers=operator.headers)
    )
    assert [(line["reference"], line["pickup_stop"]) for line in manifest["lines"]] == [
        (held["supplierReference"], "二七广场")
    ] * 2
    assert {datetime.fromisoformat(line["pickup_at"]) for line in manifest["lines"]} == {
        first_at - timedelta(minutes=30)
    }

    extended = octo_ok(
        await client.post(
            "/octo/bookings/pickup-1/extend", json={"expirationMinutes": 120}, headers=headers
        )
    )
    assert_conformant_booking(extended, "ON_HOLD")
    assert utc_moment(extended["utcExpiresAt"]) > utc_moment(held["utcExpiresAt"])
    assert_picked_up_at_erqi(extended)

    confirmed = octo_ok(
        await client.post("/octo/bookings/pickup-1/confirm", json=CONTACT, headers=headers)
    )
    assert_conformant_booking(confirmed, "CONFIRMED")
    assert_picked_up_at_erqi(confirmed)
    fetched = octo_ok(await client.get("/octo/bookings/pickup-1", headers=headers))
    assert_conformant_booking(fetched, "CONFIRMED")
    assert_picked_up_at_erqi(fetched)
    assert fetched["supplierReference"] == held["supplierReference"]

    # The shared place's id also books the other departure, at that departure's stop.
    other = octo_ok(
        await client.post(
            "/octo/bookings",
            json=hold_body("pickup-2", route["id"], "standard", second["id"], ["adult"],
                           pickupRequested=True, pickupLocationId=east["id"]),
            headers=headers,
        )
    )  # fmt: skip
    assert other["pickupLocationId"] == east["id"]
    assert other["pickupLocation"]["shortDescription"] == "郑州市金水区心怡路"
    assert datetime.fromisoformat(other["localPickupDateTimeStart"]) == (
        second_at - timedelta(minutes=45)
    )
    manifest = ok(
        await client.get(f"{DEPARTURES}/{second['id']}/manifest", headers=operator.headers)
    )
    assert [line["pickup_stop"] for line in manifest["lines"]] == ["郑州东站"]

    cancelled = octo_ok(
        await client.post("/octo/bookings/pickup-1/cancel", json={}, headers=headers)
    )
    assert_conformant_booking(cancelled, "CANCELLED")
    assert cancelled["cancellation"]["refund"] == "FULL"
    manifest = ok(
        await client.get(f"{DEPARTURES}/{first['id']}/manifest", headers=operator.headers)
    )
    assert manifest["lines"] == []


# ---------------------------------------------------------------- 2. fields in every status


async def test_every_booking_status_carries_every_required_field(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    agency = await agency_key(client, operator, commission_bp=1000)
    headers = {**agency["headers"], "Octo-Capabilities": "octo/pricing"}
    start = clock.now()
    with clock.frozen(start):
        for uuid in ("to-confirm", "to-cancel", "to-expire", "to-drop"):
            held = octo_ok(
                await client.post(
                    "/octo/bookings",
                    json=hold_body(uuid, route["id"], "standard", departure["id"],
                                   ["adult", "child"], expirationMinutes=5,
                                   resellerReference=f"R-{uuid}"),
                    headers=headers,
                )
            )  # fmt: skip
            assert_conformant_booking(held, "ON_HOLD")
            assert held["uuid"] == uuid
            assert held["resellerReference"] == f"R-{uuid}"
            assert held["productId"] == route["id"]
            assert held["optionId"] == "standard"
            assert held["availabilityId"] == departure["id"]
            assert utc_moment(held["utcExpiresAt"]) == start + timedelta(minutes=5)
            # Fares 6800 + 3800, commission 10 %: the agency owes 9540.
            assert held["pricing"]["retail"] == 10_600
            assert held["pricing"]["net"] == 9_540

        clock.advance(timedelta(minutes=1))
        confirmed = octo_ok(
            await client.post("/octo/bookings/to-confirm/confirm", json=CONTACT, headers=headers)
        )
        assert_conformant_booking(confirmed, "CONFIRMED")
        assert utc_moment(confirmed["utcConfirmedAt"]) == start + timedelta(minutes=1)
        assert utc_moment(confirmed["utcUpdatedAt"]) == start + timedelta(minutes=1)
        assert confirmed["contact"]["fullName"] == "Wang Fang"
        assert confirmed["contact"]["emailAddress"] == "wang@example.cn"

        octo_ok(
            await client.post("/octo/bookings/to-cancel/confirm", json=CONTACT, headers=headers)
        )
        clock.advance(timedelta(minutes=1))
        cancelled = octo_ok(
            await client.post(
                "/octo/bookings/to-cancel/cancel", json={"reason": "client"}, headers=headers
            )
        )
        assert_conformant_booking(cancelled, "CANCELLED")
        assert cancelled["cancellation"]["refund"] == "FULL"
        assert utc_moment(cancelled["cancellation"]["utcCancelledAt"]) == start + timedelta(
            minutes=2
        )
        # The last change is the cancellation.
        assert utc_moment(cancelled["utcUpdatedAt"]) == start + timedelta(minutes=2)
        dropped = octo_ok(
            await client.post("/octo/bookings/to-drop/cancel", json={}, headers=headers)
        )
        assert_conformant_booking(dropped, "CANCELLED")

        clock.advance(timedelta(minutes=5))
        await tick()
        expired = octo_ok(await client.get("/octo/bookings/to-expire", headers=headers))
        assert_conformant_booking(expired, "EXPIRED")
        assert utc_moment(expired["utcUpdatedAt"]) == start + timedelta(minutes=7)
        octo_error(
            await client.post("/octo/bookings/to-expire/confirm", json=CONTACT, headers=headers),
            "INVALID_BOOKING_UUID",
        )

        # Read back, one by one and through search, each keeps its status and fields.
        expected = {"to-confirm": "CONFIRMED", "to-cancel": "CANCELLED", "to-expire": "EXPIRED",
                    "to-drop": "CANCELLED"}  # fmt: skip
        for uuid, status in expected.items():
            assert_conformant_booking(
                octo_ok(await client.get(f"/octo/bookings/{uuid}", headers=headers)), status
            )
        found = octo_ok(
            await client.get(f"/octo/bookings?productId={route['id']}", headers=headers)
        )
        assert {b["uuid"]: b["status"] for b in found} == expected
        for booking in found:
            assert_conformant_booking(booking, expected[booking["uuid"]])


# ---------------------------------------------------------------- 3. content and headers


async def test_content_is_localized_and_capabilities_are_echoed(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, _departure = await published_bus_departure(client, operator.headers)
    agency = await agency_key(client, operator)
    wanted = "octo/content, octo/pricing, octo/offers"  # offers is not supported
    headers = {**agency["headers"], "Octo-Capabilities": wanted}

    response = await client.get(
        f"/octo/products/{route['id']}", headers={**headers, "Accept-Language": "en"}
    )
    english = octo_ok(response)
    assert capabilities_of(response) == {"octo/content", "octo/pricing"}
    assert response.headers["Content-Language"] == "en"
    languages = {v.strip() for v in response.headers["Available-Languages"].split(",")}
    assert languages == {"zh-Hans", "en"}
    assert english["title"] == "Picking Line"
    assert english["description"] == "Weekend cherry and mulberry picking"
    assert isinstance(english["shortDescription"], str)
    assert english["shortDescription"]
    assert isinstance(english["durationMinutesFrom"], int)
    assert english["durationMinutesFrom"] > 0
    assert english["defaultCurrency"] == "CNY"  # octo/pricing
    listed = octo_ok(
        await client.get("/octo/products", headers={**headers, "Accept-Language": "en-GB"})
    )
    assert [p["title"] for p in listed] == ["Picking Line"]

    for language in (None, "zh-Hans", "zh-CN", "fr"):
        asked = {**headers, "Accept-Language": language} if language else headers
        response = await client.get(f"/octo/products/{route['id']}", headers=asked)
        chinese = octo_ok(response)
        assert response.headers["Content-Language"] == "zh-Hans", language
        assert chinese["title"] == "采摘号", language
        assert chinese["description"] == "周末采摘樱桃和桑葚", language
        assert chinese["shortDescription"], language
        assert chinese["durationMinutesFrom"] == english["durationMinutesFrom"]

    # Without capabilities: nothing echoed, no content or pricing fields.
    response = await client.get(f"/octo/products/{route['id']}", headers=agency["headers"])
    bare = octo_ok(response)
    assert capabilities_of(response) == set()
    assert "title" not in bare
    assert "defaultCurrency" not in bare
    assert "Available-Languages" in response.headers
    # Errors carry the headers too.
    response = await client.get("/octo/products/nope", headers=headers)
    octo_error(response, "INVALID_PRODUCT_ID")
    assert capabilities_of(response) == {"octo/content", "octo/pricing"}


# ---------------------------------------------------------------- 4. errors


async def test_octo_error_bodies(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    other_route, _other_vehicle, other_departure = await published_bus_departure(
        client, operator.headers, slug="other-line"
    )
    agency = await agency_key(client, operator)
    headers = agency["headers"]
    day = datetime.fromisoformat(departure["departs_at"]).date().isoformat()
    search = {"productId": route["id"], "optionId": "standard", "localDateStart": day,
              "localDateEnd": day}  # fmt: skip
    base = hold_body("e-1", route["id"], "standard", departure["id"], ["adult"])

    # Unknown ids, each with its own code.
    body = octo_error(await client.get("/octo/products/no-such", headers=headers),
                      "INVALID_PRODUCT_ID")  # fmt: skip
    assert body["productId"] == "no-such"
    unknown_product = str(uuid4())
    for path, payload in (
        ("/octo/availability", {**search, "productId": unknown_product}),
        ("/octo/availability/calendar", {**search, "productId": unknown_product}),
        ("/octo/bookings", {**base, "productId": unknown_product}),
    ):
        octo_error(await client.post(path, json=payload, headers=headers), "INVALID_PRODUCT_ID")
    for path, payload in (
        ("/octo/availability", {**search, "optionId": "first_class"}),
        ("/octo/bookings", {**base, "optionId": "first_class"}),
    ):
        body = octo_error(await client.post(path, json=payload, headers=headers),
                          "INVALID_OPTION_ID")  # fmt: skip
        assert body["optionId"] == "first_class"
    for path, payload in (
        ("/octo/availability", {**search, "units": [{"id": "infant", "quantity": 1}]}),
        ("/octo/bookings", {**base, "unitItems": [{"unitId": "adult"}, {"unitId": "infant"}]}),
    ):
        body = octo_error(await client.post(path, json=payload, headers=headers),
                          "INVALID_UNIT_ID")  # fmt: skip
        assert body["unitId"] == "infant"
    for payload in (
        {**base, "availabilityId": str(uuid4())},
        {**base, "availabilityId": "not-a-uuid"},
        # A real departure, of another product.
        {**base, "availabilityId": other_departure["id"]},
    ):
        octo_error(
            await client.post("/octo/bookings", json=payload, headers=headers),
            "INVALID_AVAILABILITY_ID",
        )
    octo_error(
        await client.post(
            "/octo/availability",
            json={"productId": route["id"], "optionId": "standard", "availabilityIds": ["x"]},
            headers=headers,
        ),
        "INVALID_AVAILABILITY_ID",
    )
    assert other_route["id"] != route["id"]
    body = octo_error(await client.get("/octo/bookings/no-such-uuid", headers=headers),
                      "INVALID_BOOKING_UUID")  # fmt: skip
    assert body["uuid"] == "no-such-uuid"
    for action in ("confirm", "cancel", "extend"):
        octo_error(
            await client.post(f"/octo/bookings/no-such-uuid/{action}", json=CONTACT,
                              headers=headers),
            "INVALID_BOOKING_UUID",
        )  # fmt: skip

    # Bodies that are not JSON objects.
    json_headers = {**headers, "Content-Type": "application/json"}
    for path in ("/octo/bookings", "/octo/availability", "/octo/availability/calendar",
                 "/octo/bookings/no-such-uuid/confirm"):  # fmt: skip
        for raw in (b'{"uuid": "e-1", ', b"not json at all", b"[1, 2]", b'"text"', b"42"):
            octo_error(await client.post(path, content=raw, headers=json_headers), "BAD_REQUEST")

    # Search needs a filter; an unknown parameter is not one.
    octo_error(await client.get("/octo/bookings", headers=headers), "BAD_REQUEST")
    octo_error(await client.get("/octo/bookings?colour=red", headers=headers), "BAD_REQUEST")

    # Keys: missing, malformed, forged, other schemes, revoked.
    key = agency["key"]
    forged = key[:-1] + ("a" if key[-1] != "a" else "b")
    for auth in (None, "", "Bearer", f"Basic {key}", key):
        response = await client.get(
            "/octo/supplier", headers={"Authorization": auth} if auth is not None else {}
        )
        octo_error(response, "UNAUTHORIZED")
    for auth in ("Bearer nonsense", f"Bearer {forged}"):
        octo_error(await client.get("/octo/supplier", headers={"Authorization": auth}), "FORBIDDEN")
    octo_error(
        await client.post("/octo/bookings", json=base, headers={"Authorization": "Bearer x"}),
        "FORBIDDEN",
    )
    assert (await client.get("/octo/supplier", headers=headers)).status_code == 200
    revoked = await client.delete(
        f"{AGENCIES}/{agency['agency_id']}/keys/{agency['key_id']}", headers=operator.headers
    )
    ok(revoked)
    octo_error(await client.get("/octo/supplier", headers=headers), "FORBIDDEN")
    # None of that held a seat.
    assert await Booking.count().run() == 0


async def test_another_agencys_booking_looks_like_an_unknown_uuid(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    owner = await agency_key(client, operator, name="Owner Tours")
    stranger = await agency_key(client, operator, name="Stranger Tours")
    held = octo_ok(
        await client.post(
            "/octo/bookings",
            json=hold_body("mine-1", route["id"], "standard", departure["id"], ["adult"]),
            headers=owner["headers"],
        )
    )
    requests = [
        ("GET", "", None),
        ("POST", "/confirm", CONTACT),
        ("POST", "/cancel", {}),
        ("POST", "/extend", {"expirationMinutes": 600}),
    ]
    for method, suffix, payload in requests:
        theirs = await client.request(
            method, f"/octo/bookings/mine-1{suffix}", json=payload, headers=stranger["headers"]
        )
        unknown = await client.request(
            method, f"/octo/bookings/nobody-1{suffix}", json=payload, headers=stranger["headers"]
        )
        body = octo_error(theirs, "INVALID_BOOKING_UUID")
        assert theirs.status_code == unknown.status_code
        assert {**body, "uuid": "nobody-1"} == unknown.json(), (method, suffix)
    # Nothing the stranger sent changed the booking.
    mine = octo_ok(await client.get("/octo/bookings/mine-1", headers=owner["headers"]))
    assert mine["status"] == "ON_HOLD"
    assert mine["utcExpiresAt"] == held["utcExpiresAt"]
    assert mine["contact"]["emailAddress"] is None
    # Nor does the stranger find it by search.
    reference = held["supplierReference"]
    assert (
        octo_ok(
            await client.get(
                f"/octo/bookings?supplierReference={reference}", headers=stranger["headers"]
            )
        )
        == []
    )


# ---------------------------------------------------------------- 5. search filters


async def test_booking_search_filters(client: httpx.AsyncClient, operator: Account) -> None:
    bus, bus_vehicle, bus_early = await published_bus_departure(client, operator.headers)
    bus_late = await create_departure(client, operator.headers, bus, bus_vehicle, in_days(12))
    train = await create_route(
        client, operator.headers, slug="search-train", kind="train", duration_days=3
    )
    train_vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, train["id"], ["soft_sleeper", "hard_sleeper"])
    train_departure = await create_departure(
        client, operator.headers, train, train_vehicle, in_days(11)
    )
    agency = await agency_key(client, operator)
    headers = agency["headers"]
    made = {}
    for uuid, product, option, departure in (
        ("b1", bus, "standard", bus_early),
        ("b2", bus, "standard", bus_late),
        ("b3", train, "soft_sleeper", train_departure),
        ("b4", train, "hard_sleeper", train_departure),
    ):
        made[uuid] = octo_ok(
            await client.post(
                "/octo/bookings",
                json=hold_body(uuid, product["id"], option, departure["id"], ["adult"],
                               resellerReference=f"R-{uuid}"),
                headers=headers,
            )
        )  # fmt: skip
    # Another agency of the same operator, with a clashing reseller reference.
    other = await agency_key(client, operator, name="Other Tours")
    octo_ok(
        await client.post(
            "/octo/bookings",
            json=hold_body("x1", bus["id"], "standard", bus_early["id"], ["adult"],
                           resellerReference="R-b1"),
            headers=other["headers"],
        )
    )  # fmt: skip
    day10, day11, day12 = (in_days(n).date().isoformat() for n in (10, 11, 12))

    async def found(query: str) -> list[str]:
        result = octo_ok(await client.get(f"/octo/bookings?{query}", headers=headers))
        return sorted(booking["uuid"] for booking in result)

    assert await found("resellerReference=R-b2") == ["b2"]
    assert await found("resellerReference=R-b1") == ["b1"]
    assert await found("resellerReference=R-none") == []
    assert await found(f"supplierReference={made['b3']['supplierReference']}") == ["b3"]
    assert await found("supplierReference=ZZZZZZ") == []
    assert await found(f"localDate={day11}") == ["b3", "b4"]
    assert await found(f"localDate={day10}") == ["b1"]
    assert await found(f"localDateStart={day11}&localDateEnd={day12}") == ["b2", "b3", "b4"]
    assert await found(f"localDateStart={day10}&localDateEnd={day10}") == ["b1"]
    # Half a range is not one of the specification's filters.
    octo_error(await client.get(f"/octo/bookings?localDateStart={day12}", headers=headers),
               "BAD_REQUEST")  # fmt: skip
    octo_error(await client.get(f"/octo/bookings?localDateEnd={day11}", headers=headers),
               "BAD_REQUEST")  # fmt: skip
    assert await found(f"productId={bus['id']}") == ["b1", "b2"]
    assert await found(f"productId={train['id']}") == ["b3", "b4"]
    assert await found("optionId=hard_sleeper") == ["b4"]
    assert await found(f"productId={train['id']}&optionId=soft_sleeper") == ["b3"]
    assert await found(f"productId={bus['id']}&localDate={day12}") == ["b2"]
    assert await found(f"productId={bus['id']}&optionId=soft_sleeper") == []
    # The other agency sees only its own.
    result = octo_ok(
        await client.get("/octo/bookings?resellerReference=R-b1", headers=other["headers"])
    )
    assert [b["uuid"] for b in result] == ["x1"]


async def test_booking_search_rejects_malformed_dates(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    agency = await agency_key(client, operator)
    headers = agency["headers"]
    octo_ok(
        await client.post(
            "/octo/bookings",
            json=hold_body("d-1", route["id"], "standard", departure["id"], ["adult"]),
            headers=headers,
        )
    )
    for query in ("localDateStart=2024-13-01", "localDateEnd=tomorrow",
                  "localDate=not-a-date", "localDate=2024-02-30"):  # fmt: skip
        octo_error(await client.get(f"/octo/bookings?{query}", headers=headers), "BAD_REQUEST")
    # An agency without bookings is told the same, not answered with an empty list.
    empty = await agency_key(client, operator, name="Empty Tours")
    octo_error(
        await client.get("/octo/bookings?localDateStart=2024-13-01", headers=empty["headers"]),
        "BAD_REQUEST",
    )


# ---------------------------------------------------------------- 6. rate limit, two processes


async def test_rate_limit_is_shared_by_two_real_server_processes(
    client: httpx.AsyncClient, operator: Account, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "TOURLINE_PARTNER_RATE_LIMIT": "6"}
    async with api_servers(2, env, tmp_path) as bases, httpx.AsyncClient(timeout=10) as http:
        agency = await agency_key(client, operator, name="Rate Tours")
        headers = agency["headers"]
        await inside_one_minute()
        answers = [
            await http.get(f"{bases[n % 2]}/octo/supplier", headers=headers) for n in range(8)
        ]
    # Each process saw only four requests: the refusals come from the shared count.
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2, [
        (a.status_code, a.text) for a in answers
    ]
    assert answers[0].json()["id"] == operator.operator_id
    for refused in answers[6:]:
        octo_error(refused, "TOO_MANY_REQUESTS", status=429)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
