"""OCTO Booking objects: an agency's booking as the specification shows it, read one by
its uuid or searched by the filters OCTO defines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from app.booking.services.agency import (
    AgencyBooking,
    agency_booking_lines,
    agency_bookings,
    cancellation_reason,
    find_agency_booking,
)
from app.booking.services.state import can_transition
from app.booking.tables import BookingStatus
from app.catalogue.services.common import in_zone
from app.catalogue.tables import Departure, DepartureStop
from app.partners import octo
from app.partners.rows import PickupStop
from app.partners.schemas import AgencyPrincipal

OCTO_STATUS = {
    BookingStatus.on_hold: "ON_HOLD",
    BookingStatus.confirmed: "CONFIRMED",
    BookingStatus.cancelled: "CANCELLED",
    BookingStatus.expired: "EXPIRED",
}


def _utc(moment: datetime | None) -> str | None:
    return octo.utc_text(moment) if moment is not None else None


def _retail(retail: int | None, charged: int) -> int:
    return retail if retail is not None else charged


async def find(principal: AgencyPrincipal, uuid: str) -> AgencyBooking:
    """The agency's booking with this uuid; an OCTO error if it has none."""
    booking = await find_agency_booking(principal.agency_id, uuid)
    if booking is None:
        raise octo.OctoError("INVALID_BOOKING_UUID", "The booking UUID was invalid", uuid=uuid)
    return booking


def not_on_hold(action: str) -> octo.OctoError:
    """What OCTO hears when it asks to change a booking that is no longer held."""
    return octo.OctoError("BAD_REQUEST", f"Only a booking on hold can be {action}")


async def booking_object(booking: AgencyBooking) -> dict[str, Any]:
    """An OCTO Booking with every field the specification requires, in every status."""
    departure = await Departure.select().where(Departure.id == booking.departure_id).first().run()
    assert departure is not None
    lines = await agency_booking_lines(booking)
    status = booking.status
    tz = departure["time_zone"]
    stop_row = (
        await DepartureStop.select()
        .where(DepartureStop.id == booking.pickup_stop_id)
        .first()
        .output(load_json=True)
        .run()
        if booking.pickup_stop_id
        else None
    )
    stop = PickupStop.from_row(stop_row) if stop_row else None
    pickup_at = in_zone(stop.at, tz).isoformat() if stop else None
    currency = booking.currency
    seat_class = lines[0].seat_class if lines else ""
    first, _sep, last = booking.contact_name.partition(" ")
    contact = {
        "fullName": booking.contact_name or None,
        "firstName": first or None,
        "lastName": last or None,
        "emailAddress": booking.contact_email or None,
        "phoneNumber": booking.contact_phone or None,
        "locales": [booking.locale.replace("_", "-")],
        "postalCode": None,
        "country": None,
        "notes": None,
    }
    return {
        "id": str(booking.id),
        "uuid": booking.partner_uuid,
        "testMode": False,
        "resellerReference": booking.reseller_reference or None,
        "supplierReference": booking.reference,
        "status": OCTO_STATUS[status],
        "utcCreatedAt": _utc(booking.created_at),
        "utcUpdatedAt": _utc(booking.updated_at),
        "utcExpiresAt": _utc(booking.expires_at) if status == BookingStatus.on_hold else None,
        "utcRedeemedAt": None,
        "utcConfirmedAt": _utc(booking.confirmed_at) if status == BookingStatus.confirmed else None,
        "productId": str(departure["route"]),
        "optionId": seat_class,
        "cancellable": can_transition(status, BookingStatus.cancelled),
        "cancellation": {
            "refund": "FULL"
            if booking.refund_amount >= booking.total_amount
            else ("PARTIAL" if booking.refund_amount else "NONE"),
            "reason": await cancellation_reason(booking.id),
            "utcCancelledAt": _utc(booking.cancelled_at),
        }
        if status == BookingStatus.cancelled
        else None,
        "freesale": False,
        "availabilityId": str(departure["id"]),
        "availability": {
            "id": str(departure["id"]),
            "localDateTimeStart": in_zone(departure["departs_at"], tz).isoformat(),
            "localDateTimeEnd": in_zone(departure["returns_at"], tz).isoformat(),
            "allDay": False,
            "openingHours": [],
        },
        "contact": contact,
        "notes": None,
        "deliveryMethods": ["VOUCHER"],
        "voucher": None,
        "unitItems": [
            {
                "uuid": f"{booking.partner_uuid}-{line.position}",
                "resellerReference": None,
                "supplierReference": line.seat_label,
                "unitId": line.passenger_type,
                "status": OCTO_STATUS[status],
                "utcRedeemedAt": _utc(line.checked_in_at),
                "contact": {"fullName": line.passenger_name or None},
                "ticket": None,
                "pricing": octo.pricing(
                    _retail(line.retail_amount, line.price_amount), line.price_amount, currency
                ),
            }
            for line in lines
        ],
        # The retail price of the seats, and the net the agency owes for them.
        "pricing": octo.pricing(
            _retail(booking.retail_amount, booking.total_amount), booking.total_amount, currency
        ),
        "pickupRequested": stop is not None,
        "pickupLocationId": octo.pickup_location_id(stop.name) if stop else None,
        "pickupLocation": octo.pickup_location(stop, "zh_Hans") if stop else None,
        "pickupNotes": None,
        "localPickupDateTimeStart": pickup_at,
        "localPickupDateTimeEnd": pickup_at,
    }


async def get(principal: AgencyPrincipal, uuid: str) -> dict[str, Any]:
    """The OCTO Booking as it is now (also after a change)."""
    return await booking_object(await find(principal, uuid))


async def search(principal: AgencyPrincipal, query: dict[str, str]) -> list[dict[str, Any]]:
    """GET /octo/bookings: at least one filter, as OCTO requires."""
    filters = {k: v for k, v in query.items() if v}
    known = {"resellerReference", "supplierReference", "localDate", "localDateStart",
             "localDateEnd", "productId", "optionId"}  # fmt: skip
    if not filters.keys() & known:
        raise octo.OctoError("BAD_REQUEST", "Give at least one filter")
    days: dict[str, date] = {}
    for name in ("localDate", "localDateStart", "localDateEnd"):
        if name in filters:
            days[name] = octo.parse_date(filters[name], name)
    supplier_reference = filters.get("supplierReference")
    bookings = await agency_bookings(
        principal.agency_id,
        reseller_reference=filters.get("resellerReference"),
        reference=supplier_reference.upper() if supplier_reference is not None else None,
    )
    result = []
    for booking in bookings:
        item = await booking_object(booking)
        local_day = date.fromisoformat(item["availability"]["localDateTimeStart"][:10])
        if "productId" in filters and item["productId"] != filters["productId"]:
            continue
        if "optionId" in filters and item["optionId"] != filters["optionId"]:
            continue
        if "localDate" in days and local_day != days["localDate"]:
            continue
        if "localDateStart" in days and local_day < days["localDateStart"]:
            continue
        if "localDateEnd" in days and local_day > days["localDateEnd"]:
            continue
        result.append(item)
    return result
