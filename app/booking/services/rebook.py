"""Rebooking: a guest moves the whole party to another departure of the same route.

The money follows the ledger (`paid − refunded = price`): a hold is simply moved (it is
asked for its new total when paid); a paid booking moved to a cheaper or equal fare moves
at once and is refunded exactly the difference; one moved to a dearer fare becomes a
pending change (`BookingChange`) that holds the new seats until the difference is paid,
and completes then (`complete_change`), or reverts when its time runs out
(`revert_overdue_changes`), the booking staying where it was.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any
from uuid import UUID

from app.accounts.tables import Operator
from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow, ChangeRow, DepartureRow
from app.booking.schemas import BookingOut
from app.booking.services import inventory
from app.booking.services.expiry import _guest_booking_now, _refuse_run_out_hold, expire_overdue
from app.booking.services.hold import _Assignment, _sellable, assign, fares_of
from app.booking.services.state import (
    LIVE_STATUSES,
    pending_change,
    publish_change,
    record_event,
    revert_change,
)
from app.booking.services.view import booking_out
from app.booking.tables import (
    Booking,
    BookingChange,
    BookingChangeStatus,
    BookingLine,
    BookingStatus,
)
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
    seats are taken before the old ones are released. Sent twice at once, the second
    finds the move made (or pending) and changes nothing."""
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
        if row is not None and row["departure"] == departure_id:
            # The same move made meanwhile (the request sent twice at once): done once.
            return await booking_out(found.id)
        if row is None or row["departure"] != found.departure_id:
            raise Conflict(
                _("The booking changed meanwhile; reload it and try again."),
                code="booking_changed",
            )
        booking = BookingRow.from_row(row)
        if booking.status not in LIVE_STATUSES:
            raise Conflict(_("Only a live booking can be rebooked."), code="booking_not_live")
        _refuse_run_out_hold(booking)
        old, new = locked[booking.departure_id], locked[departure_id]
        if new.route_id != old.route_id:
            raise InvalidInput("departure_id", _("Rebooking stays on the same route."))
        pending = await pending_change(booking.id)
        if pending is not None and pending.to_departure_id == new.id:
            # The same move asked again (a retry, or a double click): already waiting.
            return await booking_out(booking.id)
        await _sellable(new)
        if await expire_overdue(new.id):
            # Seats freed by run-out holds go to the waiting list first.
            await publish(SeatsFreed(departure_id=new.id))
        if pending is not None:
            await revert_change(booking, pending, actor="guest", reason="superseded")
        await _move(booking, old, new)
    return await booking_out(booking.id)


async def _move(booking: BookingRow, old: DepartureRow, new: DepartureRow) -> None:
    """Take seats on `new` for the party as it is, at `new`'s fares; then move a hold or a
    paid booking that costs no more at once, or make a dearer paid one a pending change."""
    old_lines = (
        await BookingLine.select()
        .where(
            (BookingLine.booking == booking.id)
            & (BookingLine.departure == booking.departure_id)
            & BookingLine.change.is_null()
        )
        .order_by(BookingLine.position)
        .run()
    )
    party = [(line["seat_class"], PassengerType(line["passenger_type"])) for line in old_lines]
    fares = await fares_of(new.id, new.route_id)
    assignments = await assign(new, fares, party, None)
    # The party as it was, at the new departure's retail fares, line by line.
    quote = price_party(fares, [PartySeat(*seat) for seat in party], RETAIL)
    change = rebook_difference(quote, booking.total_amount, booking.balance_due)
    dearer = booking.status == BookingStatus.confirmed and change.balance_due > 0
    change_id: UUID | None = None
    if dearer:
        change_id = await _open_change(booking, old, new, change.new_total, change.balance_due)
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
                passenger_email=line["passenger_email"],
                passenger_phone=line["passenger_phone"],
                passenger_country=line["passenger_country"],
                passenger_notes=line["passenger_notes"],
                partner_uuid=line["partner_uuid"],
                reseller_reference=line["reseller_reference"],
                live=True,
                change=change_id,
            )
        )
    await BookingLine.insert(*new_lines).run()
    if change_id is not None:
        await record_event(
            booking.id, "guest", booking.status.value, booking.status.value, "rebook_pending",
            {"change": str(change_id), "from_departure": str(old.id),
             "to_departure": str(new.id), "old_total": booking.total_amount,
             "new_total": change.new_total, "amount_due": change.balance_due,
             "seats": [line.seat_label for line in new_lines]},
        )  # fmt: skip
        return
    # A hold has paid nothing yet: it will be asked for the new total when it pays.
    refund = change.refund if booking.status == BookingStatus.confirmed else 0
    await _settle_move(booking, old.id, new.id, change.new_total, refund, actor="guest")


async def _open_change(
    booking: BookingRow, old: DepartureRow, new: DepartureRow, new_total: int, amount_due: int
) -> UUID:
    """Record the pending change; it lasts as long as a hold of the operator's (never past
    the close of the new departure's sales)."""
    operator = (
        await Operator.select(Operator.hold_minutes)
        .where(Operator.id == booking.operator_id)
        .first()
        .run()
    )
    minutes = operator["hold_minutes"] if operator else 15
    now = clock.now()
    row = BookingChange(
        booking=booking.id, from_departure=old.id, to_departure=new.id,
        old_total=booking.total_amount, new_total=new_total, amount_due=amount_due,
        currency=booking.currency, status=BookingChangeStatus.pending.value,
        expires_at=min(now + timedelta(minutes=minutes), new.sales_end), actor="guest",
        created_at=now,
    )  # fmt: skip
    await BookingChange.insert(row).run()
    return UUID(str(row.id))


async def _settle_move(
    booking: BookingRow,
    old_id: UUID,
    new_id: UUID,
    new_total: int,
    refund: int,
    *,
    actor: str,
    change: UUID | None = None,
) -> None:
    """Complete a move whose new lines are in place: drop the old lines, put the booking
    on the new departure at its new total, owe the refund, tell the others."""
    await (
        BookingLine.delete()
        .where(
            (BookingLine.booking == booking.id)
            & (BookingLine.departure == old_id)
            & BookingLine.change.is_null()
        )
        .run()
    )
    if change is not None:
        await (
            BookingLine.update({BookingLine.change: None}).where(BookingLine.change == change).run()
        )
    seats = (
        await BookingLine.select(BookingLine.seat_label)
        .where((BookingLine.booking == booking.id) & (BookingLine.departure == new_id))
        .order_by(BookingLine.position)
        .run()
    )
    values: dict[Any, Any] = {
        Booking.departure: new_id,
        Booking.total_amount: new_total,
        Booking.pickup_stop: None,
        Booking.updated_at: clock.now(),
    }
    if refund:
        values[Booking.refund_amount] = booking.refund_amount + refund
    await Booking.update(values).where(Booking.id == booking.id).run()
    details = {
        "from_departure": str(old_id),
        "to_departure": str(new_id),
        "old_total": booking.total_amount,
        "new_total": new_total,
        "refund": refund,
        "seats": [line["seat_label"] for line in seats],
    }
    if change is not None:
        details["change"] = str(change)
    event_id = await record_event(
        booking.id, actor, booking.status.value, booking.status.value, "rebooked", details
    )
    await publish_change(booking, event_id, "rebooked", refund)
    await publish(SeatsFreed(departure_id=old_id))


async def complete_change(change_id: UUID, *, actor: str, paid: int) -> str:
    """Complete a pending change whose difference (`paid`) has been paid: the booking moves
    to its new departure and price. Returns `completed`, `already_completed`, or `gone`
    when the change was reverted meanwhile (or the amount paid is not what it asked), and
    the payment must go back."""
    row = await BookingChange.select().where(BookingChange.id == change_id).first().run()
    if row is None:
        return "gone"
    change = ChangeRow.from_row(row)
    async with write_transaction():
        for departure_id in sorted([change.from_departure_id, change.to_departure_id], key=str):
            await inventory.lock_departure(departure_id)
        locked = await for_update(
            Booking.select().where(Booking.id == change.booking_id).first()
        ).run()
        current = await BookingChange.select().where(BookingChange.id == change_id).first().run()
        # The change's booking cascades with it: both exist while the change does.
        assert locked is not None
        assert current is not None
        booking = BookingRow.from_row(locked)
        if current["status"] == BookingChangeStatus.completed:
            return "already_completed"
        if (
            current["status"] != BookingChangeStatus.pending
            or booking.status != BookingStatus.confirmed
            or booking.departure_id != change.from_departure_id
            or paid != change.amount_due
        ):
            if current["status"] == BookingChangeStatus.pending:
                await revert_change(booking, change, actor=actor, reason="paid_wrong_amount")
            return "gone"
        await (
            BookingChange.update(
                {
                    BookingChange.status: BookingChangeStatus.completed.value,
                    BookingChange.decided_at: clock.now(),
                }
            )
            .where(BookingChange.id == change_id)
            .run()
        )
        await _settle_move(
            booking, change.from_departure_id, change.to_departure_id, change.new_total, 0,
            actor=actor, change=change.id,
        )  # fmt: skip
    return "completed"


async def revert_overdue_changes(limit: int = 200) -> int:
    """Sweep: revert every pending change whose time to pay has run out; how many."""
    rows = (
        await BookingChange.select(BookingChange.id, BookingChange.booking)
        .where(
            (BookingChange.status == BookingChangeStatus.pending.value)
            & (BookingChange.expires_at <= clock.now())
        )
        .limit(limit)
        .run()
    )
    reverted = 0
    for row in rows:
        async with write_transaction():
            booking_row = await for_update(
                Booking.select().where(Booking.id == row["booking"]).first()
            ).run()
            change = await pending_change(row["booking"])
            if booking_row is None or change is None or change.id != row["id"]:
                continue
            if change.expires_at is not None and change.expires_at > clock.now():
                continue
            booking = BookingRow.from_row(booking_row)
            reverted += await revert_change(booking, change, actor="system", reason="not_paid")
    return reverted
