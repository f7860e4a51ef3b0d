"""Payment HTTP API: paying a booking, Stripe's webhook, operators' money views."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.booking.controllers import BookingToken, guarded
from app.core.errors import problem_responses
from app.core.settings import Settings
from app.payments.schemas import BookingMoneyOut, PaymentStartOut, Reconciliation
from app.payments.services import reconciliation, start, webhook


class WebhookOut(msgspec.Struct, kw_only=True):
    received: bool
    outcome: str


class BookingPaymentController(Controller):
    path = "/api/v1/bookings"
    tags = ["Public: bookings"]

    @post(
        "/{reference:str}/payments",
        summary="Pay for my booking",
        description="For a booking on hold with its contact and every passenger filled in. "
        "Creates (or reuses) a Stripe PaymentIntent for the server-computed total and returns "
        "its `client_secret` for Stripe.js; a zero total is confirmed at once. 503 "
        "`payments_not_configured` where card payment is not set up.",
        responses=problem_responses(404, 409, 429, 502, 503),
        status_code=200,
    )
    async def start(
        self, request: Request[Any, Any, Any], reference: FromPath[str], token: BookingToken = None
    ) -> PaymentStartOut:
        return await guarded(request, lambda: start.start_payment(reference, token))


class StripeWebhookController(Controller):
    path = "/api/v1/webhooks"
    tags = ["Webhooks"]

    @post(
        "/stripe",
        summary="Stripe events",
        description="Verifies `Stripe-Signature` over the raw body (400 when it does not "
        "match or is older than 300 s), handles each event id once, and re-fetches the "
        "PaymentIntent from Stripe before acting.",
        responses=problem_responses(400, 503),
        status_code=200,
    )
    async def stripe(
        self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]
    ) -> WebhookOut:
        body = await request.body()
        signature = request.headers.get("stripe-signature")
        outcome = await webhook.handle_stripe_webhook(body, signature, settings)
        return WebhookOut(received=True, outcome=outcome)


class OperatorPaymentController(Controller):
    path = "/api/v1/operator"
    tags = ["Operator: payments"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @get(
        "/bookings/{reference:str}/money",
        summary="Payments and refunds of a booking",
        responses=problem_responses(401, 403, 404),
    )
    async def booking_money(
        self, operator: NamedDependency[OperatorPrincipal], reference: FromPath[str]
    ) -> BookingMoneyOut:
        return await reconciliation.booking_money(operator, reference)

    @get(
        "/payments/reconciliation",
        summary="Reconciliation report",
        description="Bookings made between two local dates: what was paid and refunded, and "
        "one line per booking and problem while its money does not match its status: our "
        "books (`confirmed_but_paid_differs`, `paid_while_on_hold`, "
        "`refund_owed_not_recorded`), Stripe asked now about the week's unsettled intents "
        "(`paid_not_recorded` with the `unrecorded` amount, `provider_unverified` when it "
        "cannot be asked), older intents the sweep could not settle (`payment_unsettled`) "
        "and refunds that will not complete by themselves (`refund_failed`, `refund_stuck`).",
        responses=problem_responses(400, 401, 403),
    )
    async def reconciliation(
        self,
        operator: NamedDependency[OperatorPrincipal],
        date_from: Annotated[date | None, QueryParameter(name="from")] = None,
        date_to: Annotated[date | None, QueryParameter(name="to")] = None,
    ) -> Reconciliation:
        return await reconciliation.reconciliation(operator, date_from, date_to)
