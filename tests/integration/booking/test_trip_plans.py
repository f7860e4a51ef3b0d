"""What a traveller and an operator see of the day plans and the crew once a trip is booked:
the booking (API and page) day by day on its dates, the `.ics` with one event per day, the
reminder before departure with the steward's and the doctor's phones in the traveller's
language, the manifest's crew (JSON, CSV, page) and the OCTO product's days."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.notifications.services.reminders import queue_reminders
from app.notifications.services.sending import send_due_notifications
from tests.assertions import ok
from tests.conftest import Account, Mailbox
from tests.factories import create_departure, create_route, create_vehicle, in_days, set_route_fares
from tests.integration.catalogue.test_day_plans_and_crew import CREW, three_days

ZONE = ZoneInfo("Asia/Shanghai")
DEPARTURES = "/api/v1/operator/departures"


async def planned_trip(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    """A published three-day train departure with day plans and a crew, 20 days ahead."""
    route = await create_route(
        client, operator.headers, slug="xinjiang-train", kind="train", duration_days=3
    )
    response = await client.put(
        f"/api/v1/operator/routes/{route['id']}/itinerary",
        json=three_days(),
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    vehicle = await create_vehicle(client, operator.headers, "train")
    await set_route_fares(client, operator.headers, route["id"], ["soft_sleeper", "hard_sleeper"])
    departure = await create_departure(client, operator.headers, route, vehicle, in_days(20))
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/crew", json={"members": CREW}, headers=operator.headers
        )
    )
    return departure


async def booked(
    client: httpx.AsyncClient, departure: dict[str, Any], locale: str, email: str
) -> dict[str, Any]:
    """A confirmed booking of one soft-sleeper berth; its `reference` and `access_token`."""
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure["id"],
            "counts": [{"seat_class": "soft_sleeper", "count": 1}],
            "contact": {"name": "Li Na", "email": email, "phone": "+86 138 0013 8000",
                        "locale": locale},
            "passengers": [{"name": "Li Na"}],
        },
    )  # fmt: skip
    assert response.status_code == 201, response.text
    created = response.json()
    # The answer that holds the seats leaves the trip's days out.
    assert created["booking"]["itinerary"] is None
    async with write_transaction():
        row = (
            await Booking.select()
            .where(Booking.reference == created["booking"]["reference"])
            .first()
            .run()
        )
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    return {"reference": created["booking"]["reference"], "token": created["access_token"]}


def events_of(body: bytes | str) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(body)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


# ---------------------------------------------------------------- the booking


async def test_the_booking_shows_each_day_on_its_date(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    booking = await booked(client, departure, "en", "li@example.com")
    body = ok(
        await client.get(
            f"/api/v1/bookings/{booking['reference']}?include=itinerary",
            headers={"X-Booking-Token": booking["token"], "Accept-Language": "en"},
        )
    )
    first_day = datetime.fromisoformat(departure["departs_at"]).astimezone(ZONE).date()
    days = body["itinerary"]
    assert [day["date"] for day in days] == [
        (first_day + timedelta(days=n)).isoformat() for n in range(3)
    ]
    assert days[0]["title"] == "Tianshan Heavenly Lake"
    assert days[0]["overnight"] == "train"
    assert days[0]["meals"] == ["lunch", "dinner"]
    assert datetime.fromisoformat(days[0]["back_on_board_at"]) == datetime.combine(
        first_day, datetime.min.time().replace(hour=19, minute=30), tzinfo=ZONE
    )
    assert days[0]["stops"][0]["place"] == "Heavenly Lake"
    assert days[1]["overnight"]["name"] == "Kanas Lodge"
    assert days[1]["back_on_board_at"] is None
    assert days[2]["overnight"] is None

    page = await client.get(
        f"/bookings/{booking['reference']}", params={"token": booking["token"], "lang": "en"}
    )
    assert page.status_code == 200, page.text
    assert "Your trip day by day" in page.text
    assert "Kanas Lodge" in page.text
    assert "Back on board by" in page.text
    assert "19:30" in page.text
    chinese = await client.get(
        f"/bookings/{booking['reference']}", params={"token": booking["token"], "lang": "zh"}
    )
    assert "每日行程" in chinese.text
    assert "喀纳斯山庄" in chinese.text
    assert "午餐、晚餐" in chinese.text


async def test_the_calendar_has_one_event_per_day_with_stable_uids(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    booking = await booked(client, departure, "en", "li@example.com")
    reference = booking["reference"]
    url = f"/api/v1/bookings/{reference}/calendar"
    headers = {"X-Booking-Token": booking["token"], "Accept-Language": "en"}
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    events = events_of(response.content)
    # Day 1 keeps the booking's own UID, so an earlier one-event file is replaced.
    assert list(events) == [
        f"{reference}@tourline",
        f"{reference}-day2@tourline",
        f"{reference}-day3@tourline",
    ]
    day1, day2, day3 = events.values()
    departs_at = datetime.fromisoformat(departure["departs_at"])
    first_day = departs_at.astimezone(ZONE).date()
    # Day 1: from boarding (the pick-up stop) to the time to be back on board.
    assert day1.decoded("DTSTART") == departs_at
    assert day1.decoded("DTEND") == datetime.combine(
        first_day, datetime.min.time().replace(hour=19, minute=30), tzinfo=ZONE
    )
    assert str(day1["SUMMARY"]) == "Picking Line · Day 1: Tianshan Heavenly Lake"
    assert str(day1["LOCATION"]) == "Zhengzhou East Station"
    description = str(day1["DESCRIPTION"])
    assert "Heavenly Lake (09:30–16:00): Lakeside walk" in description
    assert "Meals included: lunch, dinner" in description
    assert "Night: on the train" in description
    assert "Back on board by 19:30" in description
    assert f"Booking {reference}" in description
    # A day with one time only is a whole day on its date.
    assert day2.decoded("DTSTART") == first_day + timedelta(days=1)
    assert day2.decoded("DTEND") == first_day + timedelta(days=2)
    assert str(day2["LOCATION"]) == "Kanas Lake"
    assert "Night: Kanas Lodge, Jiadengyu, Kanas, Burqin County (+86 906 6326 000)" in str(
        day2["DESCRIPTION"]
    )
    assert day3.decoded("DTSTART") == first_day + timedelta(days=2)
    assert isinstance(day3.decoded("DTSTART"), date)
    assert "Meals included: breakfast" in str(day3["DESCRIPTION"])
    sequences = {int(event["SEQUENCE"]) for event in events.values()}
    assert len(sequences) == 1

    # The operator moves the trip a day later: a later file has the same UIDs, a higher
    # SEQUENCE, and the days on their new dates.
    later = departs_at + timedelta(days=1)
    with clock.frozen(clock.now() + timedelta(seconds=30)):
        ok(
            await client.patch(
                f"{DEPARTURES}/{departure['id']}",
                json={
                    "departs_at": later.isoformat(),
                    "returns_at": (later + timedelta(days=3)).isoformat(),
                    "stops": [
                        {
                            "kind": "pickup",
                            "name": {"zh_Hans": "郑州东站", "en": "Zhengzhou East Station"},
                            "at": later.isoformat(),
                        }
                    ],
                },
                headers=operator.headers,
            )
        )
        again = events_of((await client.get(url, headers=headers)).content)
    assert list(again) == list(events)
    assert min(int(event["SEQUENCE"]) for event in again.values()) > sequences.pop()
    assert again[f"{reference}-day2@tourline"].decoded("DTSTART") == first_day + timedelta(days=2)

    # In Chinese, from the page's link.
    page = await client.get(
        f"/bookings/{reference}/calendar.ics", params={"token": booking["token"], "lang": "zh"}
    )
    zh_day1 = events_of(page.content)[f"{reference}@tourline"]
    assert str(zh_day1["SUMMARY"]) == "采摘号 · 第1天：天山天池"
    assert "含餐：午餐、晚餐" in str(zh_day1["DESCRIPTION"])
    assert "请于 19:30 前返回列车" in str(zh_day1["DESCRIPTION"])


# ---------------------------------------------------------------- the reminder


async def test_the_reminder_gives_the_stewards_and_the_doctors_phones_in_both_languages(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await planned_trip(client, operator)
    await booked(client, departure, "en", "li@example.com")
    await booked(client, departure, "zh_Hans", "wang@example.com")
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        await dispatch_outbox()
        await queue_reminders()
        await send_due_notifications()

    [english] = [m for m in mailbox.to("li@example.com") if m["Subject"].startswith("Reminder")]
    text = english.get_body(preferencelist=("plain",)).get_content()
    assert "Your train steward: 李建华, phone +86 138 0371 0001" in text
    assert "Medical staff on board: 王医生, phone +86 138 0371 0002" in text
    # Guides and drivers are reached through the guide's phone, not listed one by one.
    assert "Aliya" not in text
    html = english.get_body(preferencelist=("html",)).get_content()
    assert "Your train steward: 李建华" in html

    [chinese] = [m for m in mailbox.to("wang@example.com") if m["Subject"].startswith("提醒：")]
    text = chinese.get_body(preferencelist=("plain",)).get_content()
    assert "列车管家：李建华，电话 +86 138 0371 0001" in text
    assert "随车医护：王医生，电话 +86 138 0371 0002" in text
    assert "steward" not in text


async def test_a_reminder_without_a_crew_names_nobody(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await planned_trip(client, operator)
    ok(
        await client.put(
            f"{DEPARTURES}/{departure['id']}/crew",
            json={"members": [CREW[2]]},
            headers=operator.headers,
        )
    )
    await booked(client, departure, "en", "li@example.com")
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=47)):
        await dispatch_outbox()
        await queue_reminders()
        await send_due_notifications()
    [english] = [m for m in mailbox.to("li@example.com") if m["Subject"].startswith("Reminder")]
    text = english.get_body(preferencelist=("plain",)).get_content()
    assert "steward" not in text
    assert "Medical staff" not in text


# ---------------------------------------------------------------- the manifest


async def test_the_manifest_lists_the_crew_in_json_csv_and_on_the_page(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    await booked(client, departure, "en", "li@example.com")
    url = f"{DEPARTURES}/{departure['id']}/manifest"
    body = ok(await client.get(url, headers=operator.headers))
    assert [member["name"] for member in body["crew"]] == ["李建华", "王医生", "Aliya"]
    assert body["passengers"] == 1

    response = await client.get(
        url, params={"format": "csv"}, headers={**operator.headers, "Accept-Language": "en"}
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    width = len(rows[0])
    assert rows[0][0] == "Seat"
    assert all(len(row) == width for row in rows)
    assert rows[1][2] == "Li Na"
    assert rows[2] == [""] * width
    assert rows[3][:5] == ["Crew", "Role", "Phone", "Car", "Coach"]
    assert rows[4][:5] == ["李建华", "train steward", "'+86 138 0371 0001", "1", ""]
    assert rows[6][:5] == ["Aliya", "guide", "'+86 139 9901 0003", "", "新A·12345"]
    chinese = await client.get(
        url, params={"format": "csv"}, headers={**operator.headers, "Accept-Language": "zh-CN"}
    )
    zh_rows = list(csv.reader(io.StringIO(chinese.content.decode("utf-8-sig"))))
    assert zh_rows[3][:2] == ["随行人员", "职责"]
    assert zh_rows[5][1] == "随车医护"


# ---------------------------------------------------------------- OCTO


async def test_octo_content_has_each_day_with_its_plan_and_what_is_included(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await planned_trip(client, operator)
    agency = ok(
        await client.post(
            "/api/v1/operator/agencies",
            json={
                "name": "Trip Agency",
                "contact_email": "ops@agency.test",
                "credit_limit": 10_000_000,
                "commission_bp": 1000,
                "cancellation_cutoff_hours": 48,
            },
            headers=operator.headers,
        ),
        201,
    )
    key = ok(
        await client.post(
            f"/api/v1/operator/agencies/{agency['id']}/keys",
            json={"name": "main"},
            headers=operator.headers,
        ),
        201,
    )["key"]
    headers = {
        "Authorization": f"Bearer {key}",
        "Octo-Capabilities": "octo/content",
        "Accept-Language": "en",
    }
    product = ok(await client.get(f"/octo/products/{departure['route_id']}", headers=headers))
    texts = [feature["shortDescription"] for feature in product["features"]]
    kinds = [feature["type"] for feature in product["features"]]
    assert texts[0] == (
        "Day 1: Tianshan Heavenly Lake; Heavenly Lake (09:30–16:00): Lakeside walk; "
        "Meals included: lunch, dinner; Night: on the train; Back on board by 19:30"
    )
    assert texts[1].startswith("Day 2: Kanas; Kanas Lake (11:00); Meals included: ")
    assert "Night: Kanas Lodge, Jiadengyu, Kanas, Burqin County" in texts[1]
    assert kinds[:3] == ["ADDITIONAL_INFORMATION"] * 3
    inclusions = [text for text, kind in zip(texts, kinds, strict=True) if kind == "INCLUSION"]
    assert inclusions == [
        "Breakfast: 2 included",
        "Lunch: 2 included",
        "Dinner: 2 included",
        "1 night in a sleeper berth on the train",
        "1 night in a hotel",
    ]
