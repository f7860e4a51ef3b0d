"""A lost booking link: the reference and the contact email get a fresh link by mail; the
page answers the same whether anything matched, and the old link stops working."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.core.settings import get_settings
from app.notifications.services.sending import send_due_notifications
from app.notifications.tables import Notification
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure

EMAIL = "mei.lin@example.com"
SENT = "a fresh link to it is on its way"


async def hold(client: httpx.AsyncClient, departure_id: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure_id,
            "counts": [{"seat_class": "standard", "count": 1}],
            "contact": {"name": "Mei Lin", "email": EMAIL, "phone": "+86 138 0013 8000",
                        "locale": "en"},
            "passengers": [{"name": "Mei Lin"}],
        },
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def find(client: httpx.AsyncClient, reference: str, email: str) -> httpx.Response:
    return await client.post("/find-booking?lang=en", data={"reference": reference, "email": email})


def mailed_link(message: Any) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/bookings/\w+\?token=[\w-]+&lang=\w+", body)
    assert found, body
    return found.group(0)


async def test_the_contact_gets_a_fresh_link_and_the_old_one_stops_working(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    created = await hold(client, departure["id"])
    reference, old_token = created["booking"]["reference"], created["access_token"]

    # Any case and spacing of the email and reference.
    answer = await find(client, reference.lower(), f"  {EMAIL.upper()} ")
    assert answer.status_code == 200
    assert SENT in answer.text
    assert await send_due_notifications() == 1
    [message] = mailbox.to(EMAIL)
    assert str(message["Subject"]) == f"Your link to booking {reference}"
    link = mailed_link(message)
    assert link.startswith(get_settings().public_url + f"/bookings/{reference}?token=")

    page = await client.get(link.removeprefix(get_settings().public_url))
    assert page.status_code == 200
    assert f"Booking {reference}" in page.text
    old = await client.get(f"/bookings/{reference}", params={"token": old_token})
    assert old.status_code == 404
    api_old = await client.get(
        f"/api/v1/bookings/{reference}", headers={"X-Booking-Token": old_token}
    )
    assert api_old.status_code == 404

    # Once sent, the token is not kept in the clear with the notification.
    [row] = (
        await Notification.select(Notification.payload, Notification.status)
        .where(Notification.kind == "booking.link")
        .output(load_json=True)
    )
    assert row["status"] == "sent"
    assert "access_token" not in (row["payload"] or {})


async def test_a_wrong_email_or_reference_gets_the_same_answer_and_nothing_changes(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    created = await hold(client, departure["id"])
    reference = created["booking"]["reference"]
    before = await Booking.select(Booking.token_hash).where(Booking.reference == reference)

    for wrong_reference, email in ((reference, "someone.else@example.com"), ("ZZZZZZZZ", EMAIL)):
        answer = await find(client, wrong_reference, email)
        assert answer.status_code == 200
        assert SENT in answer.text
    assert await send_due_notifications() == 0
    assert mailbox.messages == []
    assert await Booking.select(Booking.token_hash).where(Booking.reference == reference) == before
    still = await client.get(f"/bookings/{reference}", params={"token": created["access_token"]})
    assert still.status_code == 200


async def test_missing_fields_are_named_and_nothing_is_sent(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    answer = await client.post("/find-booking?lang=en", data={"reference": "", "email": ""})
    assert answer.status_code == 400
    assert 'href="#reference"' in answer.text
    assert 'href="#email"' in answer.text
    assert SENT not in answer.text
    too_long = await find(client, "A" * 13, EMAIL)
    assert too_long.status_code == 400
    assert "8 letters and digits" in too_long.text
    assert await send_due_notifications() == 0


async def test_links_are_mailed_at_most_three_times_an_hour_per_booking(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    reference = (await hold(client, departure["id"]))["booking"]["reference"]
    for _ in range(5):
        assert (await find(client, reference, EMAIL)).status_code == 200
    assert await send_due_notifications() == 3
    assert len(mailbox.to(EMAIL)) == 3
    # Only the last link mailed opens the booking.
    links = [mailed_link(m) for m in mailbox.to(EMAIL)]
    base = get_settings().public_url
    opened = [(await client.get(link.removeprefix(base))).status_code for link in links]
    assert sorted(opened) == [200, 404, 404]


async def test_the_confirmation_mail_says_where_to_find_a_lost_link(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    reference = (await hold(client, departure["id"]))["booking"]["reference"]
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    await dispatch_outbox()
    await send_due_notifications()
    [message] = [m for m in mailbox.to(EMAIL) if "confirmed" in str(m["Subject"])]
    body = message.get_body(preferencelist=("plain",)).get_content()
    expected = f"{get_settings().public_url}/find-booking?reference={reference}&lang=en"
    assert expected in body
    form = await client.get(expected.removeprefix(get_settings().public_url))
    assert form.status_code == 200
    assert f'value="{reference}"' in form.text


async def test_a_link_that_cannot_be_sent_does_not_keep_the_token_either(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    from app.notifications.services.common import notify

    # A message about a booking that is gone fails for good at once.
    await notify(
        "booking.link:gone", "booking.link", EMAIL, "en", booking=None,
        payload={"access_token": "secret-token-value"},
    )  # fmt: skip
    assert await send_due_notifications() == 0
    [row] = await Notification.select(Notification.payload, Notification.status).output(
        load_json=True
    )
    assert row["status"] == "failed"
    assert row["payload"] == {}
    assert mailbox.messages == []
