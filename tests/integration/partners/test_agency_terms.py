"""Bookings an agency made stay under the agency's terms: the booking remembers its
channel and agency; its traveller (who can get a guest link through /find-booking) may
look at it, download its calendar file and learn which agency to ask, but never change,
cancel, move or pay for it, in the API or on the pages (which offer none of it)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import httpx

from app.booking.tables import Booking, BookingChannel, BookingStatus
from app.notifications.services.sending import send_due_notifications
from app.payments.tables import Payment, Refund
from tests.assertions import ok, problem
from tests.conftest import Account, Mailbox
from tests.integration.partners.test_agency_money import (
    COMMISSION_BP,
    agency,
    booking_row,
    bus_line,
    confirm,
    hold,
)

BOOKINGS = "/api/v1/bookings"
TRAVELLER = "wang.fang@example.cn"
LEAD = {"contact": {"fullName": "Wang Fang", "emailAddress": TRAVELLER}}
AGENCY_PHONE = "+86 10 6512 3456"


async def traveller_token(
    client: httpx.AsyncClient, mailbox: Mailbox, reference: str, email: str = TRAVELLER
) -> str:
    """The guest token the traveller gets by asking /find-booking for a fresh link."""
    mailbox.messages.clear()
    answer = await client.post(
        "/find-booking?lang=en", data={"reference": reference, "email": email}
    )
    assert answer.status_code == 200, answer.text
    assert await send_due_notifications() == 1
    [message] = mailbox.to(email)
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"/bookings/\w+\?token=([\w-]+)", body)
    assert found, body
    return found.group(1)


async def agency_booking(
    client: httpx.AsyncClient, operator: Account, uuid: str, *, confirmed: bool = True
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """An on-account agency's booking of one adult with the traveller as lead contact:
    (agency id, its OCTO headers, the booking row)."""
    route, departure = await bus_line(client, operator, slug=f"line-{uuid}")
    agency_id, headers = await agency(
        client, operator, name="Silk Road Travel", commission_bp=COMMISSION_BP,
        credit_limit=100_000, contact_phone=AGENCY_PHONE,
    )  # fmt: skip
    await hold(client, headers, route, departure, uuid, ["adult"])
    if confirmed:
        await confirm(client, headers, uuid, **LEAD)
    else:
        # The traveller's address, as a prepaying agency's payment request records it; the
        # hold is left for the agency to pay or confirm.
        await record_lead(uuid)
    return agency_id, headers, await booking_row(uuid)


async def record_lead(uuid: str) -> None:
    await (
        Booking.update({Booking.contact_email: TRAVELLER, Booking.contact_name: "Wang Fang"})
        .where(Booking.partner_uuid == uuid)
        .run()
    )


def refused(response: httpx.Response, status: int = 403) -> dict[str, Any]:
    body = problem(response, status, "agency_booking")
    assert "Silk Road Travel" in body["detail"], body
    assert "ops@bjtours.example" in body["detail"], body
    return body


# ---------------------------------------------------------------- the channel


async def test_an_octo_hold_remembers_its_channel_and_agency(
    client: httpx.AsyncClient, operator: Account
) -> None:
    agency_id, _headers, row = await agency_booking(client, operator, "ch-1", confirmed=False)
    assert row["channel"] == BookingChannel.agency
    assert row["agency"] == UUID(agency_id)
    assert row["partner_uuid"] == "ch-1"


# ---------------------------------------------------------------- the traveller's API


async def test_the_traveller_sees_the_booking_and_its_agency_but_cannot_change_it(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _agency_id, headers, row = await agency_booking(client, operator, "tr-1")
    reference = row["reference"]
    token = await traveller_token(client, mailbox, reference)
    guest = {"X-Booking-Token": token}

    seen = ok(await client.get(f"{BOOKINGS}/{reference}", headers=guest))
    assert seen["status"] == "confirmed"
    assert seen["agency"] == {
        "name": "Silk Road Travel", "email": "ops@bjtours.example", "phone": AGENCY_PHONE,
    }  # fmt: skip
    # The retail price, never the agency's net (its commission is not the traveller's to see).
    assert row["retail_amount"] > row["total_amount"]
    assert seen["total"]["amount"] == row["retail_amount"]
    assert [line["price"]["amount"] for line in seen["lines"]] == [row["retail_amount"]]
    assert (seen["refund"], seen["balance_due"]) == (None, None)
    calendar = await client.get(f"{BOOKINGS}/{reference}/calendar", headers=guest)
    assert calendar.status_code == 200
    assert calendar.headers["content-type"].startswith("text/calendar")

    refused(await client.get(f"{BOOKINGS}/{reference}/cancellation", headers=guest))
    refused(await client.post(f"{BOOKINGS}/{reference}/cancel", headers=guest))
    other = await bus_line(client, operator, slug="tr-1-other")
    refused(
        await client.post(
            f"{BOOKINGS}/{reference}/rebook", json={"departure_id": other[1]["id"]}, headers=guest
        )
    )
    refused(
        await client.patch(
            f"{BOOKINGS}/{reference}",
            json={"passengers": [{"name": "Someone Else"}]},
            headers=guest,
        )
    )
    # Nothing changed: still the agency's confirmed booking at its net price.
    after = await booking_row("tr-1")
    assert after["status"] == BookingStatus.confirmed
    assert (after["departure"], after["total_amount"]) == (row["departure"], row["total_amount"])
    assert await Refund.count().where(Refund.booking == row["id"]).run() == 0
    assert ok(await client.get("/octo/bookings/tr-1", headers=headers))["status"] == "CONFIRMED"


async def test_the_traveller_cannot_pay_or_fill_in_an_agency_hold(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox, stripe_server: str
) -> None:
    _agency_id, _headers, row = await agency_booking(client, operator, "tr-2", confirmed=False)
    reference = row["reference"]
    token = await traveller_token(client, mailbox, reference)
    guest = {"X-Booking-Token": token}
    refused(await client.post(f"{BOOKINGS}/{reference}/payments", headers=guest))
    refused(
        await client.patch(
            f"{BOOKINGS}/{reference}",
            json={"contact": {"name": "Wang Fang", "email": "me@example.cn",
                              "phone": "+86 138 0000 0000"}},
            headers=guest,
        )
    )  # fmt: skip
    assert await Payment.count().where(Payment.booking == row["id"]).run() == 0
    assert (await booking_row("tr-2"))["contact_email"] == TRAVELLER


# ---------------------------------------------------------------- the traveller's pages


async def test_the_booking_page_names_the_agency_and_offers_no_change(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _agency_id, _headers, row = await agency_booking(client, operator, "pg-1")
    reference = row["reference"]
    token = await traveller_token(client, mailbox, reference)

    page = await client.get(f"/bookings/{reference}", params={"token": token, "lang": "en"})
    assert page.status_code == 200
    assert "Booked through Silk Road Travel" in page.text
    assert "mailto:ops@bjtours.example" in page.text
    assert AGENCY_PHONE in page.text
    assert "/calendar.ics" in page.text
    for offered in ("/cancel", "/rebook", "/pay", "/details"):
        assert f"/bookings/{reference}{offered}" not in page.text, offered

    query = {"token": token, "lang": "en"}
    for path in ("/cancel", "/rebook"):
        answer = await client.get(f"/bookings/{reference}{path}", params=query)
        assert answer.status_code == 403, (path, answer.text)
        assert "Silk Road Travel" in answer.text
    form = {"token": token, "reason": "changed my mind"}
    cancelled = await client.post(f"/bookings/{reference}/cancel?lang=en", data=form)
    assert cancelled.status_code == 403
    assert "Silk Road Travel" in cancelled.text
    other = await bus_line(client, operator, slug="pg-1-other")
    moved = await client.post(
        f"/bookings/{reference}/rebook?lang=en",
        data={"token": token, "departure_id": other[1]["id"]},
    )
    assert moved.status_code == 403
    assert "Silk Road Travel" in moved.text
    ics = await client.get(f"/bookings/{reference}/calendar.ics", params={"token": token})
    assert ics.status_code == 200
    after = await booking_row("pg-1")
    assert (after["status"], after["departure"]) == (BookingStatus.confirmed, row["departure"])


async def test_the_pages_of_an_agency_hold_offer_neither_details_nor_payment(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _agency_id, _headers, row = await agency_booking(client, operator, "pg-2", confirmed=False)
    reference = row["reference"]
    token = await traveller_token(client, mailbox, reference)
    query = {"token": token, "lang": "en"}
    page = await client.get(f"/bookings/{reference}", params=query)
    assert page.status_code == 200
    assert "Booked through Silk Road Travel" in page.text
    assert 'name="contact.email"' not in page.text
    assert f"/bookings/{reference}/pay" not in page.text
    assert f"/bookings/{reference}/cancel" not in page.text

    pay = await client.get(f"/bookings/{reference}/pay", params=query)
    assert pay.status_code == 403
    assert "Silk Road Travel" in pay.text
    details = await client.post(
        f"/bookings/{reference}/details?lang=en",
        data={"token": token, "passengers[0].name": "Someone Else", "contact.name": "X",
              "contact.email": "x@example.cn", "contact.phone": "+86 138 0000 0000"},
    )  # fmt: skip
    assert details.status_code == 403
    assert "Silk Road Travel" in details.text
    assert (await booking_row("pg-2"))["contact_email"] == TRAVELLER


async def test_the_chinese_pages_say_whom_to_ask_in_chinese(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    _agency_id, _headers, row = await agency_booking(client, operator, "pg-3")
    token = await traveller_token(client, mailbox, row["reference"])
    answer = await client.get(
        f"/bookings/{row['reference']}/cancel", params={"token": token, "lang": "zh-Hans"}
    )
    assert answer.status_code == 403
    assert "Silk Road Travel" in answer.text
    assert "请联系" in answer.text
    api = await client.get(
        f"{BOOKINGS}/{row['reference']}/cancellation",
        headers={"X-Booking-Token": token, "Accept-Language": "zh-Hans"},
    )
    assert "请联系" in refused(api)["detail"]
