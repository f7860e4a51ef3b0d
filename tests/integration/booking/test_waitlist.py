"""The waiting list of a sold-out departure: joining, offers when seats free up, offers that
run out and move on, and a cancelled departure withdrawing the list."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.booking.rows import BookingRow
from app.booking.services.expiry import expire_all_overdue
from app.booking.services.state import transition
from app.booking.services.waitlist import OFFER_MINUTES
from app.booking.tables import Booking, BookingLine, BookingStatus, WaitlistEntry
from app.core import clock
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.core.settings import get_settings
from app.core.tables import OutboxMessage
from app.notifications.services.sending import send_due_notifications
from app.notifications.tables import Notification
from tests.conftest import Account, Mailbox
from tests.factories import create_departure, create_route, in_days, set_route_fares

BOOKINGS = "/api/v1/bookings"
# One row of four seats (1A-1D), all of class "standard": easy to sell out.
SMALL_BUS = {"type": "bus", "rows": 1, "seat_letters": "ABCD"}


# ---------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def contact(name: str) -> dict[str, str]:
    slug = name.lower().replace(" ", ".")
    return {"name": name, "email": f"{slug}@example.com", "phone": "+86 138 0000 0000"}


async def small_departures(
    client: httpx.AsyncClient, operator: Account, days: tuple[float, ...] = (10,)
) -> list[dict[str, Any]]:
    """Published departures of one route, `days` from now, on a four-seat bus."""
    route = await create_route(client, operator.headers)
    await set_route_fares(client, operator.headers, route["id"], ["standard"])
    response = await client.post(
        "/api/v1/operator/vehicles",
        json={"kind": "bus", "name": "Minibus", "code": "MB-4", "layout": SMALL_BUS},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    return [
        await create_departure(client, operator.headers, route, response.json(), in_days(day))
        for day in days
    ]


async def small_departure(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A published departure of a four-seat bus."""
    return (await small_departures(client, operator))[0]


async def hold(
    client: httpx.AsyncClient, departure_id: str, count: int, who: str = "Zhang Wei"
) -> dict[str, Any]:
    """Hold `count` standard seats; returns {access_token, booking}."""
    response = await client.post(
        BOOKINGS,
        json={
            "departure_id": departure_id,
            "counts": [{"seat_class": "standard", "count": count}],
            "contact": contact(who),
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def confirm(reference: str) -> None:
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )


async def sell_out(client: httpx.AsyncClient, departure_id: str) -> tuple[dict, dict]:
    """Two confirmed bookings of two seats each: the bus is full."""
    first = await hold(client, departure_id, 2, "First Buyer")
    second = await hold(client, departure_id, 2, "Second Buyer")
    await confirm(first["booking"]["reference"])
    await confirm(second["booking"]["reference"])
    return first, second


async def join(
    client: httpx.AsyncClient, departure_id: str, party: int, who: str, seat_class: str = "standard"
) -> httpx.Response:
    return await client.post(
        f"/api/v1/departures/{departure_id}/waitlist",
        json={"seat_class": seat_class, "party_size": party, "contact": contact(who)},
    )


async def joined(client: httpx.AsyncClient, departure_id: str, party: int, who: str) -> dict:
    response = await join(client, departure_id, party, who)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def cancel(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    response = await client.post(
        f"{BOOKINGS}/{created['booking']['reference']}/cancel",
        headers={"X-Booking-Token": created["access_token"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["booking"]["status"] == "cancelled"


async def entries(departure_id: str) -> dict[str, dict[str, Any]]:
    """Waiting-list rows of the departure by contact name."""
    rows = await WaitlistEntry.select().where(WaitlistEntry.departure == departure_id).run()
    return {row["contact_name"]: row for row in rows}


async def offers() -> list[dict[str, Any]]:
    return list(
        await OutboxMessage.select()
        .where(OutboxMessage.kind == "waitlist.offer")
        .output(load_json=True)
        .run()
    )


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


# ---------------------------------------------------------------- joining


async def test_join_is_refused_while_enough_seats_are_free(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    problem(await join(client, departure["id"], 2, "Early Bird"), 409, "seats_available")
    problem(await join(client, departure["id"], 4, "Early Bird"), 409, "seats_available")
    await hold(client, departure["id"], 3)
    # One seat left: a party of one books it, a party of two may wait.
    problem(await join(client, departure["id"], 1, "Solo"), 409, "seats_available")
    entry = await joined(client, departure["id"], 2, "Pair")
    assert entry["status"] == "waiting"
    assert entry["position"] == 1
    assert list(await entries(departure["id"])) == ["Pair"]


async def test_join_a_sold_out_class_queues_in_order(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    await sell_out(client, departure["id"])
    positions = []
    for index, who in enumerate(["Ann", "Bo", "Cai"], start=1):
        entry = await joined(client, departure["id"], index, who)
        assert entry["departure_id"] == departure["id"]
        assert entry["seat_class"] == "standard"
        assert entry["party_size"] == index
        assert entry["status"] == "waiting"
        positions.append(entry["position"])
    assert positions == [1, 2, 3]
    rows = await entries(departure["id"])
    assert {name: row["status"] for name, row in rows.items()} == {
        "Ann": "waiting",
        "Bo": "waiting",
        "Cai": "waiting",
    }
    assert rows["Bo"]["contact_email"] == "bo@example.com"


async def test_join_an_unknown_seat_class_is_409(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    await sell_out(client, departure["id"])
    problem(
        await join(client, departure["id"], 1, "Lost", seat_class="soft_sleeper"),
        409,
        "unknown_seat_class",
    )
    assert await entries(departure["id"]) == {}


# ---------------------------------------------------------------- offers


async def test_cancellation_offers_the_seats_to_the_first_entry_that_fits(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    _first, second = await sell_out(client, departure["id"])
    await joined(client, departure["id"], 3, "Big Family")  # too big for two freed seats
    await joined(client, departure["id"], 2, "Couple")
    await joined(client, departure["id"], 1, "Loner")

    start = clock.now()
    with clock.frozen(start):
        await cancel(client, second)

    rows = await entries(departure["id"])
    assert rows["Big Family"]["status"] == "waiting"
    assert rows["Couple"]["status"] == "offered"
    # The couple took both freed seats: nothing is left for the loner.
    assert rows["Loner"]["status"] == "waiting"
    assert rows["Big Family"]["offered_booking"] is None
    offer_id = rows["Couple"]["offered_booking"]
    assert offer_id is not None

    booking = await Booking.select().where(Booking.id == offer_id).first().run()
    assert booking is not None
    assert booking["channel"] == "waitlist"
    assert booking["status"] == "on_hold"
    assert booking["contact_email"] == "couple@example.com"
    lines = await BookingLine.select().where(BookingLine.booking == offer_id).run()
    assert len(lines) == 2
    assert {line["seat_class"] for line in lines} == {"standard"}
    assert all(line["live"] for line in lines)

    messages = await offers()
    assert len(messages) == 1
    payload = messages[0]["payload"]
    assert payload["reference"] == booking["reference"]
    assert payload["entry_id"] == str(rows["Couple"]["id"])
    assert payload["email"] == "couple@example.com"
    assert messages[0]["key"] == f"waitlist.offer:{rows['Couple']['id']}"

    # The token in the message opens the offer; anything else does not.
    opened = await client.get(
        f"{BOOKINGS}/{payload['reference']}", headers={"X-Booking-Token": payload["access_token"]}
    )
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert body["status"] == "on_hold"
    assert len(body["lines"]) == 2
    assert body["contact"]["email"] == "couple@example.com"
    assert parse(body["expires_at"]) == start + timedelta(minutes=OFFER_MINUTES)
    assert parse(payload["expires_at"]) == start + timedelta(minutes=OFFER_MINUTES)
    wrong = await client.get(
        f"{BOOKINGS}/{payload['reference']}", headers={"X-Booking-Token": "not-the-token"}
    )
    problem(wrong, 404, "booking_not_found")

    # Offered entries no longer count as waiting ahead of newcomers.
    latecomer = await joined(client, departure["id"], 1, "Latecomer")
    assert latecomer["position"] == 3


async def test_the_offer_mail_links_to_the_held_booking_and_no_copy_of_its_token_stays(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await small_departure(client, operator)
    _first, second = await sell_out(client, departure["id"])
    await joined(client, departure["id"], 2, "Couple")
    await cancel(client, second)
    [message] = await offers()
    token = message["payload"]["access_token"]

    await dispatch_outbox()
    [handed_on] = await offers()
    assert "access_token" not in handed_on["payload"]
    assert handed_on["payload"]["reference"] == message["payload"]["reference"]
    assert await send_due_notifications() >= 1
    reference = message["payload"]["reference"]
    [mail] = [m for m in mailbox.to("couple@example.com") if reference in str(m["Subject"])]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    link = f"{get_settings().public_url}/bookings/{message['payload']['reference']}?token={token}"
    assert link in body
    rows = (
        await Notification.select(Notification.payload)
        .where(Notification.kind == "waitlist.offer")
        .output(load_json=True)
    )
    assert [("access_token" in (row["payload"] or {})) for row in rows] == [False]


async def test_a_smaller_later_entry_gets_seats_a_big_party_cannot_use(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    single = await hold(client, departure["id"], 1, "Single")
    triple = await hold(client, departure["id"], 3, "Triple")
    await confirm(single["booking"]["reference"])
    await confirm(triple["booking"]["reference"])
    await joined(client, departure["id"], 2, "Pair")
    await joined(client, departure["id"], 1, "One")

    await cancel(client, single)

    rows = await entries(departure["id"])
    assert rows["Pair"]["status"] == "waiting"
    assert rows["One"]["status"] == "offered"
    offer = await Booking.select().where(Booking.id == rows["One"]["offered_booking"]).first().run()
    assert offer is not None
    assert await BookingLine.count().where(BookingLine.booking == offer["id"]).run() == 1
    assert [m["payload"]["reference"] for m in await offers()] == [offer["reference"]]


async def test_an_offer_that_runs_out_moves_to_the_next_entry(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    _first, second = await sell_out(client, departure["id"])
    await joined(client, departure["id"], 2, "Slow Pair")
    await joined(client, departure["id"], 2, "Next Pair")
    start = clock.now()
    with clock.frozen(start):
        await cancel(client, second)
    rows = await entries(departure["id"])
    first_offer = rows["Slow Pair"]["offered_booking"]
    assert rows["Slow Pair"]["status"] == "offered"
    assert rows["Next Pair"]["status"] == "waiting"

    # Still within the offer's hour nothing moves.
    with clock.frozen(start + timedelta(minutes=OFFER_MINUTES - 1)):
        assert await expire_all_overdue() == 0
    assert (await entries(departure["id"]))["Slow Pair"]["status"] == "offered"

    later = start + timedelta(minutes=OFFER_MINUTES + 1)
    with clock.frozen(later):
        assert await expire_all_overdue() == 1
        # A second sweep finds nothing more to do.
        assert await expire_all_overdue() == 0

    rows = await entries(departure["id"])
    assert rows["Slow Pair"]["status"] == "expired"
    assert rows["Next Pair"]["status"] == "offered"
    second_offer = rows["Next Pair"]["offered_booking"]
    assert second_offer not in (None, first_offer)
    old = await Booking.select().where(Booking.id == first_offer).first().run()
    new = await Booking.select().where(Booking.id == second_offer).first().run()
    assert old is not None
    assert new is not None
    assert old["status"] == "expired"
    assert new["status"] == "on_hold"
    assert new["channel"] == "waitlist"
    assert new["contact_email"] == "next.pair@example.com"

    messages = {m["payload"]["reference"]: m["payload"] for m in await offers()}
    assert set(messages) == {old["reference"], new["reference"]}
    payload = messages[new["reference"]]
    opened = await client.get(
        f"{BOOKINGS}/{new['reference']}", headers={"X-Booking-Token": payload["access_token"]}
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["status"] == "on_hold"
    assert parse(opened.json()["expires_at"]) == later + timedelta(minutes=OFFER_MINUTES)
    # The run-out offer's seats went to the next pair, not back on sale.
    seats = (await client.get(f"/api/v1/departures/{departure['id']}")).json()
    assert seats["seats_left"] == 0


async def test_seats_of_a_run_out_offer_go_to_the_list_before_a_newcomer_joins(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """Joining the list expires run-out holds; their seats must still be offered in order."""
    departure = await small_departure(client, operator)
    _first, second = await sell_out(client, departure["id"])
    await joined(client, departure["id"], 2, "Slow Pair")
    await joined(client, departure["id"], 2, "Next Pair")
    start = clock.now()
    with clock.frozen(start):
        await cancel(client, second)
    with clock.frozen(start + timedelta(minutes=OFFER_MINUTES + 1)):
        trio = await joined(client, departure["id"], 3, "Trio")
    rows = await entries(departure["id"])
    assert rows["Slow Pair"]["status"] == "expired"
    assert rows["Next Pair"]["status"] == "offered"
    assert rows["Trio"]["status"] == "waiting"
    assert trio["position"] == 1
    assert len(await offers()) == 2


async def test_seats_of_a_run_out_offer_go_to_the_list_before_a_rebooking(
    client: httpx.AsyncClient, operator: Account
) -> None:
    """A rebooking onto the departure must not jump the queue for seats of a run-out offer."""
    full, other = await small_departures(client, operator, days=(10, 11))
    _first, second = await sell_out(client, full["id"])
    await joined(client, full["id"], 2, "Slow Pair")
    await joined(client, full["id"], 2, "Next Pair")
    mover = await hold(client, other["id"], 2, "Mover")
    await confirm(mover["booking"]["reference"])
    start = clock.now()
    with clock.frozen(start):
        await cancel(client, second)
    with clock.frozen(start + timedelta(minutes=OFFER_MINUTES + 1)):
        response = await client.post(
            f"{BOOKINGS}/{mover['booking']['reference']}/rebook",
            json={"departure_id": full["id"]},
            headers={"X-Booking-Token": mover["access_token"]},
        )
        # The seats went to the next pair on the list, so the rebooking finds none.
        problem(response, 409, "sold_out")
        assert await expire_all_overdue() == 1
    rows = await entries(full["id"])
    assert rows["Slow Pair"]["status"] == "expired"
    assert rows["Next Pair"]["status"] == "offered"
    moved = (
        await Booking.select()
        .where(Booking.reference == mover["booking"]["reference"])
        .first()
        .run()
    )
    assert moved is not None
    assert str(moved["departure"]) == other["id"]


async def test_cancelling_the_departure_withdraws_the_list(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    _first, second = await sell_out(client, departure["id"])
    await joined(client, departure["id"], 2, "Offered Pair")
    await joined(client, departure["id"], 1, "Waiting One")
    await joined(client, departure["id"], 2, "Waiting Two")
    await cancel(client, second)
    rows = await entries(departure["id"])
    assert rows["Offered Pair"]["status"] == "offered"

    response = await client.post(
        f"/api/v1/operator/departures/{departure['id']}/cancel", headers=operator.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["departure"]["status"] == "cancelled"

    rows = await entries(departure["id"])
    assert rows["Waiting One"]["status"] == "withdrawn"
    assert rows["Waiting Two"]["status"] == "withdrawn"
    # The offer died with the departure: its hold is cancelled, the entry is not left "offered".
    offer = (
        await Booking.select()
        .where(Booking.id == rows["Offered Pair"]["offered_booking"])
        .first()
        .run()
    )
    assert offer is not None
    assert offer["status"] == "cancelled"
    assert rows["Offered Pair"]["status"] == "withdrawn"
    problem(await join(client, departure["id"], 1, "Too Late"), 409, "departure_cancelled")
