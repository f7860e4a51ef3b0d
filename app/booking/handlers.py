"""What the booking domain does on its own news: freed seats go to the waiting list."""

from __future__ import annotations

from app.booking.events import ChangeReverted, SeatsFreed
from app.booking.services import inventory
from app.booking.services.waitlist import offer_freed_seats
from app.core.events import EventBus, Phase


async def offer_to_waiting_list(event: SeatsFreed) -> None:
    # The publisher holds the departure's lock; taking it again returns the row.
    departure = await inventory.lock_departure(event.departure_id)
    await offer_freed_seats(departure)


async def offer_reverted_seats(event: ChangeReverted) -> None:
    # The change was dropped without its departure's lock (the booking's writers take the
    # booking's own departure first): the offers are made here, under that lock.
    departure = await inventory.lock_departure(event.departure_id)
    await offer_freed_seats(departure)


def subscribe(bus: EventBus) -> None:
    bus.subscribe(SeatsFreed, Phase.IN_TRANSACTION, offer_to_waiting_list)
    bus.subscribe(ChangeReverted, Phase.OUTBOX, offer_reverted_seats)
