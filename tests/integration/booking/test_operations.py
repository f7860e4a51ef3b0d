"""What operators do with bookings: the passenger manifest (JSON and CSV), check-in at
boarding, the sales overview, cancelling a departure with refunds, the guards that protect
booked seats and departures, and isolation between operators."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingEvent, BookingLine, BookingStatus
from app.catalogue.tables import DepartureStop
from app.core import clock
from app.core.database import write_transaction
from app.core.tables import OutboxMessage
from tests.conftest import Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
    set_route_fares,
)

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
ADULT = 6800
CHILD = 3800
EN_HEADER = [
    "Seat",
    "Class",
    "Passenger",
    "Passenger type",
    "Booking",
    "Status",
    "Pick-up stop",
    "Pick-up time",
    "Contact",
    "Phone",
    "Checked in",
]
STOPS = [
    ("pickup", {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"}, -60),
    ("pickup", {"zh_Hans": "新郑", "en": "Xinzheng"}, -30),
    ("dropoff", {"zh_Hans": "樱桃园", "en": "Cherry Orchard"}, 120),
]


# ---------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def bus_departure(
    client: httpx.AsyncClient, operator: Account, days: float = 10, slug: str = "picking-line"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A published departure of the 45-seat bus with three stops; returns (departure, vehicle)."""
    route = await create_route(client, operator.headers, slug=slug)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    departs_at = in_days(days)
    payload = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": [
            {"kind": kind, "name": name, "at": (departs_at + timedelta(minutes=m)).isoformat()}
            for kind, name, m in STOPS
        ],
    }
    response = await client.post(DEPARTURES, json=payload, headers=operator.headers)
    assert response.status_code == 201, response.text
    departure = response.json()
    published = await client.post(
        f"{DEPARTURES}/{departure['id']}/publish", headers=operator.headers
    )
    return ok(published), vehicle


async def stop_ids(client: httpx.AsyncClient, departure_id: str) -> list[str]:
    """The stop ids as a tourist sees them in the public departure detail."""
    stops = ok(await client.get(f"/api/v1/departures/{departure_id}"))["stops"]
    ids = [stop["id"] for stop in stops]
    stored = (
        await DepartureStop.select(DepartureStop.id)
        .where(DepartureStop.departure == departure_id)
        .order_by(DepartureStop.stop_order)
    )
    assert ids == [str(row["id"]) for row in stored]
    return ids


async def book(
    client: httpx.AsyncClient,
    departure_id: str,
    seats: list[str],
    *,
    name: str = "Zhang Wei",
    phone: str = "+86 138 0000 0000",
    passengers: list[str] | None = None,
    kinds: list[str] | None = None,
    pickup: str | None = None,
) -> dict[str, Any]:
    """Hold explicit seats (then set the pick-up stop like a tourist would)."""
    kinds = kinds or ["adult"] * len(seats)
    email = name.lower().replace(" ", ".").replace(",", "") + "@example.com"
    body: dict[str, Any] = {
        "departure_id": departure_id,
        "seats": [{"label": s, "passenger_type": k} for s, k in zip(seats, kinds, strict=True)],
        "contact": {"name": name, "email": email, "phone": phone, "locale": "en"},
    }
    if passengers:
        body["passengers"] = [{"name": passenger} for passenger in passengers]
    response = await client.post(BOOKINGS, json=body)
    assert response.status_code == 201, response.text
    created = dict(response.json())
    if pickup is not None:
        response = await client.patch(
            f"{BOOKINGS}/{created['booking']['reference']}",
            json={"pickup_stop_id": pickup},
            headers={"X-Booking-Token": created["access_token"]},
        )
        assert response.status_code == 200, response.text
        assert response.json()["pickup_stop"]["id"] == pickup
    return created


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


async def move(created: dict[str, Any], target: BookingStatus) -> None:
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == ref(created)).first().run()
        assert row is not None
        reason = "paid" if target == BookingStatus.confirmed else "test"
        await transition(BookingRow.from_row(row), target, actor="test", reason=reason)


async def guest_cancel(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        f"{BOOKINGS}/{ref(created)}/cancel", headers={"X-Booking-Token": created["access_token"]}
    )
    return dict(ok(response))


async def booking_row(created: dict[str, Any]) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == ref(created)).first().run()
    assert row is not None
    return dict(row)


async def manifest_world(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """Live, cancelled and expired bookings with pick-up stops on one bus departure."""
    departure, vehicle = await bus_departure(client, operator)
    stop = await stop_ids(client, departure["id"])
    pair = await book(
        client,
        departure["id"],
        ["10A", "10B"],
        name="Wang Fang",
        phone="+86 138 0000 0001",
        passengers=['Wang, Fang "Fifi"', "Wang Lei"],
        pickup=stop[0],
    )
    held = await book(
        client, departure["id"], ["2A"], name="Li Na", phone="+86 139 0000 0002", pickup=stop[1]
    )
    solo = await book(client, departure["id"], ["1C"], name="Chen Jie", pickup=stop[1])
    walk_in = await book(client, departure["id"], ["5A"], name="Sun Li")
    gone = await book(client, departure["id"], ["3A"], name="Gone Guest", pickup=stop[0])
    late = await book(client, departure["id"], ["4A"], name="Late Guest", pickup=stop[0])
    for created in (pair, solo, walk_in):
        await move(created, BookingStatus.confirmed)
    await guest_cancel(client, gone)
    await move(late, BookingStatus.expired)
    return {
        "departure": departure,
        "vehicle": vehicle,
        "stops": stop,
        "pair": pair,
        "held": held,
        "solo": solo,
        "walk_in": walk_in,
        "gone": gone,
        "late": late,
    }


async def get_manifest(
    client: httpx.AsyncClient, account: Account, departure_id: str, **params: str
) -> httpx.Response:
    language = params.pop("lang", "en")
    return await client.get(
        f"{DEPARTURES}/{departure_id}/manifest",
        params=params,
        headers={**account.headers, "Accept-Language": language},
    )


async def outbox(kind: str) -> list[dict[str, Any]]:
    return list(
        await OutboxMessage.select().where(OutboxMessage.kind == kind).output(load_json=True).run()
    )


# ---------------------------------------------------------------- manifest


async def test_manifest_lists_passengers_of_live_bookings_in_seat_order(
    client: httpx.AsyncClient, operator: Account
) -> None:
    world = await manifest_world(client, operator)
    departure = world["departure"]
    body = ok(await get_manifest(client, operator, departure["id"]))
    assert body["departure_id"] == departure["id"]
    assert body["route_slug"] == "picking-line"
    assert body["passengers"] == 5
    assert body["checked_in"] == 0
    lines = body["lines"]
    # Seat order is the bus's order (row, then letter), not the labels' alphabetical order.
    assert [line["seat_label"] for line in lines] == ["1C", "2A", "5A", "10A", "10B"]
    by_seat = {line["seat_label"]: line for line in lines}
    cancelled_or_expired = {ref(world["gone"]), ref(world["late"])}
    assert not cancelled_or_expired & {line["reference"] for line in lines}

    first = by_seat["10A"]
    assert first["reference"] == ref(world["pair"])
    assert first["status"] == "confirmed"
    assert first["seat_class"] == "standard"
    assert first["car"] is None
    assert first["compartment"] is None
    assert first["passenger_type"] == "adult"
    assert first["passenger_name"] == 'Wang, Fang "Fifi"'
    assert by_seat["10B"]["passenger_name"] == "Wang Lei"
    assert first["pickup_stop"] == "Zhengzhou East Station"
    assert parse(first["pickup_at"]) == parse(departure["departs_at"]) - timedelta(minutes=60)
    assert first["contact_name"] == "Wang Fang"
    assert first["contact_phone"] == "+86 138 0000 0001"
    assert first["checked_in_at"] is None

    assert by_seat["2A"]["status"] == "on_hold"
    assert by_seat["2A"]["reference"] == ref(world["held"])
    assert by_seat["2A"]["pickup_stop"] == "Xinzheng"
    assert by_seat["2A"]["contact_phone"] == "+86 139 0000 0002"
    assert by_seat["5A"]["pickup_stop"] is None
    assert by_seat["5A"]["pickup_at"] is None

    chinese = ok(await get_manifest(client, operator, departure["id"], lang="zh-CN"))
    assert {line["pickup_stop"] for line in chinese["lines"]} == {"郑州东站", "新郑", None}


async def test_manifest_sorted_by_pickup_stop(client: httpx.AsyncClient, operator: Account) -> None:
    world = await manifest_world(client, operator)
    body = ok(await get_manifest(client, operator, world["departure"]["id"], sort="pickup"))
    lines = body["lines"]
    assert len(lines) == 5
    picked_up = [line for line in lines if line["pickup_stop"] is not None]
    assert [line["pickup_stop"] for line in picked_up] == [
        "Zhengzhou East Station",
        "Zhengzhou East Station",
        "Xinzheng",
        "Xinzheng",
    ]
    assert [line["seat_label"] for line in picked_up[:2]] == ["10A", "10B"]
    assert {line["seat_label"] for line in picked_up[2:]} == {"1C", "2A"}
    times = [parse(line["pickup_at"]) for line in picked_up]
    assert times == sorted(times)
    # The seat order is a different one.
    by_seat = ok(await get_manifest(client, operator, world["departure"]["id"], sort="seat"))
    assert [line["seat_label"] for line in by_seat["lines"]] != [
        line["seat_label"] for line in lines
    ]
    bad = await get_manifest(client, operator, world["departure"]["id"], sort="name")
    assert bad.status_code == 400, bad.text


async def test_train_manifest_follows_cars_and_berths(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers, slug="flower-train", kind="train")
    vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    departure = await create_departure(client, operator.headers, route, vehicle)
    # Booked in another order than the train's.
    await book(client, departure["id"], ["02-03U"], name="Hard Sleeper")
    await book(client, departure["id"], ["01-06U", "01-01L"], name="Soft Sleepers")
    lines = ok(await get_manifest(client, operator, departure["id"]))["lines"]
    assert [
        (line["seat_label"], line["seat_class"], line["car"], line["compartment"]) for line in lines
    ] == [
        ("01-01L", "soft_sleeper", 1, 1),
        ("01-06U", "soft_sleeper", 1, 2),
        ("02-03U", "hard_sleeper", 2, 1),
    ]


async def test_manifest_as_csv_with_translated_headers(
    client: httpx.AsyncClient, operator: Account
) -> None:
    world = await manifest_world(client, operator)
    departure_id = world["departure"]["id"]
    response = await get_manifest(client, operator, departure_id, format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f"manifest-{departure_id}.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == EN_HEADER
    assert len(rows) == 1 + 5
    assert all(len(row) == len(EN_HEADER) for row in rows)
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["Seat"] for r in records] == ["1C", "2A", "5A", "10A", "10B"]
    pair = records[3]
    assert pair["Passenger"] == 'Wang, Fang "Fifi"'
    assert pair["Booking"] == ref(world["pair"])
    assert pair["Status"] == "confirmed"
    assert pair["Pick-up stop"] == "Zhengzhou East Station"
    # A cell starting with + is a formula to a spreadsheet: quoted, it shows as the text it is.
    assert pair["Phone"] == "'+86 138 0000 0001"
    assert pair["Checked in"] == ""
    assert records[2]["Pick-up stop"] == ""

    chinese = await get_manifest(client, operator, departure_id, format="csv", lang="zh-CN")
    assert chinese.status_code == 200, chinese.text
    zh_rows = list(csv.reader(io.StringIO(chinese.content.decode("utf-8-sig"))))
    assert len(zh_rows) == len(rows)
    assert zh_rows[0] != EN_HEADER
    assert len(zh_rows[0]) == len(EN_HEADER)
    assert not set(zh_rows[0]) & set(EN_HEADER)
    assert zh_rows[4][6] == "郑州东站"
    # The data (but for names of stops) is the same in both languages.
    assert [row[:6] for row in zh_rows[1:]] == [row[:6] for row in rows[1:]]


# ---------------------------------------------------------------- check-in


async def test_check_in_all_passengers_then_by_seat(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    pair = await book(client, departure["id"], ["1A", "1B"], name="Pair Guest")
    trio = await book(client, departure["id"], ["2A", "2B", "2C"], name="Trio Guest")
    await move(pair, BookingStatus.confirmed)
    await move(trio, BookingStatus.confirmed)
    url = f"{DEPARTURES}/{departure['id']}/check-in"

    everyone = ok(await client.post(url, json={"reference": ref(pair)}, headers=operator.headers))
    assert everyone == {
        "reference": ref(pair),
        "checked_in": ["1A", "1B"],
        "already_checked_in": [],
    }

    # The reference as read out over a counter: lower case works too.
    one = ok(
        await client.post(
            url,
            json={"reference": ref(trio).lower(), "seat_labels": ["2B"]},
            headers=operator.headers,
        )
    )
    assert one == {"reference": ref(trio), "checked_in": ["2B"], "already_checked_in": []}
    manifest = ok(await get_manifest(client, operator, departure["id"]))
    assert manifest["checked_in"] == 3
    checked = {line["seat_label"] for line in manifest["lines"] if line["checked_in_at"]}
    assert checked == {"1A", "1B", "2B"}

    rest = ok(await client.post(url, json={"reference": ref(trio)}, headers=operator.headers))
    assert rest["checked_in"] == ["2A", "2C"]
    assert rest["already_checked_in"] == ["2B"]
    again = ok(await client.post(url, json={"reference": ref(trio)}, headers=operator.headers))
    assert again["checked_in"] == []
    assert again["already_checked_in"] == ["2A", "2B", "2C"]

    manifest = ok(await get_manifest(client, operator, departure["id"]))
    assert manifest["checked_in"] == manifest["passengers"] == 5
    rows = list(
        csv.reader(
            io.StringIO(
                (
                    await get_manifest(client, operator, departure["id"], format="csv")
                ).content.decode("utf-8-sig")
            )
        )
    )
    assert all(row[10] for row in rows[1:])
    # The guest sees it too, and the audit trail names the check-ins.
    mine = ok(
        await client.get(
            f"{BOOKINGS}/{ref(pair)}", headers={"X-Booking-Token": pair["access_token"]}
        )
    )
    assert all(line["checked_in_at"] for line in mine["lines"])
    events = await BookingEvent.select().where(BookingEvent.reason == "checked_in").run()
    assert len(events) == 3

    wrong_seat = await client.post(
        url, json={"reference": ref(trio), "seat_labels": ["1A"]}, headers=operator.headers
    )
    body = problem(wrong_seat, 400, "validation_error")
    assert body["errors"][0]["field"] == "seat_labels[0]"


async def test_check_in_needs_a_confirmed_booking_of_this_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    other, _ = await bus_departure(client, operator, days=12, slug="other-line")
    held = await book(client, departure["id"], ["1A"], name="Held Guest")
    gone = await book(client, departure["id"], ["1B"], name="Gone Guest")
    await guest_cancel(client, gone)
    elsewhere = await book(client, other["id"], ["1A"], name="Other Guest")
    await move(elsewhere, BookingStatus.confirmed)
    url = f"{DEPARTURES}/{departure['id']}/check-in"

    for created in (held, gone):
        response = await client.post(
            url, json={"reference": ref(created)}, headers=operator.headers
        )
        problem(response, 409, "booking_not_confirmed")
    for reference in ("ZZZZZZZZ", ref(elsewhere)):
        response = await client.post(url, json={"reference": reference}, headers=operator.headers)
        problem(response, 404, "booking_not_found")
    lines = await BookingLine.select(BookingLine.checked_in_at).run()
    assert all(line["checked_in_at"] is None for line in lines)


# ---------------------------------------------------------------- sales


async def test_sales_overview_counts_seats_and_revenue(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    adults = await book(client, departure["id"], ["1A", "1B"], name="Two Adults")
    family = await book(
        client, departure["id"], ["2A", "2B"], name="Family", kinds=["adult", "child"]
    )
    held = await book(client, departure["id"], ["3A"], name="Held Guest")
    refunded = await book(client, departure["id"], ["4A"], name="Refunded Guest")
    for created in (adults, family, refunded):
        await move(created, BookingStatus.confirmed)
    refund = (await guest_cancel(client, refunded))["refund"]["amount"]
    assert refund == ADULT  # ten days ahead: the default policy refunds everything
    url = f"{DEPARTURES}/{departure['id']}/sales"

    body = ok(await client.get(url, headers=operator.headers))
    assert body["departure_id"] == departure["id"]
    assert body["classes"] == [
        {"seat_class": "standard", "capacity": 45, "sold": 4, "held": 1, "allotted": 0, "free": 40}
    ]
    assert body["bookings_confirmed"] == 2
    assert body["bookings_on_hold"] == 1
    assert body["revenue"]["amount"] == 2 * ADULT + ADULT + CHILD
    assert body["revenue"]["currency"] == "CNY"
    assert body["refunds_owed"]["amount"] == refund

    # A hold whose time has run out no longer counts as held.
    expiry = parse(held["booking"]["expires_at"])
    with clock.frozen(expiry + timedelta(minutes=1)):
        later = ok(await client.get(url, headers=operator.headers))
    assert later["classes"][0] == {
        "seat_class": "standard",
        "capacity": 45,
        "sold": 4,
        "held": 0,
        "allotted": 0,
        "free": 41,
    }
    assert later["bookings_on_hold"] == 0
    assert later["revenue"] == body["revenue"]


# ---------------------------------------------------------------- cancelling a departure


async def test_cancelling_a_departure_refunds_every_live_booking_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    pair = await book(client, departure["id"], ["1A", "1B"], name="Paid Pair")
    single = await book(client, departure["id"], ["2A"], name="Paid Single")
    held = await book(client, departure["id"], ["3A"], name="Held Guest")
    gone = await book(client, departure["id"], ["4A"], name="Gone Guest")
    await move(pair, BookingStatus.confirmed)
    await move(single, BookingStatus.confirmed)
    await guest_cancel(client, gone)
    url = f"{DEPARTURES}/{departure['id']}/cancel"

    response = await client.post(url, headers={**operator.headers, "Idempotency-Key": "cancel-1"})
    first = ok(response)
    assert first["departure"]["status"] == "cancelled"
    assert first["bookings_cancelled"] == 3
    assert first["refunds_total"]["amount"] == 3 * ADULT

    for created in (pair, single):
        row = await booking_row(created)
        assert row["status"] == "cancelled"
        assert row["refund_amount"] == row["total_amount"] > 0
    held_row = await booking_row(held)
    assert held_row["status"] == "cancelled"
    assert held_row["refund_amount"] == 0  # nothing was paid for a hold
    assert await BookingLine.count().where(BookingLine.live == True).run() == 0  # noqa: E712

    cancelled = Counter(m["payload"]["reference"] for m in await outbox("booking.cancelled"))
    assert cancelled == Counter({ref(c): 1 for c in (pair, single, held, gone)})
    refunds = {m["payload"]["reference"]: m["payload"] for m in await outbox("refund.requested")}
    assert set(refunds) == {ref(pair), ref(single)}
    assert refunds[ref(pair)]["amount"] == 2 * ADULT
    assert refunds[ref(single)]["amount"] == ADULT

    mine = ok(
        await client.get(
            f"{BOOKINGS}/{ref(pair)}", headers={"X-Booking-Token": pair["access_token"]}
        )
    )
    assert mine["status"] == "cancelled"
    assert mine["refund"]["amount"] == 2 * ADULT
    sales = ok(await client.get(f"{DEPARTURES}/{departure['id']}/sales", headers=operator.headers))
    assert sales["classes"][0]["free"] == sales["classes"][0]["capacity"] == 45
    assert sales["classes"][0]["sold"] == sales["classes"][0]["held"] == 0

    messages = await OutboxMessage.count().run()
    events = await BookingEvent.count().run()
    replay = await client.post(url, headers={**operator.headers, "Idempotency-Key": "cancel-1"})
    assert ok(replay) == first
    assert replay.headers.get("Idempotent-Replayed") == "true"
    retry = ok(await client.post(url, headers=operator.headers))
    assert retry["departure"]["status"] == "cancelled"
    assert retry["bookings_cancelled"] == 0
    assert retry["refunds_total"]["amount"] == 0
    fresh_key = ok(
        await client.post(url, headers={**operator.headers, "Idempotency-Key": "cancel-2"})
    )
    assert fresh_key["bookings_cancelled"] == 0
    assert await OutboxMessage.count().run() == messages
    assert await BookingEvent.count().run() == events


# ---------------------------------------------------------------- guards


async def test_a_booked_seat_cannot_be_blocked(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, vehicle = await bus_departure(client, operator)
    held = await book(client, departure["id"], ["1A"], name="Held Guest")
    blocks_url = f"{DEPARTURES}/{departure['id']}/blocks"
    seat_url = f"/api/v1/operator/vehicles/{vehicle['id']}/seats/1A/block"

    response = await client.put(
        blocks_url,
        json={"blocks": [{"label": "2A", "reason": "guide"}, {"label": "1A", "reason": "guide"}]},
        headers=operator.headers,
    )
    body = problem(response, 409, "seat_booked")
    assert body["errors"][0]["field"] == "blocks[1].label"
    response = await client.put(seat_url, json={"reason": "crew"}, headers=operator.headers)
    problem(response, 409, "seat_booked")
    detail = ok(await client.get(f"{DEPARTURES}/{departure['id']}", headers=operator.headers))
    assert detail["blocked"] == []
    seats = ok(
        await client.get(f"/api/v1/operator/vehicles/{vehicle['id']}", headers=operator.headers)
    )
    assert next(s for s in seats["seats"] if s["label"] == "1A")["blocked_reason"] is None

    # A free seat can be blocked; once the booking is gone, so can its seat.
    response = await client.put(
        blocks_url, json={"blocks": [{"label": "2A", "reason": "guide"}]}, headers=operator.headers
    )
    assert [b["label"] for b in ok(response)["blocked"]] == ["2A"]
    await guest_cancel(client, held)
    response = await client.put(
        blocks_url,
        json={"blocks": [{"label": "1A", "reason": "medical"}, {"label": "2A", "reason": "guide"}]},
        headers=operator.headers,
    )
    assert [b["label"] for b in ok(response)["blocked"]] == ["1A", "2A"]
    response = await client.put(seat_url, json={"reason": "crew"}, headers=operator.headers)
    assert ok(response)["blocked_reason"] == "crew"


async def test_a_departure_with_bookings_cannot_be_unpublished(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    held = await book(client, departure["id"], ["1A"])
    url = f"{DEPARTURES}/{departure['id']}/unpublish"
    problem(await client.post(url, headers=operator.headers), 409, "departure_has_bookings")
    detail = ok(await client.get(f"{DEPARTURES}/{departure['id']}", headers=operator.headers))
    assert detail["status"] == "published"
    await guest_cancel(client, held)
    assert ok(await client.post(url, headers=operator.headers))["status"] == "draft"


async def test_another_operator_sees_none_of_it(
    client: httpx.AsyncClient, operator: Account, make_operator: Any
) -> None:
    departure, _vehicle = await bus_departure(client, operator)
    created = await book(client, departure["id"], ["1A"])
    await move(created, BookingStatus.confirmed)
    rival = await make_operator("yy-tours")
    base = f"{DEPARTURES}/{departure['id']}"

    problem(await client.get(f"{base}/manifest", headers=rival.headers), 404, "departure_not_found")
    csv_response = await client.get(
        f"{base}/manifest", params={"format": "csv"}, headers=rival.headers
    )
    problem(csv_response, 404, "departure_not_found")
    response = await client.post(
        f"{base}/check-in", json={"reference": ref(created)}, headers=rival.headers
    )
    problem(response, 404, "departure_not_found")
    problem(await client.get(f"{base}/sales", headers=rival.headers), 404, "departure_not_found")
    problem(await client.post(f"{base}/cancel", headers=rival.headers), 404, "departure_not_found")

    # Nothing changed for the owner.
    row = await booking_row(created)
    assert row["status"] == "confirmed"
    line = await BookingLine.select().where(BookingLine.booking == row["id"]).first().run()
    assert line is not None
    assert line["checked_in_at"] is None
    detail = ok(await client.get(base, headers=operator.headers))
    assert detail["status"] == "published"
    assert ok(await client.get(f"{base}/manifest", headers=operator.headers))["passengers"] == 1
