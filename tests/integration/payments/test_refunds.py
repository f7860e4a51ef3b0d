"""Refunds and the money invariants, paid for real through localstripe (a fake Stripe
server): cancellation tiers, cancelled departures, rebooking, the cap at what was paid,
failed refunds retried, reconciliation and the operators' money views."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe

from app.booking.rows import BookingRow
from app.booking.services.expiry import expire_all_overdue
from app.booking.services.rebook import revert_overdue_changes
from app.booking.services.state import transition
from app.booking.tables import Booking, BookingChange, BookingChangeStatus, BookingStatus
from app.core import clock
from app.core.after_commit import effects_after_commit
from app.core.database import write_transaction
from app.core.outbox import dispatch_outbox
from app.core.settings import get_settings
from app.notifications.tables import Notification
from app.payments import providers
from app.payments.services.reconciliation import REFUND_OVERDUE, money_of, money_problem
from app.payments.services.refunds import (
    MAX_REFUND_ATTEMPTS,
    REFUND_RETRY_FIRST,
    REFUND_RETRY_MAX,
    claim_refund,
    execute_pending_refunds,
    execute_refund,
    owe_refund,
    refund_idempotency_key,
)
from app.payments.services.sweep import sync_open_payments
from app.payments.tables import Payment, PaymentStatus, Refund, RefundStatus
from tests.assertions import ok
from tests.conftest import Account
from tests.factories import create_departure, create_route, create_vehicle, in_days
from tests.servers import free_port

BOOKINGS = "/api/v1/bookings"
DEPARTURES = "/api/v1/operator/departures"
WEBHOOK = "/api/v1/webhooks/stripe"
RECONCILIATION = "/api/v1/operator/payments/reconciliation"
WEBHOOK_SECRET = "whsec_test_tourline"
CONTACT = {"name": "王小明", "email": "xiaoming@example.cn", "phone": "+86 138 0000 0000"}
# An odd fare shows refunds are rounded down: 6801 * 50 // 100 == 3400.
ADULT = 6801

# The Stripe SDK's httpx client posts form bodies the way httpx now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


# ---------------------------------------------------------------- helpers


@pytest.fixture
def stripe_api(stripe_server: str) -> stripe.StripeClient:
    """The test's own view of localstripe (what Stripe really holds)."""
    return stripe.StripeClient(
        "sk_test_tourline",
        base_addresses={"api": stripe_server},
        http_client=stripe.HTTPXClient(),
    )


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def put_fares(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, adult: int, child: int = 3800
) -> None:
    fares = [
        {"seat_class": "standard", "passenger_type": "adult", "amount": adult},
        {"seat_class": "standard", "passenger_type": "child", "amount": child},
    ]
    ok(await client.put(url, json={"fares": fares}, headers=headers))


async def bus_line(
    client: httpx.AsyncClient, headers: dict[str, str], slug: str = "refund-line"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A published bus route (default policy: 100% from 72 h, 50% from 24 h, then 0%),
    a 45-seat bus and one departure in 10 days; adults pay ADULT."""
    route = await create_route(client, headers, slug=slug)
    vehicle = await create_vehicle(client, headers, "bus")
    await put_fares(client, headers, f"/api/v1/operator/routes/{route['id']}/fares", ADULT)
    departure = await create_departure(client, headers, route, vehicle)
    return route, vehicle, departure


async def hold(
    client: httpx.AsyncClient,
    departure_id: str,
    adults: int = 1,
    seats: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"departure_id": departure_id}
    if seats is not None:
        body["seats"] = [{"label": label} for label in seats]
    else:
        body["counts"] = [{"seat_class": "standard", "passenger_type": "adult", "count": adults}]
    created: dict[str, Any] = ok(await client.post(BOOKINGS, json=body), 201)
    return created


def guest(created: dict[str, Any]) -> dict[str, str]:
    return {"X-Booking-Token": created["access_token"]}


def ref(created: dict[str, Any]) -> str:
    return str(created["booking"]["reference"])


async def view(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await client.get(f"{BOOKINGS}/{ref(created)}", headers=guest(created))
    )
    return body


async def complete(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    """Contact and every passenger, as a booking needs before it can be paid."""
    passengers = [{"name": f"Passenger {i}"} for i, _ in enumerate(created["booking"]["lines"])]
    ok(
        await client.patch(
            f"{BOOKINGS}/{ref(created)}",
            json={"contact": CONTACT, "passengers": passengers},
            headers=guest(created),
        )
    )


async def start_payment(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    await complete(client, created)
    body: dict[str, Any] = ok(
        await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created))
    )
    return body


async def pay_at_stripe(stripe_api: stripe.StripeClient, intent_id: str) -> None:
    """What Stripe.js does in the tourist's browser: attach a card and confirm."""
    await stripe_api.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_visa"}
    )
    intent = await stripe_api.v1.payment_intents.confirm_async(intent_id)
    assert intent.status == "succeeded"


async def send_event(
    client: httpx.AsyncClient, event_type: str, obj: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    """POST a Stripe event signed with the webhook secret; the 200 body."""
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "data": {"object": obj},
    }
    payload = json.dumps(event)
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", WEBHOOK_SECRET)
    response = await client.post(
        WEBHOOK,
        content=payload,
        headers={
            "Stripe-Signature": f"t={timestamp},v1={signature}",
            "Content-Type": "application/json",
        },
    )
    body: dict[str, Any] = ok(response)
    return body


async def seats_left(client: httpx.AsyncClient, departure_id: str) -> int:
    body = ok(await client.get(f"/api/v1/departures/{departure_id}"))
    return int(body["seats_left"])


def intent_id(started: dict[str, Any]) -> str:
    return str(started["client_secret"].split("_secret")[0])


async def pay(
    client: httpx.AsyncClient, stripe_api: stripe.StripeClient, created: dict[str, Any]
) -> str:
    """Pay a hold for real and deliver Stripe's webhook; the PaymentIntent id."""
    started = await start_payment(client, created)
    assert started["provider"] == "stripe"
    assert started["amount"]["amount"] == created["booking"]["total"]["amount"]
    pi = intent_id(started)
    await pay_at_stripe(stripe_api, pi)
    outcome = await send_event(client, "payment_intent.succeeded", {"id": pi})
    assert outcome == {"received": True, "outcome": "confirmed"}
    assert (await view(client, created))["status"] == "confirmed"
    return pi


async def cancel(client: httpx.AsyncClient, created: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{BOOKINGS}/{ref(created)}/cancel", headers=guest(created))


async def rebook(
    client: httpx.AsyncClient, created: dict[str, Any], departure_id: str
) -> httpx.Response:
    return await client.post(
        f"{BOOKINGS}/{ref(created)}/rebook",
        json={"departure_id": departure_id},
        headers=guest(created),
    )


async def booking_row(reference: str) -> dict[str, Any]:
    row = await Booking.select().where(Booking.reference == reference).first().run()
    assert row is not None
    return dict(row)


async def refunds_of(reference: str) -> list[dict[str, Any]]:
    row = await booking_row(reference)
    rows = await Refund.select().where(Refund.booking == row["id"]).order_by(Refund.amount).run()
    return [dict(r) for r in rows]


async def payments_of(reference: str) -> list[dict[str, Any]]:
    row = await booking_row(reference)
    rows = await Payment.select().where(Payment.booking == row["id"]).run()
    return [dict(r) for r in rows]


async def stripe_refunds(stripe_api: stripe.StripeClient, pi: str) -> list[int]:
    """Amounts refunded at localstripe for a PaymentIntent."""
    listed = await stripe_api.v1.refunds.list_async(params={"payment_intent": pi, "limit": 100})
    return sorted(int(r.amount) for r in listed.data)


async def all_stripe_refunds(stripe_api: stripe.StripeClient) -> int:
    listed = await stripe_api.v1.refunds.list_async(params={"limit": 100})
    return len(listed.data)


async def money(client: httpx.AsyncClient, account: Account, reference: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        await client.get(f"/api/v1/operator/bookings/{reference}/money", headers=account.headers)
    )
    return body


async def problem_of(reference: str) -> str | None:
    row = await booking_row(reference)
    paid, refunded = await money_of(row["id"])
    return money_problem(BookingRow.from_row(row), paid, refunded)


async def assert_sent_to_stripe(
    stripe_api: stripe.StripeClient, refund: dict[str, Any], pi: str, amount: int
) -> None:
    assert refund["amount"] == amount
    assert refund["provider"] == "stripe"
    assert refund["status"] == RefundStatus.succeeded
    assert refund["provider_id"], refund
    assert refund["attempts"] == 1
    at_stripe = await stripe_api.v1.refunds.retrieve_async(refund["provider_id"])
    assert at_stripe.amount == amount
    assert at_stripe.status == "succeeded"
    assert at_stripe.payment_intent == pi


# ---------------------------------------------------------------- cancelling a paid booking


@pytest.mark.parametrize(
    ("hours_before", "percent"), [(100, 100), (48, 50), (12, 0)], ids=["100%", "50%", "0%"]
)
async def test_guest_cancel_refunds_the_policy_tier_through_stripe(
    client: httpx.AsyncClient,
    operator: Account,
    stripe_api: stripe.StripeClient,
    hours_before: int,
    percent: int,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"])
    pi = await pay(client, stripe_api, created)
    [payment] = await payments_of(ref(created))
    assert (payment["provider_id"], payment["amount"]) == (pi, ADULT)
    assert payment["status"] == PaymentStatus.succeeded
    expected = ADULT * percent // 100

    with clock.frozen(parse(departure["departs_at"]) - timedelta(hours=hours_before)):
        body = ok(await cancel(client, created))
        booking = await view(client, created)
    assert body["refund_percent"] == percent
    assert body["refund"]["amount"] == expected
    assert booking["status"] == "cancelled"

    refunds = await refunds_of(ref(created))
    if percent == 0:
        assert refunds == []
        assert booking["refund"] is None
        assert await stripe_refunds(stripe_api, pi) == []
    else:
        [refund] = refunds
        assert refund["payment"] == payment["id"]
        assert refund["reason"] == "cancelled_by_guest"
        await assert_sent_to_stripe(stripe_api, refund, pi, expected)
        assert await stripe_refunds(stripe_api, pi) == [expected]
        assert booking["refund"]["amount"] == expected
    view_ = await money(client, operator, ref(created))
    assert view_["paid"]["amount"] == ADULT
    assert view_["refunded"]["amount"] == expected
    assert await problem_of(ref(created)) is None
    # Nothing is left to send.
    assert await execute_pending_refunds() == 0
    assert sum(await stripe_refunds(stripe_api, pi)) == expected


# ---------------------------------------------------------------- operator cancels the run


async def test_cancelling_the_departure_refunds_each_paid_booking_once(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    one = await hold(client, departure["id"])
    two = await hold(client, departure["id"], adults=2)
    pi_one = await pay(client, stripe_api, one)
    pi_two = await pay(client, stripe_api, two)
    plain_hold = await hold(client, departure["id"])
    started_hold = await hold(client, departure["id"])
    open_pi = intent_id(await start_payment(client, started_hold))

    url = f"{DEPARTURES}/{departure['id']}/cancel"
    body = ok(await client.post(url, headers=operator.headers))
    assert body["bookings_cancelled"] == 4
    assert body["refunds_total"]["amount"] == 3 * ADULT

    [refund_one] = await refunds_of(ref(one))
    [refund_two] = await refunds_of(ref(two))
    await assert_sent_to_stripe(stripe_api, refund_one, pi_one, ADULT)
    await assert_sent_to_stripe(stripe_api, refund_two, pi_two, 2 * ADULT)
    assert refund_one["reason"] == refund_two["reason"] == "departure_cancelled"
    for created, total in ((one, ADULT), (two, 2 * ADULT)):
        booking = await view(client, created)
        assert booking["status"] == "cancelled"
        assert booking["refund"]["amount"] == total
    for created in (plain_hold, started_hold):
        booking = await view(client, created)
        assert booking["status"] == "cancelled"
        assert booking["refund"] is None
        assert await refunds_of(ref(created)) == []
    # The hold's open PaymentIntent can no longer be paid.
    [open_payment] = await payments_of(ref(started_hold))
    assert open_payment["status"] == PaymentStatus.cancelled
    assert (await stripe_api.v1.payment_intents.retrieve_async(open_pi)).status == "canceled"

    # Retrying (as a client whose connection dropped would) refunds nothing again.
    again = ok(await client.post(url, headers=operator.headers))
    assert again["bookings_cancelled"] == 0
    assert again["refunds_total"]["amount"] == 0
    assert await execute_pending_refunds() == 0
    assert await stripe_refunds(stripe_api, pi_one) == [ADULT]
    assert await stripe_refunds(stripe_api, pi_two) == [2 * ADULT]
    assert [r["id"] for r in await refunds_of(ref(one))] == [refund_one["id"]]
    assert [r["id"] for r in await refunds_of(ref(two))] == [refund_two["id"]]
    for created in (one, two, plain_hold, started_hold):
        assert await problem_of(ref(created)) is None


async def test_payment_landing_after_the_departure_was_cancelled_is_refunded_once(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    pi = intent_id(await start_payment(client, created))
    # The tourist pays; Stripe's webhook is slower than the operator.
    await pay_at_stripe(stripe_api, pi)
    body = ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    assert (body["bookings_cancelled"], body["refunds_total"]["amount"]) == (1, 0)
    assert await refunds_of(ref(created)) == []
    # The succeeded intent is left for its webhook, which pays everything back.
    [payment] = await payments_of(ref(created))
    assert payment["status"] == PaymentStatus.requires_payment
    assert (await send_event(client, "payment_intent.succeeded", {"id": pi}))["outcome"] == (
        "refunded"
    )
    [refund] = await refunds_of(ref(created))
    assert refund["reason"] == "paid_after_expiry"
    await assert_sent_to_stripe(stripe_api, refund, pi, 2 * ADULT)
    booking = await view(client, created)
    assert (booking["status"], booking["refund"]["amount"]) == ("cancelled", 2 * ADULT)
    assert await problem_of(ref(created)) is None

    # Heard again, and the departure cancelled again: nothing more goes back.
    again = await send_event(client, "payment_intent.succeeded", {"id": pi})
    assert again["outcome"] != "refunded"
    ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    assert await execute_pending_refunds() == 0
    assert await stripe_refunds(stripe_api, pi) == [2 * ADULT]
    assert [r["id"] for r in await refunds_of(ref(created))] == [refund["id"]]
    assert (await booking_row(ref(created)))["refund_amount"] == 2 * ADULT
    assert await problem_of(ref(created)) is None


# ---------------------------------------------------------------- rebooking


async def two_departures(
    client: httpx.AsyncClient, headers: dict[str, str], second_adult: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    route, vehicle, first = await bus_line(client, headers)
    second = await create_departure(client, headers, route, vehicle, in_days(12))
    await put_fares(client, headers, f"{DEPARTURES}/{second['id']}/fares", second_adult)
    return first, second


async def test_rebook_paid_booking_to_cheaper_refunds_the_difference(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    first, second = await two_departures(client, operator.headers, second_adult=5000)
    created = await hold(client, first["id"], adults=2)
    pi = await pay(client, stripe_api, created)

    body = ok(await rebook(client, created, second["id"]))
    difference = 2 * ADULT - 2 * 5000
    assert body["status"] == "confirmed"
    assert body["total"]["amount"] == 10000
    assert body["refund"]["amount"] == difference
    assert body["balance_due"] is None
    [refund] = await refunds_of(ref(created))
    assert refund["reason"] == "rebooked"
    await assert_sent_to_stripe(stripe_api, refund, pi, difference)
    assert await stripe_refunds(stripe_api, pi) == [difference]
    view_ = await money(client, operator, ref(created))
    assert (view_["paid"]["amount"], view_["refunded"]["amount"]) == (2 * ADULT, difference)
    assert await problem_of(ref(created)) is None

    # Cancelling now gives back the rest, never more than was paid.
    body = ok(await cancel(client, created))
    assert body["refund"]["amount"] == 10000
    assert sum(await stripe_refunds(stripe_api, pi)) == 2 * ADULT
    assert sorted(r["amount"] for r in await refunds_of(ref(created))) == [difference, 10000]
    assert await problem_of(ref(created)) is None


async def pay_the_change(
    client: httpx.AsyncClient, stripe_api: stripe.StripeClient, created: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Start the payment of a pending change's difference and pay it at Stripe (no webhook
    yet); its PaymentIntent id and the payment start's body."""
    started: dict[str, Any] = ok(
        await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created))
    )
    pi = intent_id(started)
    await pay_at_stripe(stripe_api, pi)
    return pi, started


async def reconciled(client: httpx.AsyncClient, operator: Account) -> list[dict[str, Any]]:
    body = ok(await client.get(RECONCILIATION, headers=operator.headers))
    mismatches: list[dict[str, Any]] = body["mismatches"]
    return mismatches


async def test_rebook_paid_booking_to_dearer_holds_seats_until_the_difference_is_paid(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    first, dearer = await two_departures(client, operator.headers, second_adult=8000)
    created = await hold(client, first["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    difference = 16000 - 2 * ADULT

    body = ok(await rebook(client, created, dearer["id"]))
    # Nothing moves yet: the booking stays where it is, at its price; the new seats wait.
    assert body["departure_id"] == first["id"]
    assert body["total"]["amount"] == 2 * ADULT
    assert body["balance_due"]["amount"] == difference
    change = body["pending_change"]
    assert change["departure_id"] == dearer["id"]
    assert change["amount_due"]["amount"] == difference
    assert change["new_total"]["amount"] == 16000
    assert len(change["seats"]) == 2
    assert change["expires_at"] is not None
    assert await seats_left(client, first["id"]) == 43
    assert await seats_left(client, dearer["id"]) == 43
    assert await problem_of(ref(created)) is None
    # Asked again (a double click): the same pending change, no more seats.
    assert ok(await rebook(client, created, dearer["id"]))["pending_change"] == change
    assert await seats_left(client, dearer["id"]) == 43

    # The difference is a payment of its own, through Stripe, for exactly that amount.
    change_pi, started = await pay_the_change(client, stripe_api, created)
    assert started["amount"]["amount"] == difference
    assert change_pi != pi
    outcome = await send_event(client, "payment_intent.succeeded", {"id": change_pi})
    assert outcome == {"received": True, "outcome": "completed"}

    body = await view(client, created)
    assert body["departure_id"] == dearer["id"]
    assert body["total"]["amount"] == 16000
    assert body["pending_change"] is None
    assert body["balance_due"] is None
    assert [line["seat_label"] for line in body["lines"]] == change["seats"]
    assert await seats_left(client, first["id"]) == 45
    assert await seats_left(client, dearer["id"]) == 43
    view_ = await money(client, operator, ref(created))
    assert (view_["paid"]["amount"], view_["refunded"]["amount"]) == (16000, 0)
    assert sorted(p["amount"]["amount"] for p in view_["payments"]) == sorted(
        [2 * ADULT, difference]
    )
    assert await problem_of(ref(created)) is None
    assert await reconciled(client, operator) == []
    # The same success heard again changes nothing.
    again = await send_event(client, "payment_intent.succeeded", {"id": change_pi})
    assert again["outcome"] == "already_applied"

    # Cancelled in full: each payment goes back through its own intent, nothing more.
    body = ok(await cancel(client, created))
    assert body["refund"]["amount"] == 16000
    assert await stripe_refunds(stripe_api, pi) == [2 * ADULT]
    assert await stripe_refunds(stripe_api, change_pi) == [difference]
    assert await problem_of(ref(created)) is None
    assert await reconciled(client, operator) == []


async def test_an_unpaid_change_reverts_and_a_late_payment_for_it_goes_back(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    first, dearer = await two_departures(client, operator.headers, second_adult=8000)
    created = await hold(client, first["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    before = await view(client, created)
    change = ok(await rebook(client, created, dearer["id"]))["pending_change"]
    # Paid at Stripe, but its webhook is late: the change lapses first.
    change_pi, _started = await pay_the_change(client, stripe_api, created)

    with clock.frozen(parse(change["expires_at"]) + timedelta(seconds=1)):
        problem(
            await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created)),
            409,
            "change_expired",
        )
        assert await revert_overdue_changes() == 1
        assert await revert_overdue_changes() == 0
        await dispatch_outbox()
    after = await view(client, created)
    assert after == {**before, "balance_due": None, "pending_change": None}
    booking_id = (await booking_row(ref(created)))["id"]
    told = await Notification.select(Notification.kind).where(Notification.booking == booking_id)
    assert "booking.change_reverted" in [row["kind"] for row in told]
    assert await seats_left(client, dearer["id"]) == 45
    assert await seats_left(client, first["id"]) == 43

    outcome = await send_event(client, "payment_intent.succeeded", {"id": change_pi})
    assert outcome["outcome"] == "refunded"
    # The late difference goes back through its own intent; the booking stands as it was.
    assert await stripe_refunds(stripe_api, change_pi) == [16000 - 2 * ADULT]
    assert await stripe_refunds(stripe_api, pi) == []
    assert (await view(client, created))["departure_id"] == first["id"]
    assert await problem_of(ref(created)) is None
    assert await reconciled(client, operator) == []


async def test_an_unpaid_changes_open_intent_is_cancelled_when_it_reverts(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    first, dearer = await two_departures(client, operator.headers, second_adult=8000)
    created = await hold(client, first["id"], adults=2)
    await pay(client, stripe_api, created)
    change = ok(await rebook(client, created, dearer["id"]))["pending_change"]
    started = ok(await client.post(f"{BOOKINGS}/{ref(created)}/payments", headers=guest(created)))
    change_pi = intent_id(started)

    with clock.frozen(parse(change["expires_at"]) + timedelta(seconds=1)):
        async with effects_after_commit():
            assert await revert_overdue_changes() == 1
        await dispatch_outbox()
    at_stripe = await stripe_api.v1.payment_intents.retrieve_async(change_pi)
    assert at_stripe.status == "canceled"
    [change_payment] = [p for p in await payments_of(ref(created)) if p["change"] is not None]
    assert change_payment["status"] == PaymentStatus.cancelled
    assert await problem_of(ref(created)) is None


async def test_a_new_rebooking_supersedes_a_pending_change(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    route, vehicle, first = await bus_line(client, operator.headers)
    fares: dict[str, dict[str, Any]] = {}
    for adult, days in ((8000, 12), (9000, 13), (5000, 14)):
        departure = await create_departure(client, operator.headers, route, vehicle, in_days(days))
        await put_fares(client, operator.headers, f"{DEPARTURES}/{departure['id']}/fares", adult)
        fares[str(adult)] = departure
    created = await hold(client, first["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    ok(await rebook(client, created, fares["8000"]["id"]))
    # Back to where it is: refused, the pending change stays.
    problem(await rebook(client, created, first["id"]), 400)
    assert (await view(client, created))["pending_change"]["departure_id"] == fares["8000"]["id"]

    # Dearer still: the first change is dropped (its seats freed), a new one waits.
    body = ok(await rebook(client, created, fares["9000"]["id"]))
    assert body["pending_change"]["departure_id"] == fares["9000"]["id"]
    assert body["pending_change"]["amount_due"]["amount"] == 18000 - 2 * ADULT
    assert await seats_left(client, fares["8000"]["id"]) == 45
    assert await seats_left(client, fares["9000"]["id"]) == 43

    # Cheaper: moved at once, the pending change dropped, the difference refunded.
    body = ok(await rebook(client, created, fares["5000"]["id"]))
    assert body["departure_id"] == fares["5000"]["id"]
    assert body["pending_change"] is None
    assert body["total"]["amount"] == 10000
    assert await seats_left(client, fares["9000"]["id"]) == 45
    assert await seats_left(client, first["id"]) == 45
    assert await stripe_refunds(stripe_api, pi) == [2 * ADULT - 10000]
    booking_id = (await booking_row(ref(created)))["id"]
    changes = await BookingChange.select().where(BookingChange.booking == booking_id).run()
    assert sorted(c["status"] for c in changes) == [BookingChangeStatus.reverted] * 2
    assert await problem_of(ref(created)) is None


async def test_rebooking_to_cheaper_twice_at_once_refunds_the_difference_once(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    first, cheaper = await two_departures(client, operator.headers, second_adult=5000)
    created = await hold(client, first["id"], adults=2)
    pi = await pay(client, stripe_api, created)

    answers = await asyncio.gather(*(rebook(client, created, cheaper["id"]) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [200, 200], [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert {b["departure_id"] for b in bodies} == {cheaper["id"]}
    difference = 2 * ADULT - 10000
    [refund] = await refunds_of(ref(created))
    assert refund["amount"] == difference
    assert await stripe_refunds(stripe_api, pi) == [difference]
    assert (await booking_row(ref(created)))["refund_amount"] == difference
    assert await problem_of(ref(created)) is None


async def test_reconciliation_lists_a_confirmed_booking_whose_money_does_not_add_up(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    await pay(client, stripe_api, created)
    assert await reconciled(client, operator) == []
    # As an older rebooking left it: a dearer total with the difference never paid.
    await (
        Booking.update({Booking.total_amount: 16000, Booking.balance_due: 16000 - 2 * ADULT})
        .where(Booking.reference == ref(created))
        .run()
    )
    [line] = await reconciled(client, operator)
    assert line["reference"] == ref(created)
    assert line["problem"] == "confirmed_but_paid_differs"
    assert (line["paid"], line["refunded"], line["expected_net"]) == (2 * ADULT, 0, 16000)


# ---------------------------------------------------------------- never above what was paid


async def test_nothing_more_is_refunded_after_a_partial_refund(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"])
    started = await start_payment(client, created)
    pi = intent_id(started)
    await pay_at_stripe(stripe_api, pi)
    event_id = f"evt_{uuid.uuid4().hex}"
    assert (await send_event(client, "payment_intent.succeeded", {"id": pi}, event_id))[
        "outcome"
    ] == "confirmed"
    half = ADULT * 50 // 100
    with clock.frozen(parse(departure["departs_at"]) - timedelta(hours=48)):
        assert ok(await cancel(client, created))["refund"]["amount"] == half
        # Cancelling again is refused, and cancelling the run skips the cancelled booking.
        problem(await cancel(client, created), 409, "illegal_transition")
    body = ok(await client.post(f"{DEPARTURES}/{departure['id']}/cancel", headers=operator.headers))
    assert body["bookings_cancelled"] == 0
    assert body["refunds_total"]["amount"] == 0
    # Stripe delivering the payment again, under the same event id or a new one, is not a
    # payment after expiry: it was applied already.
    duplicate = await send_event(client, "payment_intent.succeeded", {"id": pi}, event_id)
    assert duplicate["outcome"] == "duplicate"
    again = await send_event(client, "payment_intent.succeeded", {"id": pi})
    assert again["outcome"] != "refunded"
    [refund] = await refunds_of(ref(created))
    await assert_sent_to_stripe(stripe_api, refund, pi, half)
    assert (await booking_row(ref(created)))["refund_amount"] == half
    assert (await view(client, created))["refund"]["amount"] == half
    assert await stripe_refunds(stripe_api, pi) == [half]
    assert await problem_of(ref(created)) is None

    # Owing more than is left of the payment: Stripe refunds what is left, the rest needs
    # a person.
    row = await booking_row(ref(created))
    async with write_transaction():
        await owe_refund(row["id"], row["currency"], ADULT, "test", f"test:{ref(created)}:more")
    assert await execute_pending_refunds() == 1
    refunds = await refunds_of(ref(created))
    by_provider = {(r["provider"], r["status"]): r for r in refunds if r["id"] != refund["id"]}
    assert set(by_provider) == {("stripe", "succeeded"), ("manual", "requires_action")}
    assert by_provider["stripe", "succeeded"]["amount"] == ADULT - half
    assert by_provider["manual", "requires_action"]["amount"] == half
    assert by_provider["manual", "requires_action"]["provider_id"] is None
    assert sum(await stripe_refunds(stripe_api, pi)) == ADULT
    # Now nothing at all is left: a further debt is entirely manual.
    async with write_transaction():
        await owe_refund(row["id"], row["currency"], 100, "test", f"test:{ref(created)}:again")
    assert await execute_pending_refunds() == 0
    [extra] = [r for r in await refunds_of(ref(created)) if r["key"].endswith(":again:manual")]
    assert (extra["amount"], extra["status"]) == (100, RefundStatus.requires_action)
    assert sum(await stripe_refunds(stripe_api, pi)) == ADULT


async def test_booking_confirmed_without_payment_gets_a_manual_refund(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    async with write_transaction():
        await transition(
            BookingRow.from_row(await booking_row(ref(created))),
            BookingStatus.confirmed,
            actor="test",
            reason="manual",
        )
    assert await problem_of(ref(created)) == "confirmed_but_paid_differs"
    at_stripe_before = await all_stripe_refunds(stripe_api)

    body = ok(await cancel(client, created))
    assert body["refund"]["amount"] == 2 * ADULT
    [refund] = await refunds_of(ref(created))
    assert refund["provider"] == "manual"
    assert refund["status"] == RefundStatus.requires_action
    assert refund["amount"] == 2 * ADULT
    assert refund["provider_id"] is None
    assert refund["payment"] is None
    assert refund["last_error"]
    assert await execute_pending_refunds() == 0
    assert await all_stripe_refunds(stripe_api) == at_stripe_before
    view_ = await money(client, operator, ref(created))
    assert view_["paid"]["amount"] == 0
    assert [(r["provider"], r["status"]) for r in view_["refunds"]] == [
        ("manual", "requires_action")
    ]
    assert await problem_of(ref(created)) is None


# ---------------------------------------------------------------- failed refunds


async def test_failed_refund_is_recorded_then_retried_once(
    client: httpx.AsyncClient,
    operator: Account,
    stripe_api: stripe.StripeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"])
    pi = await pay(client, stripe_api, created)

    async def down(self: Any, provider_id: str, amount: int, idempotency_key: str) -> Any:
        raise providers.ProviderError("down")

    monkeypatch.setattr(providers.StripeProvider, "refund", down)
    body = ok(await cancel(client, created))
    assert body["refund"]["amount"] == ADULT
    assert body["booking"]["status"] == "cancelled"
    [refund] = await refunds_of(ref(created))
    assert refund["status"] == RefundStatus.failed
    assert refund["last_error"] == "down"
    assert refund["attempts"] == 1
    assert refund["provider_id"] is None
    [shown] = (await money(client, operator, ref(created)))["refunds"]
    assert (shown["status"], shown["attempts"], shown["last_error"]) == ("failed", 1, "down")
    assert shown["amount"]["amount"] == ADULT
    assert await stripe_refunds(stripe_api, pi) == []
    assert await problem_of(ref(created)) is None

    monkeypatch.undo()
    # Not at once: the retry waits its backoff, then goes out under the same key.
    failed_at = refund["updated_at"]
    with clock.frozen(failed_at + REFUND_RETRY_FIRST - timedelta(seconds=1)):
        assert await execute_pending_refunds() == 0
    with clock.frozen(failed_at + REFUND_RETRY_FIRST):
        assert await execute_pending_refunds() == 1
    [refund] = await refunds_of(ref(created))
    assert refund["status"] == RefundStatus.succeeded
    assert refund["attempts"] == 2
    assert refund["last_error"] == ""
    at_stripe = await stripe_api.v1.refunds.retrieve_async(refund["provider_id"])
    assert (at_stripe.amount, at_stripe.payment_intent) == (ADULT, pi)
    assert await execute_pending_refunds() == 0
    assert await stripe_refunds(stripe_api, pi) == [ADULT]
    [shown] = (await money(client, operator, ref(created)))["refunds"]
    assert (shown["status"], shown["provider_id"]) == ("succeeded", refund["provider_id"])


# ---------------------------------------------------------------- one worker per refund


async def owed_refund(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> tuple[dict[str, Any], str]:
    """A paid booking (two adults) cancelled with one fare owed back, as the cancellation
    commits it: the refund is recorded and no worker has taken it yet. The booking and its
    PaymentIntent."""
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    await cancel_and_die(await booking_row(ref(created)), ADULT)
    return created, pi


async def cancel_and_die(booking: dict[str, Any], refund: int) -> None:
    """Cancel `booking` owing `refund`, as a process that dies right after the commit:
    the refund is recorded, and nobody asked Stripe for it yet (the `refunds` step's job)."""
    async with effects_after_commit() as effects, write_transaction():
        await transition(
            BookingRow.from_row(booking), BookingStatus.cancelled, actor="guest",
            reason="cancelled_by_guest", refund_amount=refund,
        )  # fmt: skip
        effects.clear()


async def test_two_workers_executing_refunds_at_once_send_each_once(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    created, pi = await owed_refund(client, operator, stripe_api)

    done = await asyncio.gather(execute_pending_refunds(), execute_pending_refunds())

    assert sorted(done) == [0, 1]
    # localstripe has no idempotency keys: two calls would have made two refunds.
    assert await stripe_refunds(stripe_api, pi) == [ADULT]
    [refund] = await refunds_of(ref(created))
    await assert_sent_to_stripe(stripe_api, refund, pi, ADULT)
    assert (refund["claim"], refund["claimed_until"]) == (None, None)
    assert await execute_pending_refunds() == 0
    assert await stripe_refunds(stripe_api, pi) == [ADULT]


async def test_refund_of_a_worker_that_died_after_stripes_answer_is_adopted_not_repeated(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    created, pi = await owed_refund(client, operator, stripe_api)
    [owed] = await refunds_of(ref(created))
    # A worker claims the refund, reaches Stripe under its natural key, and dies before it
    # can record the answer.
    claimed = await claim_refund(owed["id"])
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == (RefundStatus.processing, 1)
    made = await providers.stripe_provider().refund(pi, ADULT, refund_idempotency_key(claimed.id))
    [left] = await refunds_of(ref(created))
    assert (left["status"], left["provider_id"]) == (RefundStatus.processing, None)

    # While its lease runs, no other worker touches the refund.
    assert await claim_refund(owed["id"]) is None
    assert await execute_pending_refunds() == 0
    with clock.frozen(claimed.claimed_until - timedelta(seconds=1)):
        assert await execute_pending_refunds() == 0
    # Once it lapses, the next worker finds Stripe's refund instead of making another.
    with clock.frozen(claimed.claimed_until):
        assert await execute_pending_refunds() == 1
    [refund] = await refunds_of(ref(created))
    assert (refund["status"], refund["provider_id"], refund["attempts"]) == (
        RefundStatus.succeeded,
        made.provider_id,
        2,
    )
    assert await stripe_refunds(stripe_api, pi) == [ADULT]

    # The first worker coming back with its old claim neither sends nor records anything.
    assert await execute_refund(claimed) is False
    assert await stripe_refunds(stripe_api, pi) == [ADULT]
    assert await refunds_of(ref(created)) == [refund]
    assert await problem_of(ref(created)) is None
    assert ok(await client.get(RECONCILIATION, headers=operator.headers))["mismatches"] == []


async def test_refunds_out_of_retries_stay_on_the_report_until_they_succeed(
    client: httpx.AsyncClient,
    operator: Account,
    stripe_api: stripe.StripeClient,
) -> None:
    created, pi = await owed_refund(client, operator, stripe_api)
    [owed] = await refunds_of(ref(created))
    now = clock.now()
    # Stripe unreachable (a closed port) for every attempt.
    settings = dataclasses.replace(
        get_settings(), stripe_api_base=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_settings", settings)
        for attempt in range(1, MAX_REFUND_ATTEMPTS + 1):
            with clock.frozen(now + attempt * REFUND_RETRY_MAX):
                assert await execute_pending_refunds() == 0
    [failed] = await refunds_of(ref(created))
    assert (failed["status"], failed["attempts"]) == (RefundStatus.failed, MAX_REFUND_ATTEMPTS)
    assert failed["last_error"]
    mismatches = ok(await client.get(RECONCILIATION, headers=operator.headers))["mismatches"]
    assert [(m["reference"], m["problem"]) for m in mismatches] == [(ref(created), "refund_failed")]
    assert await stripe_refunds(stripe_api, pi) == []
    assert owed["id"] == failed["id"]


async def test_refund_left_pending_whose_update_never_came_is_caught_up_by_the_sweep(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    created, pi = await owed_refund(client, operator, stripe_api)
    assert await execute_pending_refunds() == 1
    [refund] = await refunds_of(ref(created))
    # As if Stripe had answered `pending` and its refund.updated event were lost
    # (localstripe settles every refund at once).
    await Refund.update({Refund.status: RefundStatus.pending.value}).where(
        Refund.id == refund["id"]
    )
    assert ok(await client.get(RECONCILIATION, headers=operator.headers))["mismatches"] == []
    # A day on, it is stuck: the report says so (the refund is dated back a day, since the
    # operator's token would not outlive a frozen clock moved a day ahead).
    await Refund.update({Refund.created_at: refund["created_at"] - REFUND_OVERDUE}).where(
        Refund.id == refund["id"]
    )
    mismatches = ok(await client.get(RECONCILIATION, headers=operator.headers))["mismatches"]
    assert [(m["reference"], m["problem"]) for m in mismatches] == [(ref(created), "refund_stuck")]

    await sync_open_payments()

    assert ok(await client.get(RECONCILIATION, headers=operator.headers))["mismatches"] == []
    [caught_up] = await refunds_of(ref(created))
    assert (caught_up["status"], caught_up["provider_id"]) == (
        RefundStatus.succeeded,
        refund["provider_id"],
    )
    assert await stripe_refunds(stripe_api, pi) == [ADULT]


# ---------------------------------------------------------------- invariants


async def test_money_adds_up_for_every_booking_after_a_mixed_day(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    route, vehicle, departure = await bus_line(client, operator.headers)
    free_departure = await create_departure(client, operator.headers, route, vehicle, in_days(11))
    await put_fares(client, operator.headers, f"{DEPARTURES}/{free_departure['id']}/fares", 0, 0)
    start = clock.now()
    with clock.frozen(start):
        paid = await hold(client, departure["id"])
        await pay(client, stripe_api, paid)
        cancelled = await hold(client, departure["id"], adults=2)
        await pay(client, stripe_api, cancelled)
        unpaid = await hold(client, departure["id"])
        late = await hold(client, departure["id"], seats=["10A"])
        late_pi = intent_id(await start_payment(client, late))
        unpaid_pi = intent_id(await start_payment(client, unpaid))
        free = await hold(client, free_departure["id"])
        assert free["booking"]["total"]["amount"] == 0
        started = await start_payment(client, free)
        assert (started["provider"], started["status"]) == ("free", "confirmed")
        # The late guest pays at Stripe, but the webhook only arrives after the hold ran out
        # and the seat was sold again.
        await pay_at_stripe(stripe_api, late_pi)
        clock.advance(timedelta(minutes=16))
        assert await expire_all_overdue() == 2
        resold = await hold(client, departure["id"], seats=["10A"])
        outcome = await send_event(client, "payment_intent.succeeded", {"id": late_pi})
        assert outcome["outcome"] == "refunded"
        # The expiry sweep never waits on Stripe: the payments sweep cancels the intent.
        await sync_open_payments()
        assert (await stripe_api.v1.payment_intents.retrieve_async(unpaid_pi)).status == (
            "canceled"
        )
    with clock.frozen(parse(departure["departs_at"]) - timedelta(hours=48)):
        assert ok(await cancel(client, cancelled))["refund"]["amount"] == ADULT

    late_row = await booking_row(ref(late))
    assert late_row["status"] == BookingStatus.expired
    assert late_row["refund_amount"] == ADULT
    [late_refund] = await refunds_of(ref(late))
    assert late_refund["reason"] == "paid_after_expiry"
    await assert_sent_to_stripe(stripe_api, late_refund, late_pi, ADULT)
    statuses = {
        ref(created): (await booking_row(ref(created)))["status"]
        for created in (paid, cancelled, unpaid, late, free, resold)
    }
    assert statuses == {
        ref(paid): "confirmed",
        ref(cancelled): "cancelled",
        ref(unpaid): "expired",
        ref(late): "expired",
        ref(free): "confirmed",
        ref(resold): "on_hold",
    }
    for created in (paid, cancelled, unpaid, late, free, resold):
        row = await booking_row(ref(created))
        paid_amount, refunded = await money_of(row["id"])
        problem = money_problem(BookingRow.from_row(row), paid_amount, refunded)
        assert problem is None, (row, paid_amount, refunded)

    recon = ok(await client.get(RECONCILIATION, headers=operator.headers))
    assert recon["bookings"] == 6
    assert recon["mismatches"] == []
    assert recon["paid"]["amount"] == ADULT + 2 * ADULT + ADULT
    assert recon["refunded"]["amount"] == ADULT + ADULT
    assert recon["currency"] == "CNY"

    # A booking confirmed without any payment is the one the report points at.
    async with write_transaction():
        await transition(
            BookingRow.from_row(await booking_row(ref(resold))),
            BookingStatus.confirmed,
            actor="test",
            reason="manual",
        )
    recon = ok(await client.get(RECONCILIATION, headers=operator.headers))
    assert [(m["reference"], m["problem"]) for m in recon["mismatches"]] == [
        (ref(resold), "confirmed_but_paid_differs")
    ]
    [mismatch] = recon["mismatches"]
    assert (mismatch["paid"], mismatch["refunded"], mismatch["expected_net"]) == (0, 0, ADULT)
    assert await problem_of(ref(resold)) == "confirmed_but_paid_differs"


# ---------------------------------------------------------------- operator views


async def test_money_view_shows_payments_and_refunds_to_its_operator_only(
    client: httpx.AsyncClient,
    operator: Account,
    make_operator: Any,
    stripe_api: stripe.StripeClient,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    with clock.frozen(parse(departure["departs_at"]) - timedelta(hours=48)):
        ok(await cancel(client, created))

    body = await money(client, operator, ref(created).lower())
    assert body["reference"] == ref(created)
    assert body["booking_status"] == "cancelled"
    assert body["total"]["amount"] == 2 * ADULT
    assert body["paid"]["amount"] == 2 * ADULT
    assert body["refunded"]["amount"] == ADULT
    [payment] = body["payments"]
    assert (payment["provider"], payment["provider_id"], payment["status"]) == (
        "stripe",
        pi,
        "succeeded",
    )
    assert (payment["amount"]["amount"], payment["amount"]["currency"]) == (2 * ADULT, "CNY")
    [refund] = body["refunds"]
    assert (refund["provider"], refund["status"], refund["reason"]) == (
        "stripe",
        "succeeded",
        "cancelled_by_guest",
    )
    assert refund["amount"]["amount"] == ADULT
    assert refund["provider_id"].startswith("re_")

    other = await make_operator("other-bus")
    url = f"/api/v1/operator/bookings/{ref(created)}/money"
    problem(await client.get(url, headers=other.headers), 404, "booking_not_found")
    unknown = "/api/v1/operator/bookings/ZZZZZZZZ/money"
    problem(await client.get(unknown, headers=operator.headers), 404, "booking_not_found")
    problem(await client.get(url), 401)
    theirs = ok(await client.get(RECONCILIATION, headers=other.headers))
    assert (theirs["bookings"], theirs["paid"]["amount"]) == (0, 0)


async def test_reconciliation_filters_by_the_operators_local_dates(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    shanghai = clock.zone("Asia/Shanghai")
    day = (clock.now().astimezone(shanghai) + timedelta(days=1)).date()
    # 23:30 and 00:30 in Shanghai: one UTC date (15:30 and 16:30), two local ones.
    late_evening = datetime.combine(day, datetime.min.time(), shanghai) + timedelta(
        hours=23, minutes=30
    )
    after_midnight = late_evening + timedelta(hours=1)
    assert late_evening.astimezone(UTC).date() == after_midnight.astimezone(UTC).date()
    with clock.frozen(late_evening):
        evening = await hold(client, departure["id"])
        await pay(client, stripe_api, evening)
    with clock.frozen(after_midnight):
        night = await hold(client, departure["id"], adults=2)

    async def report(**query: str) -> dict[str, Any]:
        params = {"from" if k == "date_from" else "to": v for k, v in query.items()}
        body: dict[str, Any] = ok(
            await client.get(RECONCILIATION, params=params, headers=operator.headers)
        )
        return body

    first = await report(date_from=day.isoformat(), date_to=day.isoformat())
    assert (first["bookings"], first["paid"]["amount"]) == (1, ADULT)
    next_day = (day + timedelta(days=1)).isoformat()
    second = await report(date_from=next_day, date_to=next_day)
    assert (second["bookings"], second["paid"]["amount"]) == (1, 0)
    assert (await report(date_from=day.isoformat()))["bookings"] == 2
    assert (await report(date_to=day.isoformat()))["bookings"] == 1
    assert (await report(date_to=(day - timedelta(days=1)).isoformat()))["bookings"] == 0
    assert (await report())["bookings"] == 2
    problem(
        await client.get(
            RECONCILIATION,
            params={"from": next_day, "to": day.isoformat()},
            headers=operator.headers,
        ),
        400,
    )
    assert {m["reference"] for m in (await report())["mismatches"]} == set()
    assert (await booking_row(ref(night)))["created_at"] == after_midnight


async def test_the_refunds_step_pays_a_backlog_in_batches_of_its_limit(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    bookings = [await hold(client, departure["id"]) for _ in range(2)]
    intents = [await pay(client, stripe_api, created) for created in bookings]
    for created in bookings:
        await cancel_and_die(await booking_row(ref(created)), ADULT)

    assert await execute_pending_refunds(limit=1) == 1
    assert sorted([await stripe_refunds(stripe_api, pi) for pi in intents]) == [[], [ADULT]]
    assert await execute_pending_refunds(limit=1) == 1
    assert await execute_pending_refunds(limit=1) == 0
    assert [await stripe_refunds(stripe_api, pi) for pi in intents] == [[ADULT], [ADULT]]


async def test_migration_settles_old_payments_that_can_move_no_more_money(
    client: httpx.AsyncClient, operator: Account
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"])
    booking = await booking_row(ref(created))
    long_ago = clock.now() - timedelta(days=30)
    # Payments as they were before `settled_at` existed.
    for status in ("cancelled", "succeeded", "failed"):
        await Payment.insert(
            Payment(
                booking=booking["id"],
                provider="stripe",
                provider_id=f"pi_old_{status}",
                amount=ADULT,
                currency="CNY",
                status=status,
                created_at=long_ago,
                updated_at=long_ago,
                succeeded_at=long_ago if status == "succeeded" else None,
            )
        )

    manager = await importlib.import_module(
        "migrations.tourline_2026_12_04t11_10_00_000019"
    ).forwards()
    await manager.run()

    settled = {p["status"]: p["settled_at"] for p in await payments_of(ref(created))}
    # A failed intent may still take the tourist's money: the sweep asks Stripe about it.
    assert settled == {"cancelled": long_ago, "succeeded": long_ago, "failed": None}


async def test_a_second_payment_for_a_booking_already_paid_goes_back_in_full(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator.headers)
    created = await hold(client, departure["id"], adults=2)
    pi = await pay(client, stripe_api, created)
    # Another intent for the same booking (its row lost after Stripe answered), paid too.
    second = await stripe_api.v1.payment_intents.create_async(
        params={
            "amount": 2 * ADULT,
            "currency": "cny",
            "metadata": {"booking_reference": ref(created)},
        }
    )
    await pay_at_stripe(stripe_api, second.id)

    outcome = await send_event(client, "payment_intent.succeeded", {"id": second.id})
    assert outcome["outcome"] == "refunded"
    assert await stripe_refunds(stripe_api, second.id) == [2 * ADULT]
    assert await stripe_refunds(stripe_api, pi) == []
    assert (await view(client, created))["status"] == "confirmed"
    assert await problem_of(ref(created)) is None
    assert await reconciled(client, operator) == []
