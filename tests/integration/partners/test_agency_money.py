"""The money side of agency contracts, to the fen: net rates against commission, what an
agency's booking costs it (OCTO pricing, booking rows), confirming on account within the
credit limit, settlements, statements (JSON and CSV), prepaying agencies paying by card
through localstripe, and the operator's view of every agency booking.

Fares used throughout: adult 123.45, child 67.89 (CNY), and a commission of 15.75 %
(1575 bp), rounded down per seat: an adult nets 12345 - 1944 = 10401, a child
6789 - 1069 = 5720."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from uuid import uuid4

import httpx
import pytest
import stripe

from app.booking.tables import Booking, BookingLine
from app.core import clock
from app.payments.tables import Payment, Refund
from tests.assertions import fields, ok, problem
from tests.conftest import Account
from tests.factories import create_departure, create_route, create_vehicle, in_days

AGENCIES = "/api/v1/operator/agencies"
AGENCY_BOOKINGS = "/api/v1/operator/agency-bookings"
WEBHOOK = "/api/v1/webhooks/stripe"
SHANGHAI = clock.zone("Asia/Shanghai")
CAPABILITIES = {"Octo-Capabilities": "octo/pricing"}

ADULT, CHILD = 12345, 6789
COMMISSION_BP = 1575
ADULT_NET = 10401  # 12345 - floor(12345 * 1575 / 10000 = 1944.3375)
CHILD_NET = 5720  # 6789 - floor(6789 * 1575 / 10000 = 1069.2675)
CONTACT = {"contact": {"fullName": "Li Lei", "emailAddress": "li@example.cn"}}

MakeOperator = Callable[..., Awaitable[Account]]


# ---------------------------------------------------------------- helpers


def octo_error(
    response: httpx.Response, error: str = "BAD_REQUEST", status: int = 400
) -> dict[str, Any]:
    """An OCTO error body: {"error": CODE, "errorMessage": ...}."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert body["errorMessage"]
    return body


def amounts(price: dict[str, Any]) -> tuple[int, str]:
    """A PriceOut as (minor units, currency)."""
    return price["amount"], price["currency"]


def octo_pricing(retail: int, net: int) -> dict[str, Any]:
    return {
        "original": retail,
        "retail": retail,
        "net": net,
        "currency": "CNY",
        "currencyPrecision": 2,
        "includedTaxes": [],
    }


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A moment on a local (Shanghai) date."""
    return datetime.combine(day, clock_time(hour, minute), tzinfo=SHANGHAI)


async def bus_line(
    client: httpx.AsyncClient,
    account: Account,
    slug: str = "money-line",
    departs_at: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A published bus route (standard class: adult 12345, child 6789) and one departure."""
    route = await create_route(client, account.headers, slug=slug)
    vehicle = await create_vehicle(client, account.headers, "bus")
    fares = [
        {"seat_class": "standard", "passenger_type": "adult", "amount": ADULT},
        {"seat_class": "standard", "passenger_type": "child", "amount": CHILD},
    ]
    ok(
        await client.put(
            f"/api/v1/operator/routes/{route['id']}/fares",
            json={"fares": fares},
            headers=account.headers,
        )
    )
    departure = await create_departure(
        client, account.headers, route, vehicle, departs_at or in_days(30)
    )
    return route, departure


async def agency(
    client: httpx.AsyncClient, account: Account, name: str = "Beijing Tours", **terms: Any
) -> tuple[str, dict[str, str]]:
    """A new agency of the account's operator: (its id, OCTO headers with a working key)."""
    body = {"name": name, "contact_email": "ops@bjtours.example", **terms}
    agency_id = ok(await client.post(AGENCIES, json=body, headers=account.headers), 201)["id"]
    key = ok(
        await client.post(
            f"{AGENCIES}/{agency_id}/keys", json={"name": "main"}, headers=account.headers
        ),
        201,
    )["key"]
    return agency_id, {"Authorization": f"Bearer {key}", **CAPABILITIES}


async def hold(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    route: dict[str, Any],
    departure: dict[str, Any],
    uuid: str,
    units: list[str],
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "uuid": uuid,
        "productId": route["id"],
        "optionId": "standard",
        "availabilityId": departure["id"],
        "unitItems": [{"unitId": unit} for unit in units],
        **extra,
    }
    held: dict[str, Any] = ok(await client.post("/octo/bookings", json=body, headers=headers))
    assert held["status"] == "ON_HOLD"
    return held


async def confirm(
    client: httpx.AsyncClient, headers: dict[str, str], uuid: str, **extra: Any
) -> dict[str, Any]:
    confirmed: dict[str, Any] = ok(
        await client.post(
            f"/octo/bookings/{uuid}/confirm", json={**CONTACT, **extra}, headers=headers
        )
    )
    assert confirmed["status"] == "CONFIRMED", confirmed
    return confirmed


async def booking_row(uuid: str, agency_id: str | None = None) -> dict[str, Any]:
    query = Booking.select().where(Booking.partner_uuid == uuid)
    if agency_id is not None:
        query = query.where(Booking.agency == agency_id)
    rows = await query.run()
    assert len(rows) == 1, rows
    return dict(rows[0])


async def payments_of(uuid: str) -> list[tuple[str, str, int]]:
    booking = await booking_row(uuid)
    rows = (
        await Payment.select()
        .where(Payment.booking == booking["id"])
        .order_by(Payment.attempt)
        .run()
    )
    return [(row["provider"], row["status"], row["amount"]) for row in rows]


async def credit(client: httpx.AsyncClient, account: Account, agency_id: str) -> dict[str, int]:
    body = ok(await client.get(f"{AGENCIES}/{agency_id}/credit", headers=account.headers))
    for name in ("limit", "used", "available"):
        assert body[name]["currency"] == "CNY"
    return {name: body[name]["amount"] for name in ("limit", "used", "available")}


async def settle(
    client: httpx.AsyncClient,
    account: Account,
    agency_id: str,
    amount: int,
    received_on: date,
    reference: str = "",
) -> dict[str, Any]:
    response = await client.post(
        f"{AGENCIES}/{agency_id}/settlements",
        json={"amount": amount, "received_on": received_on.isoformat(), "reference": reference},
        headers=account.headers,
    )
    body: dict[str, Any] = ok(response, 201)
    return body


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


# ---------------------------------------------------------------- net rates and commission


async def test_net_rate_sheet_is_replaced_whole_and_validated(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route, _departure = await bus_line(client, operator)
    other = await make_operator("yy-rail")
    foreign = await create_route(client, other.headers, slug="foreign-line")
    agency_id, _headers = await agency(client, operator, commission_bp=COMMISSION_BP)
    url = f"{AGENCIES}/{agency_id}/net-rates"
    assert ok(await client.get(url, headers=operator.headers)) == []

    def rate(passenger_type: str, amount: int, route_id: str = route["id"]) -> dict[str, Any]:
        return {"route_id": route_id, "seat_class": "standard",
                "passenger_type": passenger_type, "amount": amount}  # fmt: skip

    sheet = ok(
        await client.put(
            url,
            json={"rates": [rate("child", 5000), rate("adult", 9000)]},
            headers=operator.headers,
        )
    )
    listed = ok(await client.get(url, headers=operator.headers))
    assert listed == sheet
    assert sorted(
        (r["route_id"], r["seat_class"], r["passenger_type"], *amounts(r["net"])) for r in listed
    ) == [
        (route["id"], "standard", "adult", 9000, "CNY"),
        (route["id"], "standard", "child", 5000, "CNY"),
    ]

    # Another operator's route is named by its index; a fare listed twice is too.
    body = problem(
        await client.put(
            url,
            json={"rates": [rate("adult", 8000), rate("child", 4000, foreign["id"])]},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["rates[1].route_id"]
    body = problem(
        await client.put(
            url,
            json={"rates": [rate("adult", 8000), rate("child", 4000), rate("adult", 8500)]},
            headers=operator.headers,
        ),
        400,
    )
    assert fields(body) == ["rates[2]"]
    # Refused sheets change nothing.
    assert ok(await client.get(url, headers=operator.headers)) == listed

    # A new sheet replaces the old one as a whole: the child rate is gone.
    ok(await client.put(url, json={"rates": [rate("adult", 9500)]}, headers=operator.headers))
    listed = ok(await client.get(url, headers=operator.headers))
    assert [(r["passenger_type"], r["net"]["amount"]) for r in listed] == [("adult", 9500)]
    # Staff may read it but not change it; another operator's admin sees no such agency.
    staff = await make_operator("zz-bus", role="operator_staff")
    assert ok(await client.get(url, headers=staff.headers)) == listed
    problem(
        await client.put(url, json={"rates": []}, headers=staff.headers),
        403,
        "operator_admin_required",
    )
    problem(await client.get(url, headers=other.headers), 404, "agency_not_found")
    problem(
        await client.put(url, json={"rates": []}, headers=other.headers), 404, "agency_not_found"
    )
    assert len(ok(await client.get(url, headers=operator.headers))) == 1


async def test_net_rate_beats_commission_and_bookings_keep_their_prices(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=1_000_000
    )
    url = f"{AGENCIES}/{agency_id}/net-rates"
    adult_rate = {"route_id": route["id"], "seat_class": "standard",
                  "passenger_type": "adult", "amount": 9000}  # fmt: skip
    ok(await client.put(url, json={"rates": [adult_rate]}, headers=operator.headers))

    # Availability with octo/pricing: per unit, and for the units asked for.
    slots = ok(
        await client.post(
            "/octo/availability",
            json={
                "productId": route["id"],
                "optionId": "standard",
                "availabilityIds": [departure["id"]],
                "units": [{"id": "adult", "quantity": 2}, {"id": "child", "quantity": 1}],
            },
            headers=headers,
        )
    )
    assert len(slots) == 1
    unit_pricing = {p["unitId"]: p for p in slots[0]["unitPricing"]}
    assert unit_pricing["adult"] == {"unitId": "adult", **octo_pricing(ADULT, 9000)}
    assert unit_pricing["child"] == {"unitId": "child", **octo_pricing(CHILD, CHILD_NET)}
    # 2 x 12345 + 6789 retail; 2 x 9000 (net rate) + 5720 (commission) net.
    assert slots[0]["pricing"] == octo_pricing(31479, 23720)

    held = await hold(client, headers, route, departure, "nr-1", ["adult", "adult", "child"])
    assert held["pricing"] == octo_pricing(31479, 23720)
    assert sorted(
        (item["unitId"], item["pricing"]["retail"], item["pricing"]["net"])
        for item in held["unitItems"]
    ) == [("adult", ADULT, 9000), ("adult", ADULT, 9000), ("child", CHILD, CHILD_NET)]
    for item in held["unitItems"]:
        assert item["pricing"]["currency"] == "CNY"
        assert item["pricing"]["original"] == item["pricing"]["retail"]

    # The sheet changes: the hold keeps its prices, new holds get the new ones.
    ok(
        await client.put(
            url, json={"rates": [{**adult_rate, "amount": 9500}]}, headers=operator.headers
        )
    )
    confirmed = await confirm(client, headers, "nr-1")
    assert confirmed["pricing"] == octo_pricing(31479, 23720)
    row = await booking_row("nr-1")
    assert (row["total_amount"], row["retail_amount"], row["currency"]) == (23720, 31479, "CNY")
    assert await payments_of("nr-1") == [("on_account", "succeeded", 23720)]

    again = await hold(client, headers, route, departure, "nr-2", ["adult", "child"])
    assert again["pricing"] == octo_pricing(ADULT + CHILD, 9500 + CHILD_NET)

    # An empty sheet: commission only.
    ok(await client.put(url, json={"rates": []}, headers=operator.headers))
    assert ok(await client.get(url, headers=operator.headers)) == []
    third = await hold(client, headers, route, departure, "nr-3", ["adult", "adult", "adult"])
    # Rounded down per seat: 3 x 10401 = 31203, not 37035 - floor(5833.0125) = 31202.
    assert third["pricing"] == octo_pricing(3 * ADULT, 3 * ADULT_NET)
    assert [item["pricing"]["net"] for item in third["unitItems"]] == [ADULT_NET] * 3
    rows = {uuid: await booking_row(uuid) for uuid in ("nr-1", "nr-2", "nr-3")}
    assert {uuid: (r["total_amount"], r["retail_amount"]) for uuid, r in rows.items()} == {
        "nr-1": (23720, 31479),
        "nr-2": (9500 + CHILD_NET, ADULT + CHILD),
        "nr-3": (3 * ADULT_NET, 3 * ADULT),
    }
    lines = (
        await BookingLine.select(BookingLine.passenger_type, BookingLine.price_amount,
                                 BookingLine.retail_amount)
        .where(BookingLine.booking == rows["nr-1"]["id"])
        .run()
    )  # fmt: skip
    assert sorted((r["passenger_type"], r["price_amount"], r["retail_amount"]) for r in lines) == [
        ("adult", 9000, ADULT),
        ("adult", 9000, ADULT),
        ("child", CHILD_NET, CHILD),
    ]


async def test_net_rates_of_one_agency_do_not_touch_another(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await bus_line(client, operator)
    first_id, first = await agency(client, operator, commission_bp=COMMISSION_BP)
    _second_id, second = await agency(client, operator, name="Xian Trips", commission_bp=1000)
    rate = {"route_id": route["id"], "seat_class": "standard",
            "passenger_type": "adult", "amount": 7000}  # fmt: skip
    ok(
        await client.put(
            f"{AGENCIES}/{first_id}/net-rates", json={"rates": [rate]}, headers=operator.headers
        )
    )
    mine = await hold(client, first, route, departure, "iso-1", ["adult"])
    theirs = await hold(client, second, route, departure, "iso-1", ["adult"])
    assert mine["pricing"] == octo_pricing(ADULT, 7000)
    # 10 %: 12345 - floor(1234.5) = 11111.
    assert theirs["pricing"] == octo_pricing(ADULT, 11111)


# ---------------------------------------------------------------- on account


async def test_credit_limit_refusal_then_settlements_make_room_to_the_fen(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=20_000
    )
    assert await credit(client, operator, agency_id) == {
        "limit": 20_000, "used": 0, "available": 20_000,
    }  # fmt: skip
    await hold(client, headers, route, departure, "cl-1", ["adult"])
    await hold(client, headers, route, departure, "cl-2", ["adult"])
    await confirm(client, headers, "cl-1")
    assert await credit(client, operator, agency_id) == {
        "limit": 20_000, "used": ADULT_NET, "available": 20_000 - ADULT_NET,
    }  # fmt: skip

    async def refused() -> None:
        body = octo_error(
            await client.post("/octo/bookings/cl-2/confirm", json=CONTACT, headers=headers),
            "UNPROCESSABLE_ENTITY",
        )
        assert body.get("code") == "credit_limit_exceeded", body
        assert ok(await client.get("/octo/bookings/cl-2", headers=headers))["status"] == "ON_HOLD"
        assert await payments_of("cl-2") == []
        row = await booking_row("cl-2")
        assert (row["status"], row["confirmed_at"], row["contact_email"]) == ("on_hold", None, "")

    # 10401 + 10401 = 20802 > 20000.
    await refused()
    today = clock.now().astimezone(SHANGHAI).date()
    first = await settle(client, operator, agency_id, 801, today - timedelta(days=1), "TT-801")
    assert amounts(first["amount"]) == (801, "CNY")
    assert (first["received_on"], first["reference"]) == (
        (today - timedelta(days=1)).isoformat(),
        "TT-801",
    )
    assert first["recorded_by"].startswith("staff:")
    # 10401 - 801 = 9600 used; 9600 + 10401 = 20001: one fen too many.
    assert await credit(client, operator, agency_id) == {
        "limit": 20_000, "used": 9600, "available": 10_400,
    }  # fmt: skip
    await refused()
    await settle(client, operator, agency_id, 1, today, "TT-1")
    # 9599 + 10401 = 20000 exactly: the limit itself may be used.
    await confirm(client, headers, "cl-2")
    assert await payments_of("cl-2") == [("on_account", "succeeded", ADULT_NET)]
    assert await credit(client, operator, agency_id) == {
        "limit": 20_000, "used": 20_000, "available": 0,
    }  # fmt: skip

    listed = ok(await client.get(f"{AGENCIES}/{agency_id}/settlements", headers=operator.headers))
    assert [(s["amount"]["amount"], s["received_on"], s["reference"]) for s in listed] == [
        (1, today.isoformat(), "TT-1"),
        (801, (today - timedelta(days=1)).isoformat(), "TT-801"),
    ]

    # Only an admin records money received; another operator cannot see the agency at all.
    staff = await make_operator("zz-bus", role="operator_staff")
    problem(
        await client.post(
            f"{AGENCIES}/{agency_id}/settlements",
            json={"amount": 5000, "received_on": today.isoformat()},
            headers=staff.headers,
        ),
        403,
        "operator_admin_required",
    )
    assert (
        len(ok(await client.get(f"{AGENCIES}/{agency_id}/settlements", headers=staff.headers))) == 2
    )
    other = await make_operator("yy-rail")
    for path in ("settlements", "credit"):
        problem(
            await client.get(f"{AGENCIES}/{agency_id}/{path}", headers=other.headers),
            404,
            "agency_not_found",
        )
    problem(
        await client.post(
            f"{AGENCIES}/{agency_id}/settlements",
            json={"amount": 5000, "received_on": today.isoformat()},
            headers=other.headers,
        ),
        404,
        "agency_not_found",
    )
    assert (await credit(client, operator, agency_id))["used"] == 20_000


async def test_a_cancelled_booking_gives_its_net_back_to_the_credit(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=50_000
    )
    await hold(client, headers, route, departure, "cx-1", ["adult", "child"])
    await confirm(client, headers, "cx-1")
    assert (await credit(client, operator, agency_id))["used"] == ADULT_NET + CHILD_NET
    cancelled = ok(await client.post("/octo/bookings/cx-1/cancel", json={}, headers=headers))
    assert cancelled["cancellation"]["refund"] == "FULL"
    row = await booking_row("cx-1")
    assert (row["refund_amount"], row["total_amount"]) == (16121, 16121)
    refunds = await Refund.select().where(Refund.booking == row["id"]).run()
    assert [(r["provider"], r["status"], r["amount"]) for r in refunds] == [
        ("on_account", "succeeded", ADULT_NET + CHILD_NET)
    ]
    assert await credit(client, operator, agency_id) == {
        "limit": 50_000, "used": 0, "available": 50_000,
    }  # fmt: skip


# ---------------------------------------------------------------- statements


async def mixed_period(
    client: httpx.AsyncClient, operator: Account
) -> tuple[str, date, dict[str, str]]:
    """An agency's month, with the clock moved to each moment (weeks ago, so that staff
    tokens stay valid): (agency id, first local day P of a period P..P+2, references).

    - A: 2 adults, confirmed at P 00:30 local (still the previous day in UTC): in.
    - B: adult + child, confirmed at P+1 12:00: in.
    - C: 1 adult, confirmed at P+2 23:30 (next day in UTC), cancelled with a full refund at
      P+5: in, refunded.
    - H: 3 adults held at P+1, never confirmed: absent.
    - E: 1 child confirmed at P+3 00:30 (P+2 in UTC): out.
    - F: 1 adult confirmed at P-1 23:30 (P-1 in UTC too): out.
    Settlements: 20000 received on P+1 (in), 5000 on P+10 (out, but lowers the credit used).
    The departure leaves at 07:00 local (the previous day in UTC)."""
    route, departure = await bus_line(client, operator, departs_at=in_days(40, hour=7))
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=100_000
    )
    start = (clock.now() - timedelta(days=20)).astimezone(SHANGHAI).date()
    plan = [
        ("st-F", ["adult"], local(start - timedelta(days=1), 23, 30), True, "BJT-F"),
        ("st-A", ["adult", "adult"], local(start, 0, 30), True, "BJT-A"),
        ("st-H", ["adult", "adult", "adult"], local(start + timedelta(days=1), 9), False, "BJT-H"),
        ("st-B", ["adult", "child"], local(start + timedelta(days=1), 12), True, "BJT-B"),
        ("st-C", ["adult"], local(start + timedelta(days=2), 23, 30), True, "BJT-C"),
        ("st-E", ["child"], local(start + timedelta(days=3), 0, 30), True, "BJT-E"),
    ]
    references = {}
    for uuid, units, at, confirmed, reseller in plan:
        with clock.frozen(at):
            held = await hold(
                client, headers, route, departure, uuid, units, resellerReference=reseller
            )
            references[uuid] = held["supplierReference"]
            if confirmed:
                await confirm(client, headers, uuid)
    with clock.frozen(local(start + timedelta(days=5), 12)):
        ok(await client.post("/octo/bookings/st-C/cancel", json={}, headers=headers))
    await settle(client, operator, agency_id, 20_000, start + timedelta(days=1), "WIRE-1")
    await settle(client, operator, agency_id, 5_000, start + timedelta(days=10), "WIRE-2")
    references["departs_on"] = (
        datetime.fromisoformat(departure["departs_at"]).astimezone(SHANGHAI).date().isoformat()
    )
    return agency_id, start, references


async def test_statement_of_a_mixed_period_adds_up(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency_id, start, refs = await mixed_period(client, operator)
    end = start + timedelta(days=2)
    body = ok(
        await client.get(
            f"{AGENCIES}/{agency_id}/statement",
            params={"start": start.isoformat(), "end": end.isoformat()},
            headers=operator.headers,
        )
    )
    assert (body["agency_id"], body["agency_name"], body["currency"]) == (
        agency_id, "Beijing Tours", "CNY",
    )  # fmt: skip
    assert (body["period_start"], body["period_end"]) == (start.isoformat(), end.isoformat())
    lines = [
        (
            line["reference"], line["partner_uuid"], line["reseller_reference"], line["status"],
            line["seats"], line["gross"], line["commission"], line["net"], line["refunded"],
            line["net_owed"],
        )
        for line in body["lines"]
    ]  # fmt: skip
    # In order of confirmation; gross - commission = net, net - refunded = net owed.
    assert lines == [
        (refs["st-A"], "st-A", "BJT-A", "confirmed", 2, 24690, 3888, 20802, 0, 20802),
        (refs["st-B"], "st-B", "BJT-B", "confirmed", 2, 19134, 3013, 16121, 0, 16121),
        (refs["st-C"], "st-C", "BJT-C", "cancelled", 1, 12345, 1944, 10401, 10401, 0),
    ]
    by_uuid = {line["partner_uuid"]: line for line in body["lines"]}
    assert parse(by_uuid["st-A"]["confirmed_at"]) == local(start, 0, 30)
    assert parse(by_uuid["st-C"]["confirmed_at"]) == local(start + timedelta(days=2), 23, 30)
    assert parse(by_uuid["st-C"]["cancelled_at"]) == local(start + timedelta(days=5), 12)
    assert by_uuid["st-A"]["cancelled_at"] is None

    totals = body["totals"]
    assert (totals["bookings"], totals["seats"]) == (3, 5)
    assert {name: amounts(totals[name]) for name in
            ("gross", "commission", "net", "refunded", "net_owed", "settled")} == {
        "gross": (56169, "CNY"),  # 24690 + 19134 + 12345
        "commission": (8845, "CNY"),  # 3888 + 3013 + 1944
        "net": (47324, "CNY"),  # 56169 - 8845
        "refunded": (10401, "CNY"),
        "net_owed": (36923, "CNY"),  # 47324 - 10401
        "settled": (20000, "CNY"),  # WIRE-2 is received after the period
    }  # fmt: skip
    for name in ("gross", "commission", "net", "refunded", "net_owed"):
        assert totals[name]["amount"] == sum(line[name] for line in body["lines"])

    # Credit now: on account A + B + C + E + F = 20802 + 16121 + 10401 + 5720 + 10401 = 63445,
    # less C's refund (10401) and both settlements (25000).
    assert {name: amounts(body["credit"][name]) for name in ("limit", "used", "available")} == {
        "limit": (100_000, "CNY"),
        "used": (28044, "CNY"),
        "available": (71956, "CNY"),
    }
    assert await credit(client, operator, agency_id) == {
        "limit": 100_000, "used": 28044, "available": 71956,
    }  # fmt: skip

    # A one-day period at each edge: P alone has A (00:30 local), P+3 alone has E.
    async def uuids(first: date, last: date) -> list[str]:
        got = ok(
            await client.get(
                f"{AGENCIES}/{agency_id}/statement",
                params={"start": first.isoformat(), "end": last.isoformat()},
                headers=operator.headers,
            )
        )
        return [line["partner_uuid"] for line in got["lines"]]

    assert await uuids(start, start) == ["st-A"]
    assert await uuids(start - timedelta(days=1), start - timedelta(days=1)) == ["st-F"]
    assert await uuids(start + timedelta(days=3), start + timedelta(days=3)) == ["st-E"]
    assert await uuids(start - timedelta(days=1), start + timedelta(days=3)) == [
        "st-F", "st-A", "st-B", "st-C", "st-E",
    ]  # fmt: skip


async def test_statement_period_is_checked_and_the_agency_must_be_yours(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    agency_id, _headers = await agency(client, operator, credit_limit=1000)
    url = f"{AGENCIES}/{agency_id}/statement"

    async def get(start: str, end: str, account: Account = operator) -> httpx.Response:
        return await client.get(url, params={"start": start, "end": end}, headers=account.headers)

    body = problem(await get("2025-03-10", "2025-03-09"), 400)
    assert [(e["field"], e["source"]) for e in body["errors"]] == [("end", "query")]
    # 2024 is a leap year: 2024-01-01..2024-12-31 is 366 days, the most a statement covers.
    empty = ok(await get("2024-01-01", "2024-12-31"))
    assert (empty["lines"], empty["totals"]["bookings"], empty["totals"]["net"]["amount"]) == (
        [], 0, 0,
    )  # fmt: skip
    body = problem(await get("2024-01-01", "2025-01-01"), 400)
    assert fields(body) == ["end"]
    assert ok(await get("2025-03-10", "2025-03-10"))["lines"] == []
    other = await make_operator("yy-rail")
    problem(await get("2025-03-01", "2025-03-31", other), 404, "agency_not_found")
    response = await client.get(
        url, params={"start": "2025-03-01", "end": "2025-03-31", "format": "csv"},
        headers=other.headers,
    )  # fmt: skip
    problem(response, 404, "agency_not_found")


def read_csv(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "charset=utf-8" in response.headers["content-type"]
    assert response.content.startswith(b"\xef\xbb\xbf"), response.content[:10]
    text = response.content[3:].decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


async def test_statement_csv_in_major_units_with_translated_headers(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency_id, start, refs = await mixed_period(client, operator)
    end = start + timedelta(days=2)
    url = f"{AGENCIES}/{agency_id}/statement"
    params = {"start": start.isoformat(), "end": end.isoformat(), "format": "csv"}

    english = await client.get(url, params={**params, "lang": "en"}, headers=operator.headers)
    rows = read_csv(english)
    disposition = english.headers["content-disposition"]
    assert disposition == (
        f'attachment; filename="statement-{start.isoformat()}-{end.isoformat()}.csv"'
    )
    assert rows[0] == [
        "Booking", "Agency reference", "Status", "Departure", "Seats", "Confirmed", "Gross",
        "Commission", "Net", "Refunded", "Net owed", "Currency",
    ]  # fmt: skip
    # Money in major units, gross - commission = net, net - refunded = net owed.
    assert [[*row[:3], row[4], *row[6:]] for row in rows[1:]] == [
        [refs["st-A"], "BJT-A", "confirmed", "2",
         "246.90", "38.88", "208.02", "0.00", "208.02", "CNY"],
        [refs["st-B"], "BJT-B", "confirmed", "2",
         "191.34", "30.13", "161.21", "0.00", "161.21", "CNY"],
        [refs["st-C"], "BJT-C", "cancelled", "1",
         "123.45", "19.44", "104.01", "104.01", "0.00", "CNY"],
        ["Total", "", "", "5", "561.69", "88.45", "473.24", "104.01", "369.23", "CNY"],
    ]  # fmt: skip
    chinese = read_csv(await client.get(url, params=params, headers=operator.headers))
    assert chinese[0] == [
        "订单号", "旅行社编号", "状态", "班次", "座位数", "确认时间", "零售总额", "佣金",
        "净价", "已退款", "应付净额", "币种",
    ]  # fmt: skip
    assert [row[2] for row in chinese[1:-1]] == ["已确认", "已确认", "已取消"]
    assert chinese[-1][0] == "合计"
    # The money is the same in either language.
    assert [row[6:] for row in chinese[1:]] == [row[6:] for row in rows[1:]]

    # Dates are the operator's local dates, as the period is: A was confirmed at 00:30 on
    # the period's first day, C at 23:30 on its last, and the bus leaves at 07:00 local.
    departs_on = refs["departs_on"]
    assert [(row[3], row[5]) for row in rows[1:]] == [
        (departs_on, start.isoformat()),
        (departs_on, (start + timedelta(days=1)).isoformat()),
        (departs_on, (start + timedelta(days=2)).isoformat()),
        ("", ""),
    ]


# ---------------------------------------------------------------- prepaying agencies


@pytest.fixture
def stripe_api(stripe_server: str) -> stripe.StripeClient:
    """localstripe as the agency's card form (Stripe.js) and the test see it."""
    return stripe.StripeClient(
        "sk_test_tourline", base_addresses={"api": stripe_server}, http_client=stripe.HTTPXClient()
    )


async def stripe_event(client: httpx.AsyncClient, event_type: str, obj: dict[str, Any]) -> str:
    """POST a Stripe event signed with the webhook secret, as Stripe does; the outcome."""
    payload = json.dumps(
        {
            "id": f"evt_{uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": event_type,
            "data": {"object": obj},
        }
    )
    timestamp = int(time.time())
    digest = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{payload}", "whsec_test_tourline"
    )
    response = await client.post(
        WEBHOOK,
        content=payload.encode(),
        headers={"Content-Type": "application/json",
                 "Stripe-Signature": f"t={timestamp},v1={digest}"},
    )  # fmt: skip
    body = ok(response)
    assert body["received"] is True
    return str(body["outcome"])


async def test_prepaying_agency_pays_the_net_by_card_and_stripe_confirms(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, payment_terms="prepay"
    )
    held = await hold(client, headers, route, departure, "pp-1", ["adult", "child"])
    assert held["pricing"] == octo_pricing(ADULT + CHILD, ADULT_NET + CHILD_NET)

    # Confirming on account is not for this agency: nothing is charged, the hold stays.
    octo_error(
        await client.post("/octo/bookings/pp-1/confirm", json=CONTACT, headers=headers),
        "UNPROCESSABLE_ENTITY",
    )
    octo_error(await client.post("/octo/bookings/pp-1/payment", json={}, headers=headers))
    assert await payments_of("pp-1") == []
    assert ok(await client.get("/octo/bookings/pp-1", headers=headers))["status"] == "ON_HOLD"

    travellers = {"unitItems": [{"contact": {"fullName": "Han Meimei"}}, {}]}
    started = ok(
        await client.post(
            "/octo/bookings/pp-1/payment", json={**CONTACT, **travellers}, headers=headers
        )
    )
    payment = started["payment"]
    assert {k: payment[k] for k in ("provider", "status", "amount", "currency")} == {
        "provider": "stripe",
        "status": "requires_payment",
        "amount": 16121,  # 10401 + 5720: the net, not the retail 19134
        "currency": "CNY",
    }
    assert payment["publishableKey"] == "pk_test_tourline"
    assert started["booking"]["status"] == "ON_HOLD"
    assert started["booking"]["contact"]["emailAddress"] == "li@example.cn"
    assert [item["contact"]["fullName"] for item in started["booking"]["unitItems"]] == [
        "Han Meimei",
        "Li Lei",
    ]
    intent_id = payment["clientSecret"].split("_secret")[0]
    intent = await stripe_api.v1.payment_intents.retrieve_async(intent_id)
    assert (intent.amount, intent.currency) == (16121, "cny")
    assert await payments_of("pp-1") == [("stripe", "requires_payment", 16121)]
    # Asking again reuses the same intent.
    again = ok(await client.post("/octo/bookings/pp-1/payment", json=CONTACT, headers=headers))
    assert again["payment"]["clientSecret"] == payment["clientSecret"]

    # The agency's card form pays; Stripe's webhook confirms the booking.
    await stripe_api.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_visa"}
    )
    paid = await stripe_api.v1.payment_intents.confirm_async(intent_id)
    assert paid.status == "succeeded"
    assert ok(await client.get("/octo/bookings/pp-1", headers=headers))["status"] == "ON_HOLD"
    assert await stripe_event(client, "payment_intent.succeeded", {"id": intent_id}) == "confirmed"

    confirmed = ok(await client.get("/octo/bookings/pp-1", headers=headers))
    assert confirmed["status"] == "CONFIRMED"
    assert confirmed["utcConfirmedAt"] is not None
    assert confirmed["pricing"] == octo_pricing(ADULT + CHILD, 16121)
    assert await payments_of("pp-1") == [("stripe", "succeeded", 16121)]
    row = await booking_row("pp-1")
    assert (row["total_amount"], row["retail_amount"], row["balance_due"]) == (16121, 19134, 0)
    # Paid by card: nothing is owed on account.
    assert (await credit(client, operator, agency_id))["used"] == 0
    # Confirming now only answers the confirmed booking; no on-account charge appears.
    assert (
        ok(await client.post("/octo/bookings/pp-1/confirm", json=CONTACT, headers=headers))[
            "status"
        ]
        == "CONFIRMED"
    )
    assert await payments_of("pp-1") == [("stripe", "succeeded", 16121)]
    today = clock.now().astimezone(SHANGHAI).date()
    statement = ok(
        await client.get(
            f"{AGENCIES}/{agency_id}/statement",
            params={"start": (today - timedelta(days=1)).isoformat(),
                    "end": (today + timedelta(days=1)).isoformat()},
            headers=operator.headers,
        )
    )  # fmt: skip
    assert [(x["partner_uuid"], x["gross"], x["commission"], x["net"]) for x in
            statement["lines"]] == [("pp-1", 19134, 3013, 16121)]  # fmt: skip


async def test_an_agency_on_account_cannot_pay_by_card(
    client: httpx.AsyncClient, operator: Account, stripe_server: str
) -> None:
    route, departure = await bus_line(client, operator)
    _agency_id, headers = await agency(client, operator, credit_limit=100_000)
    await hold(client, headers, route, departure, "oa-1", ["adult"])
    octo_error(
        await client.post("/octo/bookings/oa-1/payment", json=CONTACT, headers=headers),
        "UNPROCESSABLE_ENTITY",
    )
    assert await payments_of("oa-1") == []
    await confirm(client, headers, "oa-1")
    assert await payments_of("oa-1") == [("on_account", "succeeded", ADULT)]


# ---------------------------------------------------------------- the operator's view


async def test_operator_lists_every_agency_booking_with_its_money(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route, first_departure = await bus_line(client, operator)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    second_departure = await create_departure(client, operator.headers, route, vehicle, in_days(31))
    alpha_id, alpha = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=1_000_000
    )
    beta_id, beta = await agency(client, operator, name="Xian Trips", credit_limit=1_000_000)
    ok(
        await client.put(
            f"{AGENCIES}/{beta_id}/net-rates",
            json={"rates": [{"route_id": route["id"], "seat_class": "standard",
                             "passenger_type": "adult", "amount": 8000}]},
            headers=operator.headers,
        )
    )  # fmt: skip
    started = clock.now()
    with clock.frozen(started - timedelta(minutes=3)):
        a1 = await hold(client, alpha, route, first_departure, "a-1", ["adult", "adult"])
        await confirm(client, alpha, "a-1")
    with clock.frozen(started - timedelta(minutes=2)):
        a2 = await hold(client, alpha, route, second_departure, "a-2", ["child"])
        await confirm(client, alpha, "a-2")
        ok(await client.post("/octo/bookings/a-2/cancel", json={}, headers=alpha))
    with clock.frozen(started - timedelta(minutes=1)):
        b1 = await hold(client, beta, route, first_departure, "b-1", ["adult", "child"])
    # A tourist's own booking on the same departure is not an agency's.
    public = {
        "departure_id": first_departure["id"],
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
    }
    ok(await client.post("/api/v1/bookings", json=public), 201)
    # Another operator's agency sells its own line.
    other = await make_operator("yy-rail")
    other_route, other_departure = await bus_line(client, other, slug="other-line")
    other_agency_id, other_agency = await agency(client, other, credit_limit=1_000_000)
    o1 = await hold(client, other_agency, other_route, other_departure, "o-1", ["adult"])

    async def listing(account: Account = operator, **query: Any) -> dict[str, Any]:
        body: dict[str, Any] = ok(
            await client.get(AGENCY_BOOKINGS, params=query, headers=account.headers)
        )
        return body

    def summary(body: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (item["partner_uuid"], item["agency_name"], item["status"], len(item["seats"]),
             item["retail"]["amount"], item["net"]["amount"], item["refunded"]["amount"])
            for item in body["items"]
        ]  # fmt: skip

    everything = await listing()
    assert everything["total"] == 3
    # Newest first.
    assert summary(everything) == [
        ("b-1", "Xian Trips", "on_hold", 2, ADULT + CHILD, 8000 + CHILD, 0),
        ("a-2", "Beijing Tours", "cancelled", 1, CHILD, CHILD_NET, CHILD_NET),
        ("a-1", "Beijing Tours", "confirmed", 2, 2 * ADULT, 2 * ADULT_NET, 0),
    ]
    items = {item["partner_uuid"]: item for item in everything["items"]}
    assert items["a-1"]["reference"] == a1["supplierReference"]
    assert items["a-2"]["reference"] == a2["supplierReference"]
    assert items["b-1"]["reference"] == b1["supplierReference"]
    assert items["a-1"]["agency_id"] == alpha_id
    assert items["b-1"]["agency_id"] == beta_id
    assert items["a-1"]["departure_id"] == first_departure["id"]
    assert items["a-2"]["departure_id"] == second_departure["id"]
    assert items["a-1"]["contact_name"] == "Li Lei"
    assert {item["retail"]["currency"] for item in everything["items"]} == {"CNY"}

    assert [i[0] for i in summary(await listing(agency_id=alpha_id))] == ["a-2", "a-1"]
    assert [i[0] for i in summary(await listing(agency_id=beta_id))] == ["b-1"]
    assert [i[0] for i in summary(await listing(departure_id=first_departure["id"]))] == [
        "b-1", "a-1",
    ]  # fmt: skip
    assert [i[0] for i in summary(await listing(status="cancelled"))] == ["a-2"]
    assert [
        i[0]
        for i in summary(
            await listing(
                agency_id=alpha_id, departure_id=first_departure["id"], status="confirmed"
            )
        )
    ] == ["a-1"]
    paged = await listing(page_size=2, page=2)
    assert (paged["total"], paged["page"], paged["page_size"]) == (3, 2, 2)
    assert [i[0] for i in summary(paged)] == ["a-1"]

    # The other operator sees only its own agency's booking, and none of these.
    theirs = await listing(other)
    assert [(i["partner_uuid"], i["reference"]) for i in theirs["items"]] == [
        ("o-1", o1["supplierReference"])
    ]
    assert theirs["total"] == 1
    assert (await listing(other, departure_id=first_departure["id"]))["total"] == 0
    response = await client.get(
        AGENCY_BOOKINGS, params={"agency_id": alpha_id}, headers=other.headers
    )
    problem(response, 404, "agency_not_found")
    response = await client.get(
        AGENCY_BOOKINGS, params={"agency_id": other_agency_id}, headers=operator.headers
    )
    problem(response, 404, "agency_not_found")
