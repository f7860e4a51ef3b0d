"""Agency allotments: seats of a class on a departure kept for one agency until a release
time. Made, listed, changed and ended by an operator admin; booked only by their agency
through OCTO while they run (the public, other agencies and the waiting list see them as
taken); released once by the worker tick, back to general sale and the waiting list, with an
`allotment.released` webhook. Through the HTTP API against a real database."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiohttp import web

from app.booking.rows import BookingRow
from app.booking.services.allotments import release_due_allotments
from app.booking.services.state import transition
from app.booking.tables import Allotment, Booking, BookingLine, BookingStatus, WaitlistEntry
from app.core import clock, database
from app.core.database import write_transaction
from app.core.tables import OutboxMessage
from app.partners.tables import WebhookDelivery
from tests.assertions import fields, ok, problem
from tests.conftest import STAFF_PASSWORD, Account, Mailbox
from tests.factories import create_departure, create_route, in_days, set_route_fares
from tests.servers import start_web_endpoint
from workers.jobs import tick

AGENCIES = "/api/v1/operator/agencies"
BOOKINGS = "/api/v1/bookings"
CAPABILITIES = {"Octo-Capabilities": "octo/pricing"}
SOLD_OUT_CODES = {"sold_out", "not_enough_seats"}

MakeOperator = Callable[..., Awaitable[Account]]


# ---------------------------------------------------------------- helpers


def small_bus(rows: int) -> dict[str, Any]:
    """`rows` rows of four seats, all of class "standard"."""
    return {"type": "bus", "rows": rows, "seat_letters": "ABCD"}


async def small_departure(
    client: httpx.AsyncClient, operator: Account, rows: int = 2, days: float = 10
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A published route with standard fares and one published departure `days` from now
    on a bus of `rows` * 4 standard seats: (route, departure)."""
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "bus", "name": "Minibus", "code": "MB-1", "layout": small_bus(rows)},
        headers=operator.headers,
    )
    vehicle = ok(response, 201)
    assert vehicle["capacity_by_class"] == {"standard": rows * 4}
    departure = await create_departure(client, operator.headers, route, vehicle, in_days(days))
    return route, departure


async def make_agency(
    client: httpx.AsyncClient, operator: Account, name: str = "Beijing Tours", **terms: Any
) -> tuple[str, dict[str, str]]:
    """An agency of the operator (on account, ample credit) and its OCTO headers."""
    body = {
        "name": name,
        "contact_email": f"ops@{name.lower().replace(' ', '')}.example",
        "credit_limit": 10_000_000,
        **terms,
    }
    agency = ok(await client.post(AGENCIES, json=body, headers=operator.headers), 201)
    key = ok(
        await client.post(
            f"{AGENCIES}/{agency['id']}/keys", json={"name": "main"}, headers=operator.headers
        ),
        201,
    )
    return agency["id"], {"Authorization": f"Bearer {key['key']}", **CAPABILITIES}


async def allot(
    client: httpx.AsyncClient,
    account: Account,
    agency_id: str,
    departure_id: str,
    seats: int,
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"departure_id": departure_id, "seat_class": "standard", "seats": seats}
    for name, value in extra.items():
        body[name] = value.isoformat() if isinstance(value, datetime) else value
    path = f"{AGENCIES}/{agency_id}/allotments"
    return await client.post(path, json=body, headers=account.headers)


async def allotments(client: httpx.AsyncClient, account: Account, agency_id: str) -> list[Any]:
    result: list[Any] = ok(
        await client.get(f"{AGENCIES}/{agency_id}/allotments", headers=account.headers)
    )
    return result


def contact(name: str) -> dict[str, str]:
    return {
        "name": name,
        "email": f"{name.lower().replace(' ', '.')}@example.com",
        "phone": "+86 138 0000 0000",
    }


async def public_hold(
    client: httpx.AsyncClient, departure_id: str, count: int, who: str = "Zhang Wei"
) -> httpx.Response:
    return await client.post(
        BOOKINGS,
        json={
            "departure_id": departure_id,
            "counts": [{"seat_class": "standard", "count": count}],
            "contact": contact(who),
        },
    )


async def public_confirmed(
    client: httpx.AsyncClient, departure_id: str, count: int, who: str
) -> str:
    """A public hold of `count` seats, confirmed as if paid; its reference."""
    created = ok(await public_hold(client, departure_id, count, who), 201)
    reference = created["booking"]["reference"]
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    return str(reference)


async def join_waitlist(
    client: httpx.AsyncClient, departure_id: str, party: int, who: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/departures/{departure_id}/waitlist",
        json={"seat_class": "standard", "party_size": party, "contact": contact(who)},
    )


async def seats_left(client: httpx.AsyncClient, route: dict[str, Any], departure_id: str) -> int:
    """Standard seats left as the public sees them, checked to agree on the departure page
    (total and per class) and in the route's list of departures."""
    detail = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    [standard] = [c for c in detail["classes"] if c["seat_class"] == "standard"]
    assert detail["seats_left"] == standard["seats_left"]
    listing = ok(await client.get(f"/api/v1/routes/{route['slug']}/departures"))
    [summary] = [item for item in listing["items"] if item["id"] == departure_id]
    assert summary["seats_left"] == standard["seats_left"], (summary, standard)
    return int(standard["seats_left"])


def octo_body(route: dict[str, Any], departure_id: str, units: int, uuid: str) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "productId": route["id"],
        "optionId": "standard",
        "availabilityId": departure_id,
        "unitItems": [{"unitId": "adult"}] * units,
    }


async def octo_hold(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    route: dict[str, Any],
    departure_id: str,
    units: int,
    uuid: str,
    **extra: Any,
) -> httpx.Response:
    body = {**octo_body(route, departure_id, units, uuid), **extra}
    return await client.post("/octo/bookings", json=body, headers=headers)


def octo_refused(response: httpx.Response, codes: set[str]) -> dict[str, Any]:
    """OCTO's UNPROCESSABLE_ENTITY (a well-formed hold the seats left refuse), carrying
    the booking engine's reason."""
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "UNPROCESSABLE_ENTITY", body
    assert body.get("code") in codes, body
    return body


async def octo_slot(
    client: httpx.AsyncClient, headers: dict[str, str], route: dict[str, Any], departure_id: str
) -> dict[str, Any]:
    body = {"productId": route["id"], "optionId": "standard", "availabilityIds": [departure_id]}
    [slot] = ok(await client.post("/octo/availability", json=body, headers=headers))
    assert slot["id"] == departure_id
    return dict(slot)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def relogin(client: httpx.AsyncClient, account: Account) -> Account:
    """The same staff member logged in again, with a token issued at the (frozen) now."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": STAFF_PASSWORD}
    )
    return Account(account.operator_id, account.slug, account.email, ok(response)["access_token"])


async def live_lines(departure_id: str) -> list[dict[str, Any]]:
    """Live booking lines of the departure, each with its booking's agency and reference."""
    lines = (
        await BookingLine.select(BookingLine.booking, BookingLine.seat, BookingLine.seat_label)
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )
    bookings = {
        row["id"]: row
        for row in await Booking.select(Booking.id, Booking.agency, Booking.reference)
        .where(Booking.departure == departure_id)
        .run()
    }
    return [
        {
            **line,
            "agency": bookings[line["booking"]]["agency"],
            "reference": bookings[line["booking"]]["reference"],
        }
        for line in lines
    ]


def no_seat_twice(lines: list[dict[str, Any]]) -> None:
    doubled = [seat for seat, n in Counter(line["seat"] for line in lines).items() if n > 1]
    assert doubled == [], f"seats in two live lines: {doubled}"


@pytest.fixture
async def webhook_receiver(
    private_webhook_targets: None,
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint for agency webhooks: (its URL, the requests it received)."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append({"headers": dict(request.headers), "body": await request.text()})
        return web.Response(status=204)

    runner, base = await start_web_endpoint({"/hooks": handle})
    try:
        yield f"{base}/hooks", received
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- making and listing


async def test_an_allotment_is_kept_until_three_days_before_departure_by_default(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)
    agency_id, headers = await make_agency(client, operator)
    assert await seats_left(client, route, departure["id"]) == 8

    created = ok(await allot(client, operator, agency_id, departure["id"], 3), 201)
    departs_at = parse(departure["departs_at"])
    assert created["agency_id"] == agency_id
    assert created["departure_id"] == departure["id"]
    assert parse(created["departs_at"]) == departs_at
    assert created["seat_class"] == "standard"
    assert (created["seats"], created["used"], created["unused"]) == (3, 0, 3)
    assert parse(created["release_at"]) == departs_at - timedelta(days=3)
    assert created["released_at"] is None
    assert created["released_seats"] == 0
    assert await allotments(client, operator, agency_id) == [created]

    # Everybody else sees the three seats as taken; the agency sees them as its own.
    assert await seats_left(client, route, departure["id"]) == 5
    slot = await octo_slot(client, headers, route, departure["id"])
    assert (slot["vacancies"], slot["capacity"]) == (8, 8)
    assert {k: v for k, v in slot["allotment"].items() if k != "utcReleaseAt"} == {
        "seats": 3,
        "used": 0,
        "unused": 3,
    }
    assert slot["allotment"]["utcReleaseAt"].endswith("Z")
    assert parse(slot["allotment"]["utcReleaseAt"]) == departs_at - timedelta(days=3)


async def test_an_explicit_release_time_is_kept(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, departure = await small_departure(client, operator)
    agency_id, _headers = await make_agency(client, operator)
    release_at = in_days(2, hour=18)
    created = ok(
        await allot(client, operator, agency_id, departure["id"], 2, release_at=release_at), 201
    )
    assert parse(created["release_at"]) == release_at
    # The release time may be the departure itself, not later.
    other_id, _ = await make_agency(client, operator, name="Xian Travel")
    at_departure = parse(departure["departs_at"])
    created = ok(
        await allot(client, operator, other_id, departure["id"], 2, release_at=at_departure), 201
    )
    assert parse(created["release_at"]) == at_departure


# ---------------------------------------------------------------- who may book the seats


async def test_only_the_owning_agency_books_the_allotted_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)  # 8 seats
    owner_id, owner = await make_agency(client, operator)
    _other_id, other = await make_agency(client, operator, name="Xian Travel")
    ok(await allot(client, operator, owner_id, departure["id"], 3), 201)
    departure_id = departure["id"]

    # The public gets the five general seats, then nothing: not by count, not by label.
    ok(await public_hold(client, departure_id, 3, "First Buyer"), 201)
    problem(await public_hold(client, departure_id, 3, "Greedy Buyer"), 409, "not_enough_seats")
    ok(await public_hold(client, departure_id, 2, "Second Buyer"), 201)
    assert await seats_left(client, route, departure_id) == 0
    problem(await public_hold(client, departure_id, 1, "Late Buyer"), 409, "sold_out")
    taken = {line["seat_label"] for line in await live_lines(departure_id)}
    free_labels = sorted(f"{r}{c}" for r in (1, 2) for c in "ABCD" if f"{r}{c}" not in taken)
    assert len(free_labels) == 3
    for label in free_labels:
        response = await client.post(
            BOOKINGS,
            json={
                "departure_id": departure_id,
                "seats": [{"label": label}],
                "contact": contact("Seat Picker"),
            },
        )
        problem(response, 409, "seat_unavailable")
    # For the waiting list the class is full, too.
    ok(await join_waitlist(client, departure_id, 1, "Patient Li"), 201)

    # Another agency sees no vacancy and no allotment, and cannot hold.
    slot = await octo_slot(client, other, route, departure_id)
    assert (slot["vacancies"], slot["status"], slot["available"]) == (0, "SOLD_OUT", False)
    assert "allotment" not in slot
    octo_refused(await octo_hold(client, other, route, departure_id, 1, "o-1"), SOLD_OUT_CODES)

    # The owner sees its three seats and books them.
    slot = await octo_slot(client, owner, route, departure_id)
    assert slot["vacancies"] == 3
    assert slot["allotment"]["seats"] == 3
    assert (slot["allotment"]["used"], slot["allotment"]["unused"]) == (0, 3)
    held = ok(await octo_hold(client, owner, route, departure_id, 2, "a-1"))
    assert held["status"] == "ON_HOLD"
    slot = await octo_slot(client, owner, route, departure_id)
    assert slot["vacancies"] == 1
    assert (slot["allotment"]["used"], slot["allotment"]["unused"]) == (2, 1)
    [listed] = await allotments(client, operator, owner_id)
    assert (listed["used"], listed["unused"]) == (2, 1)
    octo_refused(
        await octo_hold(client, owner, route, departure_id, 2, "a-2"), {"not_enough_seats"}
    )
    ok(await octo_hold(client, owner, route, departure_id, 1, "a-3"))
    assert (await octo_slot(client, owner, route, departure_id))["vacancies"] == 0

    # Still nothing for anybody else; every seat in exactly one live line.
    assert await seats_left(client, route, departure_id) == 0
    octo_refused(await octo_hold(client, other, route, departure_id, 1, "o-2"), SOLD_OUT_CODES)
    lines = await live_lines(departure_id)
    no_seat_twice(lines)
    by_agency = Counter(str(line["agency"]) if line["agency"] else "public" for line in lines)
    assert by_agency == {"public": 5, owner_id: 3}


async def test_the_public_seat_map_does_not_offer_allotted_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """A seat the public cannot book must not be shown to it as free."""
    route, departure = await small_departure(client, operator)
    owner_id, _owner = await make_agency(client, operator)
    ok(await allot(client, operator, owner_id, departure["id"], 3), 201)
    ok(await public_hold(client, departure["id"], 2, "First Buyer"), 201)
    left = await seats_left(client, route, departure["id"])
    assert left == 3
    seat_map = ok(await client.get(f"/api/v1/departures/{departure['id']}/seats"))
    free = [seat["label"] for seat in seat_map["seats"] if seat["free"]]
    assert len(free) == left, f"seat map offers {free}, but {left} seats are left"
    # Every seat shown free can really be chosen.
    for label in free:
        response = await client.post(
            BOOKINGS,
            json={
                "departure_id": departure["id"],
                "seats": [{"label": label}],
                "contact": contact("Seat Picker"),
            },
        )
        ok(response, 201)


async def test_the_owners_bookings_use_the_allotment_first_then_general_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)  # 8 seats
    owner_id, owner = await make_agency(client, operator)
    departure_id = departure["id"]
    contact_body = {"contact": {"fullName": "Wang Fang", "emailAddress": "wang@example.cn"}}
    with clock.frozen(clock.now()):
        ok(await allot(client, operator, owner_id, departure_id, 3), 201)
        ok(await public_hold(client, departure_id, 2, "First Buyer"), 201)
        assert await seats_left(client, route, departure_id) == 3

        # A confirmed booking and a hold both use the allotment.
        ok(await octo_hold(client, owner, route, departure_id, 1, "a-1"))
        confirmed = ok(
            await client.post("/octo/bookings/a-1/confirm", json=contact_body, headers=owner)
        )
        assert confirmed["status"] == "CONFIRMED"
        ok(await octo_hold(client, owner, route, departure_id, 1, "a-2", expirationMinutes=5))
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["used"], listed["unused"]) == (2, 1)
        assert await seats_left(client, route, departure_id) == 3

        # A hold that runs out no longer uses it: the seat is the agency's again.
        clock.advance(timedelta(minutes=6))
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["used"], listed["unused"]) == (1, 2)
        slot = await octo_slot(client, owner, route, departure_id)
        assert slot["vacancies"] == 5
        assert (slot["allotment"]["used"], slot["allotment"]["unused"]) == (1, 2)
        assert await seats_left(client, route, departure_id) == 3

        # A cancelled booking no longer uses it either.
        ok(await octo_hold(client, owner, route, departure_id, 2, "a-3"))
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["used"], listed["unused"]) == (3, 0)
        cancelled = ok(await client.post("/octo/bookings/a-3/cancel", json={}, headers=owner))
        assert cancelled["status"] == "CANCELLED"
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["used"], listed["unused"]) == (1, 2)

        # Beyond its allotment the owner books general seats, like anybody.
        ok(await octo_hold(client, owner, route, departure_id, 4, "a-4"))
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["used"], listed["unused"]) == (5, 0)
        assert await seats_left(client, route, departure_id) == 1
        ok(await public_hold(client, departure_id, 1, "Last Buyer"), 201)
        assert await seats_left(client, route, departure_id) == 0
        octo_refused(await octo_hold(client, owner, route, departure_id, 1, "a-5"), {"sold_out"})
        lines = await live_lines(departure_id)
        no_seat_twice(lines)
        assert len(lines) == 8


# ---------------------------------------------------------------- release


async def test_release_gives_unused_seats_back_once_and_offers_them_to_the_waiting_list(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    webhook_receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook_receiver
    route, departure = await small_departure(client, operator)  # 8 seats
    departure_id = departure["id"]
    owner_id, owner = await make_agency(client, operator, webhook_url=url)
    created = ok(await allot(client, operator, owner_id, departure_id, 3), 201)
    release_at = parse(created["release_at"])

    ok(await octo_hold(client, owner, route, departure_id, 1, "a-1"))
    contact_body = {"contact": {"fullName": "Wang Fang", "emailAddress": "wang@example.cn"}}
    ok(await client.post("/octo/bookings/a-1/confirm", json=contact_body, headers=owner))
    await public_confirmed(client, departure_id, 3, "First Buyer")
    await public_confirmed(client, departure_id, 2, "Second Buyer")
    assert await seats_left(client, route, departure_id) == 0
    ok(await join_waitlist(client, departure_id, 2, "Waiting Wang"), 201)
    ok(await join_waitlist(client, departure_id, 3, "Big Family"), 201)
    [listed] = await allotments(client, operator, owner_id)
    assert (listed["used"], listed["unused"]) == (1, 2)

    released_at = release_at + timedelta(minutes=1)
    with clock.frozen(released_at):
        operator = await relogin(client, operator)
        # Past its release time the allotment keeps nothing, even before the job runs.
        [listed] = await allotments(client, operator, owner_id)
        assert (listed["unused"], listed["released_at"], listed["released_seats"]) == (0, None, 0)
        assert await seats_left(client, route, departure_id) == 2
        slot = await octo_slot(client, owner, route, departure_id)
        assert slot["vacancies"] == 2
        assert "allotment" not in slot

        first = await tick()
        assert first["allotments_released"] == 1
        row = await Allotment.select().where(Allotment.id == created["id"]).first().run()
        assert row is not None
        assert row["released_at"] == released_at
        assert row["released_seats"] == 2
        [listed] = await allotments(client, operator, owner_id)
        assert parse(listed["released_at"]) == released_at
        assert (listed["released_seats"], listed["used"], listed["unused"]) == (2, 1, 0)

        # The two seats went to the first waiting entry that fits, as an offer (a hold).
        entries = {
            row["contact_name"]: row
            for row in await WaitlistEntry.select()
            .where(WaitlistEntry.departure == departure_id)
            .run()
        }
        assert entries["Waiting Wang"]["status"] == "offered"
        assert entries["Big Family"]["status"] == "waiting"
        offer = (
            await Booking.select()
            .where(Booking.id == entries["Waiting Wang"]["offered_booking"])
            .first()
            .run()
        )
        assert offer is not None
        assert (offer["status"], offer["channel"], offer["agency"]) == ("on_hold", "waitlist", None)
        lines = await live_lines(departure_id)
        no_seat_twice(lines)
        assert len(lines) == 8
        assert sum(1 for line in lines if line["booking"] == offer["id"]) == 2
        assert await seats_left(client, route, departure_id) == 0
        # The message offering them is in the outbox (sent by the next tick).
        offers = (
            await OutboxMessage.select()
            .where(OutboxMessage.kind == "waitlist.offer")
            .output(load_json=True)
            .run()
        )
        assert [o["key"] for o in offers] == [f"waitlist.offer:{entries['Waiting Wang']['id']}"]

        # The agency is told, once.
        events = (
            await WebhookDelivery.select()
            .where(
                (WebhookDelivery.agency == owner_id)
                & (WebhookDelivery.event_type == "allotment.released")
            )
            .run()
        )
        assert len(events) == 1
        event = json.loads(events[0]["body"])
        assert event["type"] == "allotment.released"
        assert event["data"] == {
            "allotmentId": created["id"],
            "availabilityId": departure_id,
            "optionId": "standard",
            "seats": 3,
            "used": 1,
            "released": 2,
        }
        posted = [
            r for r in received if r["headers"].get("Tourline-Event-Type") == "allotment.released"
        ]
        assert [json.loads(r["body"]) for r in posted] == [event]

        # Running the job again changes nothing.
        second = await tick()
        assert second["allotments_released"] == 0
        assert await release_due_allotments() == 0
        again = await Allotment.select().where(Allotment.id == created["id"]).first().run()
        assert again == row
        assert (
            await WebhookDelivery.count()
            .where(WebhookDelivery.event_type == "allotment.released")
            .run()
        ) == 1
        assert await Booking.count().where(Booking.channel == "waitlist").run() == 1
        assert len(await live_lines(departure_id)) == 8
        assert (
            len(
                [
                    r
                    for r in received
                    if r["headers"].get("Tourline-Event-Type") == "allotment.released"
                ]
            )
            == 1
        )
        [offer_mail] = mailbox.to("waiting.wang@example.com")
        assert offer["reference"] in offer_mail.get_body(("plain",)).get_content()
        await tick()
        assert len(mailbox.to("waiting.wang@example.com")) == 1
        assert await release_due_allotments() == 0


async def test_release_without_a_webhook_url_records_no_event_and_frees_the_seats(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)
    owner_id, _owner = await make_agency(client, operator)
    release_at = in_days(1)
    created = ok(
        await allot(client, operator, owner_id, departure["id"], 4, release_at=release_at), 201
    )
    assert await seats_left(client, route, departure["id"]) == 4
    with clock.frozen(release_at):
        operator = await relogin(client, operator)
        assert await release_due_allotments() == 1
        assert await release_due_allotments() == 0
        [listed] = await allotments(client, operator, owner_id)
        assert listed["id"] == created["id"]
        assert parse(listed["released_at"]) == release_at
        assert (listed["released_seats"], listed["unused"]) == (4, 0)
        assert await seats_left(client, route, departure["id"]) == 8
    assert await WebhookDelivery.count().run() == 0
    # Released, it keeps nothing later either.
    assert await seats_left(client, route, departure["id"]) == 8


async def test_a_release_is_kept_in_the_outbox_as_the_booking_domains_news(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """Booking publishes the release (`AllotmentReleased`); partners turn it into the
    agency's webhook. The news is kept once, under the same key as the webhook."""
    _route, departure = await small_departure(client, operator)
    owner_id, _owner = await make_agency(client, operator)
    release_at = in_days(1)
    created = ok(
        await allot(client, operator, owner_id, departure["id"], 4, release_at=release_at), 201
    )
    with clock.frozen(release_at):
        assert await release_due_allotments() == 1
        assert await release_due_allotments() == 0
    [news] = (
        await OutboxMessage.select()
        .where(OutboxMessage.kind == "allotment.released")
        .output(load_json=True)
        .run()
    )
    assert news["key"] == f"allotment.released:{created['id']}"
    assert news["payload"] == {
        "allotment_id": created["id"],
        "agency_id": owner_id,
        "departure_id": departure["id"],
        "seat_class": "standard",
        "seats": 4,
        "used": 0,
        "released": 4,
    }


# ---------------------------------------------------------------- validation


async def test_allotment_validation(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    route, departure = await small_departure(client, operator)  # 8 seats
    departure_id = departure["id"]
    owner_id, _owner = await make_agency(client, operator)
    second_id, _second = await make_agency(client, operator, name="Xian Travel")
    departs_at = parse(departure["departs_at"])

    body = problem(
        await allot(
            client, operator, owner_id, departure_id, 2, release_at=clock.now() - timedelta(hours=1)
        ),
        400,
    )
    assert fields(body) == ["release_at"]
    body = problem(
        await allot(
            client,
            operator,
            owner_id,
            departure_id,
            2,
            release_at=departs_at + timedelta(minutes=1),
        ),
        400,
    )
    assert fields(body) == ["release_at"]
    naive = (departs_at - timedelta(days=4)).replace(tzinfo=None).isoformat()
    body = problem(await allot(client, operator, owner_id, departure_id, 2, release_at=naive), 400)
    assert fields(body) == ["release_at"]
    # Departing in two days, the default release (three days before) is already past.
    _soon_route, soon = await small_departure_on(client, operator, route, days=2)
    body = problem(await allot(client, operator, owner_id, soon["id"], 2), 400)
    assert fields(body) == ["release_at"]
    response = await allot(client, operator, owner_id, departure_id, 2, seat_class="first")
    body = problem(response, 400)
    assert fields(body) == ["seat_class"]
    problem(await allot(client, operator, owner_id, departure_id, 0), 400)
    problem(await allot(client, operator, owner_id, str(uuid4()), 2), 404, "departure_not_found")

    response = await allot(client, operator, owner_id, departure_id, 9)
    body = problem(response, 409, "not_enough_seats")
    assert fields(body) == ["seats"]
    ok(await public_hold(client, departure_id, 3, "First Buyer"), 201)
    problem(await allot(client, operator, owner_id, departure_id, 6), 409, "not_enough_seats")
    ok(await allot(client, operator, owner_id, departure_id, 3), 201)
    problem(await allot(client, operator, owner_id, departure_id, 1), 409, "allotment_exists")
    # Another agency's allotment is as taken as a booking.
    problem(await allot(client, operator, second_id, departure_id, 3), 409, "not_enough_seats")
    ok(await allot(client, operator, second_id, departure_id, 2), 201)
    assert await seats_left(client, route, departure_id) == 0

    # Nothing of the refused requests was kept.
    kept = await allotments(client, operator, owner_id)
    assert [(a["seats"], a["seat_class"]) for a in kept] == [(3, "standard")]
    assert [a["seats"] for a in await allotments(client, operator, second_id)] == [2]
    assert await Allotment.count().run() == 2

    # Another operator's agency or departure does not exist for this one.
    other = await make_operator("yy-train")
    other_agency, _ = await make_agency(client, other, name="Harbin Holidays")
    problem(await allot(client, operator, other_agency, departure_id, 1), 404, "agency_not_found")
    problem(await allot(client, other, owner_id, departure_id, 1), 404, "agency_not_found")
    problem(await allot(client, other, other_agency, departure_id, 1), 404, "departure_not_found")
    problem(await allot(client, operator, str(uuid4()), departure_id, 1), 404, "agency_not_found")
    assert await Allotment.count().run() == 2


async def small_departure_on(
    client: httpx.AsyncClient, operator: Account, route: dict[str, Any], days: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Another published departure of `route` on a new 8-seat bus, `days` from now."""
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "bus", "name": "Minibus 2", "code": "MB-2", "layout": small_bus(2)},
        headers=operator.headers,
    )
    vehicle = ok(response, 201)
    return route, await create_departure(client, operator.headers, route, vehicle, in_days(days))


async def test_staff_and_other_operators_cannot_touch_allotments(
    client: httpx.AsyncClient, operator: Account, make_operator: MakeOperator
) -> None:
    _route, departure = await small_departure(client, operator)
    owner_id, _owner = await make_agency(client, operator)
    created = ok(await allot(client, operator, owner_id, departure["id"], 2), 201)
    path = f"{AGENCIES}/{owner_id}/allotments/{created['id']}"

    staff = await make_operator("zz-bus", role="operator_staff")
    problem(await allot(client, staff, owner_id, departure["id"], 1), 403)
    problem(await client.patch(path, json={"seats": 3}, headers=staff.headers), 403)
    problem(await client.delete(path, headers=staff.headers), 403)

    other = await make_operator("yy-train")
    problem(
        await client.get(f"{AGENCIES}/{owner_id}/allotments", headers=other.headers),
        404,
        "agency_not_found",
    )
    problem(await client.patch(path, json={"seats": 3}, headers=other.headers), 404)
    problem(await client.delete(path, headers=other.headers), 404)
    # An allotment under another agency of the same operator is not found either.
    second_id, _ = await make_agency(client, operator, name="Xian Travel")
    wrong = f"{AGENCIES}/{second_id}/allotments/{created['id']}"
    problem(await client.patch(wrong, json={"seats": 3}, headers=operator.headers), 404)
    problem(await client.delete(wrong, headers=operator.headers), 404)

    assert await allotments(client, operator, owner_id) == [created]


# ---------------------------------------------------------------- change and end


async def test_patch_changes_seats_and_release_time_while_the_allotment_runs(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)  # 8 seats
    departure_id = departure["id"]
    owner_id, _owner = await make_agency(client, operator)
    created = ok(await allot(client, operator, owner_id, departure_id, 3), 201)
    path = f"{AGENCIES}/{owner_id}/allotments/{created['id']}"
    departs_at = parse(departure["departs_at"])
    await public_confirmed(client, departure_id, 4, "First Buyer")
    assert await seats_left(client, route, departure_id) == 1

    body = problem(
        await client.patch(path, json={"seats": 5}, headers=operator.headers),
        409,
        "not_enough_seats",
    )
    assert fields(body) == ["seats"]
    [listed] = await allotments(client, operator, owner_id)
    assert listed["seats"] == 3

    grown = ok(await client.patch(path, json={"seats": 4}, headers=operator.headers))
    assert (grown["seats"], grown["unused"]) == (4, 4)
    assert await seats_left(client, route, departure_id) == 0
    ok(await join_waitlist(client, departure_id, 2, "Waiting Wang"), 201)

    # Fewer seats: the freed ones go to the waiting list at once.
    shrunk = ok(await client.patch(path, json={"seats": 2}, headers=operator.headers))
    assert (shrunk["seats"], shrunk["unused"]) == (2, 2)
    [entry] = await WaitlistEntry.select().where(WaitlistEntry.departure == departure_id).run()
    assert entry["status"] == "offered"
    assert await seats_left(client, route, departure_id) == 0

    past = (clock.now() - timedelta(minutes=5)).isoformat()
    response = await client.patch(path, json={"release_at": past}, headers=operator.headers)
    body = problem(response, 400)
    assert fields(body) == ["release_at"]
    late = (departs_at + timedelta(hours=1)).isoformat()
    response = await client.patch(path, json={"release_at": late}, headers=operator.headers)
    body = problem(response, 400)
    assert fields(body) == ["release_at"]
    new_release = departs_at - timedelta(days=1)
    moved = ok(
        await client.patch(
            path, json={"release_at": new_release.isoformat()}, headers=operator.headers
        )
    )
    assert parse(moved["release_at"]) == new_release
    assert moved["seats"] == 2
    [listed] = await allotments(client, operator, owner_id)
    assert parse(listed["release_at"]) == new_release

    unknown = f"{AGENCIES}/{owner_id}/allotments/{uuid4()}"
    problem(await client.patch(unknown, json={"seats": 1}, headers=operator.headers), 404)

    with clock.frozen(new_release + timedelta(minutes=1)):
        operator = await relogin(client, operator)
        # Past its release time, before and after the job: no more changes.
        problem(
            await client.patch(path, json={"seats": 1}, headers=operator.headers),
            409,
            "allotment_released",
        )
        assert await release_due_allotments() == 1
        problem(
            await client.patch(path, json={"seats": 1}, headers=operator.headers),
            409,
            "allotment_released",
        )
        [listed] = await allotments(client, operator, owner_id)
        assert listed["seats"] == 2


async def test_delete_gives_the_seats_back_at_once(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await small_departure(client, operator)  # 8 seats
    departure_id = departure["id"]
    owner_id, owner = await make_agency(client, operator)
    created = ok(await allot(client, operator, owner_id, departure_id, 3), 201)
    path = f"{AGENCIES}/{owner_id}/allotments/{created['id']}"
    await public_confirmed(client, departure_id, 5, "First Buyer")
    assert await seats_left(client, route, departure_id) == 0
    ok(await join_waitlist(client, departure_id, 2, "Waiting Wang"), 201)

    response = await client.delete(path, headers=operator.headers)
    assert response.status_code in (200, 204), response.text
    assert await allotments(client, operator, owner_id) == []
    # Two of the three seats went to the waiting entry, one is on sale.
    [entry] = await WaitlistEntry.select().where(WaitlistEntry.departure == departure_id).run()
    assert entry["status"] == "offered"
    assert await seats_left(client, route, departure_id) == 1
    slot = await octo_slot(client, owner, route, departure_id)
    assert slot["vacancies"] == 1
    assert "allotment" not in slot
    ok(await public_hold(client, departure_id, 1, "Lucky Buyer"), 201)
    problem(await client.delete(path, headers=operator.headers), 404)


# ---------------------------------------------------------------- concurrency


async def test_concurrent_public_bookings_and_owner_holds_never_oversell(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """The public and the owning agency race for a 12-seat class with 4 seats allotted.

    Whatever the interleaving: no seat twice, the public never gets into the allotment
    (public + max(owner, 4) <= 12), the owner always gets its 4 (it asks for more, one at a
    time), and a refused single means the seats it could have had were gone."""
    capacity, allotted = 12, 4
    route, departure = await small_departure(client, operator, rows=3)
    departure_id = departure["id"]
    owner_id, owner = await make_agency(client, operator)
    _other_id, other = await make_agency(client, operator, name="Xian Travel")
    ok(await allot(client, operator, owner_id, departure_id, allotted), 201)
    sqlite = database.is_sqlite()
    rng = random.Random(20260412)
    public_parties = [rng.randint(1, 2) for _ in range(12 if sqlite else 40)] + [1, 1]
    owner_holds = 6 if sqlite else 10
    other_holds = 2 if sqlite else 4

    async def public(index: int, size: int) -> tuple[str, int, httpx.Response]:
        return "public", size, await public_hold(client, departure_id, size, f"Buyer {index}")

    async def agency(
        who: str, headers: dict[str, str], index: int
    ) -> tuple[str, int, httpx.Response]:
        return who, 1, await octo_hold(client, headers, route, departure_id, 1, f"{who}-{index}")

    calls = [public(i, size) for i, size in enumerate(public_parties)]
    calls += [agency("owner", owner, i) for i in range(owner_holds)]
    calls += [agency("other", other, i) for i in range(other_holds)]
    rng.shuffle(calls)
    results = await asyncio.gather(*calls)

    errors = [(who, r.status_code, r.text[:200]) for who, _n, r in results if r.status_code >= 500]
    assert errors == [], errors
    won: dict[str, list[str]] = {"public": [], "owner": [], "other": []}
    refused_singles: dict[str, int] = Counter()
    for who, size, response in results:
        if who == "public":
            if response.status_code == 201:
                won[who].append(response.json()["booking"]["reference"])
                assert len(response.json()["booking"]["lines"]) == size
                continue
            problem(response, 409)
            assert response.json()["code"] in SOLD_OUT_CODES, response.text
        else:
            if response.status_code == 200:
                assert response.json()["status"] == "ON_HOLD"
                won[who].append(response.json()["supplierReference"])
                continue
            octo_refused(response, SOLD_OUT_CODES)
        if size == 1:
            refused_singles[who] += 1

    lines = await live_lines(departure_id)
    no_seat_twice(lines)
    seats = Counter(
        "public"
        if line["agency"] is None
        else "owner"
        if str(line["agency"]) == owner_id
        else "other"
        for line in lines
    )
    public_seats, owner_seats, other_seats = seats["public"], seats["owner"], seats["other"]
    general = public_seats + other_seats
    print(f"\nrush: public {public_seats}, owner {owner_seats}, other agency {other_seats} seats")
    # All or none: every seat belongs to an answered booking, and nothing else was kept.
    assert {line["reference"] for line in lines} == {ref for refs in won.values() for ref in refs}
    assert await Booking.count().where(Booking.departure == departure_id).run() == sum(
        len(refs) for refs in won.values()
    )
    assert public_seats == sum(
        len(r.json()["booking"]["lines"])
        for who, _n, r in results
        if who == "public" and r.status_code == 201
    )
    assert owner_seats == len(won["owner"])
    assert other_seats == len(won["other"])

    assert public_seats + owner_seats + other_seats <= capacity
    assert general + max(owner_seats, allotted) <= capacity, seats
    assert owner_seats >= min(allotted, owner_holds), seats
    if refused_singles["owner"]:
        assert public_seats + owner_seats + other_seats == capacity, seats
    if refused_singles["public"] or refused_singles["other"]:
        assert general + max(owner_seats, allotted) == capacity, seats

    # The views agree with the rows.
    unused = max(0, allotted - owner_seats)
    [listed] = await allotments(client, operator, owner_id)
    assert (listed["used"], listed["unused"]) == (owner_seats, unused)
    assert await seats_left(client, route, departure_id) == capacity - len(lines) - unused
    assert (await octo_slot(client, owner, route, departure_id))["vacancies"] == (
        capacity - len(lines)
    )
    assert (await octo_slot(client, other, route, departure_id))["vacancies"] == (
        capacity - len(lines) - unused
    )
