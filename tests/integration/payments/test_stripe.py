"""Paying for a booking with Stripe, as the tourist and Stripe's webhooks see it: starting a
payment, the card flow against localstripe (a fake Stripe server), signed webhooks handled
once and never trusted blindly, late payments after expiry, and open intents cancelled when
a hold runs out. Checked through the HTTP API and the rows in app.payments.tables."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
import stripe

import app.payments.providers
import app.payments.services.webhook
from app.booking.services import expiry
from app.booking.tables import Booking, BookingEvent, BookingLine
from app.core import clock
from app.core.settings import get_settings
from app.core.tables import OutboxMessage
from app.payments.services.sweep import sync_open_payments
from app.payments.tables import Payment, Refund, StripeEvent
from tests.assertions import ok
from tests.conftest import Account
from tests.factories import create_departure, create_route, create_vehicle, in_days

BOOKINGS = "/api/v1/bookings"
WEBHOOK = "/api/v1/webhooks/stripe"
SECRET_KEY = "sk_test_tourline"
WEBHOOK_SECRET = "whsec_test_tourline"
ADULT = 6800
CONTACT = {
    "name": "王小明",
    "email": "xiaoming@example.cn",
    "phone": "+86 138 0000 0000",
    "locale": "en",
}


# ---------------------------------------------------------------- helpers


@pytest.fixture
def browser(stripe_server: str) -> stripe.StripeClient:
    """Stripe as the tourist's browser (Stripe.js) talks to it: localstripe."""
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": stripe_server}, http_client=stripe.HTTPXClient()
    )


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    return body


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def put_fares(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, adult: int
) -> None:
    fares = [{"seat_class": "standard", "passenger_type": "adult", "amount": adult}]
    ok(await client.put(path, json={"fares": fares}, headers=headers))


async def bus_line(
    client: httpx.AsyncClient, operator: Account, adult: int = ADULT
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published bus route (45 seats, adult fare `adult`) with one departure in 10 days."""
    route = await create_route(client, operator.headers)
    vehicle = await create_vehicle(client, operator.headers, "bus")
    await put_fares(client, operator.headers, f"/api/v1/operator/routes/{route['id']}/fares", adult)
    departure = await create_departure(client, operator.headers, route, vehicle)
    return route, vehicle, departure


async def hold(
    client: httpx.AsyncClient,
    departure_id: str,
    seats: list[str] | None = None,
    n: int = 2,
    complete: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A booking on hold (201 body: access_token and booking), with contact and every
    passenger's name unless `complete` is False."""
    body: dict[str, Any] = {"departure_id": departure_id, **extra}
    if seats is not None:
        body["seats"] = [{"label": label} for label in seats]
        n = len(seats)
    else:
        body["counts"] = [{"seat_class": "standard", "passenger_type": "adult", "count": n}]
    if complete:
        body["contact"] = CONTACT
        body["passengers"] = [{"name": f"乘客{i}"} for i in range(n)]
    created: dict[str, Any] = ok(await client.post(BOOKINGS, json=body), 201)
    return created


def guest(created: dict[str, Any]) -> dict[str, str]:
    return {"X-Booking-Token": created["access_token"]}


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


async def start(client: httpx.AsyncClient, created: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created))


async def view(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await client.get(f"{BOOKINGS}/{ref(created)}", headers=guest(created))
    )
    return body


async def seats_left(client: httpx.AsyncClient, departure_id: str) -> int:
    body = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    return int(body["seats_left"])


def intent_id(client_secret: str) -> str:
    return client_secret.split("_secret")[0]


async def booking_row(created: dict[str, Any]) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == ref(created)).first().run()
    assert row is not None
    return dict(row)


async def payments(created: dict[str, Any]) -> list[dict[str, Any]]:
    booking = await booking_row(created)
    rows = (
        await Payment.select()
        .where(Payment.booking == booking["id"])
        .order_by(Payment.attempt)
        .run()
    )
    return [dict(row) for row in rows]


async def refunds(created: dict[str, Any]) -> list[dict[str, Any]]:
    booking = await booking_row(created)
    rows = await Refund.select().where(Refund.booking == booking["id"]).run()
    return [dict(row) for row in rows]


async def outbox(kind: str, reference: str) -> list[dict[str, Any]]:
    rows = (
        await OutboxMessage.select().where(OutboxMessage.kind == kind).output(load_json=True).run()
    )
    return [dict(row) for row in rows if row["payload"].get("reference") == reference]


async def status_events(created: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    booking = await booking_row(created)
    rows = (
        await BookingEvent.select()
        .where(BookingEvent.booking == booking["id"])
        .order_by(BookingEvent.at)
        .run()
    )
    return [(e["from_status"], e["to_status"], e["reason"]) for e in rows]


async def live_lines(created: dict[str, Any]) -> list[bool]:
    booking = await booking_row(created)
    rows = await BookingLine.select(BookingLine.live).where(BookingLine.booking == booking["id"])
    return [row["live"] for row in rows]


async def pay_card(
    browser: stripe.StripeClient, client_secret: str, card: str = "pm_card_visa"
) -> Any:
    """What Stripe.js does on the payment page (localstripe cannot confirm with a
    payment_method parameter: it is set first)."""
    pi = intent_id(client_secret)
    await browser.v1.payment_intents.update_async(pi, params={"payment_method": card})
    return await browser.v1.payment_intents.confirm_async(pi)


async def intent_at_stripe(browser: stripe.StripeClient, pi: str) -> dict[str, Any]:
    data: dict[str, Any] = (await browser.v1.payment_intents.retrieve_async(pi)).to_dict()
    return data


def stripe_event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


async def intent_event(
    browser: stripe.StripeClient, kind: str, pi: str, event_id: str | None = None
) -> dict[str, Any]:
    """An event about an intent as localstripe has it now."""
    return stripe_event(kind, await intent_at_stripe(browser, pi), event_id)


def signature(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)
    return f"t={timestamp},v1={digest}"


async def deliver(
    client: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    """POST an event as Stripe does: the raw JSON body, signed."""
    payload = json.dumps(event)
    return await client.post(
        WEBHOOK,
        content=payload.encode(),
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature(payload, secret, timestamp),
        },
    )


def outcome(response: httpx.Response) -> str:
    body = ok(response)
    assert body["received"] is True
    return str(body["outcome"])


def bad_signature(response: httpx.Response) -> None:
    body = problem(response, 400, "bad_signature")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [("Stripe-Signature", "header")]


async def paid_intent(
    client: httpx.AsyncClient, browser: stripe.StripeClient, created: dict[str, Any]
) -> str:
    """Start the payment of a hold and pay it with a good card at localstripe; the intent."""
    secret = ok(await start(client, created))["client_secret"]
    paid = await pay_card(browser, secret)
    assert paid.status == "succeeded"
    return intent_id(secret)


# ---------------------------------------------------------------- starting a payment


async def test_payment_needs_the_booking_token(
    client: httpx.AsyncClient, operator: Account, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    url = f"{BOOKINGS}/{ref(created)}/payments"
    problem(await client.post(url), 404, "booking_not_found")
    problem(
        await client.post(url, headers={"X-Booking-Token": "not-the-token"}),
        404,
        "booking_not_found",
    )
    problem(
        await client.post(f"{BOOKINGS}/ZZZZZZZZ/payments", headers=guest(created)),
        404,
        "booking_not_found",
    )
    assert await payments(created) == []
    ok(await start(client, created))


async def test_incomplete_booking_is_409_naming_the_missing_fields(
    client: httpx.AsyncClient, operator: Account, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    bare = await hold(client, departure["id"], n=2, complete=False)
    body = problem(await start(client, bare), 409, "details_incomplete")
    assert [e["field"] for e in body["errors"]] == [
        "contact",
        "passengers[0].name",
        "passengers[1].name",
    ]

    half = await hold(client, departure["id"], n=2, complete=False, passengers=[{"name": "李雷"}])
    ok(
        await client.patch(
            f"{BOOKINGS}/{ref(half)}", json={"contact": CONTACT}, headers=guest(half)
        )
    )
    body = problem(await start(client, half), 409, "details_incomplete")
    assert [e["field"] for e in body["errors"]] == ["passengers[1].name"]
    assert await payments(bare) == []
    assert await payments(half) == []
    assert (await view(client, half))["status"] == "on_hold"


async def test_complete_hold_gets_a_payment_intent_for_the_server_total(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"], n=2)
    total = created["booking"]["total"]
    assert total["amount"] == 2 * ADULT

    first = ok(await start(client, created))
    assert first["provider"] == "stripe"
    assert first["status"] == "requires_payment"
    assert first["publishable_key"] == "pk_test_tourline"
    assert first["payment_method_types"] == ["card"]
    assert first["amount"]["amount"] == total["amount"]
    assert first["amount"]["currency"] == total["currency"]
    pi = intent_id(first["client_secret"])
    assert pi.startswith("pi_")

    at_stripe = await intent_at_stripe(browser, pi)
    assert at_stripe["amount"] == 2 * ADULT
    assert at_stripe["currency"] == total["currency"].lower()
    assert at_stripe["metadata"]["booking_reference"] == ref(created)
    assert at_stripe["client_secret"] == first["client_secret"]

    # Asking again (a reload of the payment page) reuses the same intent.
    second = ok(await start(client, created))
    assert second["client_secret"] == first["client_secret"]
    rows = await payments(created)
    assert len(rows) == 1
    assert rows[0]["provider"] == "stripe"
    assert rows[0]["provider_id"] == pi
    assert rows[0]["attempt"] == 1
    assert rows[0]["amount"] == 2 * ADULT
    assert rows[0]["status"] == "requires_payment"
    assert (await view(client, created))["status"] == "on_hold"


async def test_rebooking_to_another_total_starts_a_new_intent_and_cancels_the_old(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    route, vehicle, departure = await bus_line(client, operator)
    dearer = await create_departure(client, operator.headers, route, vehicle, in_days(12))
    await put_fares(
        client, operator.headers, f"/api/v1/operator/departures/{dearer['id']}/fares", 7800
    )
    created = await hold(client, departure["id"], n=1)
    old_pi = intent_id(ok(await start(client, created))["client_secret"])

    moved = ok(
        await client.post(
            f"{BOOKINGS}/{ref(created)}/rebook",
            json={"departure_id": dearer["id"]},
            headers=guest(created),
        )
    )
    assert moved["total"]["amount"] == 7800
    second = ok(await start(client, created))
    assert second["amount"]["amount"] == 7800
    new_pi = intent_id(second["client_secret"])
    assert new_pi != old_pi

    rows = await payments(created)
    assert [(r["attempt"], r["provider_id"], r["amount"], r["status"]) for r in rows] == [
        (1, old_pi, ADULT, "cancelled"),
        (2, new_pi, 7800, "requires_payment"),
    ]
    assert (await intent_at_stripe(browser, old_pi))["status"] == "canceled"
    fresh = await intent_at_stripe(browser, new_pi)
    assert fresh["amount"] == 7800
    assert fresh["status"] == "requires_payment_method"
    # And the new one is reused from then on.
    assert ok(await start(client, created))["client_secret"] == second["client_secret"]
    assert len(await payments(created)) == 2


async def test_zero_total_is_confirmed_at_once_without_stripe(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator, adult=0)
    created = await hold(client, departure["id"], n=2)
    assert created["booking"]["total"]["amount"] == 0

    body = ok(await start(client, created))
    assert body["provider"] == "free"
    assert body["status"] == "confirmed"
    assert body["amount"]["amount"] == 0
    assert body["client_secret"] is None
    booking = await view(client, created)
    assert booking["status"] == "confirmed"
    assert booking["expires_at"] is None
    rows = await payments(created)
    assert [(r["provider"], r["amount"], r["status"], r["provider_id"]) for r in rows] == [
        ("free", 0, "succeeded", None)
    ]
    assert len(await outbox("booking.confirmed", ref(created))) == 1
    assert await status_events(created) == [
        (None, "on_hold", "created"),
        ("on_hold", "confirmed", "free"),
    ]
    # Paying again is refused.
    problem(await start(client, created), 409, "already_paid")
    assert len(await payments(created)) == 1


async def test_run_out_hold_cannot_be_paid(
    client: httpx.AsyncClient, operator: Account, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        created = await hold(client, departure["id"])
    expires_at = parse(created["booking"]["expires_at"])
    with clock.frozen(expires_at - timedelta(seconds=1)):
        ok(await start(client, created))
    with clock.frozen(expires_at):
        problem(await start(client, created), 409, "hold_expired")
        assert (await view(client, created))["status"] == "expired"
        problem(await start(client, created), 409, "hold_expired")
    assert len(await payments(created)) == 1


async def test_without_a_stripe_key_payment_is_503_not_configured(
    client: httpx.AsyncClient, operator: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    unconfigured = dataclasses.replace(get_settings(), stripe_secret_key="")
    monkeypatch.setattr(app.payments.providers, "_settings", unconfigured)
    # The settings the client's app was built with (its `settings` dependency).
    monkeypatch.setattr(client._transport.app.state, "settings", unconfigured)  # type: ignore[attr-defined]

    response = await start(client, created)
    body = problem(response, 503, "payments_not_configured")
    assert "STRIPE_SECRET_KEY" in body["detail"]
    assert await payments(created) == []
    assert (await view(client, created))["status"] == "on_hold"


# ---------------------------------------------------------------- the card flow


async def test_card_payment_and_signed_success_event_confirm_the_booking(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"], n=2)
    pi = await paid_intent(client, browser, created)
    # Paid at Stripe, but nothing changes here before Stripe's word arrives.
    assert (await view(client, created))["status"] == "on_hold"

    event = await intent_event(browser, "payment_intent.succeeded", pi)
    assert outcome(await deliver(client, event)) == "confirmed"

    booking = await view(client, created)
    assert booking["status"] == "confirmed"
    assert booking["expires_at"] is None
    [row] = await payments(created)
    assert row["status"] == "succeeded"
    assert row["amount"] == 2 * ADULT
    assert row["succeeded_at"] is not None
    [message] = await outbox("booking.confirmed", ref(created))
    assert message["payload"]["reason"] == "paid"
    assert await status_events(created) == [
        (None, "on_hold", "created"),
        ("on_hold", "confirmed", "paid"),
    ]
    stored = await StripeEvent.select().where(StripeEvent.id == event["id"]).first().run()
    assert stored is not None
    assert (stored["type"], stored["object_id"]) == ("payment_intent.succeeded", pi)
    money = ok(
        await client.get(
            f"/api/v1/operator/bookings/{ref(created)}/money", headers=operator.headers
        )
    )
    assert money["paid"]["amount"] == 2 * ADULT
    assert money["refunded"]["amount"] == 0

    problem(await start(client, created), 409, "already_paid")
    assert len(await payments(created)) == 1


async def test_declined_card_records_the_reason_and_keeps_the_hold(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    secret = ok(await start(client, created))["client_secret"]
    with pytest.raises(stripe.CardError):
        await pay_card(browser, secret, "pm_card_chargeCustomerFail")
    pi = intent_id(secret)
    at_stripe = await intent_at_stripe(browser, pi)
    assert at_stripe["status"] == "requires_payment_method"
    reason = at_stripe["last_payment_error"]["message"]
    assert reason

    event = await intent_event(browser, "payment_intent.payment_failed", pi)
    assert outcome(await deliver(client, event)) == "failed"

    [row] = await payments(created)
    assert row["status"] == "failed"
    assert row["failure_reason"] == reason
    assert row["succeeded_at"] is None
    booking = await view(client, created)
    assert booking["status"] == "on_hold"
    assert booking["expires_at"] is not None
    assert await outbox("booking.confirmed", ref(created)) == []
    assert await status_events(created) == [(None, "on_hold", "created")]


# ---------------------------------------------------------------- webhook security


async def test_webhooks_with_a_bad_signature_are_400_and_change_nothing(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, created)
    event = await intent_event(browser, "payment_intent.succeeded", pi)
    payload = json.dumps(event)

    bad_signature(await deliver(client, event, secret="whsec_someone_else"))
    # A body changed after signing (here: another event id).
    tampered = payload.replace(event["id"], "evt_tampered")
    assert tampered != payload
    bad_signature(
        await client.post(
            WEBHOOK,
            content=tampered.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": signature(payload)},
        )
    )
    bad_signature(
        await client.post(
            WEBHOOK, content=payload.encode(), headers={"Content-Type": "application/json"}
        )
    )
    bad_signature(await deliver(client, event, timestamp=int(time.time()) - 301))

    assert await StripeEvent.count().run() == 0
    assert (await view(client, created))["status"] == "on_hold"
    assert [row["status"] for row in await payments(created)] == ["requires_payment"]
    assert await outbox("booking.confirmed", ref(created)) == []

    # The same event, signed properly and recently enough, is what confirms it.
    assert outcome(await deliver(client, event, timestamp=int(time.time()) - 240)) == "confirmed"
    assert (await view(client, created))["status"] == "confirmed"


async def test_unhandled_event_types_are_stored_without_effect(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, created)

    customer = stripe_event("customer.created", {"id": "cus_tourline", "object": "customer"})
    assert outcome(await deliver(client, customer)) == "ignored"
    # Even about an intent that did succeed, only payment_intent.succeeded confirms.
    created_event = await intent_event(browser, "payment_intent.created", pi)
    assert outcome(await deliver(client, created_event)) == "ignored"

    rows = await StripeEvent.select().order_by(StripeEvent.type).run()
    assert [(r["id"], r["type"], r["object_id"]) for r in rows] == [
        (customer["id"], "customer.created", "cus_tourline"),
        (created_event["id"], "payment_intent.created", pi),
    ]
    assert (await view(client, created))["status"] == "on_hold"
    assert [row["status"] for row in await payments(created)] == ["requires_payment"]
    assert await Refund.count().run() == 0

    succeeded = await intent_event(browser, "payment_intent.succeeded", pi)
    assert outcome(await deliver(client, succeeded)) == "confirmed"


async def test_event_body_is_not_trusted_over_stripe(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    secret = ok(await start(client, created))["client_secret"]
    pi = intent_id(secret)
    claimed = await intent_at_stripe(browser, pi)
    assert claimed["status"] == "requires_payment_method"
    claimed.update(status="succeeded", amount_received=claimed["amount"])

    response = await deliver(client, stripe_event("payment_intent.succeeded", claimed))
    assert outcome(response) == "stale_event"
    assert (await view(client, created))["status"] == "on_hold"
    [row] = await payments(created)
    assert (row["status"], row["succeeded_at"]) == ("requires_payment", None)
    assert await outbox("booking.confirmed", ref(created)) == []
    assert await status_events(created) == [(None, "on_hold", "created")]


# ---------------------------------------------------------------- duplicates and order


async def test_same_success_event_five_times_at_once_confirms_once(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, created)
    event = await intent_event(browser, "payment_intent.succeeded", pi)

    responses = await asyncio.gather(*(deliver(client, event) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert sorted(outcome(r) for r in responses) == ["confirmed"] + ["duplicate"] * 4

    async def effects() -> tuple[Any, ...]:
        booking = await booking_row(created)
        confirmations = await BookingEvent.count().where(
            (BookingEvent.booking == booking["id"]) & (BookingEvent.to_status == "confirmed")
        )
        return (
            booking["status"],
            confirmations,
            len(await outbox("booking.confirmed", ref(created))),
            [(r["status"], r["amount"]) for r in await payments(created)],
            await StripeEvent.count().run(),
            await Refund.count().run(),
        )

    expected = ("confirmed", 1, 1, [("succeeded", ADULT * 2)], 1, 0)
    assert await effects() == expected
    assert (await view(client, created))["status"] == "confirmed"

    # Stripe retrying later: a no-op.
    assert outcome(await deliver(client, event)) == "duplicate"
    assert await effects() == expected


async def test_refund_events_before_the_success_event_break_nothing(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, created)
    intent = await intent_at_stripe(browser, pi)
    # A refund Stripe knows of (made in its dashboard) but this service does not.
    refund = await browser.v1.refunds.create_async(params={"payment_intent": pi, "amount": 100})
    charge = {
        "id": intent["latest_charge"]
        if isinstance(intent["latest_charge"], str)
        else intent["latest_charge"]["id"],
        "object": "charge",
        "payment_intent": pi,
        "amount_refunded": 100,
        "refunded": False,
        "refunds": {"object": "list", "data": [refund.to_dict()]},
    }
    charge_refunded = stripe_event("charge.refunded", charge)
    refund_updated = stripe_event("refund.updated", refund.to_dict())
    # Recorded as Stripe has it, once, with its Stripe id: never paid again.
    assert outcome(await deliver(client, charge_refunded)) == "refunded_at_provider"
    assert outcome(await deliver(client, refund_updated)) == "refund_updated"
    [recorded] = await Refund.select().run()
    assert (recorded["provider_id"], recorded["amount"], recorded["reason"]) == (
        refund.id,
        100,
        "refunded_at_provider",
    )
    assert (await view(client, created))["status"] == "on_hold"
    assert await StripeEvent.count().run() == 2

    succeeded = await intent_event(browser, "payment_intent.succeeded", pi)
    assert outcome(await deliver(client, succeeded)) == "confirmed"
    assert (await view(client, created))["status"] == "confirmed"
    assert [r["status"] for r in await payments(created)] == ["succeeded"]
    assert len(await outbox("booking.confirmed", ref(created))) == 1
    # The refund row is then kept in step by refund.updated.
    assert outcome(await deliver(client, stripe_event("refund.updated", refund.to_dict()))) == (
        "refund_updated"
    )
    assert await Refund.count().run() == 1


# ---------------------------------------------------------------- payment after expiry


async def test_paid_after_expiry_with_seats_resold_is_refunded_in_full(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        late = await hold(client, departure["id"], seats=["7A", "7B"])
        secret = ok(await start(client, late))["client_secret"]
    expires_at = parse(late["booking"]["expires_at"])
    with clock.frozen(expires_at + timedelta(minutes=1)):
        # Someone else takes the very seats; the tourist's page still pays.
        other = await hold(client, departure["id"], seats=["7A", "7B"])
        assert (await view(client, late))["status"] == "expired"
        paid = await pay_card(browser, secret)
        assert paid.status == "succeeded"
        pi = intent_id(secret)
        event = await intent_event(browser, "payment_intent.succeeded", pi)
        assert outcome(await deliver(client, event)) == "refunded"

        booking = await view(client, late)
        assert booking["status"] == "expired"
        assert booking["refund"]["amount"] == 2 * ADULT
        assert (await view(client, other))["status"] == "on_hold"
        assert await live_lines(other) == [True, True]
        assert await live_lines(late) == [False, False]
    [payment] = await payments(late)
    assert payment["status"] == "succeeded"
    [refund] = await refunds(late)
    assert refund["provider"] == "stripe"
    assert refund["payment"] == payment["id"]
    assert refund["amount"] == 2 * ADULT
    assert refund["reason"] == "paid_after_expiry"
    assert refund["status"] == "succeeded"
    assert refund["provider_id"] is not None
    assert refund["provider_id"].startswith("re_")
    at_stripe = (await browser.v1.refunds.retrieve_async(refund["provider_id"])).to_dict()
    assert at_stripe["amount"] == 2 * ADULT
    assert at_stripe["payment_intent"] == pi
    assert at_stripe["status"] == "succeeded"
    [notice] = await outbox("payment.refunded_late", ref(late))
    assert notice["payload"]["amount"] == 2 * ADULT
    assert await outbox("booking.confirmed", ref(late)) == []

    # The same success heard again (another event, or the sync worker) refunds nothing more.
    again = await intent_event(browser, "payment_intent.succeeded", pi)
    with clock.frozen(expires_at + timedelta(minutes=2)):
        assert outcome(await deliver(client, again)) != "refunded"
        assert (await view(client, late))["refund"]["amount"] == 2 * ADULT
    assert len(await refunds(late)) == 1
    report = ok(
        await client.get("/api/v1/operator/payments/reconciliation", headers=operator.headers)
    )
    assert report["mismatches"] == []
    assert report["paid"]["amount"] == report["refunded"]["amount"] == 2 * ADULT


async def test_paid_after_expiry_with_seats_still_free_is_confirmed(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        late = await hold(client, departure["id"], seats=["7A", "7B"])
        secret = ok(await start(client, late))["client_secret"]
        assert await seats_left(client, departure["id"]) == 43
    expires_at = parse(late["booking"]["expires_at"])
    with clock.frozen(expires_at + timedelta(minutes=1)):
        # Another booking on the departure expires the run-out hold and frees its seats.
        other = await hold(client, departure["id"], seats=["9A"])
        assert (await view(client, late))["status"] == "expired"
        assert await live_lines(late) == [False, False]
        assert await seats_left(client, departure["id"]) == 44
        await pay_card(browser, secret)
        event = await intent_event(browser, "payment_intent.succeeded", intent_id(secret))
        assert outcome(await deliver(client, event)) == "confirmed"

        booking = await view(client, late)
        assert booking["status"] == "confirmed"
        assert [line["seat_label"] for line in booking["lines"]] == ["7A", "7B"]
        assert booking["refund"] is None
        assert await live_lines(late) == [True, True]
        assert await seats_left(client, departure["id"]) == 42
        seat_taken = await client.post(
            BOOKINGS, json={"departure_id": departure["id"], "seats": [{"label": "7A"}]}
        )
        problem(seat_taken, 409, "seat_unavailable")
        assert (await view(client, other))["status"] == "on_hold"
    assert await status_events(late) == [
        (None, "on_hold", "created"),
        ("on_hold", "expired", "hold_expired"),
        ("expired", "confirmed", "paid_after_expiry"),
    ]
    assert await refunds(late) == []
    assert len(await outbox("booking.confirmed", ref(late))) == 1


async def test_paid_after_expiry_with_a_seat_blocked_meanwhile_is_refunded(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    """A run-out hold is only taken back when a new booking could have its seats: one the
    operator blocked since (a guide's seat) is not sold to it."""
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        late = await hold(client, departure["id"], seats=["7A", "7B"])
        secret = ok(await start(client, late))["client_secret"]
    expires_at = parse(late["booking"]["expires_at"])
    with clock.frozen(expires_at + timedelta(minutes=1)):
        await hold(client, departure["id"], seats=["9A"])  # expires the run-out hold
        assert (await view(client, late))["status"] == "expired"
        ok(
            await client.put(
                f"/api/v1/operator/departures/{departure['id']}/blocks",
                json={"blocks": [{"label": "7B", "reason": "guide"}]},
                headers=operator.headers,
            )
        )
        await pay_card(browser, secret)
        event = await intent_event(browser, "payment_intent.succeeded", intent_id(secret))
        assert outcome(await deliver(client, event)) == "refunded"
        assert (await view(client, late))["status"] == "expired"
        assert await live_lines(late) == [False, False]
    [refund] = await refunds(late)
    assert refund["amount"] == 2 * ADULT
    assert refund["reason"] == "paid_after_expiry"


async def test_expiring_a_hold_cancels_its_open_payment_intent(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        created = await hold(client, departure["id"])
        kept = await hold(client, departure["id"])
        secret = ok(await start(client, created))["client_secret"]
        kept_secret = ok(await start(client, kept))["client_secret"]
    expires_at = parse(created["booking"]["expires_at"])
    pi = intent_id(secret)
    with clock.frozen(expires_at - timedelta(seconds=1)):
        assert await expiry.expire_all_overdue() == 0
        assert (await intent_at_stripe(browser, pi))["status"] == "requires_payment_method"
    await pay_card(browser, kept_secret)
    kept_paid = await intent_event(browser, "payment_intent.succeeded", intent_id(kept_secret))
    assert outcome(await deliver(client, kept_paid)) == "confirmed"
    with clock.frozen(expires_at):
        assert await expiry.expire_all_overdue() == 1
        assert (await view(client, created))["status"] == "expired"
        assert (await view(client, kept))["status"] == "confirmed"
        # The expiry sweep never waits on Stripe: the payments sweep cancels the intent.
        assert (await intent_at_stripe(browser, pi))["status"] == "requires_payment_method"
        await sync_open_payments()
    assert (await intent_at_stripe(browser, pi))["status"] == "canceled"
    assert [r["status"] for r in await payments(created)] == ["cancelled"]
    assert [r["status"] for r in await payments(kept)] == ["succeeded"]
    # The tourist's page can no longer pay it.
    with pytest.raises(stripe.StripeError):
        await pay_card(browser, secret)
    assert (await intent_at_stripe(browser, pi))["status"] == "canceled"
