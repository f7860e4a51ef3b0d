"""Holding seats: a new booking on hold, all of its seats or none."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.booking.events import SeatsFreed
from app.booking.rows import BookingRow, DepartureRow
from app.booking.schemas import BookingCreate, BookingCreated
from app.booking.services import hold_statement, inventory
from app.booking.services.access import hash_token, lock_booking, new_reference
from app.booking.services.availability import class_counts
from app.booking.services.expiry import expire_overdue
from app.booking.services.state import hold_running, record_event
from app.booking.services.view import _booking_view, agency_contact_out
from app.booking.tables import Booking, BookingChannel, BookingLine, BookingStatus
from app.catalogue.services.common import as_uuid, in_zone
from app.catalogue.services.fares import EffectiveFares, effective_fares
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    PassengerType,
    Route,
    RouteStatus,
    StopKind,
)
from app.core import clock, jobs
from app.core.after_commit import after_commit
from app.core.database import write_transaction
from app.core.engine import is_sqlite
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.events import publish
from app.core.i18n import _
from app.core.observability import note_booking
from app.pricing.schemas import RETAIL, PartySeat, PriceChannel
from app.pricing.services import price_party, retail_fare


async def _sellable(departure: DepartureRow) -> None:
    """Nothing if tourists may book the departure now; otherwise a clear 409 (or 404)."""
    route = await Route.select(Route.status).where(Route.id == departure.route_id).first().run()
    _refuse_unsellable(departure, route["status"] if route else None)


def _refuse_unsellable(departure: DepartureRow, route_status: str | None) -> None:
    """`_sellable` for a departure whose route's status is known."""
    if route_status != RouteStatus.published:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    status = departure.status
    if status == DepartureStatus.draft:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    if status == DepartureStatus.cancelled:
        raise Conflict(_("This departure has been cancelled."), code="departure_cancelled")
    if status != DepartureStatus.published:
        raise Conflict(_("This departure is no longer on sale."), code="sales_closed")
    now = clock.now()
    if departure.sales_open_at and now < departure.sales_open_at:
        raise Conflict(
            _("Sales open at {moment}.").format(
                moment=in_zone(departure.sales_open_at, departure.time_zone).isoformat()
            ),
            code="sales_not_open",
        )
    if now >= departure.sales_end:
        raise Conflict(_("Sales for this departure have closed."), code="sales_closed")


class _Assignment(msgspec.Struct):
    seat: inventory.FreeSeat
    passenger_type: PassengerType


def _not_enough(free_in_class: int, seat_class: str) -> Conflict:
    if free_in_class == 0:
        return Conflict(
            _("Seat class {seat_class} is sold out.").format(seat_class=seat_class),
            code="sold_out",
        )
    return Conflict(
        _("Only {count} seats of class {seat_class} are left.").format(
            count=free_in_class, seat_class=seat_class
        ),
        code="not_enough_seats",
    )


async def fares_of(departure_id: UUID, route_id: UUID) -> EffectiveFares:
    """The departure's retail fares. Not inventory: they may be read before its lock."""
    return (await effective_fares([(departure_id, route_id)]))[departure_id]


async def assign(
    departure: DepartureRow,
    fares: EffectiveFares,
    counts: list[tuple[str, PassengerType]] | None,
    labels: list[tuple[str, PassengerType]] | None,
    agency_id: UUID | None = None,
) -> list[_Assignment]:
    """Seats for a party, under the departure's lock. Raises 409 when the seats are not
    there, and 400 `no_fare` (at the same point as ever) when `fares` (from `fares_of`)
    cannot price one; nothing is reserved until the caller inserts the lines."""
    free = await inventory.free_seats(departure, agency_id)
    assignments: list[_Assignment] = []
    if labels is not None:
        by_label = {seat.label: seat for seat in free}
        for index, (label, kind) in enumerate(labels):
            seat = by_label.get(label)
            if seat is None:
                raise Conflict(
                    _("Seat {label} is not available.").format(label=label),
                    code="seat_unavailable",
                    errors=[FieldError(field=f"seats[{index}].label", message=_("Not available."))],
                )
            retail_fare(fares, PartySeat(seat.seat_class, kind, f"seats[{index}].passenger_type"))
            assignments.append(_Assignment(seat, kind))
        return assignments
    assert counts is not None
    party_by_class: dict[str, list[PassengerType]] = defaultdict(list)
    for seat_class, kind in counts:
        party_by_class[seat_class].append(kind)
    for seat_class, party in party_by_class.items():
        for kind in set(party):
            retail_fare(fares, PartySeat(seat_class, kind))
        in_class = [seat for seat in free if seat.seat_class == seat_class]
        chosen = inventory.choose_seats(in_class, party)
        if chosen is None:
            raise _not_enough(len(in_class), seat_class)
        for seat, kind in zip(chosen, party, strict=True):
            assignments.append(_Assignment(seat, kind))
    return assignments


async def _pickup_stop(departure_id: UUID, stop_id: UUID | None) -> dict[str, Any] | None:
    """The chosen pick-up stop's row, if it is one of the departure's; None for no stop."""
    if stop_id is None:
        return None
    stop = (
        await DepartureStop.select()
        .where(
            (DepartureStop.id == stop_id)
            & (DepartureStop.departure == departure_id)
            # Nobody boards at a drop-off.
            & DepartureStop.kind.is_in([StopKind.boarding.value, StopKind.pickup.value])
        )
        .first()
        .output(load_json=True)
        .run()
    )
    if stop is None:
        raise InvalidInput("pickup_stop_id", _("This departure has no such stop."))
    return dict(stop)


def _party(
    data: BookingCreate,
) -> tuple[list[tuple[str, PassengerType]] | None, list[tuple[str, PassengerType]] | None, int]:
    if (data.counts is None) == (data.seats is None):
        raise InvalidInput("counts", _("Give either counts per class or seat labels."))
    if data.seats is not None:
        labels = [(choice.label, choice.passenger_type) for choice in data.seats]
        if len({label for label, _kind in labels}) != len(labels):
            raise InvalidInput("seats", _("Each seat may be chosen once."))
        return None, labels, len(labels)
    assert data.counts is not None
    counts = [(c.seat_class, c.passenger_type) for c in data.counts for _ in range(c.count)]
    if len(counts) > 10:
        raise InvalidInput("counts", _("At most 10 passengers per booking."))
    return counts, None, len(counts)


async def _refuse_if_plainly_sold_out(
    departure_id: UUID, counts: list[tuple[str, PassengerType]] | None, agency_id: UUID | None
) -> None:
    """A look at the seats left before queueing for the departure's lock: in a rush most
    requests find the class sold out, and say so at once instead of waiting their turn.
    Only the check under the lock can promise seats; this one only refuses."""
    if counts is None:
        return
    wanted = Counter(seat_class for seat_class, _kind in counts)
    left = (await class_counts([departure_id], agency_id))[departure_id]
    for seat_class, count in wanted.items():
        in_class = left.get(seat_class)
        if in_class is not None and in_class.free < count:
            raise _not_enough(in_class.free, seat_class)


# What a booking needs of its departure's route and operator.
_BOOKING_CONTEXT = """
    SELECT d.route AS route, r.status AS route_status, r.slug AS route_slug,
           r.name AS route_name, o.currency AS currency, o.hold_minutes AS hold_minutes,
           o.default_locale AS default_locale
    FROM departure d
    JOIN route r ON r.id = d.route
    JOIN operator o ON o.id = d.operator
    WHERE d.id = {}
"""


async def _booking_context(departure_id: UUID) -> dict[str, Any]:
    """`_BOOKING_CONTEXT` in one read (SQL: Piccolo's joins cost more to build than to run).
    None of it is inventory: it is read before the departure's lock, whose row stays the
    authority on the departure's own status and times."""
    rows = await Departure.raw(_BOOKING_CONTEXT, departure_id).run()
    if not rows:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return {**rows[0], "id": departure_id, "route": as_uuid(rows[0]["route"])}


async def create_booking(
    data: BookingCreate,
    *,
    channel: BookingChannel = BookingChannel.public,
    actor: str = "guest",
    hold_minutes: int | None = None,
    agency_id: UUID | None = None,
    price_channel: PriceChannel = RETAIL,
    partner_uuid: str | None = None,
) -> BookingCreated:
    """Hold seats for a party: all of them, or none (409). `agency_id` gives the agency's
    allotment and ownership; `price_channel` what the booker pays (an agency's net)."""
    counts, labels, size = _party(data)
    if data.passengers is not None and len(data.passengers) > size:
        raise InvalidInput("passengers", _("More passengers than seats."))
    token = secrets.token_urlsafe(24)
    reference = new_reference()
    note_booking(reference)
    if channel != BookingChannel.waitlist and not is_sqlite():
        created = await _hold_in_one_statement(
            data, counts, labels, token, reference, channel=channel, actor=actor,
            hold_minutes=hold_minutes, agency_id=agency_id, price_channel=price_channel,
            partner_uuid=partner_uuid,
        )  # fmt: skip
        if created is not None:
            return created
    elif channel != BookingChannel.waitlist:
        await _refuse_if_plainly_sold_out(data.departure_id, counts, agency_id)
    context = await _booking_context(data.departure_id)
    fares = await fares_of(data.departure_id, context["route"])
    async with write_transaction():
        departure = await inventory.lock_departure(data.departure_id)
        _refuse_unsellable(departure, context["route_status"])
        if await expire_overdue(departure.id) and channel != BookingChannel.waitlist:
            # Seats freed by run-out holds go to the waiting list first.
            await publish(SeatsFreed(departure_id=departure.id))
        stop = await _pickup_stop(departure.id, data.pickup_stop_id)
        assignments = await assign(departure, fares, counts, labels, agency_id)
        # What the booker pays per seat: the retail price, or an agency's net price.
        quote = price_party(
            fares, [PartySeat(a.seat.seat_class, a.passenger_type) for a in assignments],
            price_channel,
        )  # fmt: skip
        now = clock.now()
        minutes = hold_minutes if hold_minutes is not None else context["hold_minutes"]
        expires_at = min(now + timedelta(minutes=minutes), departure.sales_end)
        contact = data.contact
        booking = Booking(
            reference=reference,
            token_hash=hash_token(token),
            operator=departure.operator_id,
            departure=departure.id,
            channel=channel.value,
            status=BookingStatus.on_hold.value,
            expires_at=expires_at,
            pickup_stop=stop["id"] if stop else None,
            contact_name=contact.name if contact else "",
            contact_email=contact.email if contact else "",
            contact_phone=contact.phone if contact else "",
            locale=contact.locale if contact else "zh_Hans",
            total_amount=quote.charged.amount,
            retail_amount=quote.retail.amount if quote.agency_net else None,
            currency=context["currency"],
            agency=agency_id,
            partner_uuid=partner_uuid,
            created_at=now,
            updated_at=now,
        )
        await _insert_with_free_reference(booking)
        passengers = data.passengers or []
        lines = [
            BookingLine(
                booking=booking.id,
                departure=departure.id,
                seat=a.seat.id,
                seat_label=a.seat.label,
                seat_class=a.seat.seat_class,
                passenger_type=a.passenger_type.value,
                price_amount=price.charged.amount,
                retail_amount=price.retail.amount if quote.agency_net else None,
                currency=price.retail.currency,
                position=index + 1,
                passenger_name=passengers[index].name if index < len(passengers) else "",
                id_document=(
                    passengers[index].id_document or "" if index < len(passengers) else ""
                ),
                live=True,
            )
            for index, (a, price) in enumerate(zip(assignments, quote.seats, strict=True))
        ]
        await BookingLine.insert(*lines).run()
        await record_event(
            booking.id, actor, None, BookingStatus.on_hold.value, "created",
            {"seats": [a.seat.label for a in assignments], "channel": channel.value},
        )  # fmt: skip

    await _schedule_expiry(booking.id, expires_at, job_id=f"expire:{booking.id}")
    # The response from the rows as this transaction wrote them, not read back (that
    # would take five more queries).
    row = BookingRow.from_row(booking.to_dict())
    out = _booking_view(
        row,
        departure,
        context["route_slug"],
        context["route_name"],
        context["default_locale"],
        [line.to_dict() for line in lines],
        stop,
        await agency_contact_out(row),
    )
    return BookingCreated(access_token=token, booking=out)


def _class_parties(
    counts: list[tuple[str, PassengerType]],
) -> dict[str, list[PassengerType]]:
    """A party asked for by counts, per seat class in the order the classes were asked."""
    party_by_class: dict[str, list[PassengerType]] = defaultdict(list)
    for seat_class, kind in counts:
        party_by_class[seat_class].append(kind)
    return party_by_class


async def _hold_in_one_statement(
    data: BookingCreate,
    counts: list[tuple[str, PassengerType]] | None,
    labels: list[tuple[str, PassengerType]] | None,
    token: str,
    reference: str,
    *,
    channel: BookingChannel,
    actor: str,
    hold_minutes: int | None,
    agency_id: UUID | None,
    price_channel: PriceChannel,
    partner_uuid: str | None,
) -> BookingCreated | None:
    """`create_booking` on PostgreSQL as one read and one write (`hold_statement`), with
    the same answers and errors. None when the departure has run-out holds to expire
    first, or a request's fares fail after a class whose seats must be looked at first:
    the caller then takes the multi-statement path, which does both."""
    context = await hold_statement.read_context(data.departure_id, data.pickup_stop_id)
    if context is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    departure, fares = context.departure, context.fares
    _refuse_unsellable(departure, context.route_status)
    if data.pickup_stop_id is not None and context.stop is None:
        raise InvalidInput("pickup_stop_id", _("This departure has no such stop."))
    party: list[tuple[str | None, str | None, PassengerType]] = []
    if counts is not None:
        for position, (seat_class, kinds) in enumerate(_class_parties(counts).items()):
            # As `assign` checks them: a class's fares before its seats.
            for kind in set(kinds):
                try:
                    retail_fare(fares, PartySeat(seat_class, kind))
                except InvalidInput:
                    if position == 0:
                        raise
                    return None
            party += [(seat_class, None, kind) for kind in kinds]
    else:
        assert labels is not None
        party = [(None, label, kind) for label, kind in labels]
    passengers = data.passengers or []
    lines = [
        hold_statement.Line(
            seat_class=seat_class,
            label=label,
            passenger_type=kind.value,
            name=passengers[index].name if index < len(passengers) else "",
            id_document=(passengers[index].id_document or "" if index < len(passengers) else ""),
        )
        for index, (seat_class, label, kind) in enumerate(party)
    ]
    # Every fare as this booker pays it (the pricing seam), for the statement to pick from.
    keys = [PartySeat(seat_class, PassengerType(kind)) for seat_class, kind in fares]
    quote = price_party(fares, keys, price_channel)
    priced = [
        hold_statement.Fare(
            seat_class=seat.seat.seat_class,
            passenger_type=seat.seat.passenger_type.value,
            retail=seat.retail.amount,
            charged=seat.charged.amount,
            currency=seat.retail.currency,
        )
        for seat in quote.seats
    ]
    contact = data.contact
    booking_id = uuid.uuid4()
    token_hash = hash_token(token)
    minutes = hold_minutes if hold_minutes is not None else context.hold_minutes
    while True:
        now = clock.now()
        outcome = await hold_statement.hold(
            departure_id=departure.id, now=now, agency_id=agency_id, booking_id=booking_id,
            reference=reference, token_hash=token_hash, channel=channel.value,
            hold_minutes=minutes, pickup_stop_id=data.pickup_stop_id,
            contact=(
                (contact.name, contact.email, contact.phone, contact.locale)
                if contact else ("", "", "", "zh_Hans")
            ),
            currency=context.currency, partner_uuid=partner_uuid, actor=actor, lines=lines,
            fares=priced, agency_net=price_channel.agency_net,
        )  # fmt: skip
        if outcome.outcome != "reference_taken":
            break
        # 40 random bits: a clash is rare, and the unique index finds it.
        reference = new_reference()
        note_booking(reference)
    _refuse_unheld(outcome, departure, context, labels)
    if outcome.outcome == "overdue":
        return None
    assert outcome.expires_at is not None
    agency_net = price_channel.agency_net
    line_rows = [
        {
            "position": index + 1,
            "seat_label": outcome.labels[index],
            "seat_class": outcome.classes[index],
            "passenger_type": line.passenger_type,
            "price_amount": outcome.charged[index],
            "retail_amount": outcome.retail[index] if agency_net else None,
            "passenger_name": line.name,
            "id_document": line.id_document,
            "checked_in_at": None,
        }
        for index, line in enumerate(lines)
    ]
    row = BookingRow(
        id=booking_id, reference=reference, token_hash=token_hash,
        operator_id=departure.operator_id, departure_id=departure.id, channel=channel.value,
        status=BookingStatus.on_hold, expires_at=outcome.expires_at,
        pickup_stop_id=data.pickup_stop_id,
        contact_name=contact.name if contact else "",
        contact_email=contact.email if contact else "",
        contact_phone=contact.phone if contact else "",
        locale=contact.locale if contact else "zh_Hans",
        total_amount=sum(outcome.charged), currency=context.currency, refund_amount=0,
        balance_due=0, cancelled_at=None, confirmed_at=None, agency_id=agency_id,
        partner_uuid=partner_uuid, reseller_reference="",
        retail_amount=sum(outcome.retail) if agency_net else None, created_at=now,
        updated_at=now, notes="", contact_notes="", contact_country="", contact_postal_code="",
    )  # fmt: skip
    await _schedule_expiry(booking_id, outcome.expires_at, job_id=f"expire:{booking_id}")
    out = _booking_view(
        row, departure, context.route_slug, context.route_name, context.default_locale,
        line_rows, context.stop, await agency_contact_out(row),
    )  # fmt: skip
    return BookingCreated(access_token=token, booking=out)


def _refuse_unheld(
    outcome: hold_statement.Outcome,
    departure: DepartureRow,
    context: hold_statement.HoldContext,
    labels: list[tuple[str, PassengerType]] | None,
) -> None:
    """The error `booking_hold` answered instead of a hold, as the multi-statement path
    raises it; nothing for `held` and `overdue`."""
    match outcome.outcome:
        case "held" | "overdue":
            return
        case "missing":
            raise NotFound(_("Departure not found."), code="departure_not_found")
        case "unsellable":
            assert outcome.status is not None
            assert outcome.departs_at is not None
            _refuse_unsellable(
                dataclasses.replace(
                    departure, status=DepartureStatus(outcome.status),
                    departs_at=outcome.departs_at, sales_open_at=outcome.sales_open_at,
                    sales_close_at=outcome.sales_close_at,
                ),
                context.route_status,
            )  # fmt: skip
            raise Conflict(_("Sales for this departure have closed."), code="sales_closed")
        case "short":
            assert outcome.seat_class is not None
            assert outcome.free is not None
            raise _not_enough(outcome.free, outcome.seat_class)
        case "unavailable":
            assert labels is not None
            assert outcome.index is not None
            index = outcome.index
            raise Conflict(
                _("Seat {label} is not available.").format(label=labels[index][0]),
                code="seat_unavailable",
                errors=[FieldError(field=f"seats[{index}].label", message=_("Not available."))],
            )
        case "no_fare":
            assert outcome.index is not None
            assert outcome.seat_class is not None
            index = outcome.index
            field = f"seats[{index}].passenger_type" if labels is not None else "counts"
            kind = labels[index][1] if labels is not None else PassengerType.adult
            retail_fare(context.fares, PartySeat(outcome.seat_class, kind, field))
    raise RuntimeError(f"booking_hold answered {outcome.outcome!r}")


async def _insert_with_free_reference(booking: Booking) -> None:
    """Insert the booking, drawing another reference while its own is taken (40 random
    bits: a clash is rare, and the unique index finds it without a look-up first)."""
    while not (
        await Booking.insert(booking)
        .on_conflict(target=Booking.reference, action="DO NOTHING")
        .returning(Booking.id)
        .run()
    ):
        booking.reference = new_reference()
        note_booking(booking.reference)


async def _schedule_expiry(booking_id: UUID, expires_at: datetime, *, job_id: str) -> None:
    """The hold's expiry job at its time. After the commit: the job must not run for a
    hold whose transaction is still open."""
    await after_commit(
        lambda: jobs.defer("expire_booking", str(booking_id), at=expires_at, job_id=job_id)
    )


async def extend_hold(booking_id: UUID, minutes: int, *, actor: str) -> datetime:
    """Give a running hold `minutes` from now (never past the close of sales): recorded
    in its audit trail, with an expiry job at the new time. Returns the new expiry."""
    async with write_transaction():
        booking, departure = await lock_booking(booking_id)
        if not hold_running(booking.status, booking.expires_at):
            raise Conflict(_("Only a booking on hold can be changed."), code="booking_not_on_hold")
        now = clock.now()
        closes = departure.sales_end
        expires_at: datetime = min(now + timedelta(minutes=minutes), closes)
        await (
            Booking.update({Booking.expires_at: expires_at, Booking.updated_at: now})
            .where(Booking.id == booking_id)
            .run()
        )
        was = booking.expires_at
        on_hold = BookingStatus.on_hold.value
        await record_event(
            booking_id, actor, on_hold, on_hold, "hold_extended",
            {"expires_at": expires_at.isoformat(), "was": was.isoformat() if was else None},
        )  # fmt: skip
    # A job of its own: the one at the old time is still queued under the hold's first id
    # (arq refuses a second job with it), and finds the hold still running then.
    await _schedule_expiry(
        booking_id, expires_at, job_id=f"expire:{booking_id}:{int(expires_at.timestamp())}"
    )
    return expires_at
