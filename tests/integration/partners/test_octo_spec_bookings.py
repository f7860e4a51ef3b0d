"""The OCTO booking flows as a generic client written from the specification walks them:
reserve (with and without `uuid`), extend, update (PATCH), confirm, get, list, cancel.
Every response body is validated against the schema the specification documents for it
(octo-types' openapi.yaml, `tests/octo_spec.py`), and every error is one of the codes the
specification documents for that endpoint, with its own fields: unknown ids, sold out,
expired hold, double confirm, cancel and update after the contract's cut-off."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pypdf

from app.booking.tables import Booking
from app.core import clock
from tests.assertions import ok
from tests.conftest import Account
from tests.factories import create_departure, in_days, published_bus_departure
from tests.integration.partners.test_octo_spec import spec_error
from tests.octo_spec import assert_conforms, component, response_schema

AGENCIES = "/api/v1/operator/agencies"
PRICING = {"Octo-Capabilities": "octo/pricing"}
CONTACT = {
    "fullName": "Wang Fang",
    "firstName": "Fang",
    "lastName": "Wang",
    "emailAddress": "wang@example.cn",
    "phoneNumber": "+86 139 0000 0000",
    "locales": ["en-GB"],
    "postalCode": "450000",
    "country": "CN",
    "notes": "Travels with a wheelchair",
}


async def agency(client: httpx.AsyncClient, operator: Account, **terms: Any) -> dict[str, str]:
    """An on-account agency (48 hours' cancellation cut-off unless told) and its headers."""
    body = {
        "name": "Spec Tours", "contact_email": "ops@spec.example", "credit_limit": 10_000_000,
        "cancellation_cutoff_hours": 48, **terms,
    }  # fmt: skip
    made = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    key = ok(
        await client.post(
            f"{AGENCIES}/{made['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    return {"Authorization": f"Bearer {key['key']}"}


def conforming(response: httpx.Response, path: str, method: str) -> Any:
    """A 200 whose body is what the specification documents for `method path`."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conforms(body, response_schema(path, method))
    return body


def documented_error(response: httpx.Response, path: str, method: str, code: str) -> dict[str, Any]:
    """An error the specification documents for `method path`: its status (400, OCTO's
    one error status), its schema among the endpoint's, and the code's own fields."""
    body = spec_error(response, code, 400)
    assert_conforms(body, response_schema(path, method, "400"))
    return body


def is_uuid(text: Any) -> bool:
    try:
        return str(UUID(str(text))) == str(text).lower()
    except ValueError:
        return False


def reservation(route: dict[str, Any], departure: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "productId": route["id"],
        "optionId": "standard",
        "availabilityId": departure["id"],
        "unitItems": [{"unitId": "adult"}, {"unitId": "child"}],
        **extra,
    }


async def reserve(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    booking: dict[str, Any] = conforming(
        await client.post("/octo/bookings", json=body, headers=headers), "/bookings/", "post"
    )
    return booking


async def confirmed(
    client: httpx.AsyncClient, headers: dict[str, str], route: dict[str, Any],
    departure: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    held = await reserve(client, headers, reservation(route, departure))
    booking: dict[str, Any] = conforming(
        await client.post(
            f"/octo/bookings/{held['uuid']}/confirm", json={"contact": CONTACT}, headers=headers
        ),
        "/bookings/{uuid}/confirm",
        "post",
    )
    return booking


# ---------------------------------------------------------------- the flows


async def test_reserve_without_uuid_then_extend_update_confirm_get_list_cancel(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)

    held = await reserve(client, headers, reservation(route, departure, notes="Window seats"))
    assert is_uuid(held["uuid"]), held["uuid"]
    assert held["status"] == "ON_HOLD"
    assert held["notes"] == "Window seats"
    assert [item["unitId"] for item in held["unitItems"]] == ["adult", "child"]
    assert all(is_uuid(item["uuid"]) for item in held["unitItems"])
    assert len({item["uuid"] for item in held["unitItems"]}) == 2
    # Pricing is a capability: without `octo/pricing` requested, no pricing fields.
    assert "pricing" not in held
    assert all("pricing" not in item for item in held["unitItems"])
    uuid = held["uuid"]

    extended = conforming(
        await client.post(
            f"/octo/bookings/{uuid}/extend", json={"expirationMinutes": 60}, headers=headers
        ),
        "/bookings/{uuid}/extend",
        "post",
    )
    expires = datetime.fromisoformat(extended["utcExpiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - clock.now() <= timedelta(minutes=60)

    updated = conforming(
        await client.patch(
            f"/octo/bookings/{uuid}",
            json={"resellerReference": "SPEC-1", "notes": "Aisle seats", "contact": CONTACT},
            headers=headers,
        ),
        "/bookings/{uuid}",
        "patch",
    )
    assert updated["status"] == "ON_HOLD"
    assert updated["resellerReference"] == "SPEC-1"
    assert updated["notes"] == "Aisle seats"
    assert updated["contact"]["emailAddress"] == CONTACT["emailAddress"]

    unit_uuids = [item["uuid"] for item in held["unitItems"]]
    done = conforming(
        await client.post(
            f"/octo/bookings/{uuid}/confirm",
            json={
                "contact": CONTACT,
                "resellerReference": "SPEC-1",
                "unitItems": [
                    {
                        "uuid": unit_uuids[0],
                        "unitId": "adult",
                        "contact": {"fullName": "Wang Fang"},
                    },
                    {
                        "uuid": unit_uuids[1],
                        "unitId": "child",
                        "contact": {"firstName": "Xiao", "lastName": "Wang"},
                    },
                ],
            },
            headers=headers,
        ),
        "/bookings/{uuid}/confirm",
        "post",
    )
    assert done["status"] == "CONFIRMED"
    assert done["utcConfirmedAt"] is not None
    assert done["contact"]["notes"] == CONTACT["notes"]
    assert done["contact"]["locales"][0].startswith("en")
    assert [item["uuid"] for item in done["unitItems"]] == unit_uuids
    names = [item["contact"]["fullName"] for item in done["unitItems"]]
    assert names == ["Wang Fang", "Xiao Wang"]
    for item in done["unitItems"]:
        assert item["contact"].keys() >= set(component("Contact")["required"])
        assert isinstance(item["contact"]["locales"], list)
    # The option delivers a VOUCHER: a confirmed booking carries one.
    assert done["deliveryMethods"] == ["VOUCHER"]
    voucher = done["voucher"]
    assert voucher is not None
    assert voucher["redemptionMethod"] == "DIGITAL"
    formats = {o["deliveryFormat"]: o["deliveryValue"] for o in voucher["deliveryOptions"]}
    assert formats["QRCODE"] == done["supplierReference"]
    # The printable ticket: a link the traveller opens without logging in, in the
    # contact's language (en-GB), with the same reference and each traveller.
    pdf_url = urlsplit(formats["PDF_URL"])
    assert pdf_url.query == "lang=en"
    ticket = await client.get(f"{pdf_url.path}?{pdf_url.query}")
    assert ticket.status_code == 200, ticket.text
    assert ticket.headers["content-type"] == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(ticket.content)).pages[0].extract_text()
    assert done["supplierReference"] in text
    assert "Xiao Wang" in text
    assert "child" in text
    assert all(item["ticket"] is None for item in done["unitItems"])  # TICKET not announced
    assert done["cancellable"] is True

    got = conforming(await client.get(f"/octo/bookings/{uuid}", headers=headers),
                     "/bookings/{uuid}", "get")  # fmt: skip
    assert got["status"] == "CONFIRMED"
    assert got["voucher"] == voucher

    # Updating a confirmed booking before the cut-off: its contact and references.
    later = conforming(
        await client.patch(
            f"/octo/bookings/{uuid}",
            json={
                "contact": {**CONTACT, "phoneNumber": "+86 139 1111 1111"},
                "resellerReference": "SPEC-2",
                "unitItems": [
                    {"uuid": unit_uuids[0], "unitId": "adult", "contact": {"fullName": "Wang Li"}},
                    {
                        "uuid": unit_uuids[1],
                        "unitId": "child",
                        "contact": {"fullName": "Wang Xiaoming"},
                    },
                ],
            },
            headers=headers,
        ),
        "/bookings/{uuid}",
        "patch",
    )
    assert later["status"] == "CONFIRMED"
    assert later["contact"]["phoneNumber"] == "+86 139 1111 1111"
    assert later["resellerReference"] == "SPEC-2"
    assert [i["contact"]["fullName"] for i in later["unitItems"]] == ["Wang Li", "Wang Xiaoming"]

    local_day = later["availability"]["localDateTimeStart"][:10]
    for query in (
        {"resellerReference": "SPEC-2"},
        {"supplierReference": later["supplierReference"]},
        {"localDate": local_day},
        {"localDateStart": local_day, "localDateEnd": local_day},
    ):
        found = conforming(
            await client.get("/octo/bookings", params=query, headers=headers), "/bookings/", "get"
        )
        assert [b["uuid"] for b in found] == [uuid], query
    none = conforming(
        await client.get("/octo/bookings", params={"resellerReference": "SPEC-1"},
                         headers=headers),
        "/bookings/", "get",
    )  # fmt: skip
    assert none == []

    cancelled = conforming(
        await client.post(
            f"/octo/bookings/{uuid}/cancel", json={"reason": "Plans changed"}, headers=headers
        ),
        "/bookings/{uuid}/cancel",
        "post",
    )
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellable"] is False
    assert cancelled["cancellation"]["reason"] == "Plans changed"


async def test_reserve_with_uuid_is_idempotent_per_agency(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)
    uuid = "559aed3d-6d5b-4fe0-bfca-99f5e7218a56"
    first = await reserve(client, headers, reservation(route, departure, uuid=uuid))
    again = await reserve(client, headers, reservation(route, departure, uuid=uuid))
    assert first["uuid"] == again["uuid"] == uuid
    assert first["id"] == again["id"]
    other = await reserve(client, await agency(client, operator),
                          reservation(route, departure, uuid=uuid))  # fmt: skip
    assert other["id"] != first["id"]


async def test_the_resellers_unit_items_are_kept_with_their_own_uuids_and_contacts(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """A reseller names its unit items with its own uuids, references and contacts, in
    any order of units; each passenger keeps them, through reserve, confirm and update."""
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)
    mine = [
        "3b1bc2ee-3155-4738-9471-f49842a07327",
        "8d2c0d8e-6c1b-4c71-8b8a-5d1f3c2e9a10",
        "c0ffee00-0000-4000-8000-000000000003",
    ]
    child = {"fullName": "Xiao Wang", "country": "cn", "notes": "Peanut allergy"}
    items = [
        {"uuid": mine[0], "unitId": "adult", "resellerReference": "T-1",
         "contact": {"fullName": "Wang Fang", "emailAddress": "fang@example.cn",
                     "phoneNumber": "+86 139 0000 0001"}},
        {"uuid": mine[1], "unitId": "child", "resellerReference": "T-2", "contact": child},
        {"uuid": mine[2], "unitId": "adult", "resellerReference": "T-3"},
    ]  # fmt: skip
    # A contact refused is refused before any seat is held.
    refused = documented_error(
        await client.post(
            "/octo/bookings",
            json=reservation(
                route, departure, unitItems=[*items[:2], {**items[2], "contact": {"notes": 5}}]
            ),
            headers=headers,
        ),
        "/bookings/",
        "post",
        "BAD_REQUEST",
    )
    assert "unitItems[2].contact.notes" in refused["errorMessage"]
    assert await Booking.count().run() == 0

    held = await reserve(client, headers, reservation(route, departure, unitItems=items))
    by_uuid = {item["uuid"]: item for item in held["unitItems"]}
    assert set(by_uuid) == set(mine)
    assert {u: by_uuid[u]["unitId"] for u in mine} == dict(
        zip(mine, ["adult", "child", "adult"], strict=True)
    )
    assert [by_uuid[u]["resellerReference"] for u in mine] == ["T-1", "T-2", "T-3"]
    first = by_uuid[mine[0]]["contact"]
    assert (first["fullName"], first["emailAddress"], first["phoneNumber"]) == (
        "Wang Fang", "fang@example.cn", "+86 139 0000 0001",
    )  # fmt: skip
    second = by_uuid[mine[1]]["contact"]
    assert (second["fullName"], second["country"], second["notes"]) == (
        "Xiao Wang", "CN", "Peanut allergy",
    )  # fmt: skip

    # Confirming names the items by the reseller's uuids, in yet another order.
    done = conforming(
        await client.post(
            f"/octo/bookings/{held['uuid']}/confirm",
            json={
                "contact": CONTACT,
                "unitItems": [
                    {"uuid": mine[2], "unitId": "adult", "contact": {"fullName": "Li Lei"}},
                    {"uuid": mine[0], "unitId": "adult"},
                    {"uuid": mine[1], "unitId": "child"},
                ],
            },
            headers=headers,
        ),
        "/bookings/{uuid}/confirm",
        "post",
    )
    names = {item["uuid"]: item["contact"]["fullName"] for item in done["unitItems"]}
    assert names == {mine[0]: "Wang Fang", mine[1]: "Xiao Wang", mine[2]: "Li Lei"}
    assert (done["contact"]["country"], done["contact"]["postalCode"]) == ("CN", "450000")
    again = conforming(await client.get(f"/octo/bookings/{held['uuid']}", headers=headers),
                       "/bookings/{uuid}", "get")  # fmt: skip
    assert again["unitItems"] == done["unitItems"]

    # Errors name the field; nothing changes.
    for bad, field in (
        ([{**items[0], "contact": {"country": "China"}}, items[1], items[2]],
         "unitItems[0].contact.country"),
        ([items[0], {**items[1], "uuid": mine[0]}, items[2]], "unitItems[1].uuid"),
    ):  # fmt: skip
        error = documented_error(
            await client.patch(
                f"/octo/bookings/{held['uuid']}", json={"unitItems": bad}, headers=headers
            ),
            "/bookings/{uuid}",
            "patch",
            "BAD_REQUEST",
        )
        assert field in error["errorMessage"], error
    swapped = [{**items[0], "unitId": "child"}, {**items[1], "unitId": "adult"}, items[2]]
    documented_error(
        await client.patch(
            f"/octo/bookings/{held['uuid']}", json={"unitItems": swapped}, headers=headers
        ),
        "/bookings/{uuid}",
        "patch",
        "UNPROCESSABLE_ENTITY",
    )
    unchanged = conforming(await client.get(f"/octo/bookings/{held['uuid']}", headers=headers),
                           "/bookings/{uuid}", "get")  # fmt: skip
    assert unchanged["unitItems"] == done["unitItems"]


async def test_a_hold_moves_to_another_availability_and_changes_its_units(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """PATCH with `availabilityId` and `unitItems`: the hold is re-seated and re-priced
    at once, its travellers keep their details; a confirmed booking cannot do it."""
    route, vehicle, first = await published_bus_departure(client, operator.headers)
    second = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    headers = {**await agency(client, operator, commission_bp=1000), **PRICING}
    items = [
        {"uuid": "11111111-1111-4111-8111-111111111111", "unitId": "adult",
         "contact": {"fullName": "Wang Fang"}},
        {"uuid": "22222222-2222-4222-8222-222222222222", "unitId": "child"},
    ]  # fmt: skip
    held = await reserve(client, headers, reservation(route, first, unitItems=items))
    uuid = held["uuid"]

    def seats_left(availability: dict[str, Any]) -> int:
        return int(availability["vacancies"])

    moved = conforming(
        await client.patch(
            f"/octo/bookings/{uuid}",
            json={
                "availabilityId": second["id"],
                "unitItems": [
                    *items,
                    {
                        "uuid": "33333333-3333-4333-8333-333333333333",
                        "unitId": "adult",
                        "contact": {"fullName": "Li Lei"},
                    },
                ],
            },
            headers=headers,
        ),
        "/bookings/{uuid}",
        "patch",
    )
    assert moved["status"] == "ON_HOLD"
    assert moved["availabilityId"] == second["id"]
    assert moved["utcExpiresAt"] == held["utcExpiresAt"]
    names = {item["uuid"]: item["contact"]["fullName"] for item in moved["unitItems"]}
    assert names == {
        "11111111-1111-4111-8111-111111111111": "Wang Fang",
        "22222222-2222-4222-8222-222222222222": None,
        "33333333-3333-4333-8333-333333333333": "Li Lei",
    }
    assert moved["pricing"]["retail"] == 2 * 6800 + 3800
    assert moved["pricing"]["net"] == (2 * 6800 + 3800) * 9 // 10
    assert seats_left(moved["availability"]) == 45 - 3
    # The first departure has its two seats back.
    calendar = conforming(
        await client.post(
            "/octo/availability",
            json={
                "productId": route["id"],
                "optionId": "standard",
                "availabilityIds": [first["id"]],
            },
            headers=headers,
        ),
        "/availability/",
        "post",
    )
    assert calendar[0]["vacancies"] == 45

    # Fewer units on the same availability: the child's seat goes back.
    shrunk = conforming(
        await client.patch(
            f"/octo/bookings/{uuid}", json={"unitItems": [items[0], moved["unitItems"][2]]},
            headers=headers,
        ),
        "/bookings/{uuid}",
        "patch",
    )  # fmt: skip
    assert sorted(item["unitId"] for item in shrunk["unitItems"]) == ["adult", "adult"]
    assert seats_left(shrunk["availability"]) == 45 - 2

    # Not enough seats there (one of 45 left for two): nothing changes.
    sold_out = await create_departure(client, operator.headers, route, vehicle, in_days(14))
    others = await agency(client, operator)
    for party in (10, 10, 10, 10, 4):
        units = [{"unitId": "adult"}] * party
        await reserve(client, others, reservation(route, sold_out, unitItems=units))
    documented_error(
        await client.patch(
            f"/octo/bookings/{uuid}", json={"availabilityId": sold_out["id"]}, headers=headers
        ),
        "/bookings/{uuid}",
        "patch",
        "UNPROCESSABLE_ENTITY",
    )
    same = conforming(await client.get(f"/octo/bookings/{uuid}", headers=headers),
                      "/bookings/{uuid}", "get")  # fmt: skip
    assert same["availabilityId"] == second["id"]
    assert same["unitItems"] == shrunk["unitItems"]

    # Confirmed, the availability and units stay.
    conforming(
        await client.post(f"/octo/bookings/{uuid}/confirm", json={"contact": CONTACT},
                          headers=headers),
        "/bookings/{uuid}/confirm", "post",
    )  # fmt: skip
    documented_error(
        await client.patch(
            f"/octo/bookings/{uuid}", json={"availabilityId": first["id"]}, headers=headers
        ),
        "/bookings/{uuid}",
        "patch",
        "UNPROCESSABLE_ENTITY",
    )


async def test_pricing_appears_only_when_the_capability_is_requested(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator, commission_bp=1000)
    held = await reserve(client, {**headers, **PRICING}, reservation(route, departure))
    pricing = held["pricing"]
    assert pricing["currency"] == "CNY"
    assert pricing["retail"] == 6800 + 3800
    assert pricing["net"] == (6800 + 3800) * 9 // 10
    assert all("pricing" in item for item in held["unitItems"])
    got = conforming(await client.get(f"/octo/bookings/{held['uuid']}", headers=headers),
                     "/bookings/{uuid}", "get")  # fmt: skip
    assert "pricing" not in got


async def test_cancellable_follows_the_contracts_cut_off(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator, cancellation_cutoff_hours=48)
    booking = await confirmed(client, headers, route, departure)
    assert booking["cancellable"] is True
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        got = conforming(await client.get(f"/octo/bookings/{booking['uuid']}", headers=headers),
                         "/bookings/{uuid}", "get")  # fmt: skip
        assert got["cancellable"] is False


# ---------------------------------------------------------------- documented errors


async def test_reserve_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)
    base = reservation(route, departure)

    async def refused(body: dict[str, Any], code: str) -> dict[str, Any]:
        response = await client.post("/octo/bookings", json=body, headers=headers)
        return documented_error(response, "/bookings/", "post", code)

    assert (await refused({**base, "productId": "nope"}, "INVALID_PRODUCT_ID"))[
        "productId"
    ] == "nope"
    assert (await refused({**base, "optionId": "nope"}, "INVALID_OPTION_ID"))["optionId"] == "nope"
    assert (await refused({**base, "unitItems": [{"unitId": "nope"}]}, "INVALID_UNIT_ID"))[
        "unitId"
    ] == "nope"
    assert (await refused({**base, "availabilityId": "nope"}, "INVALID_AVAILABILITY_ID"))[
        "availabilityId"
    ] == "nope"
    # Sold out: the 45-seat bus filled by five parties of nine, then one seat more.
    for _ in range(5):
        await reserve(client, headers, {**base, "unitItems": [{"unitId": "adult"}] * 9})
    one_more = {**base, "unitItems": [{"unitId": "adult"}]}
    body = await refused(one_more, "UNPROCESSABLE_ENTITY")
    assert "已售罄" in body["errorMessage"]  # in the reader's language (Chinese by default)
    response = await client.post(
        "/octo/bookings", json=one_more, headers={**headers, "Accept-Language": "en"}
    )
    body = documented_error(response, "/bookings/", "post", "UNPROCESSABLE_ENTITY")
    assert "sold out" in body["errorMessage"]


async def test_confirm_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)
    path = "/bookings/{uuid}/confirm"

    async def confirm(uuid: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(f"/octo/bookings/{uuid}/confirm", json=body, headers=headers)

    unknown = documented_error(
        await confirm("no-such-booking", {"contact": CONTACT}), path, "post",
        "INVALID_BOOKING_UUID",
    )  # fmt: skip
    assert unknown["uuid"] == "no-such-booking"

    held = await reserve(client, headers, reservation(route, departure))
    wrong_unit = {"contact": CONTACT, "unitItems": [{"unitId": "senior-ish"}, {"unitId": "child"}]}
    body = documented_error(await confirm(held["uuid"], wrong_unit), path, "post",
                            "INVALID_UNIT_ID")  # fmt: skip
    assert body["unitId"] == "senior-ish"
    got = conforming(await client.get(f"/octo/bookings/{held['uuid']}", headers=headers),
                     "/bookings/{uuid}", "get")  # fmt: skip
    assert got["status"] == "ON_HOLD"

    conforming(await confirm(held["uuid"], {"contact": CONTACT}), path, "post")
    documented_error(await confirm(held["uuid"], {"contact": CONTACT}), path, "post",
                     "UNPROCESSABLE_ENTITY")  # fmt: skip

    expiring = await reserve(client, headers, reservation(route, departure, expirationMinutes=5))
    with clock.frozen(clock.now() + timedelta(minutes=6)):
        body = documented_error(await confirm(expiring["uuid"], {"contact": CONTACT}), path,
                                "post", "INVALID_BOOKING_UUID")  # fmt: skip
        assert body["uuid"] == expiring["uuid"]
        got = conforming(await client.get(f"/octo/bookings/{expiring['uuid']}", headers=headers),
                         "/bookings/{uuid}", "get")  # fmt: skip
        assert got["status"] == "EXPIRED"


async def test_extend_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator)
    path = "/bookings/{uuid}/extend"

    async def extend(uuid: str) -> httpx.Response:
        return await client.post(
            f"/octo/bookings/{uuid}/extend", json={"expirationMinutes": 30}, headers=headers
        )

    documented_error(await extend("no-such-booking"), path, "post", "INVALID_BOOKING_UUID")
    expiring = await reserve(client, headers, reservation(route, departure, expirationMinutes=5))
    with clock.frozen(clock.now() + timedelta(minutes=6)):
        documented_error(await extend(expiring["uuid"]), path, "post", "INVALID_BOOKING_UUID")
    booking = await confirmed(client, headers, route, departure)
    documented_error(await extend(booking["uuid"]), path, "post", "UNPROCESSABLE_ENTITY")


async def test_update_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator, cancellation_cutoff_hours=48)
    path = "/bookings/{uuid}"

    async def update(uuid: str, body: dict[str, Any]) -> httpx.Response:
        return await client.patch(f"/octo/bookings/{uuid}", json=body, headers=headers)

    documented_error(await update("no-such-booking", {"notes": "x"}), path, "patch",
                     "INVALID_BOOKING_UUID")  # fmt: skip
    booking = await confirmed(client, headers, route, departure)
    uuid = booking["uuid"]
    for field, code in (
        ("productId", "INVALID_PRODUCT_ID"),
        ("optionId", "INVALID_OPTION_ID"),
        ("availabilityId", "INVALID_AVAILABILITY_ID"),
    ):
        body = documented_error(await update(uuid, {field: "nope"}), path, "patch", code)
        assert body[field] == "nope"
    body = documented_error(
        await update(uuid, {"unitItems": [{"unitId": "nope"}, {"unitId": "child"}]}), path,
        "patch", "INVALID_UNIT_ID",
    )  # fmt: skip
    assert body["unitId"] == "nope"
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        documented_error(await update(uuid, {"notes": "late"}), path, "patch",
                         "UNPROCESSABLE_ENTITY")  # fmt: skip
    got = conforming(await client.get(f"/octo/bookings/{uuid}", headers=headers),
                     "/bookings/{uuid}", "get")  # fmt: skip
    assert got["notes"] is None


async def test_cancel_errors(client: httpx.AsyncClient, operator: Account) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    headers = await agency(client, operator, cancellation_cutoff_hours=48)
    path = "/bookings/{uuid}/cancel"

    async def cancel(uuid: str) -> httpx.Response:
        return await client.post(f"/octo/bookings/{uuid}/cancel", json={}, headers=headers)

    documented_error(await cancel("no-such-booking"), path, "post", "INVALID_BOOKING_UUID")
    booking = await confirmed(client, headers, route, departure)
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        body = documented_error(await cancel(booking["uuid"]), path, "post",
                                "UNPROCESSABLE_ENTITY")  # fmt: skip
        assert "cut-off" in body["errorMessage"]
    got = conforming(await client.get(f"/octo/bookings/{booking['uuid']}", headers=headers),
                     "/bookings/{uuid}", "get")  # fmt: skip
    assert got["status"] == "CONFIRMED"


async def test_get_and_list_errors(client: httpx.AsyncClient, operator: Account) -> None:
    headers = await agency(client, operator)
    body = documented_error(await client.get("/octo/bookings/no-such-booking", headers=headers),
                            "/bookings/{uuid}", "get", "INVALID_BOOKING_UUID")  # fmt: skip
    assert body["uuid"] == "no-such-booking"
    # Without a filter, or with half a date range, the list is a bad request.
    for query in ({}, {"localDateStart": "2030-01-01"}, {"localDateEnd": "2030-01-01"}):
        response = await client.get("/octo/bookings", params=query, headers=headers)
        spec_error(response, "BAD_REQUEST", 400)
