"""A reminder tells passengers what to bring and how to reach the guide."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from app.booking.rows import BookingRow
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.notifications.services.reminders import queue_reminders
from app.notifications.services.sending import send_due_notifications
from tests.conftest import Account, Mailbox
from tests.factories import published_bus_departure


async def test_reminder_lists_what_to_bring_and_the_guides_phone(
    client: httpx.AsyncClient, operator: Account, mailbox: Mailbox
) -> None:
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    response = await client.patch(
        f"/api/v1/operator/routes/{route['id']}",
        json={"what_to_bring": {"zh_Hans": "遮阳帽和饮用水", "en": "A sun hat and water"}},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["what_to_bring"]["en"] == "A sun hat and water"
    response = await client.patch(
        f"/api/v1/operator/departures/{departure['id']}",
        json={"guide_phone": "+86 139 0000 1234"},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["guide_phone"] == "+86 139 0000 1234"
    response = await client.post(
        "/api/v1/bookings",
        json={
            "departure_id": departure["id"],
            "counts": [{"seat_class": "standard", "count": 1}],
            "contact": {
                "name": "Li",
                "email": "li@example.com",
                "phone": "+86 1380000",
                "locale": "en",
            },
        },
    )
    assert response.status_code == 201, response.text
    reference = response.json()["booking"]["reference"]
    async with write_transaction():
        row = await Booking.select().where(Booking.reference == reference).first().run()
        assert row is not None
        await transition(
            BookingRow.from_row(row), BookingStatus.confirmed, actor="test", reason="paid"
        )
    departs_at = datetime.fromisoformat(departure["departs_at"])
    with clock.frozen(departs_at - timedelta(hours=3)):
        await dispatch_outbox()
        await queue_reminders()
        await send_due_notifications()
    [reminder] = [m for m in mailbox.to("li@example.com") if m["Subject"].startswith("Reminder")]
    text = reminder.get_body(preferencelist=("plain",)).get_content()
    assert "What to bring: A sun hat and water" in text
    assert "Your guide's phone: +86 139 0000 1234" in text
