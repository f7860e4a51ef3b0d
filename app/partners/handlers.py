"""What the partners domain does when others publish events: webhooks to agencies.

An agency hears about its own bookings from the change itself (the delivery row is
written in the change's transaction, so its body shows the booking as the change left it),
of its allotments' releases the same way, and about departures it sold seats on from the
outbox.
"""

from __future__ import annotations

from app.booking.events import (
    AllotmentReleased,
    BookingCancelled,
    BookingChanged,
    BookingConfirmed,
    BookingExpired,
    BookingStatusChanged,
)
from app.catalogue.events import DepartureCancelled, DepartureChanged
from app.core.events import EventBus, Phase
from app.partners.webhooks import booking_event, departure_event, queue_event


async def tell_agency(event: BookingStatusChanged | BookingChanged) -> None:
    if event.agency_id is not None:
        await booking_event(event.name, event.key, event.booking_id)


async def tell_agency_of_release(event: AllotmentReleased) -> None:
    await queue_event(
        event.agency_id,
        event.name,
        event.key,
        {
            "allotmentId": str(event.allotment_id),
            "availabilityId": str(event.departure_id),
            "optionId": event.seat_class,
            "seats": event.seats,
            "used": event.used,
            "released": event.released,
        },
    )


async def tell_agencies_on_departure(event: DepartureChanged | DepartureCancelled) -> None:
    changes = list(event.changes) if isinstance(event, DepartureChanged) else []
    await departure_event(event.name, event.key, event.departure_id, {"changes": changes})


def subscribe(bus: EventBus) -> None:
    bus.subscribe(BookingConfirmed, Phase.IN_TRANSACTION, tell_agency)
    bus.subscribe(BookingCancelled, Phase.IN_TRANSACTION, tell_agency)
    bus.subscribe(BookingExpired, Phase.IN_TRANSACTION, tell_agency)
    bus.subscribe(BookingChanged, Phase.IN_TRANSACTION, tell_agency)
    bus.subscribe(AllotmentReleased, Phase.IN_TRANSACTION, tell_agency_of_release)
    bus.subscribe(DepartureChanged, Phase.OUTBOX, tell_agencies_on_departure)
    bus.subscribe(DepartureCancelled, Phase.OUTBOX, tell_agencies_on_departure)
