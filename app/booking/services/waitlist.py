"""The waiting list of a sold-out departure: first come, first offered, when seats free up."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from app.booking.events import WaitlistOfferMade
from app.booking.rows import DepartureRow
from app.booking.schemas import BookingCreate, WaitlistIn, WaitlistOut
from app.booking.services import inventory
from app.booking.services.expiry import expire_overdue
from app.booking.services.hold import _sellable, create_booking
from app.booking.tables import Booking, BookingChannel, BookingStatus, WaitlistEntry, WaitlistStatus
from app.catalogue.tables import Seat
from app.core.database import write_transaction
from app.core.errors import Conflict, DomainError
from app.core.events import publish
from app.core.i18n import _

# How long a waiting-list offer holds its seats before it moves on to the next entry.
OFFER_MINUTES = 60


async def _position(entry: dict[str, Any]) -> int:
    ahead = (
        await WaitlistEntry.count()
        .where(
            (WaitlistEntry.departure == entry["departure"])
            & (WaitlistEntry.seat_class == entry["seat_class"])
            & (WaitlistEntry.status == WaitlistStatus.waiting.value)
            & (WaitlistEntry.created_at < entry["created_at"])
        )
        .run()
    )
    return int(ahead) + 1


async def _entry_out(entry_id: UUID) -> WaitlistOut:
    entry = await WaitlistEntry.select().where(WaitlistEntry.id == entry_id).first().run()
    assert entry is not None
    return WaitlistOut(
        id=entry["id"],
        departure_id=entry["departure"],
        seat_class=entry["seat_class"],
        party_size=entry["party_size"],
        status=WaitlistStatus(entry["status"]),
        position=await _position(entry) if entry["status"] == WaitlistStatus.waiting else 0,
        created_at=entry["created_at"],
    )


async def join(departure_id: UUID, data: WaitlistIn) -> WaitlistOut:
    """Join the list; only when the class has fewer free seats than the party needs."""
    async with write_transaction():
        departure = await inventory.lock_departure(departure_id)
        await _sellable(departure)
        if await expire_overdue(departure.id):
            # Seats of run-out holds go to the entries already waiting first.
            await seats_freed(departure)
        free = [s for s in await inventory.free_seats(departure) if s.seat_class == data.seat_class]
        capacity = await _class_exists(departure, data.seat_class)
        if not capacity:
            raise Conflict(
                _("This departure has no seat class {seat_class}.").format(
                    seat_class=data.seat_class
                ),
                code="unknown_seat_class",
            )
        if len(free) >= data.party_size:
            raise Conflict(_("Seats are available: book them instead."), code="seats_available")
        entry = WaitlistEntry(
            departure=departure_id,
            seat_class=data.seat_class,
            party_size=data.party_size,
            contact_name=data.contact.name,
            contact_email=data.contact.email,
            contact_phone=data.contact.phone,
            locale=data.contact.locale,
            status=WaitlistStatus.waiting.value,
        )
        await entry.save().run()
    return await _entry_out(entry.id)


async def _class_exists(departure: DepartureRow, seat_class: str) -> bool:
    return bool(
        await Seat.exists()
        .where((Seat.vehicle == departure.vehicle_id) & (Seat.seat_class == seat_class))
        .run()
    )


async def seats_freed(departure: DepartureRow) -> None:
    """Seats came back on the (locked) departure: offer them to the waiting list."""
    await offer_freed_seats(departure)


async def offer_freed_seats(departure: DepartureRow) -> int:
    """Give freed seats of a (locked) departure to waiting entries, oldest first.

    An offer whose hold ran out moves its entry to `expired`; the next entry that fits
    gets the seats. Each offer is a hold booking and an outbox message to the tourist.
    """
    offered = (
        await WaitlistEntry.select(WaitlistEntry.id, WaitlistEntry.offered_booking)
        .where(
            (WaitlistEntry.departure == departure.id)
            & (WaitlistEntry.status == WaitlistStatus.offered.value)
        )
        .run()
    )
    for entry in offered:
        booking = (
            await Booking.select(Booking.status)
            .where(Booking.id == entry["offered_booking"])
            .first()
            .run()
        )
        status = booking["status"] if booking else BookingStatus.expired
        if status in (BookingStatus.expired, BookingStatus.cancelled):
            await (
                WaitlistEntry.update({WaitlistEntry.status: WaitlistStatus.expired.value})
                .where(WaitlistEntry.id == entry["id"])
                .run()
            )
        elif status == BookingStatus.confirmed:
            await (
                WaitlistEntry.update({WaitlistEntry.status: WaitlistStatus.booked.value})
                .where(WaitlistEntry.id == entry["id"])
                .run()
            )
    waiting = (
        await WaitlistEntry.select()
        .where(
            (WaitlistEntry.departure == departure.id)
            & (WaitlistEntry.status == WaitlistStatus.waiting.value)
        )
        .order_by(WaitlistEntry.created_at)
        .run()
    )
    made = 0
    for entry in waiting:
        free = [
            s for s in await inventory.free_seats(departure) if s.seat_class == entry["seat_class"]
        ]
        if len(free) < entry["party_size"]:
            continue
        request = msgspec.convert(
            {
                "departure_id": str(departure.id),
                "counts": [
                    {
                        "seat_class": entry["seat_class"],
                        "passenger_type": "adult",
                        "count": entry["party_size"],
                    }
                ],
                "contact": {
                    "name": entry["contact_name"],
                    "email": entry["contact_email"],
                    "phone": entry["contact_phone"] or "+86 000 0000",
                    "locale": entry["locale"],
                },
            },
            BookingCreate,
        )
        try:
            created = await create_booking(
                request,
                channel=BookingChannel.waitlist,
                actor=f"waitlist:{entry['id']}",
                hold_minutes=OFFER_MINUTES,
            )
        except DomainError:
            # Sales closed or the class lost its fare: the entry keeps waiting.
            continue
        booking_id = (
            await Booking.select(Booking.id)
            .where(Booking.reference == created.booking.reference)
            .first()
            .run()
        )
        assert booking_id is not None
        await (
            WaitlistEntry.update(
                {
                    WaitlistEntry.status: WaitlistStatus.offered.value,
                    WaitlistEntry.offered_booking: booking_id["id"],
                }
            )
            .where(WaitlistEntry.id == entry["id"])
            .run()
        )
        await publish(
            WaitlistOfferMade(
                entry_id=entry["id"],
                reference=created.booking.reference,
                access_token=created.access_token,
                email=entry["contact_email"],
                locale=entry["locale"],
                expires_at=created.booking.expires_at,
            )
        )
        made += 1
    return made
