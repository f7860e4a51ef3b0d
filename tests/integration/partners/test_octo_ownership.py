"""The partner API changes bookings only through the booking and payments services: an
extended hold has its audit entry and its expiry job at the new time; confirming on
account has its payment written by payments; the contact is recorded by booking."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.booking.services.agency import (
    AgencyContact,
    UnitTraveller,
    agency_booking_lines,
    find_agency_booking,
    record_agency_contact,
)
from app.booking.services.expiry import expire_hold
from app.booking.services.hold import extend_hold
from app.booking.tables import Booking, BookingEvent, BookingStatus
from app.core import clock, jobs
from app.core.errors import Conflict
from app.payments.services.start import charge_on_account
from app.payments.tables import Payment
from tests.conftest import Account
from tests.factories import published_bus_departure

CAPABILITIES = {"Octo-Capabilities": "octo/pricing, octo/content"}

Deferred = list[tuple[str, tuple[Any, ...], datetime, str]]


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> Deferred:
    """The jobs scheduled meanwhile, instead of on Redis."""
    scheduled: Deferred = []

    async def defer(function: str, *args: Any, at: datetime, job_id: str) -> None:
        scheduled.append((function, args, at, job_id))

    monkeypatch.setattr(jobs, "defer", defer)
    return scheduled


async def _agency_hold(
    client: httpx.AsyncClient, operator: Account, uuid: str, units: int = 1
) -> tuple[dict[str, str], dict[str, Any]]:
    """An on-account agency's key headers, and its hold of `units` adults."""
    route, _vehicle, departure = await published_bus_departure(client, operator.headers)
    body = {"name": "Beijing Tours", "contact_email": "ops@bjtours.example",
            "credit_limit": 1_000_000}  # fmt: skip
    response = await client.post("/api/v1/operator/agencies", json=body, headers=operator.headers)
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/api/v1/operator/agencies/{response.json()['id']}/keys",
        json={"name": "test"},
        headers=operator.headers,
    )
    assert response.status_code == 201, response.text
    headers = {"Authorization": f"Bearer {response.json()['key']}", **CAPABILITIES}
    hold = {"uuid": uuid, "productId": route["id"], "optionId": "standard",
            "availabilityId": departure["id"], "unitItems": [{"unitId": "adult"}] * units,
            "expirationMinutes": 30}  # fmt: skip
    response = await client.post("/octo/bookings", json=hold, headers=headers)
    assert response.status_code == 200, response.text
    return headers, response.json()


async def _row(uuid: str) -> dict[str, Any]:
    row = await Booking.select().where(Booking.partner_uuid == uuid).first().run()
    assert row is not None
    return dict(row)


async def _events(booking_id: Any) -> list[dict[str, Any]]:
    return [
        dict(event)
        for event in await BookingEvent.select()
        .where(BookingEvent.booking == booking_id)
        .order_by(BookingEvent.at)
        .output(load_json=True)
        .run()
    ]


async def test_extending_a_hold_records_the_event_and_reschedules_its_expiry(
    client: httpx.AsyncClient, operator: Account, deferred: Deferred
) -> None:
    start = clock.now()
    with clock.frozen(start):
        headers, _held = await _agency_hold(client, operator, "ext-1")
    booking = await _row("ext-1")
    first_expiry = booking["expires_at"]
    later = start + timedelta(minutes=10)
    with clock.frozen(later):
        response = await client.post(
            "/octo/bookings/ext-1/extend", json={"expirationMinutes": 90}, headers=headers
        )
    assert response.status_code == 200, response.text
    new_expiry = later + timedelta(minutes=90)
    assert datetime.fromisoformat(response.json()["utcExpiresAt"]) == new_expiry
    assert (await _row("ext-1"))["expires_at"] == new_expiry

    extended = (await _events(booking["id"]))[-1]
    assert extended["reason"] == "hold_extended"
    assert extended["actor"] == f"agency:{booking['agency']}"
    assert (extended["from_status"], extended["to_status"]) == ("on_hold", "on_hold")
    assert extended["details"] == {
        "expires_at": new_expiry.isoformat(),
        "was": first_expiry.isoformat(),
    }
    # The hold's first job, then one at the new time under an id of its own.
    the_id = str(booking["id"])
    assert deferred == [
        ("expire_booking", (the_id,), first_expiry, f"expire:{the_id}"),
        (
            "expire_booking",
            (the_id,),
            new_expiry,
            f"expire:{the_id}:{int(new_expiry.timestamp())}",
        ),
    ]
    # The first job finds the hold still running; the new one expires it.
    with clock.frozen(first_expiry):
        assert await expire_hold(booking["id"]) is False
    with clock.frozen(new_expiry):
        assert await expire_hold(booking["id"]) is True
    assert (await _row("ext-1"))["status"] == BookingStatus.expired


async def test_a_hold_that_ran_out_is_not_extended(
    client: httpx.AsyncClient, operator: Account, deferred: Deferred
) -> None:
    headers, held = await _agency_hold(client, operator, "ext-2")
    booking = await _row("ext-2")
    events = await _events(booking["id"])
    with clock.frozen(booking["expires_at"] + timedelta(seconds=1)):
        response = await client.post(
            "/octo/bookings/ext-2/extend", json={"expirationMinutes": 90}, headers=headers
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "INVALID_BOOKING_UUID"
    assert response.json()["errorMessage"] == (
        "The reservation has expired and can no longer be extended"
    )
    assert (await _row("ext-2"))["expires_at"] == booking["expires_at"]
    assert await _events(booking["id"]) == events
    assert len(deferred) == 1  # only the hold's own job

    # The service says the same to any caller.
    with (
        clock.frozen(booking["expires_at"] + timedelta(seconds=1)),
        pytest.raises(Conflict) as refused,
    ):
        await extend_hold(booking["id"], 30, actor="test")
    assert refused.value.code == "booking_not_on_hold"
    assert held["status"] == "ON_HOLD"


async def test_an_extension_stops_at_the_close_of_sales(
    client: httpx.AsyncClient, operator: Account, deferred: Deferred
) -> None:
    headers, held = await _agency_hold(client, operator, "ext-3")
    departs_at = datetime.fromisoformat(held["availability"]["localDateTimeStart"])
    body = {
        "uuid": "ext-4",
        "productId": held["productId"],
        "optionId": held["optionId"],
        "availabilityId": held["availabilityId"],
        "unitItems": [{"unitId": "adult"}],
    }
    with clock.frozen(departs_at - timedelta(minutes=40)):
        response = await client.post("/octo/bookings", json=body, headers=headers)
    assert response.status_code == 200, response.text
    booking = await _row("ext-4")
    with clock.frozen(departs_at - timedelta(minutes=20)):
        assert await extend_hold(booking["id"], 600, actor="test") == departs_at
    assert (await _row("ext-4"))["expires_at"] == departs_at


async def test_confirming_on_account_has_payments_write_the_payment(
    client: httpx.AsyncClient, operator: Account
) -> None:
    await _agency_hold(client, operator, "acc-1")
    booking = await _row("acc-1")
    await charge_on_account(booking["id"], actor="agency:test")
    confirmed = await _row("acc-1")
    assert confirmed["status"] == BookingStatus.confirmed
    payments = await Payment.select().where(Payment.booking == booking["id"]).run()
    assert [(p["provider"], p["status"], p["amount"]) for p in payments] == [
        ("on_account", "succeeded", booking["total_amount"])
    ]
    last = (await _events(booking["id"]))[-1]
    assert (last["to_status"], last["reason"], last["actor"]) == (
        "confirmed",
        "on_account",
        "agency:test",
    )
    # Confirmed already: nothing more is charged.
    with pytest.raises(Conflict) as refused:
        await charge_on_account(booking["id"], actor="agency:test")
    assert refused.value.code == "hold_expired"
    assert await Payment.count().where(Payment.booking == booking["id"]).run() == 1


async def test_a_hold_that_ran_out_is_not_charged_on_account(
    client: httpx.AsyncClient, operator: Account
) -> None:
    await _agency_hold(client, operator, "acc-2")
    booking = await _row("acc-2")
    with (
        clock.frozen(booking["expires_at"] + timedelta(seconds=1)),
        pytest.raises(Conflict) as refused,
    ):
        await charge_on_account(booking["id"], actor="agency:test")
    assert refused.value.code == "hold_expired"
    assert await Payment.count().where(Payment.booking == booking["id"]).run() == 0
    assert (await _row("acc-2"))["status"] == BookingStatus.on_hold


async def test_the_agency_contact_is_recorded_by_the_booking_service(
    client: httpx.AsyncClient, operator: Account
) -> None:
    await _agency_hold(client, operator, "con-1", units=3)
    booking = await find_agency_booking((await _row("con-1"))["agency"], "con-1")
    assert booking is not None
    assert booking.hold_running
    contact = AgencyContact(
        name="Wang Fang", email="wang@example.cn", phone="+86 139 0000 0000", locale="en",
        reseller_reference="BJT-9",
        travellers=(UnitTraveller(name="Li Lei"), UnitTraveller()),
    )  # fmt: skip
    await record_agency_contact(booking.id, contact)
    stored = await find_agency_booking(booking.agency_id, "con-1")
    assert stored is not None
    assert (stored.contact_name, stored.contact_email, stored.contact_phone) == (
        "Wang Fang",
        "wang@example.cn",
        "+86 139 0000 0000",
    )
    assert (stored.locale, stored.reseller_reference) == ("en", "BJT-9")
    # Unnamed travellers take the lead's name.
    lines = await agency_booking_lines(stored)
    assert [line.passenger_name for line in lines] == ["Li Lei", "Wang Fang", "Wang Fang"]

    # Once confirmed, the hold's details are settled.
    await charge_on_account(booking.id, actor="agency:test")
    with pytest.raises(Conflict) as refused:
        await record_agency_contact(booking.id, contact)
    assert refused.value.code == "booking_not_on_hold"
