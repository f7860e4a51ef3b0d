"""What the payments domain tells the others (`app.core.events`)."""

from __future__ import annotations

from uuid import UUID

from app.core.events import Event


class RefundRequested(Event, frozen=True, kw_only=True):
    """A refund is owed and recorded; the `refunds` step pays it."""

    name = "refund.requested"

    booking_id: UUID
    reference: str
    amount: int
    currency: str
    reason: str
    # What caused it, unique per booking (e.g. "cancelled", "rebook:<change id>").
    cause: str

    @property
    def key(self) -> str:
        return f"{self.name}:{self.reference}:{self.cause}"


class PaymentRefundedLate(Event, frozen=True, kw_only=True):
    """A payment arrived for a booking that could no longer be honoured: all of it goes
    back, and the payer is told."""

    name = "payment.refunded_late"

    booking_id: UUID
    reference: str
    amount: int
    currency: str
    provider_payment_id: str
    # True when it paid the difference of a change that had been dropped meanwhile (the
    # booking itself stands).
    for_change: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}:{self.provider_payment_id}"
