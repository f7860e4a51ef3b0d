"""OCTO Booking objects: an agency's booking as the specification shows it, read one by
its uuid or searched by the filters OCTO defines."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from app.booking.rows import DepartureRow
from app.booking.schemas import MAX_PARTY
from app.booking.services.agency import (
    AgencyBooking,
    agency_booking_lines,
    agency_bookings,
    cancellation_reason,
    find_agency_booking,
)
from app.booking.services.availability import class_counts
from app.booking.tables import BookingStatus
from app.catalogue.services.common import in_zone
from app.catalogue.tables import Departure, DepartureStop
from app.core import clock
from app.core.links import ticket_url
from app.partners import octo
from app.partners.octo_availability import _status as availability_status
from app.partners.rows import PickupStop
from app.partners.schemas import AgencyPrincipal
from app.partners.tables import Agency

OCTO_STATUS = {
    BookingStatus.on_hold: "ON_HOLD",
    BookingStatus.confirmed: "CONFIRMED",
    BookingStatus.cancelled: "CANCELLED",
    BookingStatus.expired: "EXPIRED",
}
# How a product's options deliver (GET /octo/products: `deliveryMethods`): one voucher per
# booking; per-unit tickets only where TICKET is announced.
DELIVERY_METHODS = ("VOUCHER",)
# Where the unit items' uuids live: derived from the booking's id and the unit's position.
_UNIT_ITEMS = UUID("6f2c6f7e-3b1a-4c36-9a55-0c7d0f3e1a21")


def _utc(moment: datetime | None) -> str | None:
    return octo.utc_text(moment) if moment is not None else None


def _retail(retail: int | None, charged: int) -> int:
    return retail if retail is not None else charged


def unit_item_uuid(booking_id: UUID, position: int) -> str:
    """A unit item's uuid: a UUID, the same every time the booking is read."""
    return str(uuid5(_UNIT_ITEMS, f"{booking_id}:{position}"))


async def find(principal: AgencyPrincipal, uuid: str) -> AgencyBooking:
    """The agency's booking with this uuid; an OCTO error if it has none."""
    booking = await find_agency_booking(principal.agency_id, uuid)
    if booking is None:
        raise octo.OctoError("INVALID_BOOKING_UUID", "The booking UUID was invalid", uuid=uuid)
    return booking


def not_on_hold(booking: AgencyBooking, action: str) -> octo.OctoError:
    """What OCTO hears when it asks to change a booking that is no longer held: a hold
    whose time ran out is an invalid booking uuid (the specification's word for an expired
    reservation), any other booking cannot be processed."""
    if booking.status in (BookingStatus.on_hold, BookingStatus.expired):
        return octo.OctoError(
            "INVALID_BOOKING_UUID",
            f"The reservation has expired and can no longer be {action}",
            uuid=booking.partner_uuid,
        )
    return octo.unprocessable(f"Only a booking on hold can be {action}")


def _status(booking: AgencyBooking) -> BookingStatus:
    """The booking's status as the agency sees it: a hold whose time ran out is expired
    (before the expiry job has recorded it)."""
    if booking.status == BookingStatus.on_hold and not booking.hold_running:
        return BookingStatus.expired
    return booking.status


async def cutoff_hours(agency_id: UUID) -> int:
    """The agency's contractual cancellation (and change) cut-off, in hours."""
    row = (
        await Agency.select(Agency.cancellation_cutoff_hours)
        .where(Agency.id == agency_id)
        .first()
        .run()
    )
    return int(row["cancellation_cutoff_hours"]) if row else 0


def changeable(booking: AgencyBooking, departs_at: datetime, hours: int) -> bool:
    """Whether the agency may still cancel or change the booking: a running hold, or a
    confirmed booking before its contract's cut-off."""
    status = _status(booking)
    if status == BookingStatus.on_hold:
        return True
    return status == BookingStatus.confirmed and clock.now() < departs_at - timedelta(hours=hours)


def _contact(
    name: str, email: str = "", phone: str = "", locales: list[str] | None = None,
    notes: str = "", country: str = "", postal_code: str = "",
) -> dict[str, Any]:  # fmt: skip
    """An OCTO Contact: every field the specification lists, null where unknown."""
    first, _sep, last = name.partition(" ")
    return {
        "fullName": name or None,
        "firstName": first or None,
        "lastName": last or None,
        "emailAddress": email or None,
        "phoneNumber": phone or None,
        "locales": locales or [],
        "postalCode": postal_code or None,
        "country": country or None,
        "notes": notes or None,
    }


def _ticket(value: str, redeemed_at: datetime | None, pdf_url: str = "") -> dict[str, Any]:
    """An OCTO Ticket shown on the traveller's phone: a QR code of `value`, which the
    crew's check-in reads (the booking's reference), and where given the printable
    ticket with the same code (a signed link that needs no login)."""
    options = [{"deliveryFormat": "QRCODE", "deliveryValue": value}]
    if pdf_url:
        options.append({"deliveryFormat": "PDF_URL", "deliveryValue": pdf_url})
    return {
        "redemptionMethod": "DIGITAL",
        "utcRedeemedAt": _utc(redeemed_at),
        "deliveryOptions": options,
    }


async def _availability(departure: DepartureRow, seat_class: str, agency_id: UUID) -> Any:
    """The booking's OCTO Availability as the agency sees it now."""
    counts = (await class_counts([departure.id], agency_id))[departure.id].get(seat_class)
    if counts is None:
        return None
    vacancies = max(0, counts.free)
    status = availability_status(departure, counts.capacity, vacancies, clock.now())
    return {
        "id": str(departure.id),
        "localDateTimeStart": in_zone(departure.departs_at, departure.time_zone).isoformat(),
        "localDateTimeEnd": in_zone(departure.returns_at, departure.time_zone).isoformat(),
        "utcCutoffAt": octo.utc_text(departure.sales_end),
        "allDay": False,
        "available": status in ("AVAILABLE", "LIMITED"),
        "status": status,
        "vacancies": vacancies,
        "capacity": counts.capacity,
        "maxUnits": min(MAX_PARTY, vacancies),
        "openingHours": [],
    }


async def booking_object(booking: AgencyBooking, capabilities: Collection[str]) -> dict[str, Any]:
    """An OCTO Booking with every field the specification requires, in every status;
    prices only with the `octo/pricing` capability."""
    row = await Departure.select().where(Departure.id == booking.departure_id).first().run()
    assert row is not None
    departure = DepartureRow.from_row(row)
    lines = await agency_booking_lines(booking)
    status = _status(booking)
    tz = departure.time_zone
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
    with_pricing = "octo/pricing" in capabilities
    confirmed = status == BookingStatus.confirmed
    hours = await cutoff_hours(booking.agency_id)
    unit_items = []
    for line in lines:
        item: dict[str, Any] = {
            "uuid": line.partner_uuid or unit_item_uuid(booking.id, line.position),
            "resellerReference": line.reseller_reference or None,
            "supplierReference": f"{booking.reference}-{line.seat_label}",
            "unitId": line.passenger_type,
            "status": OCTO_STATUS[status],
            "utcRedeemedAt": _utc(line.checked_in_at),
            "contact": _contact(
                line.passenger_name,
                line.passenger_email,
                line.passenger_phone,
                notes=line.passenger_notes,
                country=line.passenger_country,
            ),
            "ticket": _ticket(booking.reference, line.checked_in_at)
            if confirmed and "TICKET" in DELIVERY_METHODS
            else None,
        }
        if with_pricing:
            item["pricing"] = octo.pricing(
                _retail(line.retail_amount, line.price_amount), line.price_amount, currency
            )
        unit_items.append(item)
    redeemed = [line.checked_in_at for line in lines if line.checked_in_at is not None]
    body: dict[str, Any] = {
        "id": str(booking.id),
        "uuid": booking.partner_uuid,
        "testMode": False,
        "resellerReference": booking.reseller_reference or None,
        "supplierReference": booking.reference,
        "status": OCTO_STATUS[status],
        "utcCreatedAt": _utc(booking.created_at),
        "utcUpdatedAt": _utc(booking.updated_at),
        "utcExpiresAt": _utc(booking.expires_at) if status == BookingStatus.on_hold else None,
        "utcRedeemedAt": _utc(min(redeemed)) if redeemed else None,
        "utcConfirmedAt": _utc(booking.confirmed_at) if confirmed else None,
        "productId": str(departure.route_id),
        "optionId": seat_class,
        "cancellable": changeable(booking, departure.departs_at, hours),
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
        "availabilityId": str(departure.id),
        "availability": await _availability(departure, seat_class, booking.agency_id),
        "contact": _contact(
            booking.contact_name,
            booking.contact_email,
            booking.contact_phone,
            [booking.locale.replace("_", "-")],
            booking.contact_notes,
            booking.contact_country,
            booking.contact_postal_code,
        ),
        "notes": booking.notes or None,
        "deliveryMethods": list(DELIVERY_METHODS),
        "voucher": _ticket(
            booking.reference,
            min(redeemed) if redeemed else None,
            ticket_url(booking.reference, booking.locale),
        )
        if confirmed and "VOUCHER" in DELIVERY_METHODS
        else None,
        "unitItems": unit_items,
        "pickupRequested": stop is not None,
        "pickupLocationId": octo.pickup_location_id(stop.name) if stop else None,
        "pickupLocation": octo.pickup_location(stop, "zh_Hans") if stop else None,
        "pickupNotes": None,
        "localPickupDateTimeStart": pickup_at,
        "localPickupDateTimeEnd": pickup_at,
    }
    if with_pricing:
        # The retail price of the seats, and the net the agency owes for them.
        body["pricing"] = octo.pricing(
            _retail(booking.retail_amount, booking.total_amount), booking.total_amount, currency
        )
    return body


async def get(
    principal: AgencyPrincipal, uuid: str, capabilities: Collection[str]
) -> dict[str, Any]:
    """The OCTO Booking as it is now (also after a change)."""
    return await booking_object(await find(principal, uuid), capabilities)


async def search(
    principal: AgencyPrincipal, query: dict[str, str], capabilities: Collection[str]
) -> list[dict[str, Any]]:
    """GET /octo/bookings: filtered by `resellerReference`, `supplierReference`,
    `localDate`, or `localDateStart` with `localDateEnd`, as OCTO requires; this API
    also takes `productId` and `optionId`."""
    filters = {k: v for k, v in query.items() if v}
    if ("localDateStart" in filters) != ("localDateEnd" in filters):
        raise octo.OctoError(
            "BAD_REQUEST", "localDateStart and localDateEnd must be given together"
        )
    known = {"resellerReference", "supplierReference", "localDate", "localDateStart",
             "productId", "optionId"}  # fmt: skip
    if not filters.keys() & known:
        raise octo.OctoError(
            "BAD_REQUEST",
            "Give resellerReference, supplierReference, localDate, or localDateStart "
            "and localDateEnd (or productId, optionId)",
        )
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
        departs = (
            await Departure.select(Departure.departs_at, Departure.time_zone)
            .where(Departure.id == booking.departure_id)
            .first()
            .run()
        )
        assert departs is not None
        local_day = in_zone(departs["departs_at"], departs["time_zone"]).date()
        if "localDate" in days and local_day != days["localDate"]:
            continue
        if "localDateStart" in days and local_day < days["localDateStart"]:
            continue
        if "localDateEnd" in days and local_day > days["localDateEnd"]:
            continue
        item = await booking_object(booking, capabilities)
        if "productId" in filters and item["productId"] != filters["productId"]:
            continue
        if "optionId" in filters and item["optionId"] != filters["optionId"]:
            continue
        result.append(item)
    return result
