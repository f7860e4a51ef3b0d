"""A payment that must not be lost: the tourist's card is declined, the same PaymentIntent
then succeeds at Stripe (localstripe) and its webhook never arrives, and the hold runs out.
The reconciliation sweep finds the money and either confirms the booking (its seats are
still free) or pays everything back with a notice; the operator's report shows the
mismatch until then, and nothing after."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
import stripe

import app.payments.providers
from app.booking.rows import BookingRow
from app.booking.services.expiry import expire_all_overdue
from app.booking.services.state import transition
from app.booking.tables import BookingStatus
from app.core import clock
from app.core.database import write_transaction
from app.core.settings import get_settings
from app.payments.providers import IntentState, ProviderError, StripeProvider
from app.payments.services.refunds import execute_pending_refunds
from app.payments.services.settle import settle_after_change
from app.payments.services.sweep import (
    SYNC_RECHECK,
    SYNC_RECHECK_OLD,
    SYNC_WINDOW,
    sync_open_payments,
)
from app.payments.tables import Payment
from tests.assertions import ok
from tests.conftest import Account
from tests.integration.payments.test_stripe import (
    ADULT,
    SECRET_KEY,
    booking_row,
    bus_line,
    deliver,
    hold,
    intent_at_stripe,
    intent_event,
    intent_id,
    live_lines,
    outbox,
    outcome,
    paid_intent,
    parse,
    pay_card,
    payments,
    ref,
    refunds,
    start,
    status_events,
    view,
)
from tests.servers import free_port

RECONCILIATION = "/api/v1/operator/payments/reconciliation"

# The Stripe SDK's httpx client posts form bodies the way httpx now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def browser(stripe_server: str) -> stripe.StripeClient:
    """Stripe as the tourist's browser (Stripe.js) talks to it: localstripe."""
    return stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": stripe_server}, http_client=stripe.HTTPXClient()
    )


async def decline(browser: stripe.StripeClient, stripe_server: str, pi: str) -> None:
    """The tourist's card is declined, leaving the intent retryable.

    localstripe cannot confirm an intent again after a declined charge (the failed charge
    keeps it in requires_payment_method for good), so the decline here is the card's 3-D
    Secure check failing: Stripe reports it the same way (payment_intent.payment_failed,
    status requires_payment_method with a last_payment_error), and the tourist may then pay
    the same intent with another card."""
    card = await browser.v1.payment_methods.create_async(
        params={
            "type": "card",
            "card": {"number": "4000002760003184", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    await browser.v1.payment_intents.update_async(pi, params={"payment_method": card.id})
    assert (await browser.v1.payment_intents.confirm_async(pi)).status == "requires_action"
    secret = (await intent_at_stripe(browser, pi))["client_secret"]
    async with httpx.AsyncClient(base_url=stripe_server, auth=(SECRET_KEY, "")) as http:
        failed = await http.post(
            f"/v1/payment_intents/{pi}/_authenticate",
            data={"client_secret": secret, "success": "false"},
        )
    assert failed.status_code == 200, failed.text
    at_stripe = await intent_at_stripe(browser, pi)
    assert at_stripe["status"] == "requires_payment_method"
    assert at_stripe["last_payment_error"]["message"]


async def report(client: httpx.AsyncClient, operator: Account) -> dict[str, Any]:
    body: dict[str, Any] = ok(await client.get(RECONCILIATION, headers=operator.headers))
    return body


async def declined_then_paid_without_webhook(
    client: httpx.AsyncClient,
    browser: stripe.StripeClient,
    stripe_server: str,
    created: dict[str, Any],
) -> str:
    """The lost payment: a declined card (its failure webhook arrives), then a good card
    on the same intent (its success webhook never does). The intent."""
    secret = ok(await start(client, created))["client_secret"]
    pi = intent_id(secret)
    await decline(browser, stripe_server, pi)
    failed = await intent_event(browser, "payment_intent.payment_failed", pi)
    assert outcome(await deliver(client, failed)) == "failed"
    assert [p["status"] for p in await payments(created)] == ["failed"]
    # The tourist tries again on the same page: the same intent succeeds.
    assert (await pay_card(browser, secret)).status == "succeeded"
    assert (await view(client, created))["status"] == "on_hold"
    return pi


async def test_lost_payment_with_its_seats_still_free_is_confirmed_by_the_sweep(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    with clock.frozen(clock.now()):
        created = await hold(client, departure["id"], seats=["7A", "7B"])
    pi = await declined_then_paid_without_webhook(client, browser, stripe_server, created)
    expires_at = parse(created["booking"]["expires_at"])

    with clock.frozen(expires_at + timedelta(minutes=1)):
        assert await expire_all_overdue() == 1
        assert (await view(client, created))["status"] == "expired"
        assert await live_lines(created) == [False, False]
        # Stripe holds the money, our books do not: the report says so.
        before = await report(client, operator)
        assert [(m["reference"], m["problem"], m["unrecorded"]) for m in before["mismatches"]] == [
            (ref(created), "paid_not_recorded", 2 * ADULT)
        ]
        assert before["paid"]["amount"] == 0

        assert await sync_open_payments() == 1

        booking = await view(client, created)
        assert booking["status"] == "confirmed"
        assert [line["seat_label"] for line in booking["lines"]] == ["7A", "7B"]
        assert booking["refund"] is None
        assert await live_lines(created) == [True, True]
        after = await report(client, operator)
        assert after["mismatches"] == []
        assert after["paid"]["amount"] == 2 * ADULT
    [payment] = await payments(created)
    assert (payment["provider_id"], payment["status"]) == (pi, "succeeded")
    assert payment["settled_at"] is not None
    assert await refunds(created) == []
    assert await status_events(created) == [
        (None, "on_hold", "created"),
        ("on_hold", "expired", "hold_expired"),
        ("expired", "confirmed", "paid_after_expiry"),
    ]
    assert len(await outbox("booking.confirmed", ref(created))) == 1
    assert await outbox("payment.refunded_late", ref(created)) == []

    # Settled: later sweeps only look for refunds made at Stripe (no second confirmation,
    # no refund).
    later = expires_at + timedelta(minutes=1) + 2 * SYNC_RECHECK
    with clock.frozen(later):
        assert await sync_open_payments() == 0
    [again] = await payments(created)
    assert (again["status"], again["settled_at"], again["checked_at"]) == (
        "succeeded",
        payment["settled_at"],
        later,
    )
    assert len(await outbox("booking.confirmed", ref(created))) == 1


async def test_lost_payment_whose_seats_were_resold_is_refunded_in_full_with_a_notice(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    with clock.frozen(clock.now()):
        created = await hold(client, departure["id"], seats=["7A", "7B"])
    pi = await declined_then_paid_without_webhook(client, browser, stripe_server, created)
    expires_at = parse(created["booking"]["expires_at"])

    with clock.frozen(expires_at + timedelta(minutes=1)):
        # Another tourist takes the very seats: the run-out hold expires on the way.
        other = await hold(client, departure["id"], seats=["7A", "7B"])
        assert (await view(client, created))["status"] == "expired"
        before = await report(client, operator)
        assert [(m["reference"], m["problem"], m["unrecorded"]) for m in before["mismatches"]] == [
            (ref(created), "paid_not_recorded", 2 * ADULT)
        ]

        assert await sync_open_payments() == 1

        booking = await view(client, created)
        assert booking["status"] == "expired"
        assert booking["refund"]["amount"] == 2 * ADULT
        assert await live_lines(created) == [False, False]
        assert (await view(client, other))["status"] == "on_hold"
        assert await live_lines(other) == [True, True]
        after = await report(client, operator)
        assert after["mismatches"] == []
        assert after["paid"]["amount"] == after["refunded"]["amount"] == 2 * ADULT
    [refund] = await refunds(created)
    assert (refund["reason"], refund["amount"], refund["status"]) == (
        "paid_after_expiry",
        2 * ADULT,
        "succeeded",
    )
    at_stripe = await browser.v1.refunds.list_async(params={"payment_intent": pi})
    assert [(r.id, r.amount) for r in at_stripe.data] == [(refund["provider_id"], 2 * ADULT)]
    [notice] = await outbox("payment.refunded_late", ref(created))
    assert (notice["payload"]["amount"], notice["payload"]["currency"]) == (2 * ADULT, "CNY")
    assert await outbox("booking.confirmed", ref(created)) == []

    # The same success heard again (a late webhook, the next sweep) pays back nothing more.
    late = await intent_event(browser, "payment_intent.succeeded", pi)
    with clock.frozen(expires_at + timedelta(minutes=1) + 2 * SYNC_RECHECK):
        assert outcome(await deliver(client, late)) == "already_applied"
        assert await sync_open_payments() == 0
    assert len(await refunds(created)) == 1
    assert len((await browser.v1.refunds.list_async(params={"payment_intent": pi})).data) == 1
    assert len(await outbox("payment.refunded_late", ref(created))) == 1
    assert (await booking_row(created))["refund_amount"] == 2 * ADULT


async def test_the_sweep_cancels_a_declined_intent_of_a_lost_hold_and_asks_at_most_once_a_minute(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    now = clock.now()
    with clock.frozen(now):
        declined = await hold(client, departure["id"])
        secret = ok(await start(client, declined))["client_secret"]
    pi = intent_id(secret)
    await decline(browser, stripe_server, pi)
    failed = await intent_event(browser, "payment_intent.payment_failed", pi)
    assert outcome(await deliver(client, failed)) == "failed"
    expires_at = parse(declined["booking"]["expires_at"])

    sweep_at = expires_at + timedelta(minutes=1)
    with clock.frozen(sweep_at):
        # Another booking expires the run-out hold on the way, without cancelling its
        # intent: declined once, it could still take the tourist's money.
        paying = await hold(client, departure["id"])
        paying_pi = intent_id(ok(await start(client, paying))["client_secret"])
        assert (await view(client, declined))["status"] == "expired"
        assert await sync_open_payments() == 1
    assert (await intent_at_stripe(browser, pi))["status"] == "canceled"
    [payment] = await payments(declined)
    assert payment["status"] == "cancelled"
    assert payment["settled_at"] is not None
    # The tourist's page can no longer pay it.
    with pytest.raises(stripe.StripeError):
        await pay_card(browser, secret)

    # The open intent of the live hold was asked about, and is not again within a minute.
    [open_payment] = await payments(paying)
    assert open_payment["checked_at"] == sweep_at
    with clock.frozen(sweep_at + SYNC_RECHECK - timedelta(seconds=1)):
        assert await sync_open_payments() == 0
    assert [p["checked_at"] for p in await payments(paying)] == [sweep_at]
    with clock.frozen(sweep_at + SYNC_RECHECK):
        assert await sync_open_payments() == 0
    assert [p["checked_at"] for p in await payments(paying)] == [sweep_at + SYNC_RECHECK]
    assert (await intent_at_stripe(browser, paying_pi))["status"] == "requires_payment_method"
    assert (await view(client, paying))["status"] == "on_hold"


async def test_an_old_intent_the_sweep_could_not_settle_is_reported_and_retried_daily(
    client: httpx.AsyncClient,
    operator: Account,
    browser: stripe.StripeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    long_ago = clock.now() - SYNC_WINDOW - timedelta(days=1)
    with clock.frozen(long_ago):
        old = await hold(client, departure["id"])
        pi = intent_id(ok(await start(client, old))["client_secret"])
    await hold(client, departure["id"])  # expires the old hold on the way
    assert (await view(client, old))["status"] == "expired"
    # Stripe's address refuses connections while the sweep comes by.
    unreachable = dataclasses.replace(
        get_settings(), stripe_api_base=f"http://127.0.0.1:{free_port()}"
    )
    monkeypatch.setattr(app.payments.providers, "_settings", unreachable)
    checked_at = clock.now()
    with clock.frozen(checked_at), pytest.raises(ProviderError):
        await sync_open_payments()

    # Past the sweep's window, an intent it could not settle is the operator's to see.
    mismatches = (await report(client, operator))["mismatches"]
    assert [(m["reference"], m["problem"]) for m in mismatches] == [(ref(old), "payment_unsettled")]
    monkeypatch.undo()
    # Stripe is back, but an old intent is asked about once a day, not every tick.
    with clock.frozen(checked_at + SYNC_RECHECK_OLD - timedelta(minutes=1)):
        assert await sync_open_payments() == 0
    assert (await intent_at_stripe(browser, pi))["status"] == "requires_payment_method"
    with clock.frozen(checked_at + SYNC_RECHECK_OLD):
        assert await sync_open_payments() == 1
    assert (await intent_at_stripe(browser, pi))["status"] == "canceled"
    [payment] = await payments(old)
    assert (payment["status"], payment["settled_at"]) == (
        "cancelled",
        checked_at + SYNC_RECHECK_OLD,
    )
    assert (await report(client, operator))["mismatches"] == []


async def test_payment_on_a_live_hold_whose_webhook_is_lost_is_confirmed_by_the_next_sweep(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    await declined_then_paid_without_webhook(client, browser, stripe_server, created)

    assert await sync_open_payments() == 1

    assert (await view(client, created))["status"] == "confirmed"
    assert await status_events(created) == [
        (None, "on_hold", "created"),
        ("on_hold", "confirmed", "paid"),
    ]
    assert (await report(client, operator))["mismatches"] == []


async def test_report_with_stripe_unreachable_says_what_it_could_not_verify(
    client: httpx.AsyncClient,
    operator: Account,
    browser: stripe.StripeClient,
    stripe_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    await declined_then_paid_without_webhook(client, browser, stripe_server, created)
    # Stripe's address now refuses connections.
    unreachable = dataclasses.replace(
        get_settings(), stripe_api_base=f"http://127.0.0.1:{free_port()}"
    )
    monkeypatch.setattr(app.payments.providers, "_settings", unreachable)

    body = await report(client, operator)

    assert [(m["reference"], m["problem"]) for m in body["mismatches"]] == [
        (ref(created), "provider_unverified")
    ]
    # The sweep cannot settle it either, and changes nothing.
    with pytest.raises(ProviderError):
        await sync_open_payments()
    assert (await view(client, created))["status"] == "on_hold"
    monkeypatch.undo()
    with clock.frozen(clock.now() + SYNC_RECHECK):
        assert await sync_open_payments() == 1
    assert (await view(client, created))["status"] == "confirmed"
    assert (await report(client, operator))["mismatches"] == []


async def test_an_intent_cancelled_meanwhile_or_unknown_to_stripe_does_not_stop_the_others(
    client: httpx.AsyncClient,
    operator: Account,
    browser: stripe.StripeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    unknown, raced, plain = [await hold(client, departure["id"]) for _ in range(3)]
    raced_pi, plain_pi = [
        intent_id(ok(await start(client, created))["client_secret"]) for created in (raced, plain)
    ]
    ok(await start(client, unknown))
    # An intent Stripe does not know (another account, a deleted test object).
    [gone] = await payments(unknown)
    await Payment.update({Payment.provider_id: "pi_gone"}).where(Payment.id == gone["id"])
    # Another worker cancels `raced` at Stripe between this one's fetch and its cancel.
    fetch = StripeProvider.fetch

    async def fetch_then_raced(self: StripeProvider, provider_id: str) -> IntentState:
        intent = await fetch(self, provider_id)
        if provider_id == raced_pi and intent.status != "canceled":
            await browser.v1.payment_intents.cancel_async(raced_pi)
        return intent

    monkeypatch.setattr(StripeProvider, "fetch", fetch_then_raced)
    for created in (unknown, raced, plain):
        async with write_transaction():
            await transition(
                BookingRow.from_row(await booking_row(created)), BookingStatus.cancelled,
                actor="guest",
                reason="cancelled_by_guest",
            )  # fmt: skip

    await settle_after_change([(await booking_row(c))["id"] for c in (unknown, raced, plain)])

    for created, pi in ((raced, raced_pi), (plain, plain_pi)):
        assert (await intent_at_stripe(browser, pi))["status"] == "canceled"
        [payment] = await payments(created)
        assert payment["status"] == "cancelled"
        assert payment["settled_at"] is not None
    # It can take no money: settled, so the sweep does not ask about it for ever.
    [gone] = await payments(unknown)
    assert (gone["status"], gone["settled_at"] is not None) == ("requires_payment", True)
    monkeypatch.undo()
    assert await sync_open_payments() == 0
    assert (await report(client, operator))["mismatches"] == []


async def test_a_refund_made_at_stripe_directly_is_recorded_by_the_sweep_and_reported(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    created = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, created)
    succeeded = await intent_event(browser, "payment_intent.succeeded", pi)
    assert outcome(await deliver(client, succeeded)) == "confirmed"
    # Someone refunds part of it in the Stripe dashboard; no webhook reaches Tourline.
    at_stripe = await browser.v1.refunds.create_async(params={"payment_intent": pi, "amount": 500})
    assert (await report(client, operator))["mismatches"] == []

    with clock.frozen(clock.now() + SYNC_RECHECK):
        assert await sync_open_payments() == 1

    [refund] = await refunds(created)
    assert (refund["provider_id"], refund["amount"], refund["status"], refund["reason"]) == (
        at_stripe.id,
        500,
        "succeeded",
        "refunded_at_provider",
    )
    # The ledger adds up with Stripe; the booking no longer does until the operator acts.
    body = await report(client, operator)
    assert body["refunded"]["amount"] == 500
    assert [
        (m["reference"], m["problem"], m["paid"], m["refunded"]) for m in body["mismatches"]
    ] == [(ref(created), "confirmed_but_paid_differs", 2 * ADULT, 500)]
    # Never paid again, nor recorded twice by a later sweep.
    assert await execute_pending_refunds() == 0
    with clock.frozen(clock.now() + 2 * SYNC_RECHECK):
        assert await sync_open_payments() == 0
    assert len(await refunds(created)) == 1
    listed = await browser.v1.refunds.list_async(params={"payment_intent": pi})
    assert [(r.id, r.amount) for r in listed.data] == [(at_stripe.id, 500)]


async def test_a_lost_payment_is_asked_about_before_succeeded_ones_watched_for_refunds(
    client: httpx.AsyncClient, operator: Account, browser: stripe.StripeClient, stripe_server: str
) -> None:
    _route, _vehicle, departure = await bus_line(client, operator)
    lost = await hold(client, departure["id"])
    await declined_then_paid_without_webhook(client, browser, stripe_server, lost)
    # Newer, and never asked about either: a payment applied by its webhook.
    paid = await hold(client, departure["id"])
    pi = await paid_intent(client, browser, paid)
    assert outcome(
        await deliver(client, await intent_event(browser, "payment_intent.succeeded", pi))
    ) == ("confirmed")

    # A batch of one goes to the payment that may have been lost.
    assert await sync_open_payments(limit=1) == 1
    assert (await view(client, lost))["status"] == "confirmed"
    [watched] = await payments(paid)
    assert watched["checked_at"] is None
    # Then the watched one has its turn.
    assert await sync_open_payments(limit=1) == 0
    [watched] = await payments(paid)
    assert watched["checked_at"] is not None
