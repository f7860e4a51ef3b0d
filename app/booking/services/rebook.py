"""Rebooking: a guest moves the whole party to another departure of the same route."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow
from app.booking.schemas import BookingOut
from app.booking.services import inventory
from app.booking.services.expiry import _guest_booking_now, _refuse_run_out_hold, expire_overdue
from app.booking.services.hold import _Assignment, _sellable, assign, fares_of
from app.booking.services.state import LIVE_STATUSES, publish_change, record_event
from app.booking.services.view import booking_out
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.tables import PassengerType
from app.core import clock
from app.core.database import for_update, write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.events import publish
from app.core.i18n import _
from app.pricing.schemas import RETAIL, PartySeat
from app.pricing.services import price_party, rebook_difference


async def rebook(reference: str, token: str | None, departure_id: UUID) -> BookingOut:
    """Move every passenger to another departure of the same route, atomically: the new
    seats are taken before the old ones are released; the fare difference is owed or
    refunded."""
    found = await _guest_booking_now(reference, token)
    if departure_id == found.departure_id:
        raise InvalidInput("departure_id", _("The booking is already on this departure."))
    async with write_transaction():
        # Lock both departures in a fixed order, then the booking, so that two rebookings
        # (or a rebooking and a booking) can never deadlock.
        locked = {}
        for locked_id in sorted([found.departure_id, departure_id], key=str):
            locked[locked_id] = await inventory.lock_departure(locked_id)
        row = await for_update(Booking.select().where(Booking.id == found.id).first()).run()
        if row is None or row["departure"] != found.departure_id:
            raise Conflict(
                _("The booking changed meanwhile; reload it and try again."), code="booking_changed"
            )
        booking = BookingRow.from_row(row)
        if booking.status not in LIVE_STATUSES:
            raise Conflict(_("Only a live booking can be rebooked."), code="booking_not_live")
        _refuse_run_out_hold(booking)
        old, new = locked[booking.departure_id], locked[departure_id]
        if new.route_id != old.route_id:
            raise InvalidInput("departure_id", _("Rebooking stays on the same route."))
        await _sellable(new)
        if await expire_overdue(new.id):
            # Seats freed by run-out holds go to the waiting list first.
            await publish(SeatsFreed(departure_id=new.id))
        old_lines = (
            await BookingLine.select()
            .where(
                (BookingLine.booking == booking.id)
                & (BookingLine.departure == booking.departure_id)
            )
            .order_by(BookingLine.position)
            .run()
        )
        party = [(line["seat_class"], PassengerType(line["passenger_type"])) for line in old_lines]
        fares = await fares_of(new.id, new.route_id)
        assignments = await assign(new, fares, party, None)
        # The party as it was, at the new departure's retail fares, line by line.
        quote = price_party(fares, [PartySeat(*seat) for seat in party], RETAIL)
        by_class: dict[str, list[_Assignment]] = defaultdict(list)
        for a in assignments:
            by_class[a.seat.seat_class].append(a)
        new_lines = []
        for line, price in zip(old_lines, quote.seats, strict=True):
            a = next(
                x for x in by_class[line["seat_class"]]
                if x.passenger_type == PassengerType(line["passenger_type"])
            )  # fmt: skip
            by_class[line["seat_class"]].remove(a)
            new_lines.append(
                BookingLine(
                    booking=booking.id,
                    departure=new.id,
                    seat=a.seat.id,
                    seat_label=a.seat.label,
                    seat_class=a.seat.seat_class,
                    passenger_type=line["passenger_type"],
                    price_amount=price.charged.amount,
                    currency=price.charged.currency,
                    position=line["position"],
                    passenger_name=line["passenger_name"],
                    id_document=line["id_document"],
                    live=True,
                )
            )
        await BookingLine.insert(*new_lines).run()
        await (
            BookingLine.delete()
            .where((BookingLine.booking == booking.id) & (BookingLine.departure == old.id))
            .run()
        )
        old_total = booking.total_amount
        change = rebook_difference(quote, old_total, booking.balance_due)
        new_total = change.new_total
        values: dict[Any, Any] = {
            Booking.departure: new.id,
            Booking.total_amount: new_total,
            Booking.pickup_stop: None,
            Booking.updated_at: clock.now(),
        }
        # A hold has paid nothing yet: it will be asked for the new total.
        refund = 0
        if booking.status == BookingStatus.confirmed and new_total != old_total:
            refund = change.refund
            values[Booking.balance_due] = change.balance_due
            if refund:
                values[Booking.refund_amount] = booking.refund_amount + refund
        await Booking.update(values).where(Booking.id == booking.id).run()
        details = {
            "from_departure": str(old.id),
            "to_departure": str(new.id),
            "old_total": old_total,
            "new_total": new_total,
            "refund": refund,
            "seats": [line.seat_label for line in new_lines],
        }
        event_id = await record_event(
            booking.id, "guest", booking.status.value, booking.status.value, "rebooked", details
        )
        await publish_change(booking, event_id, "rebooked", refund)
        await publish(SeatsFreed(departure_id=old.id))
    return await booking_out(booking.id)
