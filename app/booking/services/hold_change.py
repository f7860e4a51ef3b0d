"""Changing a running hold: another departure of its route, another party, or both. The
new seats are taken and the old ones given back in one transaction: all of it, or nothing
(the hold stays as it was). A hold has paid nothing, so there is no money to move; its
price is the new party's at the booker's channel (retail, or an agency's net)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow
from app.booking.services import inventory
from app.booking.services.expiry import _refuse_run_out_hold, expire_overdue
from app.booking.services.hold import (
    _booking_context,
    _refuse_unsellable,
    assign,
    fares_of,
)
from app.booking.services.state import record_event
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.tables import PassengerType
from app.core import clock
from app.core.database import for_update, write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.events import publish
from app.core.i18n import _
from app.pricing.schemas import PartySeat, PriceChannel
from app.pricing.services import price_party

# What a passenger keeps when a hold is changed: who they are, not where they sit.
_TRAVELLER_COLUMNS = (
    BookingLine.passenger_name,
    BookingLine.id_document,
    BookingLine.passenger_email,
    BookingLine.passenger_phone,
    BookingLine.passenger_country,
    BookingLine.passenger_notes,
    BookingLine.partner_uuid,
    BookingLine.reseller_reference,
)


async def change_hold(
    booking_id: UUID,
    departure_id: UUID,
    party: list[tuple[str, PassengerType]],
    *,
    price_channel: PriceChannel,
    actor: str,
) -> None:
    """Seat the hold's `party` (seat class and kind of each passenger) on `departure_id`
    (its own, or another of its route). Passengers of a kind keep their details in order;
    a passenger removed takes theirs along. 409 when the seats are not there."""
    if not 1 <= len(party) <= 10:
        raise InvalidInput("party", _("At most 10 passengers per booking."))
    context = await _booking_context(departure_id)
    fares = await fares_of(departure_id, context["route"])
    async with write_transaction():
        found = await Booking.select(Booking.departure).where(Booking.id == booking_id).first()
        if found is None:
            raise Conflict(_("Only a booking on hold can be changed."), code="booking_not_on_hold")
        # Both departures locked in a fixed order, then the booking (as a rebooking does).
        locked = {
            locked_id: await inventory.lock_departure(locked_id)
            for locked_id in sorted({found["departure"], departure_id}, key=str)
        }
        row = await for_update(Booking.select().where(Booking.id == booking_id).first()).run()
        assert row is not None
        booking = BookingRow.from_row(row)
        if booking.status != BookingStatus.on_hold or booking.departure_id not in locked:
            raise Conflict(_("Only a booking on hold can be changed."), code="booking_not_on_hold")
        _refuse_run_out_hold(booking)
        old, new = locked[booking.departure_id], locked[departure_id]
        if new.route_id != old.route_id:
            raise InvalidInput("departure_id", _("Rebooking stays on the same route."))
        _refuse_unsellable(new, context["route_status"])
        if await expire_overdue(new.id):
            await publish(SeatsFreed(departure_id=new.id))
        old_lines = (
            await BookingLine.select(BookingLine.passenger_type, *_TRAVELLER_COLUMNS)
            .where((BookingLine.booking == booking.id) & (BookingLine.departure == old.id))
            .order_by(BookingLine.position)
            .run()
        )
        # The old seats go first: on the same departure, the party may keep them.
        await (
            BookingLine.delete()
            .where((BookingLine.booking == booking.id) & (BookingLine.departure == old.id))
            .run()
        )
        assignments = await assign(new, fares, party, None, booking.agency_id)
        quote = price_party(
            fares,
            [PartySeat(a.seat.seat_class, a.passenger_type) for a in assignments],
            price_channel,
        )
        travellers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in old_lines:
            travellers[line["passenger_type"]].append(line)
        lines = []
        for position, (a, price) in enumerate(zip(assignments, quote.seats, strict=True), 1):
            kept = travellers[a.passenger_type.value]
            details = kept.pop(0) if kept else {}
            carried: dict[str, Any] = {
                column._meta.name: details[column._meta.name]
                for column in _TRAVELLER_COLUMNS
                if column._meta.name in details
            }
            lines.append(
                BookingLine(
                    booking=booking.id,
                    departure=new.id,
                    seat=a.seat.id,
                    seat_label=a.seat.label,
                    seat_class=a.seat.seat_class,
                    passenger_type=a.passenger_type.value,
                    price_amount=price.charged.amount,
                    retail_amount=price.retail.amount if quote.agency_net else None,
                    currency=price.retail.currency,
                    position=position,
                    live=True,
                    **carried,
                )
            )
        await BookingLine.insert(*lines).run()
        values: dict[Any, Any] = {
            Booking.departure: new.id,
            Booking.total_amount: quote.charged.amount,
            Booking.retail_amount: quote.retail.amount if quote.agency_net else None,
            Booking.updated_at: clock.now(),
        }
        if new.id != old.id:
            # A pick-up stop is one of the old departure's: it does not follow.
            values[Booking.pickup_stop] = None
        await Booking.update(values).where(Booking.id == booking.id).run()
        await record_event(
            booking.id, actor, booking.status.value, booking.status.value, "hold_changed",
            {"from_departure": str(old.id), "to_departure": str(new.id),
             "old_total": booking.total_amount, "new_total": quote.charged.amount,
             "seats": [line.seat_label for line in lines]},
        )  # fmt: skip
        await publish(SeatsFreed(departure_id=old.id))
