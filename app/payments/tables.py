"""Payments and refunds of bookings, and the Stripe events already handled.

Money is in minor units. No card data is stored: only provider ids, amounts, statuses.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from app.booking.tables import Booking, BookingChange


class PaymentStatus(StrEnum):
    requires_payment = "requires_payment"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class RefundStatus(StrEnum):
    pending = "pending"
    # Claimed by one worker (until `claimed_until`) while it asks the provider.
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    # Nothing was paid through a provider: someone must pay it back by hand.
    requires_action = "requires_action"


class Payment(Table):
    id = UUID(primary_key=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.restrict, null=False, index=True)
    provider = Varchar(length=16)
    provider_id = Varchar(length=64, null=True, default=None, unique=True)
    attempt = Integer(default=1)
    amount = Integer()
    currency = Varchar(length=3)
    status = Varchar(length=24, choices=PaymentStatus, default=PaymentStatus.requires_payment)
    failure_reason = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    succeeded_at = Timestamptz(null=True, default=None)
    # Set for the payment of a pending change's difference (a dearer rebooking).
    change = ForeignKey(
        BookingChange, on_delete=OnDelete.restrict, null=True, default=None, index=True
    )
    # When the provider's word on this intent was last fetched by the reconciliation sweep
    # (also its claim: two sweeps never fetch the same intent at once).
    checked_at = Timestamptz(null=True, default=None, index=True)
    # Set once the intent can move no more money that our books do not show: cancelled at
    # the provider, or its success applied (booking confirmed, or a refund owed).
    settled_at = Timestamptz(null=True, default=None, index=True)


class Refund(Table):
    id = UUID(primary_key=True)
    booking = ForeignKey(Booking, on_delete=OnDelete.restrict, null=False, index=True)
    payment = ForeignKey(Payment, on_delete=OnDelete.restrict, null=True, default=None)
    provider = Varchar(length=16)
    provider_id = Varchar(length=64, null=True, default=None, unique=True)
    # Natural key of the cause (booking + event), so one cause never refunds twice.
    key = Varchar(length=200, unique=True)
    amount = Integer()
    currency = Varchar(length=3)
    reason = Varchar(length=64)
    status = Varchar(length=24, choices=RefundStatus, default=RefundStatus.pending, index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")
    # The worker that claimed the refund; its outcome is recorded only while it holds the
    # claim. `claimed_until` is the claim's lease, or when a failed refund may be retried.
    claim = UUID(null=True, default=None)
    claimed_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class StripeEvent(Table):
    """Every Stripe event handled, by its id: a repeat delivery is a no-op."""

    id = Varchar(length=255, primary_key=True)
    type = Varchar(length=80)
    object_id = Varchar(length=64, default="")
    received_at = Timestamptz(default=TimestamptzNow())
