"""What notifications do when other domains publish events: messages to travellers.

Messages are created (once per natural key) from the outbox, so a mail server that is down
never holds up the change that caused the message; a fresh booking link is created in the
request's own transaction, so the tourist's mail is already on its way when the page says so.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app.booking.events import (
    BookingCancelled,
    BookingChanged,
    BookingConfirmed,
    BookingExpired,
    BookingLinkRequested,
    BookingStatusChanged,
    ChangeReverted,
    WaitlistOfferMade,
)
from app.booking.tables import Booking, BookingStatus
from app.catalogue.events import DepartureChanged
from app.core.events import Event, EventBus, Phase
from app.notifications.services.common import _notify_bookings, notify
from app.payments.events import PaymentRefundedLate

LIVE = [BookingStatus.confirmed.value, BookingStatus.on_hold.value]


async def _message_to_contact(event: Event, reference: str) -> None:
    """The booking's contact gets the message named after the event."""
    contact = (
        await Booking.select(Booking.id, Booking.departure, Booking.contact_email, Booking.locale)
        .where(Booking.reference == reference)
        .first()
        .run()
    )
    if contact is None:
        return
    await notify(
        f"{event.key}:email", event.name, contact["contact_email"], contact["locale"],
        booking=contact["id"], departure=contact["departure"], payload=_payload(event),
    )  # fmt: skip


def _payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = msgspec.to_builtins(event)
    return payload


async def booking_status_message(event: BookingStatusChanged) -> None:
    await _message_to_contact(event, event.reference)


async def booking_changed_message(event: BookingChanged) -> None:
    # Moved to another departure: new date, seats and calendar file. (Boarding is news to
    # the operator, not to the tourist.)
    if event.reason == "rebooked":
        await _message_to_contact(event, event.reference)


async def change_reverted_message(event: ChangeReverted) -> None:
    # Only a change that lapsed unpaid is news: a superseded one was replaced by the
    # tourist, and a cancelled booking gets its own message.
    if event.reason == "not_paid":
        await _message_to_contact(event, event.reference)


async def late_refund_message(event: PaymentRefundedLate) -> None:
    await _message_to_contact(event, event.reference)


async def waitlist_offer_message(event: WaitlistOfferMade) -> None:
    booking = (
        await Booking.select(Booking.id).where(Booking.reference == event.reference).first().run()
    )
    await notify(
        f"{event.key}:email", event.name, event.email, event.locale,
        booking=booking["id"] if booking else None, payload=_payload(event),
    )  # fmt: skip


async def departure_changed_messages(event: DepartureChanged) -> None:
    await _notify_bookings(
        event.departure_id, LIVE, event.key, event.name, changes=list(event.changes)
    )


async def booking_link_message(event: BookingLinkRequested) -> None:
    await notify(
        event.key, event.name, event.email, event.locale,
        booking=event.booking_id, payload={"access_token": event.access_token},
    )  # fmt: skip


def subscribe(bus: EventBus) -> None:
    for status_event in (BookingConfirmed, BookingCancelled, BookingExpired):
        bus.subscribe(status_event, Phase.OUTBOX, booking_status_message)
    bus.subscribe(BookingChanged, Phase.OUTBOX, booking_changed_message)
    bus.subscribe(ChangeReverted, Phase.OUTBOX, change_reverted_message)
    bus.subscribe(PaymentRefundedLate, Phase.OUTBOX, late_refund_message)
    bus.subscribe(WaitlistOfferMade, Phase.OUTBOX, waitlist_offer_message)
    bus.subscribe(DepartureChanged, Phase.OUTBOX, departure_changed_messages)
    bus.subscribe(BookingLinkRequested, Phase.IN_TRANSACTION, booking_link_message)
