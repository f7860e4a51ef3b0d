"""A booking's reference and access token: find it as its guest, lock it to change it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from uuid import UUID

from app.booking.rows import BookingRow, DepartureRow
from app.booking.services import inventory
from app.booking.tables import Booking, BookingChannel
from app.core.agency_contacts import agency_contact
from app.core.database import for_update
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.i18n import _
from app.core.observability import note_booking

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_reference() -> str:
    """8 characters of Crockford base32 (40 random bits): short, unambiguous to read out."""
    return "".join(secrets.choice(CROCKFORD) for _ in range(8))


def normalize_reference(reference: str) -> str:
    return reference.strip().upper().replace("-", "").translate(_CROCKFORD_ALIASES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def booking_not_found() -> NotFound:
    return NotFound(_("Booking not found."), code="booking_not_found")


async def guest_booking(reference: str, token: str | None) -> BookingRow:
    """The booking if `token` is its access token; anything else is the same 404."""
    row = (
        await Booking.select()
        .where(Booking.reference == normalize_reference(reference))
        .first()
        .run()
    )
    expected = row["token_hash"] if row else hash_token(secrets.token_hex(16))
    # Compare in constant time, and even when the reference is unknown.
    matches = hmac.compare_digest(expected, hash_token(token or ""))
    if row is None or not matches:
        raise booking_not_found()
    note_booking(row["reference"])
    return BookingRow.from_row(row)


def made_by_agency(booking: BookingRow) -> bool:
    return booking.channel == BookingChannel.agency or booking.agency_id is not None


async def refuse_agency_booking(booking: BookingRow) -> None:
    """A booking an agency made stays under the agency's contract (its cut-off, its net
    rates, its account): only the agency, through the partner API, or the operator may
    change, cancel or pay for it. Its traveller may look at it, and is told whom to ask."""
    if not made_by_agency(booking):
        return
    contact = await agency_contact(booking.agency_id) if booking.agency_id else None
    if contact is None:
        raise Forbidden(
            _("A travel agency made this booking: ask it to change or cancel the booking."),
            code="agency_booking",
        )
    reach = ", ".join(part for part in (contact.email, contact.phone) if part)
    raise Forbidden(
        _("{agency} made this booking: ask {agency} ({contact}) to change or cancel it.").format(
            agency=contact.name, contact=reach
        ),
        code="agency_booking",
    )


async def guest_booking_to_change(reference: str, token: str | None) -> BookingRow:
    """`guest_booking` for a change, a cancellation or a payment by its guest: 403
    `agency_booking` when an agency made it."""
    booking = await guest_booking(reference, token)
    await refuse_agency_booking(booking)
    return booking


async def lock_booking(booking_id: UUID) -> tuple[BookingRow, DepartureRow]:
    """Lock a booking's departure, then the booking (inside a write transaction).

    Every writer takes the departure first and the booking second, so two of them can
    never wait on each other in opposite order.
    """
    for _attempt in range(3):
        row = await Booking.select(Booking.departure).where(Booking.id == booking_id).first().run()
        if row is None:
            raise booking_not_found()
        departure = await inventory.lock_departure(row["departure"])
        booking = await for_update(Booking.select().where(Booking.id == booking_id).first()).run()
        if booking is not None and booking["departure"] == departure.id:
            note_booking(booking["reference"])
            return BookingRow.from_row(booking), departure
    raise Conflict(
        _("The booking changed meanwhile; reload it and try again."), code="booking_changed"
    )
