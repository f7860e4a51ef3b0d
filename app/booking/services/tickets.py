"""A booking's ticket, found by its signed link (`app.core.links.ticket_path`) rather than
its guest token: the link an agency hands its traveller, or a printout's, keeps working
when the guest's token is replaced."""

from __future__ import annotations

import hmac

from app.booking.schemas import BookingOut
from app.booking.services.access import booking_not_found, normalize_reference
from app.booking.services.view import booking_out
from app.booking.tables import Booking, BookingStatus
from app.core.errors import Conflict
from app.core.i18n import _
from app.core.links import ticket_signature


async def ticket_booking(reference: str, signature: str) -> BookingOut:
    """The confirmed booking the link signs; a wrong link is the same 404 as an unknown
    booking, and a booking that is not (or no longer) confirmed has no valid ticket."""
    row = (
        await Booking.select(Booking.id, Booking.reference)
        .where(Booking.reference == normalize_reference(reference))
        .first()
        .run()
    )
    # Compared in constant time, and even when the reference is unknown.
    expected = ticket_signature(row["reference"] if row else normalize_reference(reference))
    if not hmac.compare_digest(expected, signature) or row is None:
        raise booking_not_found()
    booking = await booking_out(row["id"], with_itinerary=True)
    if booking.status != BookingStatus.confirmed:
        raise Conflict(
            _("This booking has no valid ticket: it is not confirmed."), code="ticket_not_valid"
        )
    return booking
