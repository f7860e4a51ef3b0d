"""Bookings: hold seats, read and change a booking as its guest, cancel, rebook, expire."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.booking.schemas import (
    BookingCreate,
    BookingCreated,
    BookingLineOut,
    BookingOut,
    BookingUpdate,
    CancellationOut,
    CancellationQuote,
    ContactOut,
    PickupOut,
)
from app.booking.services import inventory
from app.booking.services.state import record_event, tell_agency, transition
from app.booking.tables import Booking, BookingChannel, BookingLine, BookingStatus
from app.catalogue.schemas import PolicyTierOut
from app.catalogue.services.availability import class_counts
from app.catalogue.services.common import as_dict, as_list, as_uuid, in_zone
from app.catalogue.services.fares import EffectiveFares, effective_fares
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    Operator,
    PassengerType,
    Route,
    RouteStatus,
    StopKind,
)
from app.core import clock, ratelimit
from app.core.after_commit import after_commit
from app.core.database import for_update, write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.i18n import _, localize
from app.core.money import Money, PriceOut
from app.core.observability import note_booking
from app.core.settings import get_settings
from app.notifications.messages import calendar_event
from app.notifications.services.common import notify
from app.notifications.services.outbox import enqueue
from app.partners.pricing import agency_pricing

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_reference() -> str:
    """8 characters of Crockford base32 (40 random bits): short, unambiguous to read out."""
    return "".join(secrets.choice(CROCKFORD) for _ in range(8))


def normalize_reference(reference: str) -> str:
    return reference.strip().upper().replace("-", "").translate(_CROCKFORD_ALIASES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- reading


def booking_not_found() -> NotFound:
    return NotFound(_("Booking not found."), code="booking_not_found")


async def guest_booking(reference: str, token: str | None) -> dict[str, Any]:
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
    return dict(row)


async def lock_booking(booking_id: UUID) -> tuple[dict[str, Any], dict[str, Any]]:
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
        if booking is not None and booking["departure"] == departure["id"]:
            note_booking(booking["reference"])
            return dict(booking), departure
    raise Conflict(
        _("The booking changed meanwhile; reload it and try again."), code="booking_changed"
    )


async def booking_out(booking_id: UUID) -> BookingOut:
    booking = await Booking.select().where(Booking.id == booking_id).first().run()
    if booking is None:
        raise booking_not_found()
    departure = await Departure.select().where(Departure.id == booking["departure"]).first().run()
    assert departure is not None
    route = (
        await Route.select(Route.slug, Route.name, Route.operator)
        .where(Route.id == departure["route"])
        .first()
        .output(load_json=True)
        .run()
    )
    assert route is not None
    operator = (
        await Operator.select(Operator.default_locale)
        .where(Operator.id == route["operator"])
        .first()
        .run()
    )
    lines = (
        await BookingLine.select()
        .where(
            (BookingLine.booking == booking_id) & (BookingLine.departure == booking["departure"])
        )
        .order_by(BookingLine.position)
        .run()
    )
    stop = None
    if booking["pickup_stop"] is not None:
        stop = (
            await DepartureStop.select()
            .where(DepartureStop.id == booking["pickup_stop"])
            .first()
            .output(load_json=True)
            .run()
        )
    return _booking_view(
        booking,
        departure,
        route["slug"],
        route["name"],
        operator["default_locale"] if operator else "zh_Hans",
        lines,
        stop,
    )


def _booking_view(
    booking: dict[str, Any],
    departure: dict[str, Any],
    route_slug: str,
    route_name: Any,
    fallback_locale: str,
    lines: list[dict[str, Any]],
    stop: dict[str, Any] | None,
) -> BookingOut:
    """A booking as its guest sees it, from its rows (`lines` in position order) and its
    departure's, its route's slug and name and its operator's default locale."""
    tz = departure["time_zone"]
    pickup = None
    if stop is not None:
        pickup = PickupOut(
            id=stop["id"],
            name=localize(as_dict(stop["name"]), fallback_locale),
            at=in_zone(stop["at"], tz),
        )
    currency = booking["currency"]

    def price(amount: int) -> PriceOut:
        return PriceOut.minor(amount, currency)

    contact = None
    if booking["contact_email"]:
        contact = ContactOut(
            name=booking["contact_name"],
            email=booking["contact_email"],
            phone=booking["contact_phone"],
            locale=booking["locale"],
        )
    return BookingOut(
        reference=booking["reference"],
        status=BookingStatus(booking["status"]),
        departure_id=departure["id"],
        route_slug=route_slug,
        route_name=localize(as_dict(route_name), fallback_locale),
        departs_at=in_zone(departure["departs_at"], tz),
        time_zone=tz,
        expires_at=(
            in_zone(booking["expires_at"], tz)
            if booking["expires_at"] and booking["status"] == BookingStatus.on_hold
            else None
        ),
        pickup_stop=pickup,
        contact=contact,
        lines=[
            BookingLineOut(
                position=line["position"],
                seat_label=line["seat_label"],
                seat_class=line["seat_class"],
                passenger_type=PassengerType(line["passenger_type"]),
                price=price(line["price_amount"]),
                passenger_name=line["passenger_name"],
                has_id_document=bool(line["id_document"]),
                checked_in_at=in_zone(line["checked_in_at"], tz) if line["checked_in_at"] else None,
            )
            for line in lines
        ],
        total=price(booking["total_amount"]),
        refund=price(booking["refund_amount"]) if booking["refund_amount"] else None,
        balance_due=price(booking["balance_due"]) if booking["balance_due"] else None,
        created_at=booking["created_at"],
    )


# ---------------------------------------------------------------- holding seats


async def _sellable(departure: dict[str, Any]) -> None:
    """Nothing if tourists may book the departure now; otherwise a clear 409 (or 404)."""
    route = await Route.select(Route.status).where(Route.id == departure["route"]).first().run()
    _refuse_unsellable(departure, route["status"] if route else None)


def _refuse_unsellable(departure: dict[str, Any], route_status: str | None) -> None:
    """`_sellable` for a departure whose route's status is known."""
    if route_status != RouteStatus.published:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    status = departure["status"]
    if status == DepartureStatus.draft:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    if status == DepartureStatus.cancelled:
        raise Conflict(_("This departure has been cancelled."), code="departure_cancelled")
    if status != DepartureStatus.published:
        raise Conflict(_("This departure is no longer on sale."), code="sales_closed")
    now = clock.now()
    if departure["sales_open_at"] and now < departure["sales_open_at"]:
        raise Conflict(
            _("Sales open at {moment}.").format(
                moment=in_zone(departure["sales_open_at"], departure["time_zone"]).isoformat()
            ),
            code="sales_not_open",
        )
    if now >= (departure["sales_close_at"] or departure["departs_at"]):
        raise Conflict(_("Sales for this departure have closed."), code="sales_closed")


async def expire_overdue(departure_id: UUID) -> int:
    """Expire the departure's run-out holds (inside the caller's departure lock).

    Their open payment intents are cancelled by the next periodic tick (`tick` settles
    expired bookings), not here: the caller still holds the departure's lock.
    """
    overdue = await inventory.overdue_holds(departure_id)
    for booking in overdue:
        await transition(booking, BookingStatus.expired, actor="system", reason="hold_expired")
    return len(overdue)


class _Assignment(msgspec.Struct):
    seat: inventory.FreeSeat
    passenger_type: PassengerType
    price: Money


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


def _price(
    fares: EffectiveFares,
    seat_class: str,
    kind: PassengerType,
    field: str,
) -> Money:
    fare = fares.get((seat_class, kind.value))
    if fare is None:
        raise InvalidInput(
            field,
            _("There is no {passenger_type} fare for seat class {seat_class}.").format(
                passenger_type=kind.value, seat_class=seat_class
            ),
            code="no_fare",
        )
    return fare[0]


async def fares_of(departure: dict[str, Any]) -> EffectiveFares:
    """The departure's retail fares. Not inventory: they may be read before its lock."""
    return (await effective_fares([(departure["id"], departure["route"])]))[departure["id"]]


async def assign(
    departure: dict[str, Any],
    fares: EffectiveFares,
    counts: list[tuple[str, PassengerType]] | None,
    labels: list[tuple[str, PassengerType]] | None,
    agency_id: UUID | None = None,
) -> list[_Assignment]:
    """Seats and retail prices (from `fares_of`) for a party, under the departure's lock.
    Raises 409 when the seats are not there; nothing is reserved until the caller inserts
    the lines."""
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
            price = _price(fares, seat.seat_class, kind, f"seats[{index}].passenger_type")
            assignments.append(_Assignment(seat, kind, price))
        return assignments
    assert counts is not None
    party_by_class: dict[str, list[PassengerType]] = defaultdict(list)
    for seat_class, kind in counts:
        party_by_class[seat_class].append(kind)
    for seat_class, party in party_by_class.items():
        for kind in set(party):
            _price(fares, seat_class, kind, "counts")
        in_class = [seat for seat in free if seat.seat_class == seat_class]
        chosen = inventory.choose_seats(in_class, party)
        if chosen is None:
            raise _not_enough(len(in_class), seat_class)
        for seat, kind in zip(chosen, party, strict=True):
            assignments.append(_Assignment(seat, kind, _price(fares, seat_class, kind, "counts")))
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
    partner_uuid: str | None = None,
) -> BookingCreated:
    """Hold seats for a party: all of them, or none (409)."""
    counts, labels, size = _party(data)
    if data.passengers is not None and len(data.passengers) > size:
        raise InvalidInput("passengers", _("More passengers than seats."))
    token = secrets.token_urlsafe(24)
    if channel != BookingChannel.waitlist:
        await _refuse_if_plainly_sold_out(data.departure_id, counts, agency_id)
    reference = new_reference()
    note_booking(reference)
    context = await _booking_context(data.departure_id)
    fares = await fares_of(context)
    async with write_transaction():
        departure = await inventory.lock_departure(data.departure_id)
        _refuse_unsellable(departure, context["route_status"])
        if await expire_overdue(departure["id"]) and channel != BookingChannel.waitlist:
            # Seats freed by run-out holds go to the waiting list first.
            await seats_freed(departure)
        stop = await _pickup_stop(departure["id"], data.pickup_stop_id)
        assignments = await assign(departure, fares, counts, labels, agency_id)
        # What the booker pays per seat: the retail price, or an agency's net price.
        pricing = await agency_pricing(agency_id, departure["route"]) if agency_id else None
        prices = [
            pricing.net(a.seat.seat_class, a.passenger_type.value, a.price.amount)
            if pricing
            else a.price.amount
            for a in assignments
        ]
        now = clock.now()
        minutes = hold_minutes if hold_minutes is not None else context["hold_minutes"]
        expires_at = min(
            now + timedelta(minutes=minutes), departure["sales_close_at"] or departure["departs_at"]
        )
        contact = data.contact
        booking = Booking(
            reference=reference,
            token_hash=hash_token(token),
            operator=departure["operator"],
            departure=departure["id"],
            channel=channel.value,
            status=BookingStatus.on_hold.value,
            expires_at=expires_at,
            pickup_stop=stop["id"] if stop else None,
            contact_name=contact.name if contact else "",
            contact_email=contact.email if contact else "",
            contact_phone=contact.phone if contact else "",
            locale=contact.locale if contact else "zh_Hans",
            total_amount=sum(prices),
            retail_amount=sum(a.price.amount for a in assignments) if pricing else None,
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
                departure=departure["id"],
                seat=a.seat.id,
                seat_label=a.seat.label,
                seat_class=a.seat.seat_class,
                passenger_type=a.passenger_type.value,
                price_amount=prices[index],
                retail_amount=a.price.amount if pricing else None,
                currency=a.price.currency,
                position=index + 1,
                passenger_name=passengers[index].name if index < len(passengers) else "",
                id_document=(
                    passengers[index].id_document or "" if index < len(passengers) else ""
                ),
                live=True,
            )
            for index, a in enumerate(assignments)
        ]
        await BookingLine.insert(*lines).run()
        await record_event(
            booking.id, actor, None, BookingStatus.on_hold.value, "created",
            {"seats": [a.seat.label for a in assignments], "channel": channel.value},
        )  # fmt: skip
    from app.core import jobs

    # After the commit: the job must not run for a hold whose transaction is still open.
    await after_commit(
        lambda: jobs.defer(
            "expire_booking", str(booking.id), at=expires_at, job_id=f"expire:{booking.id}"
        )
    )
    # The response from the rows as this transaction wrote them, not read back (that
    # would take five more queries).
    out = _booking_view(
        booking.to_dict(),
        departure,
        context["route_slug"],
        context["route_name"],
        context["default_locale"],
        [line.to_dict() for line in lines],
        stop,
    )
    return BookingCreated(access_token=token, booking=out)


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


# ---------------------------------------------------------------- guest changes


async def _guest_booking_now(reference: str, token: str | None) -> dict[str, Any]:
    """`guest_booking`, expiring it first if it is a hold whose time has run out: a guest
    never sees, changes, cancels or moves a run-out hold as if it were still held (the
    callers re-read the booking)."""
    booking = await guest_booking(reference, token)
    if (
        booking["status"] == BookingStatus.on_hold
        and booking["expires_at"] is not None
        and booking["expires_at"] <= clock.now()
    ):
        await expire_hold(booking["id"])
    return booking


def _refuse_run_out_hold(booking: dict[str, Any]) -> None:
    """A hold whose time has run out is as good as expired, even before the sweep."""
    if (
        booking["status"] == BookingStatus.on_hold
        and booking["expires_at"] is not None
        and booking["expires_at"] <= clock.now()
    ):
        raise Conflict(_("The hold has run out; book again."), code="hold_expired")


async def get_booking(reference: str, token: str | None) -> BookingOut:
    booking = await _guest_booking_now(reference, token)
    return await booking_out(booking["id"])


async def update_booking(reference: str, token: str | None, data: BookingUpdate) -> BookingOut:
    """Contact, passengers and pick-up stop, while the booking is on hold."""
    found = await _guest_booking_now(reference, token)
    async with write_transaction():
        booking, _departure = await lock_booking(found["id"])
        if booking["status"] != BookingStatus.on_hold:
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
            stop = await _pickup_stop(booking["departure"], data.pickup_stop_id)
            values[Booking.pickup_stop] = stop["id"] if stop else None
        if data.passengers is not msgspec.UNSET:
            lines = (
                await BookingLine.select(BookingLine.id)
                .where(
                    (BookingLine.booking == booking["id"])
                    & (BookingLine.departure == booking["departure"])
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
        await Booking.update(values).where(Booking.id == booking["id"]).run()
    return await booking_out(booking["id"])


def refund_percent(policy: list[dict[str, int]], departs_at: datetime, now: datetime) -> int:
    """The refund of the first tier whose notice the cancellation still gives."""
    hours_before = (departs_at - now).total_seconds() / 3600
    for tier in sorted(policy, key=lambda t: -t["hours_before"]):
        if hours_before >= tier["hours_before"]:
            return int(tier["refund_percent"])
    return 0


@dataclass(frozen=True)
class RefundDue:
    amount: int
    percent: int
    policy: list[dict[str, int]]


async def refund_due(booking: dict[str, Any], departure: dict[str, Any]) -> RefundDue:
    """What cancelling now gives back under the route's policy.

    Nothing was paid for a hold, so nothing is refunded; a confirmed booking cannot be
    cancelled by its guest once the departure has left."""
    route = (
        await Route.select(Route.cancellation_policy)
        .where(Route.id == departure["route"])
        .first()
        .output(load_json=True)
        .run()
    )
    assert route is not None
    policy = as_list(route["cancellation_policy"])
    if booking["status"] != BookingStatus.confirmed:
        return RefundDue(amount=0, percent=0, policy=policy)
    if clock.now() >= departure["departs_at"]:
        raise Conflict(
            _("The departure has left; the booking can no longer be cancelled."),
            code="departure_passed",
        )
    percent = refund_percent(policy, departure["departs_at"], clock.now())
    return RefundDue(amount=_paid(booking) * percent // 100, percent=percent, policy=policy)


def _paid(booking: dict[str, Any]) -> int:
    return int(booking["total_amount"] - booking["balance_due"])


async def cancel_booking(
    booking: dict[str, Any],
    *,
    actor: str,
    reason: str,
    full_refund: bool = False,
    note: str = "",
) -> tuple[int, int]:
    """Cancel inside the caller's transaction; returns (refund amount, percent).

    `reason` is a short code (the audit column holds 64 characters); a guest's own words
    (up to 200) go in the event's details as `note`."""
    departure = await Departure.select().where(Departure.id == booking["departure"]).first().run()
    assert departure is not None
    if full_refund and booking["status"] == BookingStatus.confirmed:
        refund, percent = _paid(booking), 100
    else:
        due = await refund_due(booking, departure)
        refund, percent = due.amount, due.percent
    details: dict[str, Any] = {"refund_percent": percent, "refund": refund}
    if note:
        details["note"] = note
    await transition(
        booking, BookingStatus.cancelled, actor=actor, reason=reason, refund_amount=refund,
        details=details,
    )  # fmt: skip
    return refund, percent


async def guest_cancel(reference: str, token: str | None, reason: str) -> CancellationOut:
    found = await _guest_booking_now(reference, token)
    async with write_transaction():
        booking, departure = await lock_booking(found["id"])
        refund, percent = await cancel_booking(
            booking, actor="guest", reason="cancelled_by_guest", note=reason
        )
        await seats_freed(departure)
    await _settle([booking["id"]])
    out = await booking_out(booking["id"])
    return CancellationOut(
        refund=PriceOut.minor(refund, booking["currency"]),
        refund_percent=percent,
        booking=out,
    )


async def guest_cancellation_quote(reference: str, token: str | None) -> CancellationQuote:
    """What cancelling now would refund, shown before the guest confirms."""
    found = await _guest_booking_now(reference, token)
    # Re-read: a hold whose time ran out was just expired.
    booking = await Booking.select().where(Booking.id == found["id"]).first().run()
    assert booking is not None
    if booking["status"] not in (BookingStatus.on_hold, BookingStatus.confirmed):
        raise Conflict(_("This booking can no longer be cancelled."), code="not_cancellable")
    departure = await Departure.select().where(Departure.id == booking["departure"]).first().run()
    assert departure is not None
    due = await refund_due(booking, departure)
    return CancellationQuote(
        refund=PriceOut.minor(due.amount, booking["currency"]),
        refund_percent=due.percent,
        policy=[PolicyTierOut(**tier) for tier in due.policy],
        booking=await booking_out(booking["id"]),
    )


async def guest_calendar(reference: str, token: str | None) -> bytes:
    """The trip as an iCalendar event, like the one attached to the confirmation."""
    found = await _guest_booking_now(reference, token)
    out = await booking_out(found["id"])
    departure = (
        await Departure.select(Departure.returns_at, Departure.route)
        .where(Departure.id == found["departure"])
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


async def send_booking_link(reference: str, email: str) -> None:
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
    settings = get_settings()
    verdict = await ratelimit.hit(
        settings.redis_url, f"booking-link:{row['reference']}", LINK_MAILS_PER_HOUR, 3600
    )
    if not verdict.allowed:
        return
    token = secrets.token_urlsafe(24)
    token_hash = hash_token(token)
    async with write_transaction():
        await Booking.update({Booking.token_hash: token_hash}).where(Booking.id == row["id"]).run()
        await notify(
            f"booking.link:{row['id']}:{token_hash[:16]}",
            "booking.link",
            row["contact_email"],
            row["locale"],
            booking=row["id"],
            payload={"access_token": token},
        )


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
        if booking["status"] not in (BookingStatus.on_hold, BookingStatus.confirmed):
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
            from app.payments.services.refunds import owe_refund

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


async def expire_hold(booking_id: UUID) -> bool:
    """Expire one hold if its time has run out; False when it was already dealt with."""
    async with write_transaction():
        row, departure = await lock_booking(booking_id)
        if row["status"] != BookingStatus.on_hold:
            return False
        if row["expires_at"] is None or row["expires_at"] > clock.now():
            return False
        await transition(row, BookingStatus.expired, actor="system", reason="hold_expired")
        await seats_freed(departure)
    # Stripe is not asked here (the sweeps and the guest's page call this): an expired
    # hold owes no refund, and its open intent is cancelled by the payments sweep.
    return True


async def _settle(booking_ids: list[UUID]) -> None:
    from app.payments.services.settle import settle_after_change

    # Refunds are paid once the change is committed (an idempotent request commits later).
    await after_commit(lambda: settle_after_change(booking_ids))


async def seats_freed(departure: dict[str, Any]) -> None:
    """Seats came back on the (locked) departure: offer them to the waiting list."""
    from app.booking.services.waitlist import offer_freed_seats

    await offer_freed_seats(departure)


async def expire_all_overdue(limit: int = 500) -> int:
    """Safety-net sweep: expire every hold whose time has run out."""
    rows = (
        await Booking.select(Booking.id)
        .where(
            (Booking.status == BookingStatus.on_hold.value) & (Booking.expires_at <= clock.now())
        )
        .limit(limit)
        .run()
    )
    expired = 0
    for row in rows:
        expired += await expire_hold(row["id"])
    return expired


async def confirm_paid(booking_id: UUID, *, actor: str) -> str:
    """Confirm a booking whose payment succeeded (inside or outside a transaction).

    Returns `confirmed`, `already_confirmed`, or `seats_gone` / `not_live` when the
    booking cannot be honoured and the payment must go back. A hold that ran out is still
    confirmed when all of its seats are free and the departure is on sale.
    """
    async with write_transaction():
        booking, departure = await lock_booking(booking_id)
        status = BookingStatus(booking["status"])
        if status == BookingStatus.confirmed:
            return "already_confirmed"
        if status == BookingStatus.cancelled:
            return "not_live"
        if status == BookingStatus.on_hold and (
            booking["expires_at"] is None or booking["expires_at"] > clock.now()
        ):
            await transition(booking, BookingStatus.confirmed, actor=actor, reason="paid")
            return "confirmed"
        if status == BookingStatus.on_hold:
            await transition(booking, BookingStatus.expired, actor="system", reason="hold_expired")
            booking["status"] = BookingStatus.expired.value
        lines = (
            await BookingLine.select(BookingLine.id, BookingLine.seat)
            .where((BookingLine.booking == booking_id) & (BookingLine.departure == departure["id"]))
            .run()
        )
        # Its seats must be free as a new booking would find them: not taken, not blocked
        # since, and not among the seats other agencies' allotments keep.
        free = await inventory.seats_still_free(
            departure, [line["seat"] for line in lines], booking["agency"]
        )
        still_running = departure["status"] in (DepartureStatus.published, DepartureStatus.closed)
        if not free or not still_running or clock.now() >= departure["departs_at"]:
            return "seats_gone"
        await (
            BookingLine.update({BookingLine.live: True})
            .where(BookingLine.id.is_in([line["id"] for line in lines]))
            .run()
        )
        await transition(booking, BookingStatus.confirmed, actor=actor, reason="paid_after_expiry")
        return "confirmed"
