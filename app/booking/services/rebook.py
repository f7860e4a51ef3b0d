"""Rebooking: a guest moves the whole party to another departure of the same route."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from app.booking.schemas import BookingOut
from app.booking.services import inventory
from app.booking.services.cancel import _settle
from app.booking.services.expiry import _guest_booking_now, _refuse_run_out_hold, expire_overdue
from app.booking.services.hold import _Assignment, _sellable, assign, fares_of
from app.booking.services.state import LIVE_STATUSES, record_event, tell_agency
from app.booking.services.view import booking_out
from app.booking.services.waitlist import seats_freed
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.tables import PassengerType
from app.core import clock
from app.core.database import for_update, write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.i18n import _
from app.notifications.services.outbox import enqueue
from app.payments.services.refunds import owe_refund


async def rebook(reference: str, token: str | None, departure_id: UUID) -> BookingOut:
    """Move every passenger to another departure of the same route, atomically: the new
    seats are taken before the old ones are released; the fare difference is owed or
    refunded."""
    found = await _guest_booking_now(reference, token)
    if departure_id == found["departure"]:
        raise InvalidInput("departure_id", _("The booking is already on this departure."))
    async with write_transaction():
        # Lock both departures in a fixed order, then the booking, so that two rebookings
        # (or a rebooking and a booking) can never deadlock.
        locked = {}
        for locked_id in sorted([found["departure"], departure_id], key=str):
            locked[locked_id] = await inventory.lock_departure(locked_id)
        booking = await for_update(Booking.select().where(Booking.id == found["id"]).first()).run()
        if booking is None or booking["departure"] != found["departure"]:
            raise Conflict(
                _("The booking changed meanwhile; reload it and try again."), code="booking_changed"
            )
        booking = dict(booking)
        if booking["status"] not in LIVE_STATUSES:
            raise Conflict(_("Only a live booking can be rebooked."), code="booking_not_live")
        _refuse_run_out_hold(booking)
        old, new = locked[booking["departure"]], locked[departure_id]
        if new["route"] != old["route"]:
            raise InvalidInput("departure_id", _("Rebooking stays on the same route."))
        await _sellable(new)
        if await expire_overdue(new["id"]):
            # Seats freed by run-out holds go to the waiting list first.
            await seats_freed(new)
        old_lines = (
            await BookingLine.select()
            .where(
                (BookingLine.booking == booking["id"])
                & (BookingLine.departure == booking["departure"])
            )
            .order_by(BookingLine.position)
            .run()
        )
        party = [(line["seat_class"], PassengerType(line["passenger_type"])) for line in old_lines]
        assignments = await assign(new, await fares_of(new), party, None)
        by_class: dict[str, list[_Assignment]] = defaultdict(list)
        for a in assignments:
            by_class[a.seat.seat_class].append(a)
        new_lines = []
        for line in old_lines:
            a = next(
                x for x in by_class[line["seat_class"]]
                if x.passenger_type == PassengerType(line["passenger_type"])
            )  # fmt: skip
            by_class[line["seat_class"]].remove(a)
            new_lines.append(
                BookingLine(
                    booking=booking["id"],
                    departure=new["id"],
                    seat=a.seat.id,
                    seat_label=a.seat.label,
                    seat_class=a.seat.seat_class,
                    passenger_type=line["passenger_type"],
                    price_amount=a.price.amount,
                    currency=a.price.currency,
                    position=line["position"],
                    passenger_name=line["passenger_name"],
                    id_document=line["id_document"],
                    live=True,
                )
            )
        await BookingLine.insert(*new_lines).run()
        await (
            BookingLine.delete()
            .where((BookingLine.booking == booking["id"]) & (BookingLine.departure == old["id"]))
            .run()
        )
        old_total = booking["total_amount"]
        new_total = sum(line.price_amount for line in new_lines)
        values: dict[Any, Any] = {
            Booking.departure: new["id"],
            Booking.total_amount: new_total,
            Booking.pickup_stop: None,
            Booking.updated_at: clock.now(),
        }
        # A dearer departure adds to what is owed; a cheaper one first cancels what is
        # still owed, and the rest is refunded.
        difference = new_total - old_total
        refund = 0
        if booking["status"] == BookingStatus.confirmed:
            if difference > 0:
                values[Booking.balance_due] = booking["balance_due"] + difference
            elif difference < 0:
                forgiven = min(booking["balance_due"], -difference)
                refund = -difference - forgiven
                values[Booking.balance_due] = booking["balance_due"] - forgiven
                values[Booking.refund_amount] = booking["refund_amount"] + refund
        await Booking.update(values).where(Booking.id == booking["id"]).run()
        details = {
            "from_departure": str(old["id"]),
            "to_departure": str(new["id"]),
            "old_total": old_total,
            "new_total": new_total,
            "refund": refund,
            "seats": [line.seat_label for line in new_lines],
        }
        event_id = await record_event(
            booking["id"], "guest", booking["status"], booking["status"], "rebooked", details
        )
        await tell_agency(
            booking, "booking.changed", f"booking.changed:{booking['reference']}:{event_id}"
        )
        await seats_freed(old)
        if refund > 0:
            await owe_refund(
                booking, refund, "rebooked", f"refund:{booking['reference']}:rebook:{event_id}"
            )
            await enqueue(
                "refund.requested",
                f"refund.requested:{booking['reference']}:rebook:{event_id}",
                {"reference": booking["reference"], "amount": refund,
                 "currency": booking["currency"], "reason": "rebooked"},
            )  # fmt: skip
    await _settle([booking["id"]])
    return await booking_out(booking["id"])
