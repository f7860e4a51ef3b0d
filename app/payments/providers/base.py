"""What every payment provider is: the protocol the payment services call, the states
it answers with, and the errors it raises.

A provider speaks in the states below whatever its own words are (they are Stripe's,
the first provider): an intent is `requires_payment_method`, `processing`, `succeeded`
or `canceled`; a refund is `pending`, `succeeded`, `failed` or `canceled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from app.core.errors import DomainError
from app.core.i18n import _
from app.core.settings import Settings


class PaymentsNotConfigured(DomainError):
    status_code = 503
    code = "payments_not_configured"

    def title(self) -> str:
        return _("Card payment is not configured")


class UnknownObject(DomainError):
    """The provider does not know this id."""

    status_code = 404
    code = "unknown_payment_object"


class ProviderError(DomainError):
    status_code = 502
    code = "payment_provider_error"

    def title(self) -> str:
        return _("The payment provider could not be reached")


@dataclass(frozen=True, slots=True)
class IntentState:
    """A payment as the provider sees it now (never trusted from a webhook body)."""

    provider_id: str
    status: str
    amount: int
    currency: str
    reference: str | None
    client_secret: str | None
    failure_reason: str | None
    # Given back so far (on Stripe: its latest charge), by anyone: us, or the dashboard.
    amount_refunded: int = 0


@dataclass(frozen=True, slots=True)
class RefundState:
    # None where the provider keeps no object for it (on account: a credit on an invoice).
    provider_id: str | None
    status: str
    amount: int
    # Our idempotency key as the provider keeps it; None for a refund made outside Tourline.
    key: str | None = None


class PaymentProvider(Protocol):
    """One way of taking money. Every method may be called again with the same arguments
    (a retry after an unknown outcome): `start` and `refund` must then answer with what
    the first call made, found by `idempotency_key`, never make a second one."""

    # Stored in `Payment.provider` and `Refund.provider` (at most 16 characters).
    name: ClassVar[str]
    # Tourists pay their bookings through it (`POST /bookings/{reference}/payments`).
    checkout: ClassVar[bool]
    # Its payments and refunds have ids at the provider, fetched again to learn their
    # outcome (the reconciliation sweep); False where they exist only in our books.
    remote: ClassVar[bool]

    # What the paying page needs: a public key and the methods offered, if any.
    @property
    def publishable_key(self) -> str | None: ...

    @property
    def payment_method_types(self) -> list[str]: ...

    async def start(
        self, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> IntentState: ...

    async def fetch(self, provider_id: str) -> IntentState: ...

    async def refund(
        self, provider_id: str | None, amount: int, idempotency_key: str
    ) -> RefundState: ...

    async def fetch_refund(self, provider_id: str) -> RefundState: ...

    async def find_refund(
        self, provider_id: str | None, idempotency_key: str
    ) -> RefundState | None: ...

    async def list_refunds(self, provider_id: str) -> list[RefundState]:
        """Every refund of the payment at the provider, ours and any made elsewhere."""
        ...

    async def cancel(self, provider_id: str) -> None: ...


class ProviderFactory(Protocol):
    """A provider class: what the registry reads before making one (`name`, `checkout`),
    and how it makes one from the settings."""

    name: ClassVar[str]
    checkout: ClassVar[bool]
    remote: ClassVar[bool]

    def __call__(self, settings: Settings) -> PaymentProvider: ...
