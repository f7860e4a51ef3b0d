"""What a guest does with their booking besides cancelling and rebooking: read it, change
it while on hold, get its calendar event, have a fresh link mailed."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from app.booking.calendar import calendar_event
from app.booking.events import BookingLinkRequested
from app.booking.schemas import BookingOut, BookingUpdate
from app.booking.services.access import hash_token, lock_booking, normalize_reference
from app.booking.services.expiry import _guest_booking_now, _refuse_run_out_hold
from app.booking.services.hold import _pickup_stop
from app.booking.services.view import booking_out
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.services.common import as_dict
from app.catalogue.tables import Departure, Route
from app.core import clock, ratelimit
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.events import publish
from app.core.i18n import _, localize


async def get_booking(
    reference: str, token: str | None, *, with_itinerary: bool = False
) -> BookingOut:
    booking = await _guest_booking_now(reference, token, to_view=True)
    return await booking_out(booking.id, with_itinerary=with_itinerary)


async def update_booking(reference: str, token: str | None, data: BookingUpdate) -> BookingOut:
    """Contact, passengers and pick-up stop, while the booking is on hold."""
    found = await _guest_booking_now(reference, token)
    async with write_transaction():
        booking, _departure = await lock_booking(found.id)
        if booking.status != BookingStatus.on_hold:
            raise Conflict(_("Only a booking on hold can be changed."), code="booking_not_on_hold")
        _refuse_run_out_hold(booking)
        values: dict[Any, Any] = {Booking.updated_at: clock.now()}
        if data.contact is not msgspec.UNSET:
            values.update(
                {
                    Booking.contact_name: data.contact.name,
                    Booking.contact_email: data.contact.email,
                    Booking.contact_phone: data.contact.phone,
                    Booking.locale: data.contact.locale,
                }
            )
        if data.pickup_stop_id is not msgspec.UNSET:
            stop = await _pickup_stop(booking.departure_id, data.pickup_stop_id)
            values[Booking.pickup_stop] = stop["id"] if stop else None
        if data.passengers is not msgspec.UNSET:
            lines = (
                await BookingLine.select(BookingLine.id)
                .where(
                    (BookingLine.booking == booking.id)
                    & (BookingLine.departure == booking.departure_id)
                )
                .order_by(BookingLine.position)
                .run()
            )
            if len(data.passengers) != len(lines):
                raise InvalidInput(
                    "passengers",
                    _("Give one passenger for each of the {count} seats.").format(count=len(lines)),
                )
            for line, passenger in zip(lines, data.passengers, strict=True):
                await (
                    BookingLine.update(
                        {
                            BookingLine.passenger_name: passenger.name,
                            BookingLine.id_document: passenger.id_document or "",
                        }
                    )
                    .where(BookingLine.id == line["id"])
                    .run()
                )
        await Booking.update(values).where(Booking.id == booking.id).run()
    return await booking_out(booking.id)


async def guest_calendar(reference: str, token: str | None) -> bytes:
    """The trip as an iCalendar event, like the one attached to the confirmation."""
    found = await _guest_booking_now(reference, token, to_view=True)
    out = await booking_out(found.id, with_itinerary=True)
    departure = (
        await Departure.select(Departure.returns_at, Departure.route)
        .where(Departure.id == found.departure_id)
        .first()
        .run()
    )
    assert departure is not None
    route = (
        await Route.select(Route.meeting_point)
        .where(Route.id == departure["route"])
        .first()
        .output(load_json=True)
        .run()
    )
    meeting = as_dict(route["meeting_point"]) if route and route["meeting_point"] else None
    return calendar_event(out, departure["returns_at"], localize(meeting) if meeting else None)


# Fresh links mailed for one booking per hour: enough for a lost link, too few to flood
# its contact.
LINK_MAILS_PER_HOUR = 3


async def send_booking_link(reference: str, email: str, redis_url: str) -> None:
    """Mail a fresh link to the booking to its contact, when `email` is that contact's.

    The token is replaced, so an older link stops working. The caller learns nothing about
    whether the reference or the email matched."""
    row = (
        await Booking.select(Booking.id, Booking.reference, Booking.contact_email, Booking.locale)
        .where(Booking.reference == normalize_reference(reference))
        .first()
        .run()
    )
    if row is None or not row["contact_email"]:
        return
    if row["contact_email"].casefold() != email.strip().casefold():
        return
    verdict = await ratelimit.hit(
        redis_url, f"booking-link:{row['reference']}", LINK_MAILS_PER_HOUR, 3600
    )
    if not verdict.allowed:
        return
    token = secrets.token_urlsafe(24)
    token_hash = hash_token(token)
    async with write_transaction():
        await Booking.update({Booking.token_hash: token_hash}).where(Booking.id == row["id"]).run()
        await publish(
            BookingLinkRequested(
                booking_id=row["id"],
                token_hash_prefix=token_hash[:16],
                email=row["contact_email"],
                locale=row["locale"],
                access_token=token,
            )
        )
