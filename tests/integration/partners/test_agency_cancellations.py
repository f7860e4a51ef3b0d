"""What an agency's booking leaves when it is cancelled: the agency cancels within its
contract's cut-off (an OCTO error naming it after); the freed seats go to the waiting list
whoever cancels; the refund goes to the agency (its account, or the card it paid with),
never to the traveller's card."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import httpx
import stripe

from app.booking.tables import Booking, BookingLine, BookingStatus
from app.core import clock
from app.payments.services.agency_account import charged_on_account
from app.payments.services.start import pay_booking
from app.payments.tables import Payment, Refund
from tests.assertions import ok
from tests.conftest import Account
from tests.integration.booking.test_waitlist import confirm as confirm_public
from tests.integration.booking.test_waitlist import entries, joined, small_departure
from tests.integration.booking.test_waitlist import hold as public_hold
from tests.integration.partners.test_agency_money import (
    ADULT,
    CHILD,
    COMMISSION_BP,
    agency,
    booking_row,
    bus_line,
    confirm,
    hold,
    octo_error,
    stripe_api,
    stripe_event,
)
from tests.integration.partners.test_agency_terms import LEAD, record_lead
from tests.integration.payments.test_refunds import all_stripe_refunds, stripe_refunds

# localstripe, as the money tests see it.
stripe_api = stripe_api


# ---------------------------------------------------------------- the agency's cut-off


async def test_the_agency_cancels_before_its_cutoff_and_not_after(
    client: httpx.AsyncClient, operator: Account
) -> None:
    route, departure = await bus_line(client, operator)
    _agency_id, headers = await agency(
        client, operator, credit_limit=100_000, cancellation_cutoff_hours=48
    )
    for uuid in ("cut-late", "cut-early"):
        await hold(client, headers, route, departure, uuid, ["adult"])
        await confirm(client, headers, uuid)
    cutoff = datetime.fromisoformat(departure["departs_at"]) - timedelta(hours=48)

    with clock.frozen(cutoff + timedelta(minutes=1)):
        body = octo_error(
            await client.post("/octo/bookings/cut-late/cancel", json={}, headers=headers),
            "UNPROCESSABLE_ENTITY",
        )
    assert body["code"] == "cancellation_cutoff_passed"
    assert "48 hours" in body["errorMessage"]
    assert datetime.fromisoformat(body["utcCutoffAt"].replace("Z", "+00:00")) == cutoff
    assert (await booking_row("cut-late"))["status"] == BookingStatus.confirmed

    with clock.frozen(cutoff - timedelta(minutes=1)):
        cancelled = ok(
            await client.post("/octo/bookings/cut-early/cancel", json={}, headers=headers)
        )
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellation"]["refund"] == "FULL"


# ---------------------------------------------------------------- the waiting list


async def test_an_agency_cancellation_offers_the_seats_to_the_waiting_list(
    client: httpx.AsyncClient, operator: Account
) -> None:
    departure = await small_departure(client, operator)
    _agency_id, headers = await agency(client, operator, credit_limit=1_000_000)
    held = await hold(
        client, headers, {"id": departure["route_id"]}, departure, "wl-1", ["adult", "adult"]
    )
    assert held["status"] == "ON_HOLD"
    await confirm(client, headers, "wl-1")
    public = await public_hold(client, departure["id"], 2, "Public Buyer")
    await confirm_public(public["booking"]["reference"])
    await joined(client, departure["id"], 2, "Waiting Couple")

    ok(await client.post("/octo/bookings/wl-1/cancel", json={}, headers=headers))

    waiting = (await entries(departure["id"]))["Waiting Couple"]
    assert waiting["status"] == "offered"
    offer = await Booking.select().where(Booking.id == waiting["offered_booking"]).first().run()
    assert offer is not None
    assert (offer["channel"], offer["status"]) == ("waitlist", "on_hold")


# ---------------------------------------------------------------- refunds go to the agency


async def _on_account_refunds(booking_id: UUID) -> list[tuple[str, str, int]]:
    rows = await Refund.select().where(Refund.booking == booking_id).order_by(Refund.created_at)
    return [(r["provider"], r["status"], r["amount"]) for r in rows]


async def test_cancelling_an_on_account_booking_credits_the_agencys_account(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, credit_limit=100_000
    )
    await hold(client, headers, route, departure, "oa-agency", ["adult", "child"])
    await confirm(client, headers, "oa-agency")
    await hold(client, headers, route, departure, "oa-operator", ["adult"])
    await confirm(client, headers, "oa-operator")
    agency_uuid = UUID(agency_id)
    before = await charged_on_account(agency_uuid)
    stripe_before = await all_stripe_refunds(stripe_api)
    by_agency = await booking_row("oa-agency")
    by_operator = await booking_row("oa-operator")

    ok(await client.post("/octo/bookings/oa-agency/cancel", json={}, headers=headers))
    assert await _on_account_refunds(by_agency["id"]) == [
        ("on_account", "succeeded", by_agency["total_amount"])
    ]
    assert await charged_on_account(agency_uuid) == before - by_agency["total_amount"]

    # The operator cancels the whole run: the agency's account is credited, not a card.
    ok(
        await client.post(
            f"/api/v1/operator/departures/{departure['id']}/cancel", headers=operator.headers
        )
    )
    assert await _on_account_refunds(by_operator["id"]) == [
        ("on_account", "succeeded", by_operator["total_amount"])
    ]
    assert await charged_on_account(agency_uuid) == 0
    assert await all_stripe_refunds(stripe_api) == stripe_before


async def test_a_card_payment_that_also_landed_never_takes_the_agencys_refund(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    """A traveller's card payment started on the agency's hold (as the guest pages allowed
    before) lands after the agency confirmed on account: the booking was paid already, so
    the card payment goes back at once; cancelling then credits the agency's account with
    what it was charged, and nothing more goes to the traveller's card."""
    route, departure = await bus_line(client, operator)
    agency_id, headers = await agency(client, operator, credit_limit=100_000)
    await hold(client, headers, route, departure, "mix-1", ["adult"])
    row = await booking_row("mix-1")
    await record_lead("mix-1")
    await (
        BookingLine.update({BookingLine.passenger_name: "Wang Fang"})
        .where(BookingLine.booking == row["id"])
        .run()
    )
    started = await pay_booking(row["id"], actor="guest")
    assert started.client_secret is not None
    intent_id = started.client_secret.split("_secret")[0]
    await confirm(client, headers, "mix-1")
    await stripe_api.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_visa"}
    )
    await stripe_api.v1.payment_intents.confirm_async(intent_id)
    await stripe_event(client, "payment_intent.succeeded", {"id": intent_id})
    assert await charged_on_account(UUID(agency_id)) == ADULT
    assert await stripe_refunds(stripe_api, intent_id) == [ADULT]

    ok(await client.post("/octo/bookings/mix-1/cancel", json={}, headers=headers))

    assert await _on_account_refunds(row["id"]) == [
        ("stripe", "succeeded", ADULT),
        ("on_account", "succeeded", ADULT),
    ]
    assert await charged_on_account(UUID(agency_id)) == 0
    assert await stripe_refunds(stripe_api, intent_id) == [ADULT]


async def test_the_operators_cancellation_refunds_a_prepaying_agency_to_its_card(
    client: httpx.AsyncClient, operator: Account, stripe_api: stripe.StripeClient
) -> None:
    route, departure = await bus_line(client, operator)
    _agency_id, headers = await agency(
        client, operator, commission_bp=COMMISSION_BP, payment_terms="prepay"
    )
    await hold(client, headers, route, departure, "pp-op", ["adult", "child"])
    started = ok(await client.post("/octo/bookings/pp-op/payment", json=LEAD, headers=headers))
    intent_id = started["payment"]["clientSecret"].split("_secret")[0]
    await stripe_api.v1.payment_intents.update_async(
        intent_id, params={"payment_method": "pm_card_visa"}
    )
    await stripe_api.v1.payment_intents.confirm_async(intent_id)
    assert await stripe_event(client, "payment_intent.succeeded", {"id": intent_id}) == "confirmed"
    row = await booking_row("pp-op")
    assert row["total_amount"] < ADULT + CHILD  # the net the agency paid

    ok(
        await client.post(
            f"/api/v1/operator/departures/{departure['id']}/cancel", headers=operator.headers
        )
    )
    [refund] = await Refund.select().where(Refund.booking == row["id"]).run()
    [payment] = await Payment.select().where(Payment.booking == row["id"]).run()
    assert (refund["provider"], refund["payment"], refund["amount"]) == (
        "stripe", payment["id"], row["total_amount"],
    )  # fmt: skip
    assert payment["provider_id"] == intent_id
    assert await stripe_refunds(stripe_api, intent_id) == [row["total_amount"]]
