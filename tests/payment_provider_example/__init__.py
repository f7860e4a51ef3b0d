"""A third payment provider kept in its own folder: cash at the station's ticket office.

Nothing in app/ names it. `TOURLINE_PAYMENT_PROVIDERS=tests.payment_provider_example,...`
enables it, and the registry loads `Provider` from here. The ticket office's till is
`TILL`, in memory: starting a payment opens a slip whose code the tourist shows at the
counter; the clerk's `take` is the provider's word that it was paid, which Tourline
learns by fetching the slip again (the reconciliation sweep), as it does Stripe's intents.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from app.core.settings import Settings
from app.payments.providers.base import IntentState, ProviderError, RefundState, UnknownObject


@dataclass
class Slip:
    code: str
    amount: int
    currency: str
    reference: str
    status: str = "requires_payment_method"


@dataclass
class Payout:
    id: str
    slip: str
    amount: int
    key: str


@dataclass
class Till:
    slips: dict[str, Slip] = field(default_factory=dict)
    # Slip code by the idempotency key it was opened under.
    opened: dict[str, str] = field(default_factory=dict)
    payouts: list[Payout] = field(default_factory=list)
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def take(self, code: str) -> None:
        """The clerk takes the cash for a slip."""
        slip = self.slips[code]
        if slip.status != "requires_payment_method":
            raise ValueError(f"slip {code} is {slip.status}")
        slip.status = "succeeded"

    def paid_back(self, code: str) -> list[int]:
        return [payout.amount for payout in self.payouts if payout.slip == code]


TILL = Till()


class StationCashProvider:
    name = "station_cash"
    checkout = True
    remote = True
    publishable_key: str | None = None
    payment_method_types = ["cash"]

    def __init__(self, settings: Settings) -> None:
        del settings

    @staticmethod
    def _state(slip: Slip) -> IntentState:
        return IntentState(
            provider_id=slip.code, status=slip.status, amount=slip.amount,
            currency=slip.currency, reference=slip.reference, client_secret=slip.code,
            failure_reason=None,
        )  # fmt: skip

    async def start(
        self, amount: int, currency: str, reference: str, idempotency_key: str
    ) -> IntentState:
        code = TILL.opened.get(idempotency_key)
        if code is None:
            code = TILL.opened[idempotency_key] = f"cash_{next(TILL.numbers):06d}"
            TILL.slips[code] = Slip(code, amount, currency, reference)
        return self._state(TILL.slips[code])

    async def fetch(self, provider_id: str) -> IntentState:
        if provider_id not in TILL.slips:
            raise UnknownObject(provider_id)
        return self._state(TILL.slips[provider_id])

    async def cancel(self, provider_id: str) -> None:
        slip = TILL.slips[provider_id]
        if slip.status == "succeeded":
            raise ProviderError("The cash was taken.")
        slip.status = "canceled"

    async def refund(
        self, provider_id: str | None, amount: int, idempotency_key: str
    ) -> RefundState:
        if provider_id not in TILL.slips:
            raise UnknownObject(str(provider_id))
        found = await self.find_refund(provider_id, idempotency_key)
        if found is not None:
            return found
        payout = Payout(f"cashback_{len(TILL.payouts) + 1}", provider_id, amount, idempotency_key)
        TILL.payouts.append(payout)
        return RefundState(provider_id=payout.id, status="succeeded", amount=amount)

    async def find_refund(
        self, provider_id: str | None, idempotency_key: str
    ) -> RefundState | None:
        for payout in TILL.payouts:
            if payout.slip == provider_id and payout.key == idempotency_key:
                return RefundState(provider_id=payout.id, status="succeeded", amount=payout.amount)
        return None

    async def list_refunds(self, provider_id: str) -> list[RefundState]:
        return [
            RefundState(
                provider_id=payout.id, status="succeeded", amount=payout.amount, key=payout.key
            )
            for payout in TILL.payouts
            if payout.slip == provider_id
        ]

    async def fetch_refund(self, provider_id: str) -> RefundState:
        for payout in TILL.payouts:
            if payout.id == provider_id:
                return RefundState(provider_id=payout.id, status="succeeded", amount=payout.amount)
        raise UnknownObject(provider_id)


Provider = StationCashProvider
