"""The Stripe provider: cards (and Alipay / WeChat Pay) through Stripe PaymentIntents.

It is the one edge tests replace with localstripe, a fake Stripe server. Stripe's
webhook (`verify_stripe_event`) is only a hint: the services fetch the object again.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Annotated, Any, cast

import httpx
import msgspec
import stripe

from app.core import http_clients
from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.settings import Settings
from app.payments.providers.base import (
    IntentState,
    PaymentsNotConfigured,
    ProviderError,
    RefundState,
    UnknownObject,
)

NAME = "stripe"

# A Stripe call that takes longer fails (as unknown; retried with its idempotency key).
STRIPE_TIMEOUT_SECONDS = 30.0


REFUND_KEY_METADATA = "tourline_refund_key"


def _error_message(exc: stripe.StripeError) -> str:
    return exc.user_message or type(exc).__name__


class StripeProvider:
    name = NAME
    checkout = True
    remote = True

    def __init__(self, settings: Settings) -> None:
        if not settings.stripe_secret_key:
            raise PaymentsNotConfigured(
                _("This service takes no card payments yet: STRIPE_SECRET_KEY is not set.")
            )
        # Stripe's own default waits 80 s for an answer. Its connections are the process's
        # shared "stripe" client (`http_clients`), closed on shutdown with the others.
        self.http_client = stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_SECONDS)
        self.http_client._client_async = http_clients.shared("stripe", _stripe_http_client)
        options: dict[str, Any] = {"http_client": self.http_client}
        if settings.stripe_api_base:
            options["base_addresses"] = {"api": settings.stripe_api_base}
        self.client = stripe.StripeClient(settings.stripe_secret_key, **options)
        self.publishable_key: str | None = settings.stripe_publishable_key or None
        self.payment_method_types = list(settings.stripe_payment_method_types)

    @property
    def closed(self) -> bool:
        """Its connections were closed (shutdown): the registry makes a new provider."""
        return bool(self.http_client._client_async.is_closed)

    @staticmethod
    def _state(intent: Any) -> IntentState:
        data = intent.to_dict()
        error = data.get("last_payment_error") or {}
        charge = data.get("latest_charge")
        return IntentState(
            provider_id=data["id"],
            status=data["status"],
            amount=int(data["amount"]),
            currency=str(data["currency"]).upper(),
            reference=(data.get("metadata") or {}).get("booking_reference"),
            client_secret=data.get("client_secret"),
            failure_reason=error.get("message") if isinstance(error, dict) else None,
            amount_refunded=int(charge.get("amount_refunded") or 0)
            if isinstance(charge, dict)
            else 0,
        )

    async def start(
        self, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> IntentState:
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method_types": self.payment_method_types,
            "metadata": {"booking_reference": reference},
        }
        with _stripe_errors():
            # The SDK's typed params lag behind the API (payment_method_types is current).
            intent = await self.client.v1.payment_intents.create_async(
                params=cast(Any, params), options={"idempotency_key": idempotency_key}
            )
        return self._state(intent)

    async def fetch(self, provider_id: str) -> IntentState:
        with _stripe_errors(provider_id):
            # With its charge: what was refunded, also outside Tourline.
            intent = await self.client.v1.payment_intents.retrieve_async(
                provider_id, params={"expand": ["latest_charge"]}
            )
        return self._state(intent)

    async def refund(
        self, provider_id: str | None, amount: int, idempotency_key: str
    ) -> RefundState:
        if provider_id is None:
            raise UnknownObject("")  # Stripe refunds a PaymentIntent: there is none.
        with _stripe_errors():
            refund = await self.client.v1.refunds.create_async(
                params={
                    "payment_intent": provider_id,
                    "amount": amount,
                    # Found again by `find_refund` once Stripe has forgotten the key (24 h).
                    "metadata": {REFUND_KEY_METADATA: idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        return RefundState(provider_id=refund.id, status=refund.status or "pending", amount=amount)

    async def find_refund(
        self, provider_id: str | None, idempotency_key: str
    ) -> RefundState | None:
        """The refund of this intent made earlier under `idempotency_key`, if any: what a
        worker that died after Stripe's answer left behind."""
        if provider_id is None:
            return None
        refunds = await self.list_refunds(provider_id)
        return next((refund for refund in refunds if refund.key == idempotency_key), None)

    async def list_refunds(self, provider_id: str) -> list[RefundState]:
        """Every refund of this intent (a booking's are a few, far below one page)."""
        with _stripe_errors(provider_id):
            page = await self.client.v1.refunds.list_async(
                params={"payment_intent": provider_id, "limit": 100}
            )
        refunds = []
        for refund in page.data:
            data = refund.to_dict()
            refunds.append(
                RefundState(
                    provider_id=data["id"],
                    status=data.get("status") or "pending",
                    amount=int(data["amount"]),
                    key=(data.get("metadata") or {}).get(REFUND_KEY_METADATA),
                )
            )
        return refunds

    async def fetch_refund(self, provider_id: str) -> RefundState:
        with _stripe_errors(provider_id):
            refund = await self.client.v1.refunds.retrieve_async(provider_id)
        return RefundState(
            provider_id=refund.id, status=refund.status or "pending", amount=int(refund.amount)
        )

    async def cancel(self, provider_id: str) -> None:
        with _stripe_errors():
            await self.client.v1.payment_intents.cancel_async(provider_id)


@contextlib.contextmanager
def _stripe_errors(looked_up: str | None = None) -> Iterator[None]:
    """Stripe's failures as ours: `UnknownObject` when the object looked up does not exist
    there, `ProviderError` (with Stripe's message) for anything else."""
    try:
        yield
    except stripe.InvalidRequestError as exc:
        if looked_up is not None and exc.http_status == 404:
            raise UnknownObject(looked_up) from exc
        raise ProviderError(_error_message(exc)) from exc
    except stripe.StripeError as exc:
        raise ProviderError(_error_message(exc)) from exc


def _stripe_http_client() -> httpx.AsyncClient:
    # As stripe.HTTPXClient makes its own (certificates from Stripe's bundle).
    return httpx.AsyncClient(verify=ssl.create_default_context(cafile=stripe.ca_bundle_path))


# How far a signature's timestamp may be from now, either way (Stripe's libraries' default;
# a later replay, or a timestamp set ahead to outlive it, is refused).
SIGNATURE_TOLERANCE_SECONDS = 300


class _EventData(msgspec.Struct):
    object: dict[str, Any]


class _Event(msgspec.Struct):
    """What Tourline reads of an event: the rest is ignored, the object fetched again."""

    id: Annotated[str, msgspec.Meta(min_length=1)]
    type: Annotated[str, msgspec.Meta(min_length=1)]
    data: _EventData


def _bad_signature(message: str) -> InvalidInput:
    return InvalidInput("Stripe-Signature", message, source="header", code="bad_signature")


def _signed_at(header: str) -> int:
    """The `t=` of a Stripe-Signature header that has been verified (so it is there)."""
    return int(next(part[2:] for part in header.split(",") if part.startswith("t=")))


def verify_stripe_event(
    payload: bytes, signature: str | None, settings: Settings
) -> dict[str, Any]:
    """The event (as plain JSON) if `signature` signs `payload` with our secret, dated
    within 300 seconds of now (before or after), and the payload has an event's shape
    (`id`, `type`, `data.object`): otherwise 400 (`bad_signature`, `malformed_event`)."""
    if not settings.stripe_webhook_secret:
        raise PaymentsNotConfigured(_("STRIPE_WEBHOOK_SECRET is not set."))
    try:
        text = payload.decode()
    except UnicodeDecodeError as exc:
        raise _malformed() from exc
    try:
        stripe.WebhookSignature.verify_header(
            text, signature, settings.stripe_webhook_secret,
            tolerance=SIGNATURE_TOLERANCE_SECONDS,
        )  # fmt: skip
    except stripe.SignatureVerificationError as exc:
        raise _bad_signature(_("The signature does not match.")) from exc
    # Stripe's check refuses old timestamps only; one ahead of now is refused as well.
    if _signed_at(signature or "") > time.time() + SIGNATURE_TOLERANCE_SECONDS:
        raise _bad_signature(_("The signature's time is too far from now."))
    try:
        msgspec.json.decode(payload, type=_Event)
        event: dict[str, Any] = msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise _malformed() from exc
    return event


def _malformed() -> InvalidInput:
    return InvalidInput("body", _("This is not a Stripe event."), code="malformed_event")
