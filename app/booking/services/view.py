"""A booking as its guest sees it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.accounts.tables import Operator
from app.booking.rows import BookingRow, DepartureRow
from app.booking.schemas import (
    AgencyContactOut,
    BookingLineOut,
    BookingOut,
    ContactOut,
    PendingChangeOut,
    PickupOut,
)
from app.booking.services.access import booking_not_found
from app.booking.services.state import pending_change
from app.booking.tables import Booking, BookingLine, BookingStatus
from app.catalogue.services.common import as_dict, in_zone
from app.catalogue.services.itineraries import trip_days
from app.catalogue.tables import Departure, DepartureStop, PassengerType, Route
from app.core.agency_contacts import agency_contact
from app.core.i18n import localize
from app.core.money import PriceOut


async def booking_out(booking_id: UUID, *, with_itinerary: bool = False) -> BookingOut:
    """The booking as its guest sees it; with its trip day by day when asked (the pages,
    the calendar and the messages show it; an API answer only on request, so that every
    answer about the booking is the same as the one that held it)."""
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
            (BookingLine.booking == booking_id)
            & (BookingLine.departure == booking["departure"])
            & BookingLine.change.is_null()
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
    row = BookingRow.from_row(booking)
    fallback = operator["default_locale"] if operator else "zh_Hans"
    out = _booking_view(
        row,
        DepartureRow.from_row(departure),
        route["slug"],
        route["name"],
        fallback,
        lines,
        stop,
        await agency_contact_out(row),
    )
    if with_itinerary:
        out.itinerary = await trip_days(
            departure["route"], departure["departs_at"], departure["time_zone"], fallback
        )
    change = await pending_change(booking_id)
    if change is None:
        return out
    moved_to = (
        await Departure.select(Departure.departs_at, Departure.time_zone)
        .where(Departure.id == change.to_departure_id)
        .first()
        .run()
    )
    assert moved_to is not None  # departures with bookings are never deleted
    seats = (
        await BookingLine.select(BookingLine.seat_label)
        .where(BookingLine.change == change.id)
        .order_by(BookingLine.position)
        .run()
    )
    tz = moved_to["time_zone"]
    due = PriceOut.minor(change.amount_due, change.currency)
    out.pending_change = PendingChangeOut(
        departure_id=change.to_departure_id,
        departs_at=in_zone(moved_to["departs_at"], tz),
        seats=[line["seat_label"] for line in seats],
        new_total=PriceOut.minor(change.new_total, change.currency),
        amount_due=due,
        expires_at=in_zone(change.expires_at, tz) if change.expires_at else None,
    )
    out.balance_due = due
    return out


async def agency_contact_out(booking: BookingRow) -> AgencyContactOut | None:
    """Whom its traveller asks to change a booking an agency made (None for others)."""
    if booking.agency_id is None:
        return None
    contact = await agency_contact(booking.agency_id)
    if contact is None:
        return None
    return AgencyContactOut(name=contact.name, email=contact.email, phone=contact.phone or None)


def _booking_view(
    booking: BookingRow,
    departure: DepartureRow,
    route_slug: str,
    route_name: Any,
    fallback_locale: str,
    lines: list[dict[str, Any]],
    stop: dict[str, Any] | None,
    agency: AgencyContactOut | None = None,
) -> BookingOut:
    """A booking as its guest sees it, from its rows (`lines` in position order) and its
    departure's, its route's slug and name, its operator's default locale and, for an
    agency's booking, the agency to contact."""
    tz = departure.time_zone
    pickup = None
    if stop is not None:
        pickup = PickupOut(
            id=stop["id"],
            name=localize(as_dict(stop["name"]), fallback_locale),
            at=in_zone(stop["at"], tz),
        )
    currency = booking.currency

    def price(amount: int) -> PriceOut:
        return PriceOut.minor(amount, currency)

    # An agency's traveller sees the retail price; what the agency pays us (its net) and
    # what we pay it back are between the agency and us.
    through_agency = booking.agency_id is not None

    def line_price(line: dict[str, Any]) -> PriceOut:
        retail = line["retail_amount"]
        return price(retail if through_agency and retail is not None else line["price_amount"])

    contact = None
    if booking.contact_email:
        contact = ContactOut(
            name=booking.contact_name,
            email=booking.contact_email,
            phone=booking.contact_phone,
            locale=booking.locale,
        )
    return BookingOut(
        reference=booking.reference,
        status=booking.status,
        departure_id=departure.id,
        route_slug=route_slug,
        route_name=localize(as_dict(route_name), fallback_locale),
        departs_at=in_zone(departure.departs_at, tz),
        time_zone=tz,
        expires_at=(
            in_zone(booking.expires_at, tz)
            if booking.expires_at and booking.status == BookingStatus.on_hold
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
                price=line_price(line),
                passenger_name=line["passenger_name"],
                has_id_document=bool(line["id_document"]),
                checked_in_at=in_zone(line["checked_in_at"], tz) if line["checked_in_at"] else None,
            )
            for line in lines
        ],
        total=price(
            booking.retail_amount
            if through_agency and booking.retail_amount is not None
            else booking.total_amount
        ),
        refund=price(booking.refund_amount)
        if booking.refund_amount and not through_agency
        else None,
        balance_due=(
            price(booking.balance_due) if booking.balance_due and not through_agency else None
        ),
        created_at=booking.created_at,
        agency=agency,
    )
