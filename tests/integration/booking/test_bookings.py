"""The booking engine as a tourist sees it: holding seats, reading and changing a booking
with its token, sales rules, expiry, cancellation tiers, rebooking and the audit trail,
through the HTTP API against a real database."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.accounts.tables import Operator
from app.booking.rows import BookingRow
from app.booking.services import expiry
from app.booking.services import hold as hold_service
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingEvent, BookingLine, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.tables import AttemptCounter
from tests.assertions import fields, ok, problem
from tests.conftest import STAFF_PASSWORD, Account
from tests.factories import (
    create_departure,
    create_route,
    create_vehicle,
    in_days,
)

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
# Crockford base32: digits and capitals without I, L, O and U.
REFERENCE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{8}$")
BUS_ADULT, BUS_CHILD = 6800, 3800
TRAIN_FARES = {
    ("soft_sleeper", "adult"): 6800,
    ("soft_sleeper", "senior"): 5000,
    ("soft_sleeper", "child"): 3800,
    ("hard_sleeper", "adult"): 7800,
    ("hard_sleeper", "child"): 4800,
}
CONTACT = {
    "name": "王小明",
    "email": "xiaoming@example.cn",
    "phone": "+86 138 0000 0000",
    "locale": "en",
}


# ---------------------------------------------------------------- helpers


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def relogin(client: httpx.AsyncClient, account: Account) -> Account:
    """The same staff member logged in again, with a token issued at the (frozen) now."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": STAFF_PASSWORD}
    )
    return Account(account.operator_id, account.slug, account.email, ok(response)["access_token"])


def count(seat_class: str = "standard", n: int = 1, kind: str = "adult") -> dict[str, Any]:
    return {"seat_class": seat_class, "passenger_type": kind, "count": n}


def booking_body(
    departure_id: str,
    counts: list[dict[str, Any]] | None = None,
    seats: list[str | dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"departure_id": departure_id, **extra}
    if counts is not None:
        body["counts"] = counts
    if seats is not None:
        body["seats"] = [{"label": s} if isinstance(s, str) else s for s in seats]
    return body


async def hold(
    client: httpx.AsyncClient,
    departure_id: str,
    counts: list[dict[str, Any]] | None = None,
    seats: list[str | dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """POST a booking that must succeed; the 201 body (access_token and booking)."""
    response = await client.post(BOOKINGS, json=booking_body(departure_id, counts, seats, **extra))
    created: dict[str, Any] = ok(response, 201)
    return created


def guest(created: dict[str, Any]) -> dict[str, str]:
    return {"X-Booking-Token": created["access_token"]}


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


def labels(booking: dict[str, Any]) -> list[str]:
    return [line["seat_label"] for line in booking["lines"]]


async def view(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await client.get(f"{BOOKINGS}/{ref(created)}", headers=guest(created))
    )
    return body


async def cancel(
    client: httpx.AsyncClient, created: dict[str, Any], reason: str | None = None
) -> httpx.Response:
    json = {"reason": reason} if reason is not None else None
    return await client.post(f"{BOOKINGS}/{ref(created)}/cancel", json=json, headers=guest(created))


async def rebook(
    client: httpx.AsyncClient, created: dict[str, Any], departure_id: str
) -> httpx.Response:
    return await client.post(
        f"{BOOKINGS}/{ref(created)}/rebook",
        json={"departure_id": departure_id},
        headers=guest(created),
    )


async def seats_left(client: httpx.AsyncClient, departure_id: str) -> dict[str, int]:
    """Seats left per class on the public departure page (checking the total adds up)."""
    body = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    classes = {c["seat_class"]: c["seats_left"] for c in body["classes"]}
    assert body["seats_left"] == sum(classes.values())
    return classes


async def seat_map(client: httpx.AsyncClient, departure_id: str) -> dict[str, dict[str, Any]]:
    body = ok(await client.get(f"/api/v1/departures/{departure_id}/seats"))
    return {seat["label"]: seat for seat in body["seats"]}


async def booking_row(reference: str) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == reference).first().run()
    assert row is not None
    return dict(row)


async def confirm(reference: str) -> None:
    """Confirm a hold the way the payments flow will: one transition in a write transaction."""
    async with write_transaction():
        row = await booking_row(reference)
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )


async def events(reference: str) -> list[tuple[str | None, str, str]]:
    row = await booking_row(reference)
    rows = (
        await BookingEvent.select()
        .where(BookingEvent.booking == row["id"])
        .order_by(BookingEvent.at)
        .run()
    )
    return [(e["from_status"], e["to_status"], e["reason"]) for e in rows]


async def stop_ids(client: httpx.AsyncClient, departure_id: str) -> list[str]:
    """The pick-up stops a tourist can choose, from the public departure page."""
    body = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    return [str(stop["id"]) for stop in body["stops"]]


async def put_route_fares(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    route_id: str,
    fares: dict[tuple[str, str], int],
) -> None:
    payload = [
        {"seat_class": seat_class, "passenger_type": kind, "amount": amount}
        for (seat_class, kind), amount in fares.items()
    ]
    response = await client.put(
        f"/api/v1/operator/routes/{route_id}/fares", json={"fares": payload}, headers=headers
    )
    assert response.status_code == 200, response.text


async def put_departure_fares(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    departure_id: str,
    fares: dict[tuple[str, str], int],
) -> None:
    payload = [
        {"seat_class": seat_class, "passenger_type": kind, "amount": amount}
        for (seat_class, kind), amount in fares.items()
    ]
    response = await client.put(
        f"{DEPARTURES}/{departure_id}/fares", json={"fares": payload}, headers=headers
    )
    assert response.status_code == 200, response.text


async def bus_line(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    slug: str = "picking-line",
    fares: dict[tuple[str, str], int] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published bus route with a 45-seat bus and one departure in 10 days."""
    route = await create_route(client, headers, slug=slug)
    vehicle = await create_vehicle(client, headers, "bus")
    await put_route_fares(
        client,
        headers,
        route["id"],
        fares or {("standard", "adult"): BUS_ADULT, ("standard", "child"): BUS_CHILD},
    )
    departure = await create_departure(client, headers, route, vehicle)
    return route, vehicle, departure


async def train_line(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published train route: 8 soft sleeper berths (2 compartments of 4) and 12 hard."""
    route = await create_route(client, headers, slug="flower-train", kind="train")
    vehicle = await create_vehicle(client, headers, "train")
    await put_route_fares(client, headers, route["id"], TRAIN_FARES)
    departure = await create_departure(client, headers, route, vehicle)
    return route, vehicle, departure


async def departure_with(
    client: httpx.AsyncClient,
    headers: dict[str, str],
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
    departure = ok(await client.post(DEPARTURES, json=payload, headers=headers), 201)
    return dict(ok(await client.post(f"{DEPARTURES}/{departure['id']}/publish", headers=headers)))


def b64_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


# ---------------------------------------------------------------- holding seats


async def test_hold_seats_by_counts(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    before = clock.now()
    response = await client.post(
        BOOKINGS,
        json=booking_body(departure["id"], [count(n=2), count(kind="child")], contact=CONTACT),
    )
    created = ok(response, 201)
    after = clock.now()
    booking = created["booking"]
    assert REFERENCE.match(booking["reference"]), booking["reference"]
    assert len(b64_bytes(created["access_token"])) * 8 >= 128
    assert booking["status"] == "on_hold"
    assert booking["departure_id"] == departure["id"]
    assert booking["route_slug"] == "picking-line"
    expires_at = parse(booking["expires_at"])
    assert before + timedelta(minutes=15) <= expires_at <= after + timedelta(minutes=15)
    assert [line["position"] for line in booking["lines"]] == [1, 2, 3]
    assert [line["passenger_type"] for line in booking["lines"]] == ["adult", "adult", "child"]
    assert [line["price"]["amount"] for line in booking["lines"]] == [
        BUS_ADULT,
        BUS_ADULT,
        BUS_CHILD,
    ]
    assert all(line["seat_label"] and line["seat_class"] == "standard" for line in booking["lines"])
    assert len(set(labels(booking))) == 3
    assert booking["total"]["amount"] == 2 * BUS_ADULT + BUS_CHILD
    assert booking["total"]["currency"] == "CNY"
    assert booking["refund"] is None
    assert booking["balance_due"] is None
    assert booking["contact"] == CONTACT
    assert await seats_left(client, departure["id"]) == {"standard": 42}
    taken = {
        label
        for label, seat in (await seat_map(client, departure["id"])).items()
        if not seat["free"]
    }
    assert taken == set(labels(booking))
    # The token is shown once and only its hash is stored.
    row = await booking_row(booking["reference"])
    assert created["access_token"] not in row["token_hash"]
    assert await view(client, created) == booking


async def test_every_booking_gets_its_own_reference_and_token(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    made = [await hold(client, departure["id"], [count()]) for _ in range(5)]
    references = {ref(created) for created in made}
    tokens = {created["access_token"] for created in made}
    assert len(references) == len(tokens) == 5
    assert all(REFERENCE.match(reference) for reference in references)
    assert await seats_left(client, departure["id"]) == {"standard": 40}


async def test_hold_lasts_the_operators_hold_minutes(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    await (
        Operator.update({Operator.hold_minutes: 30})
        .where(Operator.id == operator.operator_id)
        .run()
    )
    now = clock.now()
    with clock.frozen(now):
        created = await hold(client, departure["id"], [count()])
    assert parse(created["booking"]["expires_at"]) == now + timedelta(minutes=30)


async def test_train_party_shares_a_compartment_with_senior_and_child_below(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await train_line(client, operator.headers)
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 8}
    created = await hold(
        client,
        departure["id"],
        [
            count("soft_sleeper", 2),
            count("soft_sleeper", kind="senior"),
            count("soft_sleeper", kind="child"),
        ],
    )
    booking = created["booking"]
    seats = await seat_map(client, departure["id"])
    lines = booking["lines"]
    assert [line["passenger_type"] for line in lines] == ["adult", "adult", "senior", "child"]
    assert (
        len(
            {
                (seats[line["seat_label"]]["car"], seats[line["seat_label"]]["compartment"])
                for line in lines
            }
        )
        == 1
    )
    assert all(line["seat_class"] == "soft_sleeper" for line in lines)
    positions = {line["passenger_type"]: seats[line["seat_label"]]["position"] for line in lines}
    assert positions["senior"] == "lower"
    assert positions["child"] == "lower"
    adult_positions = [seats[line["seat_label"]]["position"] for line in lines[:2]]
    assert adult_positions == ["upper", "upper"]
    assert [line["price"]["amount"] for line in lines] == [6800, 6800, 5000, 3800]
    assert booking["total"]["amount"] == 6800 * 2 + 5000 + 3800
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 4}

    # The next party with a senior gets the other compartment, senior below.
    second = (
        await hold(
            client,
            departure["id"],
            [count("soft_sleeper"), count("soft_sleeper", kind="senior")],
        )
    )["booking"]
    first_compartment = seats[lines[0]["seat_label"]]["compartment"]
    second_seats = [seats[line["seat_label"]] for line in second["lines"]]
    assert {seat["compartment"] for seat in second_seats} == {3 - first_compartment}
    assert second_seats[1]["position"] == "lower"


async def test_bus_party_sits_in_one_row(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    seats = await seat_map(client, departure["id"])
    rows = []
    for size in (3, 2, 4, 4):
        booking = (await hold(client, departure["id"], [count(n=size)]))["booking"]
        booking_rows = {seats[label]["row"] for label in labels(booking)}
        assert len(booking_rows) == 1, labels(booking)
        assert len(labels(booking)) == size
        rows.append(booking_rows.pop())
    # Parties never share a row here: every later party fits a row of its own.
    assert len(set(rows)) == 4
    assert await seats_left(client, departure["id"]) == {"standard": 45 - 13}


async def test_explicit_seat_labels_get_exactly_those_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(
        client, departure["id"], seats=["7C", {"label": "7D", "passenger_type": "child"}]
    )
    booking = created["booking"]
    assert labels(booking) == ["7C", "7D"]
    assert [line["passenger_type"] for line in booking["lines"]] == ["adult", "child"]
    assert booking["total"]["amount"] == BUS_ADULT + BUS_CHILD
    seats = await seat_map(client, departure["id"])
    assert not seats["7C"]["free"]
    assert not seats["7D"]["free"]
    assert await seats_left(client, departure["id"]) == {"standard": 43}


async def test_taken_or_blocked_seat_is_unavailable_and_nothing_is_reserved(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, vehicle, departure = await bus_line(client, operator.headers)
    await hold(client, departure["id"], seats=["7C"])
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/blocks",
            json={"blocks": [{"label": "10A", "reason": "guide"}]},
            headers=operator.headers,
        )
    )
    ok(
        await client.put(
            f"/api/v1/operator/vehicles/{vehicle['id']}/seats/11E/block",
            json={"reason": "crew"},
            headers=operator.headers,
        )
    )
    assert await seats_left(client, departure["id"]) == {"standard": 42}

    for wanted, bad in ((["9A", "7C"], 1), (["10A"], 0), (["9B", "9C", "11E"], 2)):
        response = await client.post(BOOKINGS, json=booking_body(departure["id"], seats=wanted))
        body = problem(response, 409, "seat_unavailable")
        assert fields(body) == [f"seats[{bad}].label"]
        assert wanted[bad] in body["detail"]
    assert await seats_left(client, departure["id"]) == {"standard": 42}
    # The free seats of the refused requests were not kept.
    assert labels((await hold(client, departure["id"], seats=["9A", "9B", "9C"]))["booking"]) == [
        "9A",
        "9B",
        "9C",
    ]


async def test_not_enough_seats_then_sold_out_and_nothing_reserved(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await train_line(client, operator.headers)
    await hold(client, departure["id"], [count("soft_sleeper", 5)])
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 3}

    body = problem(
        await client.post(BOOKINGS, json=booking_body(departure["id"], [count("soft_sleeper", 4)])),
        409,
        "not_enough_seats",
    )
    assert "3" in body["detail"]
    # All or nothing: the hard sleepers of a party that does not fit are not taken either.
    problem(
        await client.post(
            BOOKINGS,
            json=booking_body(
                departure["id"], [count("hard_sleeper", 2), count("soft_sleeper", 4)]
            ),
        ),
        409,
        "not_enough_seats",
    )
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 3}

    await hold(client, departure["id"], [count("soft_sleeper", 3)])
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 0}
    problem(
        await client.post(BOOKINGS, json=booking_body(departure["id"], [count("soft_sleeper")])),
        409,
        "sold_out",
    )
    problem(
        await client.post(
            BOOKINGS,
            json=booking_body(departure["id"], [count("hard_sleeper"), count("soft_sleeper")]),
        ),
        409,
        "sold_out",
    )
    assert await seats_left(client, departure["id"]) == {"hard_sleeper": 12, "soft_sleeper": 0}


async def test_passenger_type_without_fare_is_no_fare(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    body = problem(
        await client.post(
            BOOKINGS, json=booking_body(departure["id"], [count(), count(kind="senior")])
        ),
        400,
        "no_fare",
    )
    assert fields(body) == ["counts"]
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(
                departure["id"], seats=["3A", {"label": "3B", "passenger_type": "senior"}]
            ),
        ),
        400,
        "no_fare",
    )
    assert fields(body) == ["seats[1].passenger_type"]
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    assert await Booking.count().run() == 0


async def test_counts_and_seats_are_exclusive(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    for body in (
        booking_body(departure["id"]),
        booking_body(departure["id"], [count()], seats=["1A"]),
    ):
        problem_body = problem(await client.post(BOOKINGS, json=body), 400, "validation_error")
        assert fields(problem_body) == ["counts"]
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(departure["id"], seats=["1A", "1A"]),
        ),
        400,
    )
    assert fields(body) == ["seats"]
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(
                departure["id"], [count()], passengers=[{"name": "A"}, {"name": "B"}]
            ),
        ),
        400,
    )
    assert fields(body) == ["passengers"]
    # At most 10 passengers per booking, however the counts are split.
    body = problem(
        await client.post(
            BOOKINGS, json=booking_body(departure["id"], [count(n=6), count(n=5, kind="child")])
        ),
        400,
    )
    assert fields(body) == ["counts"]
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    assert await Booking.count().run() == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"total": 1}, "total"),
        ({"status": "confirmed"}, "status"),
        ({"price": {"amount": 1, "currency": "CNY"}}, "price"),
        ({"operator_id": "00000000-0000-0000-0000-000000000000"}, "operator_id"),
    ],
)
async def test_unknown_fields_are_refused_by_name(
    client: httpx.AsyncClient, operator: Account, extra: dict[str, Any], field: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    body = problem(
        await client.post(BOOKINGS, json=booking_body(departure["id"], [count()], **extra)),
        400,
        "validation_error",
    )
    assert fields(body) == [field]
    assert await seats_left(client, departure["id"]) == {"standard": 45}


async def test_unknown_nested_price_is_refused_by_path(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(departure["id"], [{**count(), "price": 1}]),
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["counts[0].price"]
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(departure["id"], seats=[{"label": "1A", "price_amount": 1}]),
        ),
        400,
        "validation_error",
    )
    assert fields(body) == ["seats[0].price_amount"]
    assert await Booking.count().run() == 0


async def test_pickup_stop_must_belong_to_the_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, departure = await bus_line(client, operator.headers)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    [own_stop] = await stop_ids(client, departure["id"])
    [other_stop] = await stop_ids(client, other["id"])
    body = problem(
        await client.post(
            BOOKINGS,
            json=booking_body(departure["id"], [count()], pickup_stop_id=other_stop),
        ),
        400,
    )
    assert fields(body) == ["pickup_stop_id"]
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    booking = (await hold(client, departure["id"], [count()], pickup_stop_id=own_stop))["booking"]
    assert booking["pickup_stop"]["id"] == own_stop
    assert booking["pickup_stop"]["name"] == "郑州东站"
    assert parse(booking["pickup_stop"]["at"]) == parse(departure["departs_at"])


async def test_nobody_is_picked_up_at_a_drop_off(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, _departure = await bus_line(client, operator.headers)
    leaves = in_days(12)
    stops = [
        {"kind": "boarding", "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East"},
         "at": leaves.isoformat()},
        {"kind": "dropoff", "name": {"zh_Hans": "樱桃园", "en": "Cherry orchard"},
         "at": (leaves + timedelta(hours=2)).isoformat()},
    ]  # fmt: skip
    departure = await departure_with(client, operator.headers, route, vehicle, leaves, stops=stops)
    boarding, dropoff = await stop_ids(client, departure["id"])
    body = problem(
        await client.post(
            BOOKINGS, json=booking_body(departure["id"], [count()], pickup_stop_id=dropoff)
        ),
        400,
    )
    assert fields(body) == ["pickup_stop_id"]
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    booking = (await hold(client, departure["id"], [count()], pickup_stop_id=boarding))["booking"]
    assert booking["pickup_stop"]["id"] == boarding


async def test_new_booking_is_shown_as_it_is_read_back(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """The 201 body is built from what was written; a read of the booking shows the same."""
    _route, _vehicle, departure = await train_line(client, operator.headers)
    [stop] = await stop_ids(client, departure["id"])
    passengers = [{"name": "王奶奶", "id_document": "410102195001011234"}, {"name": "王小红"}]
    for language in ("en", "zh-CN"):
        response = await client.post(
            BOOKINGS,
            json=booking_body(
                departure["id"],
                [count("soft_sleeper", kind="senior"), count("soft_sleeper", kind="child")],
                pickup_stop_id=stop,
                contact=CONTACT,
                passengers=passengers,
            ),
            headers={"Accept-Language": language},
        )
        created = ok(response, 201)
        booking = created["booking"]
        assert booking["pickup_stop"]["id"] == stop
        assert [line["has_id_document"] for line in booking["lines"]] == [True, False]
        read = ok(
            await client.get(
                f"{BOOKINGS}/{ref(created)}",
                headers={**guest(created), "Accept-Language": language},
            )
        )
        assert read == booking


async def test_a_taken_reference_is_drawn_again(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    draws = iter(["AAAAAAAA", "AAAAAAAA", "AAAAAAAA", "BBBBBBBB"])
    monkeypatch.setattr(hold_service, "new_reference", lambda: next(draws))
    first = await hold(client, departure["id"], [count()])
    second = await hold(client, departure["id"], [count()])
    assert (ref(first), ref(second)) == ("AAAAAAAA", "BBBBBBBB")
    assert await view(client, second) == second["booking"]
    assert await seats_left(client, departure["id"]) == {"standard": 43}


# ---------------------------------------------------------------- sales rules


async def test_draft_and_unknown_departures_are_not_found(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, _departure = await bus_line(client, operator.headers)
    draft = await create_departure(
        client, operator.headers, route, vehicle, in_days(12), publish=False
    )
    problem(
        await client.post(BOOKINGS, json=booking_body(draft["id"], [count()])),
        404,
        "departure_not_found",
    )
    problem(
        await client.post(
            BOOKINGS, json=booking_body("00000000-0000-4000-8000-000000000000", [count()])
        ),
        404,
        "departure_not_found",
    )
    assert await Booking.count().run() == 0


async def test_cancelled_departure_cancels_its_holds_and_takes_no_booking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], [count(n=2)])
    body = ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    assert body["bookings_cancelled"] == 1
    problem(
        await client.post(BOOKINGS, json=booking_body(departure["id"], [count()])),
        409,
        "departure_cancelled",
    )
    booking = await view(client, created)
    assert booking["status"] == "cancelled"
    assert (await events(ref(created)))[-1] == ("on_hold", "cancelled", "departure_cancelled")


async def test_closed_departure_is_not_on_sale(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/close", headers=operator.headers))
    problem(
        await client.post(BOOKINGS, json=booking_body(departure["id"], [count()])),
        409,
        "sales_closed",
    )
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/reopen", headers=operator.headers))
    await hold(client, departure["id"], [count()])


async def test_sales_window_is_enforced_to_the_second(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await put_route_fares(client, operator.headers, route["id"], {("standard", "adult"): 5000})
    departs_at = in_days(10)
    opens = departs_at - timedelta(days=5)
    closes = departs_at - timedelta(hours=2)
    departure = await departure_with(
        client,
        operator.headers,
        route,
        vehicle,
        departs_at,
        sales_open_at=opens,
        sales_close_at=closes,
    )
    body = booking_body(departure["id"], [count()])

    with clock.frozen(opens - timedelta(seconds=1)):
        problem(await client.post(BOOKINGS, json=body), 409, "sales_not_open")
    with clock.frozen(opens):
        created = await hold(client, departure["id"], [count()])
        assert parse(created["booking"]["expires_at"]) == opens + timedelta(minutes=15)
    with clock.frozen(closes - timedelta(seconds=1)):
        late = await hold(client, departure["id"], [count()])
        # A hold never outlives the sales.
        assert parse(late["booking"]["expires_at"]) == closes
    with clock.frozen(closes):
        problem(await client.post(BOOKINGS, json=body), 409, "sales_closed")
    with clock.frozen(departs_at + timedelta(hours=1)):
        problem(await client.post(BOOKINGS, json=body), 409, "sales_closed")
    assert await Booking.count().run() == 2


# ---------------------------------------------------------------- guest access


async def test_booking_is_read_with_its_token_only(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], [count()])
    other = await hold(client, departure["id"], [count()])
    url = f"{BOOKINGS}/{ref(created)}"
    assert (await view(client, created))["reference"] == ref(created)

    wrong_token = created["access_token"][:-2] + (
        "AA" if not created["access_token"].endswith("AA") else "BB"
    )
    refusals = [
        await client.get(url, headers={"X-Booking-Token": wrong_token}),
        await client.get(url),
        await client.get(url, headers={"X-Booking-Token": ""}),
        await client.get(url, headers=guest(other)),
    ]
    bodies = [problem(response, 404, "booking_not_found") for response in refusals]
    assert all(body == bodies[0] for body in bodies)
    # Nothing about the booking leaks.
    assert "on_hold" not in refusals[0].text
    assert "picking-line" not in refusals[0].text
    # An unknown reference looks just the same.
    unknown = problem(
        await client.get(f"{BOOKINGS}/ZZZZZZZZ", headers=guest(created)), 404, "booking_not_found"
    )
    assert {k: v for k, v in unknown.items() if k != "instance"} == {
        k: v for k, v in bodies[0].items() if k != "instance"
    }
    # The wrong token cannot change or cancel the booking either.
    problem(
        await client.patch(url, json={"contact": CONTACT}, headers=guest(other)),
        404,
        "booking_not_found",
    )
    problem(await client.post(f"{url}/cancel", headers=guest(other)), 404, "booking_not_found")
    assert (await view(client, created))["status"] == "on_hold"
    assert (await view(client, created))["contact"] is None


async def test_reference_is_read_leniently(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    monkeypatch.setattr(hold_service, "new_reference", lambda: "10ABCD1Z")
    created = await hold(client, departure["id"], [count()])
    assert ref(created) == "10ABCD1Z"
    for spelling in ("10abcd1z", "IOABCDLZ", "loabcdiz", "10AB-CD1Z", " 10ABCD1Z "):
        body = ok(await client.get(f"{BOOKINGS}/{spelling}", headers=guest(created)))
        assert body["reference"] == "10ABCD1Z", spelling


async def test_twenty_wrong_tokens_then_429(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], [count()])
    url = f"{BOOKINGS}/{ref(created)}"
    for _ in range(19):
        problem(await client.get(url, headers={"X-Booking-Token": "guess"}), 404)
    # Below the limit the right token still works (and does not count as a failure).
    assert (await view(client, created))["reference"] == ref(created)
    problem(await client.get(url, headers={"X-Booking-Token": "guess"}), 404)
    response = await client.get(url, headers=guest(created))
    problem(response, 429, "too_many_attempts")
    assert 0 < int(response.headers["Retry-After"]) <= 600
    problem(await client.post(f"{url}/cancel", headers=guest(created)), 429)
    # The window's wrong guesses are forgotten.
    await AttemptCounter.delete(force=True).run()
    assert (await view(client, created))["status"] == "on_hold"


# ---------------------------------------------------------------- changing a hold


async def test_patch_contact_passengers_and_pickup_while_on_hold(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], [count(), count(kind="child")])
    url = f"{BOOKINGS}/{ref(created)}"
    [stop] = await stop_ids(client, departure["id"])
    passengers = [
        {"name": "王小明", "id_document": "410102199001011234"},
        {"name": "王小红"},
    ]
    body = ok(
        await client.patch(
            url,
            json={"contact": CONTACT, "passengers": passengers, "pickup_stop_id": stop},
            headers=guest(created),
        )
    )
    assert body["contact"] == CONTACT
    assert [line["passenger_name"] for line in body["lines"]] == ["王小明", "王小红"]
    assert [line["has_id_document"] for line in body["lines"]] == [True, False]
    assert body["pickup_stop"]["id"] == stop
    # Prices, seats and the total are untouched.
    assert labels(body) == labels(created["booking"])
    assert body["total"] == created["booking"]["total"]
    assert await view(client, created) == body
    # The document number itself is never shown.
    assert "410102199001011234" not in (await client.get(url, headers=guest(created))).text

    body = problem(
        await client.patch(url, json={"passengers": [{"name": "A"}]}, headers=guest(created)),
        400,
    )
    assert fields(body) == ["passengers"]
    body = problem(
        await client.patch(
            url,
            json={"passengers": [{"name": "A"}, {"name": "B"}, {"name": "C"}]},
            headers=guest(created),
        ),
        400,
    )
    assert fields(body) == ["passengers"]
    # Clearing the pick-up stop is allowed.
    body = ok(await client.patch(url, json={"pickup_stop_id": None}, headers=guest(created)))
    assert body["pickup_stop"] is None
    assert [line["passenger_name"] for line in body["lines"]] == ["王小明", "王小红"]


async def test_patch_pickup_stop_of_another_departure_is_400(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, departure = await bus_line(client, operator.headers)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    [other_stop] = await stop_ids(client, other["id"])
    created = await hold(client, departure["id"], [count()])
    body = problem(
        await client.patch(
            f"{BOOKINGS}/{ref(created)}",
            json={"pickup_stop_id": other_stop},
            headers=guest(created),
        ),
        400,
    )
    assert fields(body) == ["pickup_stop_id"]
    assert (await view(client, created))["pickup_stop"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "confirmed"}, "status"),
        ({"total_amount": 1}, "total_amount"),
        ({"price_amount": 1}, "price_amount"),
        ({"passengers": [{"name": "A", "price_amount": 1}]}, "passengers[0].price_amount"),
        ({"departure_id": "00000000-0000-4000-8000-000000000000"}, "departure_id"),
    ],
)
async def test_patch_refuses_fields_a_guest_cannot_set(
    client: httpx.AsyncClient, operator: Account, payload: dict[str, Any], field: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], [count()])
    body = problem(
        await client.patch(f"{BOOKINGS}/{ref(created)}", json=payload, headers=guest(created)),
        400,
        "validation_error",
    )
    assert fields(body) == [field]
    assert await view(client, created) == created["booking"]


async def test_patch_only_while_on_hold(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    cancelled = await hold(client, departure["id"], [count()])
    ok(await cancel(client, cancelled))
    problem(
        await client.patch(
            f"{BOOKINGS}/{ref(cancelled)}", json={"contact": CONTACT}, headers=guest(cancelled)
        ),
        409,
        "booking_not_on_hold",
    )
    assert (await view(client, cancelled))["contact"] is None

    confirmed = await hold(client, departure["id"], [count()])
    await confirm(ref(confirmed))
    problem(
        await client.patch(
            f"{BOOKINGS}/{ref(confirmed)}",
            json={"passengers": [{"name": "A"}]},
            headers=guest(confirmed),
        ),
        409,
        "booking_not_on_hold",
    )
    assert (await view(client, confirmed))["lines"][0]["passenger_name"] == ""


# ---------------------------------------------------------------- expiry


async def test_run_out_hold_frees_its_seats_and_reads_expired(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        old = await hold(client, departure["id"], seats=["5A", "5B"])
    expires_at = parse(old["booking"]["expires_at"])
    assert expires_at == start + timedelta(minutes=15)

    with clock.frozen(expires_at - timedelta(seconds=1)):
        assert await seats_left(client, departure["id"]) == {"standard": 43}
        problem(
            await client.post(BOOKINGS, json=booking_body(departure["id"], seats=["5A"])),
            409,
            "seat_unavailable",
        )
    with clock.frozen(expires_at):
        # The public count treats the run-out hold as free before anything expires it.
        assert await seats_left(client, departure["id"]) == {"standard": 45}
        seats = await seat_map(client, departure["id"])
        assert seats["5A"]["free"]
        assert seats["5B"]["free"]
        new = await hold(client, departure["id"], seats=["5A", "5B"])
        assert labels(new["booking"]) == ["5A", "5B"]
        assert await seats_left(client, departure["id"]) == {"standard": 43}
        booking = await view(client, old)
        assert booking["status"] == "expired"
        assert booking["expires_at"] is None
        assert (await view(client, new))["status"] == "on_hold"
    assert await events(ref(old)) == [
        (None, "on_hold", "created"),
        ("on_hold", "expired", "hold_expired"),
    ]
    live = await BookingLine.count().where(
        (BookingLine.departure == departure["id"]) & (BookingLine.live == True)  # noqa: E712
    )
    assert live == 2


async def test_guest_finds_a_run_out_hold_expired_without_a_sweep(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, departure = await bus_line(client, operator.headers)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    start = clock.now()
    with clock.frozen(start):
        read = await hold(client, departure["id"], [count()])
        changed = await hold(client, departure["id"], [count()])
        cancelled = await hold(client, departure["id"], [count()])
        moved = await hold(client, departure["id"], [count()])
    with clock.frozen(start + timedelta(minutes=15)):
        booking = await view(client, read)
        assert booking["status"] == "expired"
        assert booking["expires_at"] is None
        problem(
            await client.patch(
                f"{BOOKINGS}/{ref(changed)}", json={"contact": CONTACT}, headers=guest(changed)
            ),
            409,
            "booking_not_on_hold",
        )
        problem(await cancel(client, cancelled), 409, "illegal_transition")
        problem(await rebook(client, moved, other["id"]), 409, "booking_not_live")
        for created in (read, changed, cancelled, moved):
            booking = await view(client, created)
            assert booking["status"] == "expired"
            assert booking["contact"] is None
            assert booking["departure_id"] == departure["id"]
            assert await events(ref(created)) == [
                (None, "on_hold", "created"),
                ("on_hold", "expired", "hold_expired"),
            ]
        assert await seats_left(client, departure["id"]) == {"standard": 45}
        assert await seats_left(client, other["id"]) == {"standard": 45}
        assert await expiry.expire_all_overdue() == 0


async def test_expire_all_overdue_expires_each_hold_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, vehicle, departure = await bus_line(client, operator.headers)
    other = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    start = clock.now()
    with clock.frozen(start):
        first = await hold(client, departure["id"], [count(n=2)])
        second = await hold(client, other["id"], [count()])
        kept = await hold(client, departure["id"], [count()])
        await confirm(ref(kept))
    with clock.frozen(start + timedelta(minutes=15) - timedelta(seconds=1)):
        assert await expiry.expire_all_overdue() == 0
        assert (await view(client, first))["status"] == "on_hold"
    with clock.frozen(start + timedelta(minutes=15)):
        assert await expiry.expire_all_overdue() == 2
        assert await expiry.expire_all_overdue() == 0
        assert (await view(client, first))["status"] == "expired"
        assert (await view(client, second))["status"] == "expired"
        assert (await view(client, kept))["status"] == "confirmed"
        assert await seats_left(client, departure["id"]) == {"standard": 44}
        assert await seats_left(client, other["id"]) == {"standard": 45}
    for created in (first, second):
        assert (await events(ref(created))).count(("on_hold", "expired", "hold_expired")) == 1
    assert await BookingLine.count().where(BookingLine.live == True).run() == 1  # noqa: E712


async def test_expired_booking_cannot_be_cancelled(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, departure["id"], [count()])
    with clock.frozen(start + timedelta(minutes=20)):
        assert await expiry.expire_all_overdue() == 1
        problem(await cancel(client, created), 409, "illegal_transition")
        assert (await view(client, created))["status"] == "expired"
        assert await seats_left(client, departure["id"]) == {"standard": 45}
    assert [to for _from, to, _reason in await events(ref(created))] == ["on_hold", "expired"]


# ---------------------------------------------------------------- cancellation


async def test_cancellation_tiers_at_their_boundaries(
    client: httpx.AsyncClient, operator: Account
) -> None:
    # An odd price shows the refund is rounded down: 6801 * 50 // 100 == 3400.
    _route, _vehicle, departure = await bus_line(
        client, operator.headers, fares={("standard", "adult"): 6801}
    )
    departs_at = parse(departure["departs_at"])
    cases = [
        (departs_at - timedelta(hours=72), 100, 6801),
        (departs_at - timedelta(hours=72) + timedelta(seconds=1), 50, 3400),
        (departs_at - timedelta(hours=24), 50, 3400),
        (departs_at - timedelta(hours=24) + timedelta(seconds=1), 0, 0),
    ]
    made = []
    for _ in cases:
        created = await hold(client, departure["id"], [count()])
        await confirm(ref(created))
        made.append(created)
    assert await seats_left(client, departure["id"]) == {"standard": 41}
    for created, (moment, percent, refund) in zip(made, cases, strict=True):
        with clock.frozen(moment):
            body = ok(await cancel(client, created))
        assert body["refund_percent"] == percent, moment
        assert body["refund"]["amount"] == refund
        assert body["booking"]["status"] == "cancelled"
        booking = await view(client, created)
        assert booking["status"] == "cancelled"
        assert booking["total"]["amount"] == 6801
        if refund:
            assert booking["refund"]["amount"] == refund
        else:
            assert booking["refund"] is None
    assert await seats_left(client, departure["id"]) == {"standard": 45}


async def test_cancellation_tiers_count_hours_in_another_time_zone(
    client: httpx.AsyncClient, operator: Account
) -> None:
    # Europe moves its clocks forward on 2030-03-31: the 72-hour boundary before a
    # departure on 2030-04-01 falls in winter time, so wall-clock arithmetic would be off
    # by an hour.
    berlin = clock.zone("Europe/Berlin")
    # In UTC, so that subtracting hours subtracts real hours (not wall-clock ones).
    departs_at = datetime(2030, 4, 1, 8, 0, tzinfo=berlin).astimezone(UTC)
    with clock.frozen(datetime(2030, 3, 20, 9, 0, tzinfo=UTC)):
        staff = await relogin(client, operator)
        ok(
            await client.patch(
                "/api/v1/operator/profile",
                json={"time_zone": "Europe/Berlin"},
                headers=staff.headers,
            )
        )
        route = await create_route(client, staff.headers, slug="rhine-line")
        vehicle = await create_vehicle(client, staff.headers, "bus")
        await put_route_fares(client, staff.headers, route["id"], {("standard", "adult"): 5001})
        departure = await departure_with(
            client, staff.headers, route, vehicle, departs_at, time_zone="Europe/Berlin"
        )
        assert departure["time_zone"] == "Europe/Berlin"
        made = []
        for _ in range(5):
            created = await hold(client, departure["id"], [count()])
            await confirm(ref(created))
            made.append(created)
    booking = await view(client, made[0])
    assert booking["time_zone"] == "Europe/Berlin"
    assert booking["departs_at"] == "2030-04-01T08:00:00+02:00"
    assert parse(booking["departs_at"]) == datetime(2030, 4, 1, 6, 0, tzinfo=UTC)

    cases = [
        (departs_at - timedelta(hours=72), 100),  # 2030-03-29 07:00 winter time
        (departs_at - timedelta(hours=72) + timedelta(seconds=1), 50),
        # Same wall-clock time three days earlier, but only 71 hours before: 50%.
        (datetime(2030, 3, 29, 8, 0, tzinfo=berlin), 50),
        (departs_at - timedelta(hours=24), 50),
        (departs_at - timedelta(hours=24) + timedelta(seconds=1), 0),
    ]
    for created, (moment, percent) in zip(made, cases, strict=True):
        with clock.frozen(moment):
            body = ok(await cancel(client, created))
        assert body["refund_percent"] == percent, moment
        assert body["refund"]["amount"] == 5001 * percent // 100


async def test_cancelling_a_hold_refunds_nothing_and_frees_the_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], seats=["4A", "4B"])
    assert await seats_left(client, departure["id"]) == {"standard": 43}
    body = ok(await cancel(client, created))
    assert body["refund"]["amount"] == 0
    assert body["booking"]["status"] == "cancelled"
    assert body["booking"]["refund"] is None
    assert body["booking"]["expires_at"] is None
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    seats = await seat_map(client, departure["id"])
    assert seats["4A"]["free"]
    assert seats["4B"]["free"]
    assert labels((await hold(client, departure["id"], seats=["4A", "4B"]))["booking"]) == [
        "4A",
        "4B",
    ]
    problem(await cancel(client, created), 409, "illegal_transition")
    assert (await view(client, created))["status"] == "cancelled"


async def test_cancelling_a_confirmed_booking_twice_and_after_departure(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    departs_at = parse(departure["departs_at"])
    created = await hold(client, departure["id"], [count(n=2)])
    await confirm(ref(created))
    assert await seats_left(client, departure["id"]) == {"standard": 43}
    body = ok(await cancel(client, created))
    assert body["refund_percent"] == 100
    assert body["refund"]["amount"] == 2 * BUS_ADULT
    assert await seats_left(client, departure["id"]) == {"standard": 45}
    problem(await cancel(client, created), 409, "illegal_transition")
    assert (await view(client, created))["refund"]["amount"] == 2 * BUS_ADULT

    late = await hold(client, departure["id"], [count()])
    await confirm(ref(late))
    with clock.frozen(departs_at):
        problem(await cancel(client, late), 409, "departure_passed")
    with clock.frozen(departs_at + timedelta(days=1)):
        problem(await cancel(client, late), 409, "departure_passed")
        booking = await view(client, late)
    assert booking["status"] == "confirmed"
    assert booking["refund"] is None
    assert await seats_left(client, departure["id"]) == {"standard": 44}


# ---------------------------------------------------------------- rebooking


async def two_departures(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    route, vehicle, first = await bus_line(client, headers)
    second = await create_departure(client, headers, route, vehicle, in_days(12))
    return route, vehicle, first, second


async def test_rebook_a_hold_moves_the_seats_and_reprices(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, first, second = await two_departures(client, operator.headers)
    await put_departure_fares(
        client,
        operator.headers,
        second["id"],
        {("standard", "adult"): 9900, ("standard", "child"): 5000},
    )
    [stop] = await stop_ids(client, first["id"])
    created = await hold(
        client, first["id"], [count(n=2), count(kind="child")], pickup_stop_id=stop
    )
    ok(
        await client.patch(
            f"{BOOKINGS}/{ref(created)}",
            json={"passengers": [{"name": "A"}, {"name": "B"}, {"name": "C"}]},
            headers=guest(created),
        )
    )
    assert created["booking"]["total"]["amount"] == 2 * BUS_ADULT + BUS_CHILD
    # What an agency may have said of a passenger travels with them.
    details = {
        BookingLine.passenger_email: "c@example.cn", BookingLine.passenger_phone: "+86 1",
        BookingLine.passenger_country: "CN", BookingLine.passenger_notes: "Vegetarian",
        BookingLine.partner_uuid: "unit-c", BookingLine.reseller_reference: "R-C",
    }  # fmt: skip
    await BookingLine.update(details).where(BookingLine.passenger_name == "C").run()
    body = ok(await rebook(client, created, second["id"]))
    moved = (
        await BookingLine.select(*details)
        .where((BookingLine.passenger_name == "C") & (BookingLine.departure == second["id"]))
        .first()
        .run()
    )
    assert moved == {column._meta.name: value for column, value in details.items()}
    assert body["departure_id"] == second["id"]
    assert body["status"] == "on_hold"
    assert body["total"]["amount"] == 2 * 9900 + 5000
    assert [line["price"]["amount"] for line in body["lines"]] == [9900, 9900, 5000]
    assert [line["passenger_type"] for line in body["lines"]] == ["adult", "adult", "child"]
    assert [line["passenger_name"] for line in body["lines"]] == ["A", "B", "C"]
    # A hold owes nothing yet and is owed nothing.
    assert body["balance_due"] is None
    assert body["refund"] is None
    assert body["pickup_stop"] is None
    assert await view(client, created) == body
    assert await seats_left(client, first["id"]) == {"standard": 45}
    assert await seats_left(client, second["id"]) == {"standard": 42}
    taken = {
        label for label, seat in (await seat_map(client, second["id"])).items() if not seat["free"]
    }
    assert taken == set(labels(body))


async def test_rebook_confirmed_to_dearer_holds_the_new_seats_for_the_difference(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, first, second = await two_departures(client, operator.headers)
    await put_departure_fares(
        client,
        operator.headers,
        second["id"],
        {("standard", "adult"): 8000, ("standard", "child"): 4000},
    )
    created = await hold(client, first["id"], [count(n=2)])
    await confirm(ref(created))
    body = ok(await rebook(client, created, second["id"]))
    # Paid bookings move only once the difference is paid: until then both seats are held.
    assert body["status"] == "confirmed"
    assert body["departure_id"] == first["id"]
    assert body["total"]["amount"] == 2 * BUS_ADULT
    assert body["balance_due"]["amount"] == 16000 - 2 * BUS_ADULT
    assert body["pending_change"]["amount_due"] == body["balance_due"]
    assert body["pending_change"]["departure_id"] == second["id"]
    assert body["refund"] is None
    assert await view(client, created) == body
    assert await seats_left(client, first["id"]) == {"standard": 43}
    assert await seats_left(client, second["id"]) == {"standard": 43}
    taken = {
        label for label, seat in (await seat_map(client, second["id"])).items() if not seat["free"]
    }
    assert taken == set(body["pending_change"]["seats"])
    # The manifest of the new departure lists nobody yet.
    manifest = ok(
        await client.get(f"{DEPARTURES}/{second['id']}/manifest", headers=operator.headers)
    )
    assert (manifest["passengers"], manifest["lines"]) == (0, [])


async def test_rebook_confirmed_to_cheaper_is_refunded_the_difference(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, first, second = await two_departures(client, operator.headers)
    await put_departure_fares(
        client,
        operator.headers,
        second["id"],
        {("standard", "adult"): 5000, ("standard", "child"): 3000},
    )
    created = await hold(client, first["id"], [count(), count(kind="child")])
    await confirm(ref(created))
    body = ok(await rebook(client, created, second["id"]))
    assert body["status"] == "confirmed"
    assert body["total"]["amount"] == 8000
    assert body["refund"]["amount"] == BUS_ADULT + BUS_CHILD - 8000
    assert body["balance_due"] is None
    assert await view(client, created) == body
    assert await seats_left(client, first["id"]) == {"standard": 45}
    assert await seats_left(client, second["id"]) == {"standard": 43}


async def test_rebook_to_a_full_departure_changes_nothing(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, vehicle, first, second = await two_departures(client, operator.headers)
    all_labels = [seat["label"] for seat in vehicle["seats"]]
    ok(
        await client.put(
            f"{DEPARTURES}/{second['id']}/blocks",
            json={"blocks": [{"label": label, "reason": "other"} for label in all_labels[1:]]},
            headers=operator.headers,
        )
    )
    await hold(client, second["id"], seats=[all_labels[0]])
    assert await seats_left(client, second["id"]) == {"standard": 0}
    created = await hold(client, first["id"], [count(n=2)])
    await confirm(ref(created))
    before = await view(client, created)

    problem(await rebook(client, created, second["id"]), 409, "sold_out")
    assert await view(client, created) == before
    assert await seats_left(client, first["id"]) == {"standard": 43}
    assert await seats_left(client, second["id"]) == {"standard": 0}

    # One seat left is not enough for two either.
    ok(
        await client.put(
            f"{DEPARTURES}/{second['id']}/blocks",
            json={"blocks": [{"label": label, "reason": "other"} for label in all_labels[2:]]},
            headers=operator.headers,
        )
    )
    assert await seats_left(client, second["id"]) == {"standard": 1}
    problem(await rebook(client, created, second["id"]), 409, "not_enough_seats")
    assert await view(client, created) == before
    assert await seats_left(client, first["id"]) == {"standard": 43}


async def test_rebook_must_stay_on_the_route_and_move(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, vehicle, first, _second = await two_departures(client, operator.headers)
    other_route = await create_route(client, operator.headers, slug="other-line")
    await put_route_fares(
        client, operator.headers, other_route["id"], {("standard", "adult"): 1000}
    )
    elsewhere = await create_departure(client, operator.headers, other_route, vehicle, in_days(12))
    created = await hold(client, first["id"], [count()])
    before = await view(client, created)
    body = problem(await rebook(client, created, elsewhere["id"]), 400)
    assert fields(body) == ["departure_id"]
    body = problem(await rebook(client, created, first["id"]), 400)
    assert fields(body) == ["departure_id"]
    assert await view(client, created) == before
    assert await seats_left(client, elsewhere["id"]) == {"standard": 45}
    assert await seats_left(client, first["id"]) == {"standard": 44}


# ---------------------------------------------------------------- audit trail


async def test_every_transition_is_recorded(client: httpx.AsyncClient, operator: Account) -> None:
    _route, _vehicle, first, second = await two_departures(client, operator.headers)
    reason = "Our daughter is ill; we will come another weekend. " * 2
    start = clock.now()
    with clock.frozen(start):
        created = await hold(client, first["id"], [count(n=2)])
        clock.advance(timedelta(minutes=1))
        await confirm(ref(created))
        clock.advance(timedelta(minutes=1))
        ok(await rebook(client, created, second["id"]))
        clock.advance(timedelta(minutes=1))
        ok(await cancel(client, created, reason))
    assert await events(ref(created)) == [
        (None, "on_hold", "created"),
        ("on_hold", "confirmed", "paid"),
        ("confirmed", "confirmed", "rebooked"),
        ("confirmed", "cancelled", "cancelled_by_guest"),
    ]
    row = await booking_row(ref(created))
    rows = (
        await BookingEvent.select()
        .where(BookingEvent.booking == row["id"])
        .order_by(BookingEvent.at)
        .output(load_json=True)
        .run()
    )
    assert [e["actor"] for e in rows] == ["guest", "test", "guest", "guest"]
    assert [e["at"] for e in rows] == [start + timedelta(minutes=m) for m in range(4)]
    assert rows[2]["details"]["from_departure"] == first["id"]
    assert rows[2]["details"]["to_departure"] == second["id"]
    # The guest's own words (up to 200 characters) are kept with the event.
    assert rows[3]["details"] == {"refund_percent": 100, "refund": 2 * BUS_ADULT, "note": reason}
    other = await hold(client, first["id"], [count()])
    body = problem(await cancel(client, other, "x" * 201), 400, "validation_error")
    assert fields(body) == ["reason"]
    assert (await view(client, other))["status"] == "on_hold"
    ok(await cancel(client, other))
    assert await events(ref(other)) == [
        (None, "on_hold", "created"),
        ("on_hold", "cancelled", "cancelled_by_guest"),
    ]
    other_row = await booking_row(ref(other))
    cancelled = (
        await BookingEvent.select(BookingEvent.details)
        .where((BookingEvent.booking == other_row["id"]) & (BookingEvent.to_status == "cancelled"))
        .first()
        .output(load_json=True)
        .run()
    )
    assert cancelled is not None
    assert cancelled["details"]["refund"] == 0
    assert "note" not in cancelled["details"]
