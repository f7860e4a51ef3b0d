"""Payment structures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec

from app.core.money import PriceOut
from app.payments.tables import PaymentStatus, RefundStatus


class PaymentStartOut(msgspec.Struct, kw_only=True):
    """What the page needs to take the payment with Stripe.js (or that none is needed)."""

    # `free`, or the name of the enabled provider tourists pay through (`stripe`).
    provider: str
    status: Literal["requires_payment", "confirmed"]
    amount: PriceOut
    client_secret: str | None = None
    publishable_key: str | None = None
    payment_method_types: list[str] = []


class PaymentOut(msgspec.Struct, kw_only=True):
    id: UUID
    provider: str
    provider_id: str | None
    attempt: int
    amount: PriceOut
    status: PaymentStatus
    failure_reason: str
    created_at: datetime
    succeeded_at: datetime | None


class RefundOut(msgspec.Struct, kw_only=True):
    id: UUID
    provider: str
    provider_id: str | None
    amount: PriceOut
    reason: str
    status: RefundStatus
    attempts: int
    last_error: str
    created_at: datetime


class BookingMoneyOut(msgspec.Struct, kw_only=True):
    reference: str
    booking_status: str
    total: PriceOut
    paid: PriceOut
    refunded: PriceOut
    payments: list[PaymentOut]
    refunds: list[RefundOut]


class ReconciliationLine(msgspec.Struct, kw_only=True):
    reference: str
    booking_status: str
    paid: int
    refunded: int
    expected_net: int
    problem: str | None
    # Money the provider took for this booking that our books do not show yet.
    unrecorded: int = 0


class Reconciliation(msgspec.Struct, kw_only=True):
    currency: str
    bookings: int
    paid: PriceOut
    refunded: PriceOut
    mismatches: list[ReconciliationLine]
