"""Notifications end to end, delivered to a real SMTP server (aiosmtpd): the confirmation
with its calendar event in the reader's language, sending once, reminders at T-48h and
T-3h, retries with backoff and the operator's resend, a cancelled departure, advisories,
and a crash in the middle of sending."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import icalendar
import pytest

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.notifications import channels
from app.notifications.services import sending
from app.notifications.services.common import NOTIFICATION_RETRY
from app.notifications.services.reminders import queue_reminders
from app.notifications.services.sending import send_due_notifications
from app.notifications.tables import Notification, NotificationStatus
from tests.assertions import ok
from tests.conftest import Account, Mailbox
from tests.factories import create_route, create_vehicle, in_days, set_route_fares

MAX_ATTEMPTS = NOTIFICATION_RETRY.max_attempts or 0
backoff = NOTIFICATION_RETRY.backoff.after

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
OPERATOR = "/api/v1/operator"
# The pick-up stop is 40 minutes before the departure time, so the two never match.
PICKUP_EARLY = timedelta(minutes=40)
PICKUP = {"zh_Hans": "金水路站", "en": "Jinshui Road Stop"}
CONTACTS = {
    "zh_Hans": {"name": "王小明", "email": "xiaoming@example.cn", "phone": "+86 138 0000 0000"},
    "en": {"name": "Alice Walker", "email": "alice@example.com", "phone": "+44 20 7946 0000"},
}


# ---------------------------------------------------------------- helpers


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def bus_departure(
    client: httpx.AsyncClient, account: Account, departs_at: datetime | None = None
) -> dict[str, Any]:
    """A published bus departure of "Picking Line" (meeting point Zhengzhou East Station)
    with one pick-up stop 40 minutes before it leaves."""
    route = await create_route(client, account.headers, slug="notice-line")
    vehicle = await create_vehicle(client, account.headers, "bus")
    await set_route_fares(client, account.headers, route["id"], ["standard"])
    departs_at = departs_at or in_days(10)
    payload = {
        "route_id": route["id"],
        "vehicle_id": vehicle["id"],
        "departs_at": departs_at.isoformat(),
        "returns_at": (departs_at + timedelta(hours=9)).isoformat(),
        "stops": [
            {"kind": "pickup", "name": PICKUP, "at": (departs_at - PICKUP_EARLY).isoformat()}
        ],
    }
    departure = ok(await client.post(DEPARTURES, json=payload, headers=account.headers), 201)
    return dict(
        ok(await client.post(f"{DEPARTURES}/{departure['id']}/publish", headers=account.headers))
    )


async def hold(
    client: httpx.AsyncClient,
    departure: dict[str, Any],
    email: str,
    locale: str = "en",
    pickup: bool = False,
) -> str:
    """Hold one seat for a contact writing in `locale`; returns the reference."""
    contact = {**CONTACTS[locale], "email": email, "locale": locale}
    body: dict[str, Any] = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
        "contact": contact,
        "passengers": [{"name": contact["name"]}],
    }
    if pickup:
        public = ok(await client.get(f"/api/v1/departures/{departure['id']}"))
        [stop] = public["stops"]
        body["pickup_stop_id"] = stop["id"]
    created = ok(await client.post(BOOKINGS, json=body), 201)
    return str(created["booking"]["reference"])


async def booking_row(reference: str) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == reference).first().run()
    assert row is not None
    return dict(row)


async def move(reference: str, target: BookingStatus, reason: str = "paid") -> None:
    async with write_transaction():
        row = await booking_row(reference)
        await transition(BookingRow.from_row(row), target, actor="test", reason=reason)


async def book(
    client: httpx.AsyncClient,
    departure: dict[str, Any],
    email: str,
    locale: str = "en",
    pickup: bool = False,
) -> str:
    """A confirmed booking (paid, as the payments flow confirms it)."""
    reference = await hold(client, departure, email, locale, pickup)
    await move(reference, BookingStatus.confirmed)
    return reference


async def run_dispatcher() -> dict[str, int]:
    """The notification steps of one worker tick."""
    return {
        "outbox": await dispatch_outbox(),
        "reminders": await queue_reminders(),
        "sent": await send_due_notifications(),
    }


async def notifications_of(reference: str) -> list[dict[str, Any]]:
    booking = await booking_row(reference)
    rows = (
        await Notification.select()
        .where(Notification.booking == booking["id"])
        .order_by(Notification.kind)
        .output(load_json=True)
        .run()
    )
    return [dict(row) for row in rows]


async def the_notification(reference: str, kind: str) -> dict[str, Any]:
    rows = [row for row in await notifications_of(reference) if row["kind"] == kind]
    assert len(rows) == 1, rows
    return rows[0]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, message
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, message
    return str(part.get_content())


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    """The one text/calendar attachment, parsed."""
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.iter_attachments()]
    data = parts[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    return icalendar.Calendar.from_ical(data)


def with_subject(mailbox: Mailbox, address: str, fragment: str) -> list[EmailMessage]:
    return [m for m in mailbox.to(address) if fragment in str(m["Subject"])]


# ---------------------------------------------------------------- confirmation


@pytest.mark.parametrize(
    ("locale", "pickup", "expected"),
    [
        (
            "en",
            False,
            {
                "subject": "Booking {reference} confirmed: Picking Line",
                "text": ["Hello Alice Walker,", "your booking {reference} is confirmed.",
                         "Departure: ", "Seats: ", "Total paid: ",
                         "Booking reference: {reference}"],
                "not_text": ["订单", "座位"],
                "html_lang": 'lang="en"',
                "summary": "Picking Line",
                "location": "Zhengzhou East Station",
            },
        ),
        (
            "zh_Hans",
            True,
            {
                "subject": "订单 {reference} 已确认：采摘号",
                "text": ["王小明，您好：", "您的订单 {reference} 已确认。", "出发时间：",
                         "座位：", "实付金额：", "订单号：{reference}"],
                "not_text": ["Booking", "Departure", "Seats", "Total paid", "Hello"],
                "html_lang": 'lang="zh-Hans"',
                "summary": "采摘号",
                "location": "金水路站",
            },
        ),
    ],
    ids=["en-meeting-point", "zh_Hans-pickup-stop"],
)  # fmt: skip
async def test_confirmation_email_in_the_contacts_language_with_a_calendar_event(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    locale: str,
    pickup: bool,
    expected: dict[str, Any],
) -> None:
    departure = await bus_departure(client, operator)
    email = f"{locale.lower()}@example.com"
    reference = await book(client, departure, email, locale, pickup=pickup)
    await dispatch_outbox()
    assert await send_due_notifications() == 1

    [message] = mailbox.to(email)
    assert len(mailbox.messages) == 1
    assert message["Subject"] == expected["subject"].format(reference=reference)
    text = text_of(message)
    for fragment in expected["text"]:
        assert fragment.format(reference=reference) in text, text
    for fragment in expected["not_text"]:
        assert fragment not in text, text
    html = html_of(message)
    assert expected["html_lang"] in html
    assert reference in html

    [event] = calendar_of(message).walk("VEVENT")
    departs_at = parse(departure["departs_at"])
    starts_at = departs_at - PICKUP_EARLY if pickup else departs_at
    assert event.decoded("DTSTART") == starts_at
    assert event.decoded("DTEND") == parse(departure["returns_at"])
    assert str(event["SUMMARY"]) == expected["summary"]
    assert str(event["LOCATION"]) == expected["location"]
    assert str(event["UID"]) == f"{reference}@tourline"


async def test_a_name_written_like_html_is_shown_as_written_in_the_mail(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    name = '<b>Bob</b> & "Al"'
    body = {
        "departure_id": departure["id"],
        "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
        "contact": {**CONTACTS["en"], "name": name, "email": "html@example.com", "locale": "en"},
        "passengers": [{"name": name}],
    }
    reference = str(ok(await client.post(BOOKINGS, json=body), 201)["booking"]["reference"])
    await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()
    assert await send_due_notifications() == 1

    [message] = mailbox.to("html@example.com")
    assert f"Hello {name}," in text_of(message)
    html = html_of(message)
    assert "<b>" not in html
    assert "<p>Hello &lt;b&gt;Bob&lt;/b&gt; &amp; &#34;Al&#34;,</p>" in html


async def test_dispatching_and_sending_again_sends_nothing_more(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    reference = await book(client, departure, "once@example.com")
    assert await dispatch_outbox() >= 1
    assert await send_due_notifications() == 1
    for _ in range(2):
        assert await dispatch_outbox() == 0
        assert await send_due_notifications() == 0

    [message] = mailbox.to("once@example.com")
    [row] = await notifications_of(reference)
    assert row["kind"] == "booking.confirmed"
    assert row["status"] == NotificationStatus.sent
    assert row["attempts"] == 1
    assert row["sent_at"] is not None
    assert row["subject"] == message["Subject"]


# ---------------------------------------------------------------- reminders


async def test_reminders_at_48_and_3_hours_go_out_once_even_from_concurrent_workers(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    email = "reminded@example.com"
    reference = await book(client, departure, email)
    await run_dispatcher()
    assert len(mailbox.to(email)) == 1  # the confirmation
    departs_at = parse(departure["departs_at"])

    def reminders() -> list[EmailMessage]:
        return with_subject(mailbox, email, "Reminder: Picking Line departs")

    async def two_workers() -> dict[str, int]:
        results = await asyncio.gather(run_dispatcher(), run_dispatcher())
        return {key: sum(r[key] for r in results) for key in results[0]}

    with clock.frozen(departs_at - timedelta(hours=48, minutes=1)):
        assert await two_workers() == {"outbox": 0, "reminders": 0, "sent": 0}
        assert reminders() == []

    # Each reminder goes by email and, as the contact has a phone, by SMS.
    with clock.frozen(departs_at - timedelta(hours=48)):
        assert await two_workers() == {"outbox": 0, "reminders": 1, "sent": 2}
        assert len(reminders()) == 1
        assert await run_dispatcher() == {"outbox": 0, "reminders": 0, "sent": 0}
        clock.advance(timedelta(minutes=5))
        assert await two_workers() == {"outbox": 0, "reminders": 0, "sent": 0}
        assert len(reminders()) == 1
    [first] = reminders()
    assert "your trip is coming up" in text_of(first)
    assert "Meeting point: Zhengzhou East Station" in text_of(first)
    assert calendar_of(first).walk("VEVENT")[0].decoded("DTSTART") == departs_at

    with clock.frozen(departs_at - timedelta(hours=3)):
        assert await two_workers() == {"outbox": 0, "reminders": 1, "sent": 2}
        assert await two_workers() == {"outbox": 0, "reminders": 0, "sent": 0}
        assert len(reminders()) == 2
    with clock.frozen(departs_at - timedelta(minutes=10)):
        assert await run_dispatcher() == {"outbox": 0, "reminders": 0, "sent": 0}

    assert len(mailbox.to(email)) == 3
    rows = await notifications_of(reference)
    assert sorted((r["kind"], r["channel"], r["status"], r["attempts"]) for r in rows) == [
        ("booking.confirmed", "email", "sent", 1),
        ("reminder.3h", "email", "sent", 1),
        ("reminder.3h", "sms", "sent", 1),
        ("reminder.48h", "email", "sent", 1),
        ("reminder.48h", "sms", "sent", 1),
    ]


async def test_a_booking_made_two_hours_before_departure_gets_only_the_3_hour_reminder(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    departs_at = parse(departure["departs_at"])
    email = "late@example.com"
    with clock.frozen(departs_at - timedelta(hours=2)):
        reference = await book(client, departure, email)
        # The confirmation, and the reminder by email and by SMS.
        assert (await run_dispatcher())["sent"] == 3
        clock.advance(timedelta(hours=1))
        assert await run_dispatcher() == {"outbox": 0, "reminders": 0, "sent": 0}

    assert len(with_subject(mailbox, email, "Reminder:")) == 1
    assert len(mailbox.to(email)) == 2
    kinds = sorted((row["kind"], row["channel"]) for row in await notifications_of(reference))
    assert kinds == [
        ("booking.confirmed", "email"),
        ("reminder.3h", "email"),
        ("reminder.3h", "sms"),
    ]


# ---------------------------------------------------------------- failures and resending


async def test_a_refusing_server_is_retried_with_backoff_then_failed_then_resent(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    email = "refused@example.com"
    reference = await book(client, departure, email)
    await dispatch_outbox()
    mailbox.refuse = True
    with clock.frozen(clock.now()):
        started = clock.now()
        assert await send_due_notifications() == 0
        row = await the_notification(reference, "booking.confirmed")
        assert row["status"] == NotificationStatus.pending
        assert row["attempts"] == 1
        assert "451" in row["last_error"]
        assert row["next_attempt_at"] == started + backoff(1)

        # Not before its time: nothing is tried.
        clock.advance(backoff(1) - timedelta(seconds=1))
        assert await send_due_notifications() == 0
        assert (await the_notification(reference, "booking.confirmed"))["attempts"] == 1

        for attempt in range(2, MAX_ATTEMPTS + 1):
            clock.advance(backoff(attempt - 1) if attempt > 2 else timedelta(seconds=1))
            assert await send_due_notifications() == 0
            row = await the_notification(reference, "booking.confirmed")
            assert row["attempts"] == attempt
            assert row["next_attempt_at"] == clock.now() + backoff(attempt)
        assert row["status"] == NotificationStatus.failed
        assert mailbox.to(email) == []

        # A failed notification is not tried again by itself.
        clock.advance(timedelta(hours=3))
        assert await send_due_notifications() == 0
        assert (await the_notification(reference, "booking.confirmed"))["attempts"] == MAX_ATTEMPTS

        listed = ok(
            await client.get(
                f"{OPERATOR}/bookings/{reference}/notifications", headers=operator.headers
            )
        )
        [item] = listed
        assert item["kind"] == "booking.confirmed"
        assert item["status"] == "failed"
        assert item["attempts"] == MAX_ATTEMPTS
        assert "451" in item["last_error"]
        assert item["recipient"] == email
        assert item["sent_at"] is None

        mailbox.refuse = False
        resent = ok(
            await client.post(
                f"{OPERATOR}/notifications/{item['id']}/resend", headers=operator.headers
            )
        )
        assert resent["status"] == "pending"
        assert resent["attempts"] == 0
        assert resent["last_error"] == ""
        assert await send_due_notifications() == 1
        assert await send_due_notifications() == 0

    [message] = mailbox.to(email)
    assert reference in str(message["Subject"])
    [item] = ok(
        await client.get(f"{OPERATOR}/bookings/{reference}/notifications", headers=operator.headers)
    )
    assert item["status"] == "sent"
    assert item["sent_at"] is not None
    assert item["last_error"] == ""


async def test_a_permanent_refusal_fails_at_once_and_a_message_being_sent_is_not_resent(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    departure = await bus_departure(client, operator)
    email = "nobody@example.com"
    reference = await book(client, departure, email)
    await dispatch_outbox()

    async def no_such_user(*args: Any) -> str:
        return "550 5.1.1 No such user here"

    monkeypatch.setattr(mailbox, "handle_RCPT", no_such_user, raising=False)
    assert await send_due_notifications() == 0
    row = await the_notification(reference, "booking.confirmed")
    assert (row["status"], row["attempts"]) == (NotificationStatus.failed, 1)
    assert "550" in row["last_error"]
    with clock.frozen(clock.now() + timedelta(days=1)):
        assert await send_due_notifications() == 0  # not retried
    assert mailbox.messages == []

    # While a worker holds a message, the operator's resend would send a second copy.
    await (
        Notification.update({Notification.status: NotificationStatus.sending.value})
        .where(Notification.id == row["id"])
        .run()
    )
    response = await client.post(
        f"{OPERATOR}/notifications/{row['id']}/resend", headers=operator.headers
    )
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "notification_sending"


async def test_a_crash_while_sending_waits_for_the_lease_then_sends_once(
    client: httpx.AsyncClient,
    operator: Account,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    departure = await bus_departure(client, operator)
    first = await book(client, departure, "first@example.com")
    second = await book(client, departure, "second@example.com")
    await dispatch_outbox()

    real_send = channels.send_email
    crashed: list[str] = []

    async def crash_once(settings: Any, email: Any, **options: Any) -> None:
        if not crashed:
            crashed.append(email.to)
            raise RuntimeError("worker blew up mid-send")
        await real_send(settings, email, **options)

    monkeypatch.setattr(sending, "send_email", crash_once)
    lease = sending.send_lease()
    with clock.frozen(clock.now()):
        # The crash is contained: the other notification of the batch still goes out.
        assert await send_due_notifications() == 1
        assert len(crashed) == 1
        [victim] = crashed
        assert len(mailbox.messages) == 1
        assert mailbox.to(victim) == []
        reference = first if victim == "first@example.com" else second
        row = await the_notification(reference, "booking.confirmed")
        assert row["status"] == NotificationStatus.pending
        assert row["attempts"] == 1
        assert row["last_error"].startswith("RuntimeError")

        # Other workers keep away while the lease lasts...
        clock.advance(lease - timedelta(seconds=1))
        assert await send_due_notifications() == 0
        assert len(mailbox.messages) == 1
        # ... and take it over once it has run out.
        clock.advance(timedelta(seconds=1))
        assert await send_due_notifications() == 1
        clock.advance(timedelta(hours=1))
        assert await send_due_notifications() == 0

    assert len(mailbox.to("first@example.com")) == 1
    assert len(mailbox.to("second@example.com")) == 1
    assert len(mailbox.messages) == 2
    row = await the_notification(reference, "booking.confirmed")
    assert row["status"] == NotificationStatus.sent
    assert row["attempts"] == 2


async def test_a_last_attempt_whose_worker_died_fails_instead_of_going_on(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    reference = await book(client, departure, "last@example.com")
    await dispatch_outbox()
    row = await the_notification(reference, "booking.confirmed")
    # The sixth attempt was claimed by a worker that never came back.
    lease_end = clock.now() + sending.send_lease()
    await (
        Notification.update(
            {
                Notification.status: NotificationStatus.sending.value,
                Notification.attempts: MAX_ATTEMPTS,
                Notification.next_attempt_at: lease_end,
            }
        )
        .where(Notification.id == row["id"])
        .run()
    )
    assert await send_due_notifications() == 0  # still its claim
    with clock.frozen(lease_end):
        assert await send_due_notifications() == 0
    row = await the_notification(reference, "booking.confirmed")
    assert (row["status"], row["attempts"]) == (NotificationStatus.failed, MAX_ATTEMPTS)
    assert row["last_error"] == "not sent: the last attempt's worker stopped"
    assert mailbox.messages == []


# ---------------------------------------------------------------- operators' notices


async def test_a_cancelled_departure_notifies_every_contact_once(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    confirmed_zh = await book(client, departure, "zh@example.cn", "zh_Hans")
    confirmed_en = await book(client, departure, "en@example.com", "en")
    on_hold = await hold(client, departure, "hold@example.com", "en")
    await run_dispatcher()
    mailbox.messages.clear()

    body = ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    assert body["bookings_cancelled"] == 3
    for _ in range(2):
        await run_dispatcher()

    [zh] = mailbox.to("zh@example.cn")
    assert zh["Subject"] == f"订单 {confirmed_zh} 已取消"
    assert f"您的订单 {confirmed_zh} 已取消。" in text_of(zh)
    assert "运营方已取消本班次，您将获得全额退款。" in text_of(zh)
    for address, reference in (("en@example.com", confirmed_en), ("hold@example.com", on_hold)):
        [message] = mailbox.to(address)
        assert message["Subject"] == f"Booking {reference} cancelled"
        assert f"your booking {reference} has been cancelled." in text_of(message)
        assert "The operator cancelled this departure" in text_of(message)
    assert len(mailbox.messages) == 3
    for reference in (confirmed_zh, confirmed_en, on_hold):
        row = await the_notification(reference, "booking.cancelled")
        assert row["status"] == NotificationStatus.sent


async def test_advisories_reach_every_live_booking_once_in_its_language(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox, make_operator: Any
) -> None:
    departure = await bus_departure(client, operator)
    zh = await book(client, departure, "zh@example.cn", "zh_Hans")
    en = await hold(client, departure, "en@example.com", "en")
    gone = await hold(client, departure, "gone@example.com", "en")
    await move(gone, BookingStatus.cancelled, reason="guest_cancelled")
    await run_dispatcher()
    mailbox.messages.clear()
    url = f"{DEPARTURES}/{departure['id']}/advisories"

    rain = {"zh_Hans": "预计有大雨，请带好雨具。", "en": "Heavy rain expected: bring rain gear."}
    created = ok(
        await client.post(url, json={"kind": "weather", "message": rain}, headers=operator.headers),
        201,
    )
    assert created["recipients"] == 2
    for _ in range(2):
        await run_dispatcher()
    [zh_mail] = mailbox.to("zh@example.cn")
    assert zh_mail["Subject"] == f"关于您的行程 {zh} 的通知"
    assert rain["zh_Hans"] in text_of(zh_mail)
    assert rain["en"] not in text_of(zh_mail)
    [en_mail] = mailbox.to("en@example.com")
    assert en_mail["Subject"] == f"Notice about your trip {en}"
    assert rain["en"] in text_of(en_mail)
    assert rain["zh_Hans"] not in text_of(en_mail)
    assert mailbox.to("gone@example.com") == []

    # A heat day is 35 °C or more.
    heat = {"zh_Hans": "高温天气，请注意防暑。", "en": "A hot day: stay in the shade."}
    problem = await client.post(
        url,
        json={"kind": "heat", "message": heat, "max_temperature_c": 34},
        headers=operator.headers,
    )
    assert problem.status_code == 400, problem.text
    assert [e["field"] for e in problem.json()["errors"]] == ["max_temperature_c"]
    created = ok(
        await client.post(
            url,
            json={"kind": "heat", "message": heat, "max_temperature_c": 37},
            headers=operator.headers,
        ),
        201,
    )
    assert created["recipients"] == 2
    await run_dispatcher()
    assert await send_due_notifications() == 0
    [_, zh_heat] = mailbox.to("zh@example.cn")
    assert heat["zh_Hans"] in text_of(zh_heat)
    assert "预报最高气温：37 °C" in text_of(zh_heat)
    [_, en_heat] = mailbox.to("en@example.com")
    assert heat["en"] in text_of(en_heat)
    assert "Forecast maximum: 37 °C" in text_of(en_heat)
    assert mailbox.to("gone@example.com") == []
    assert len(mailbox.messages) == 4

    listed = ok(
        await client.get(f"{DEPARTURES}/{departure['id']}/notifications", headers=operator.headers)
    )
    advisories = [item for item in listed if item["kind"] == "advisory"]
    assert len(advisories) == 4
    assert {item["status"] for item in advisories} == {"sent"}
    assert sorted(item["recipient"] for item in advisories) == [
        "en@example.com", "en@example.com", "zh@example.cn", "zh@example.cn",
    ]  # fmt: skip

    other: Account = await make_operator("other-bus")
    response = await client.get(
        f"{DEPARTURES}/{departure['id']}/notifications", headers=other.headers
    )
    assert response.status_code == 404, response.text
    response = await client.post(
        url, json={"kind": "weather", "message": rain}, headers=other.headers
    )
    assert response.status_code == 404, response.text
    response = await client.get(f"{OPERATOR}/bookings/{zh}/notifications", headers=other.headers)
    assert response.status_code == 404, response.text
    response = await client.post(
        f"{OPERATOR}/notifications/{advisories[0]['id']}/resend", headers=other.headers
    )
    assert response.status_code == 404, response.text
    assert len(mailbox.messages) == 4


async def test_a_reminder_for_a_booking_cancelled_meanwhile_is_not_sent(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    departs_at = parse(departure["departs_at"])
    email = "gone@example.com"
    reference = await book(client, departure, email)
    await run_dispatcher()  # the confirmation goes out
    mailbox.refuse = True
    with clock.frozen(departs_at - timedelta(hours=3)):
        await run_dispatcher()  # the reminder is queued but the server refuses it
        await move(reference, BookingStatus.cancelled, reason="cancelled_by_guest")
        mailbox.refuse = False
        clock.advance(timedelta(hours=1))
        await run_dispatcher()
    reminder_mail = with_subject(mailbox, email, "Reminder:")
    assert reminder_mail == []
    # The SMS went out before the cancellation (no SMTP involved); the refused email not after.
    [row] = [
        r
        for r in await notifications_of(reference)
        if r["kind"] == "reminder.3h" and r["channel"] == "email"
    ]
    assert row["status"] == NotificationStatus.skipped.value
    assert "the booking is cancelled" in row["last_error"]


# ---------------------------------------------------------------- a booking moved


async def test_a_moved_booking_gets_a_changed_mail_whose_calendar_event_replaces_the_old(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    departure = await bus_departure(client, operator)
    later = parse(departure["departs_at"]) + timedelta(days=2)
    payload = {
        "route_id": departure["route_id"],
        "vehicle_id": departure["vehicle_id"],
        "departs_at": later.isoformat(),
        "returns_at": (later + timedelta(hours=9)).isoformat(),
    }
    second = ok(await client.post(DEPARTURES, json=payload, headers=operator.headers), 201)
    ok(await client.post(f"{DEPARTURES}/{second['id']}/publish", headers=operator.headers))
    contact = {**CONTACTS["zh_Hans"], "locale": "zh_Hans"}
    created = ok(
        await client.post(
            BOOKINGS,
            json={
                "departure_id": departure["id"],
                "counts": [{"seat_class": "standard", "passenger_type": "adult", "count": 1}],
                "contact": contact,
                "passengers": [{"name": contact["name"]}],
            },
        ),
        201,
    )
    reference = created["booking"]["reference"]
    await move(reference, BookingStatus.confirmed)
    await dispatch_outbox()
    assert await send_due_notifications() == 1
    [confirmed] = mailbox.to(contact["email"])
    [first_event] = calendar_of(confirmed).walk("VEVENT")

    # Same fare: the move is made at once, and the tourist is told with a fresh .ics.
    with clock.frozen(clock.now() + timedelta(seconds=5)):
        moved = ok(
            await client.post(
                f"{BOOKINGS}/{reference}/rebook",
                json={"departure_id": second["id"]},
                headers={"X-Booking-Token": created["access_token"]},
            )
        )
        assert moved["departure_id"] == second["id"]
        await dispatch_outbox()
        assert await send_due_notifications() == 1
    [changed] = with_subject(mailbox, contact["email"], "已变更")
    assert changed["Subject"] == f"订单 {reference} 已变更：采摘号"
    text = text_of(changed)
    assert f"您的订单 {reference} 已改签。" in text
    assert moved["lines"][0]["seat_label"] in text
    assert "附件中的日历文件将替换之前发送的那一份。" in text
    [event] = calendar_of(changed).walk("VEVENT")
    assert str(event["UID"]) == str(first_event["UID"]) == f"{reference}@tourline"
    assert int(event["SEQUENCE"]) > int(first_event["SEQUENCE"])
    assert event.decoded("DTSTART") == later
    # Dispatched and sent again: nothing more.
    await dispatch_outbox()
    assert await send_due_notifications() == 0
    assert len(mailbox.to(contact["email"])) == 2
