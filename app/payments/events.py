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
    # Why it went back: the hold had run out and its seats were taken (`hold_ran_out`), it
    # paid the difference of a change dropped meanwhile (`change_lapsed`), or the booking
    # was already paid (`paid_twice`). In the last two the booking itself stands.
    why: str = "hold_ran_out"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.provider_payment_id}"
