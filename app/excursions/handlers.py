"""What the excursions domain does on the booking domain's news: a cancelled booking's
travellers leave their coaches, in the cancelling transaction."""

from __future__ import annotations

from app.booking.events import BookingCancelled
from app.core.events import EventBus, Phase
from app.excursions.services.assignments import leave_coaches


async def cancelled_booking_leaves_coaches(event: BookingCancelled) -> None:
    await leave_coaches(event.booking_id)


def subscribe(bus: EventBus) -> None:
    bus.subscribe(BookingCancelled, Phase.IN_TRANSACTION, cancelled_booking_leaves_coaches)
