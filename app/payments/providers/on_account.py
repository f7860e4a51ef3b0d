"""The on-account provider: partner agencies are invoiced later.

Nothing goes over the network: taking a payment charges the agency's account at once
(within its credit limit, checked by the partner API), and a refund is a credit on its
next invoice, done when recorded.
"""

from __future__ import annotations

from uuid import UUID

from app.core import clock
from app.core.settings import Settings
from app.payments.providers.base import IntentState, RefundState, UnknownObject
from app.payments.tables import Payment, PaymentStatus

NAME = "on_account"


class OnAccountProvider:
    name = NAME
    # Tourists cannot pay on account; agencies confirm through the partner API.
    checkout = False
    # Its payments and refunds exist only in our books: no ids elsewhere to ask about.
    remote = False
    publishable_key: str | None = None
    payment_method_types: list[str] = []

    def __init__(self, settings: Settings) -> None:
        del settings  # Nothing to configure.

    async def start(
        self, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> IntentState:
        """Charged to the account at once (`record_payment` writes it down)."""
        return IntentState(
            provider_id=idempotency_key, status="succeeded", amount=amount,
            currency=currency, reference=reference, client_secret=None, failure_reason=None,
        )  # fmt: skip

    async def fetch(self, provider_id: str) -> IntentState:
        raise UnknownObject(provider_id)  # Kept nowhere but in our own books.

    async def refund(
        self, provider_id: str | None, amount: int, idempotency_key: str
    ) -> RefundState:
        # Nothing to send: the agency's next invoice is credited.
        return RefundState(provider_id=None, status="succeeded", amount=amount)

    async def fetch_refund(self, provider_id: str) -> RefundState:
        raise UnknownObject(provider_id)

    async def find_refund(
        self, provider_id: str | None, idempotency_key: str
    ) -> RefundState | None:
        return None  # A credit is made when recorded: an earlier try left nothing behind.

    async def list_refunds(self, provider_id: str) -> list[RefundState]:
        return []  # Credits exist only in our own books.

    async def cancel(self, provider_id: str) -> None:
        return None  # Taken at once: never open, nothing to cancel.


async def record_payment(booking_id: UUID, amount: int, currency: str) -> None:
    """Charge a booking to its agency's account, inside the caller's transaction."""
    await Payment.insert(
        Payment(
            booking=booking_id,
            provider=NAME,
            amount=amount,
            currency=currency,
            status=PaymentStatus.succeeded.value,
            succeeded_at=clock.now(),
        )
    ).run()
