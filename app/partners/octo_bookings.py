"""OCTO bookings: hold (idempotent by the partner's uuid), extend, confirm on account,
cancel within the contract's cut-off, read and search. One booking state machine for
every channel: these call the booking services, never the tables' statuses directly."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from app.booking.schemas import MAX_PARTY, BookingCreate
from app.booking.services.access import lock_booking
from app.booking.services.cancel import cancel_booking
from app.booking.services.hold import create_booking
from app.booking.services.state import transition
from app.booking.tables import (
    Booking,
    BookingChannel,
    BookingEvent,
    BookingLine,
    BookingStatus,
)
from app.catalogue.services.common import in_zone
from app.catalogue.tables import Departure, DepartureStop
from app.core import clock
from app.core.database import for_update, write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.pricing import agency_price_channel
from app.partners.schemas import AgencyPrincipal
from app.partners.services import credit_used
from app.partners.tables import Agency, PaymentTerms
from app.payments.providers import on_account
from app.payments.services.settle import settle_after_change
from app.payments.services.start import pay_booking

OCTO_STATUS = {
    BookingStatus.on_hold: "ON_HOLD",
    BookingStatus.confirmed: "CONFIRMED",
    BookingStatus.cancelled: "CANCELLED",
    BookingStatus.expired: "EXPIRED",
}
DEFAULT_HOLD_MINUTES = 30
MAX_HOLD_MINUTES = 24 * 60


def _utc(moment: datetime | None) -> str | None:
    return octo.utc_text(moment) if moment is not None else None


def _invalid_booking(uuid: str) -> octo.OctoError:
    return octo.OctoError("INVALID_BOOKING_UUID", "The booking UUID was invalid", uuid=uuid)


async def _row(principal: AgencyPrincipal, uuid: str) -> dict[str, Any]:
    row = (
        await Booking.select()
        .where((Booking.agency == principal.agency_id) & (Booking.partner_uuid == uuid))
        .first()
        .run()
    )
    if row is None:
        raise _invalid_booking(uuid)
    return dict(row)


async def booking_object(row: dict[str, Any]) -> dict[str, Any]:
    """An OCTO Booking with every field the specification requires, in every status."""
    departure = await Departure.select().where(Departure.id == row["departure"]).first().run()
    assert departure is not None
    lines = (
        await BookingLine.select()
        .where((BookingLine.booking == row["id"]) & (BookingLine.departure == row["departure"]))
        .order_by(BookingLine.position)
        .run()
    )
    status = BookingStatus(row["status"])
    tz = departure["time_zone"]
    stop = (
        await DepartureStop.select()
        .where(DepartureStop.id == row["pickup_stop"])
        .first()
        .output(load_json=True)
        .run()
        if row["pickup_stop"]
        else None
    )
    pickup_at = in_zone(stop["at"], tz).isoformat() if stop else None
    currency = row["currency"]
    cancelled = status == BookingStatus.cancelled
    seat_class = lines[0]["seat_class"] if lines else ""
    first, _sep, last = row["contact_name"].partition(" ")
    contact = {
        "fullName": row["contact_name"] or None,
        "firstName": first or None,
        "lastName": last or None,
        "emailAddress": row["contact_email"] or None,
        "phoneNumber": row["contact_phone"] or None,
        "locales": [row["locale"].replace("_", "-")],
        "postalCode": None,
        "country": None,
        "notes": None,
    }
    return {
        "id": str(row["id"]),
        "uuid": row["partner_uuid"],
        "testMode": False,
        "resellerReference": row["reseller_reference"] or None,
        "supplierReference": row["reference"],
        "status": OCTO_STATUS[status],
        "utcCreatedAt": _utc(row["created_at"]),
        "utcUpdatedAt": _utc(row["updated_at"]),
        "utcExpiresAt": _utc(row["expires_at"]) if status == BookingStatus.on_hold else None,
        "utcRedeemedAt": None,
        "utcConfirmedAt": _utc(row["confirmed_at"]) if status == BookingStatus.confirmed else None,
        "productId": str(departure["route"]),
        "optionId": seat_class,
        "cancellable": status in (BookingStatus.on_hold, BookingStatus.confirmed),
        "cancellation": {
            "refund": "FULL"
            if row["refund_amount"] >= row["total_amount"]
            else ("PARTIAL" if row["refund_amount"] else "NONE"),
            "reason": await _cancellation_reason(row["id"]),
            "utcCancelledAt": _utc(row["cancelled_at"]),
        }
        if cancelled
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
                "uuid": f"{row['partner_uuid']}-{line['position']}",
                "resellerReference": None,
                "supplierReference": line["seat_label"],
                "unitId": line["passenger_type"],
                "status": OCTO_STATUS[status],
                "utcRedeemedAt": _utc(line["checked_in_at"]),
                "contact": {"fullName": line["passenger_name"] or None},
                "ticket": None,
                "pricing": octo.pricing(
                    _retail(line["retail_amount"], line["price_amount"]),
                    line["price_amount"],
                    currency,
                ),
            }
            for line in lines
        ],
        # The retail price of the seats, and the net the agency owes for them.
        "pricing": octo.pricing(
            _retail(row["retail_amount"], row["total_amount"]), row["total_amount"], currency
        ),
        "pickupRequested": stop is not None,
        "pickupLocationId": octo.pickup_location_id(stop["name"]) if stop else None,
        "pickupLocation": octo.pickup_location(stop, "zh_Hans") if stop else None,
        "pickupNotes": None,
        "localPickupDateTimeStart": pickup_at,
        "localPickupDateTimeEnd": pickup_at,
    }


async def _cancellation_reason(booking_id: Any) -> str | None:
    """The agency's own words when it cancelled, else why we did (e.g. departure_cancelled)."""
    event = (
        await BookingEvent.select(BookingEvent.reason, BookingEvent.details)
        .where(
            (BookingEvent.booking == booking_id)
            & (BookingEvent.to_status == BookingStatus.cancelled.value)
        )
        .order_by(BookingEvent.at, ascending=False)
        .first()
        .output(load_json=True)
        .run()
    )
    if event is None:
        return None
    details = event["details"] if isinstance(event["details"], dict) else {}
    return str(details.get("note") or event["reason"])


def _retail(retail: int | None, charged: int) -> int:
    return retail if retail is not None else charged


def _is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, (sqlite3.IntegrityError, asyncpg.exceptions.UniqueViolationError))


async def hold(principal: AgencyPrincipal, body: dict[str, Any]) -> dict[str, Any]:
    """Hold seats; the same `uuid` again returns the same booking (idempotent)."""
    uuid = str(body.get("uuid") or "")
    if not uuid or len(uuid) > 64:
        raise octo.OctoError("BAD_REQUEST", "uuid is required (at most 64 characters)")
    existing = (
        await Booking.select()
        .where((Booking.agency == principal.agency_id) & (Booking.partner_uuid == uuid))
        .first()
        .run()
    )
    if existing is not None:
        return await booking_object(dict(existing))
    route = await octo.route_of(principal, str(body.get("productId", "")))
    option_id = str(body.get("optionId", ""))
    await octo.check_option(route, option_id)
    departure_id = await octo.departure_of(route, str(body.get("availabilityId", "")))
    items = body.get("unitItems")
    if not isinstance(items, list) or not items:
        raise octo.OctoError("BAD_REQUEST", "unitItems must list at least one unit")
    counts: dict[str, int] = {}
    for item in items:
        unit_id = str(item.get("unitId", "")) if isinstance(item, dict) else ""
        if unit_id not in ("adult", "child", "senior"):
            raise octo.OctoError("INVALID_UNIT_ID", "The unit ID was invalid", unitId=unit_id)
        counts[unit_id] = counts.get(unit_id, 0) + 1
    if sum(counts.values()) > MAX_PARTY:
        raise octo.OctoError("BAD_REQUEST", f"At most {MAX_PARTY} units per booking")
    minutes = body.get("expirationMinutes", DEFAULT_HOLD_MINUTES)
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_HOLD_MINUTES:
        raise octo.OctoError("BAD_REQUEST", f"expirationMinutes must be 1 to {MAX_HOLD_MINUTES}")
    pickup_stop = None
    if body.get("pickupRequested") or body.get("pickupLocationId"):
        location = str(body.get("pickupLocationId") or "")
        stop = (await octo.pickups_at([departure_id], location)).get(departure_id)
        if stop is None:
            raise octo.OctoError(
                "BAD_REQUEST",
                "pickupLocationId must be one of this availability's pickup locations",
                pickupLocationId=location,
            )
        pickup_stop = str(stop["id"])
    request = msgspec.convert(
        {
            "departure_id": str(departure_id),
            "pickup_stop_id": pickup_stop,
            "counts": [
                {"seat_class": option_id, "passenger_type": kind, "count": n}
                for kind, n in counts.items()
            ],
        },
        BookingCreate,
    )
    price_channel = await agency_price_channel(principal.agency_id, route["id"])
    try:
        created = await create_booking(
            request, channel=BookingChannel.agency, actor=f"agency:{principal.agency_id}",
            hold_minutes=minutes, agency_id=principal.agency_id, partner_uuid=uuid,
            price_channel=price_channel,
        )  # fmt: skip
    except Exception as exc:
        if not _is_unique_violation(exc):
            raise
        # The same uuid sent twice at once: the other request made the booking.
        return await booking_object(await _row(principal, uuid))
    row = await Booking.select().where(Booking.reference == created.booking.reference).first().run()
    assert row is not None
    if body.get("resellerReference"):
        await (
            Booking.update({Booking.reseller_reference: str(body["resellerReference"])[:64]})
            .where(Booking.id == row["id"])
            .run()
        )
    return await booking_object(await _row(principal, uuid))


async def extend(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    await _row(principal, uuid)
    minutes = body.get("expirationMinutes", DEFAULT_HOLD_MINUTES)
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_HOLD_MINUTES:
        raise octo.OctoError("BAD_REQUEST", f"expirationMinutes must be 1 to {MAX_HOLD_MINUTES}")
    found = await _row(principal, uuid)
    async with write_transaction():
        booking, departure = await lock_booking(found["id"])
        if booking["status"] != BookingStatus.on_hold or booking["expires_at"] <= clock.now():
            raise octo.OctoError("BAD_REQUEST", "Only a booking on hold can be extended")
        closes = departure["sales_close_at"] or departure["departs_at"]
        expires_at = min(clock.now() + timedelta(minutes=minutes), closes)
        await (
            Booking.update({Booking.expires_at: expires_at, Booking.updated_at: clock.now()})
            .where(Booking.id == booking["id"])
            .run()
        )
    return await booking_object(await _row(principal, uuid))


def _contact(body: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The lead contact of a confirm (or payment) request: (contact, name, email)."""
    given = body.get("contact")
    contact: dict[str, Any] = given if isinstance(given, dict) else {}
    name = str(contact.get("fullName") or " ".join(
        str(contact.get(k) or "") for k in ("firstName", "lastName")
    ).strip())  # fmt: skip
    email = str(contact.get("emailAddress") or "")
    if not name or not email:
        raise octo.OctoError(
            "BAD_REQUEST", "contact.fullName and contact.emailAddress are required"
        )
    return contact, name, email


def _unit_names(body: dict[str, Any]) -> list[str]:
    """Each unit item's traveller name, in order ("" where none was given)."""
    items = body.get("unitItems")
    names = []
    for item in items if isinstance(items, list) else []:
        person = item.get("contact") if isinstance(item, dict) else None
        person = person if isinstance(person, dict) else {}
        names.append(str(person.get("fullName") or " ".join(
            str(person.get(k) or "") for k in ("firstName", "lastName")
        ).strip())[:120])  # fmt: skip
    return names


async def _save_contact(booking: dict[str, Any], body: dict[str, Any]) -> None:
    """Store the lead contact and the travellers' names (the lead's where none given)."""
    contact, name, email = _contact(body)
    locales = contact.get("locales")
    locale = locales[0] if isinstance(locales, list) and locales else "zh-Hans"
    await (
        Booking.update(
            {
                Booking.contact_name: name[:120],
                Booking.contact_email: email[:254],
                Booking.contact_phone: str(contact.get("phoneNumber") or "")[:32],
                Booking.locale: "en" if str(locale).lower().startswith("en") else "zh_Hans",
                Booking.reseller_reference: str(
                    body.get("resellerReference") or booking["reseller_reference"]
                )[:64],
                Booking.updated_at: clock.now(),
            }
        )
        .where(Booking.id == booking["id"])
        .run()
    )
    lines = (
        await BookingLine.select(BookingLine.id, BookingLine.passenger_name)
        .where(
            (BookingLine.booking == booking["id"]) & (BookingLine.departure == booking["departure"])
        )
        .order_by(BookingLine.position)
        .run()
    )
    names = _unit_names(body)
    for index, line in enumerate(lines):
        given = names[index] if index < len(names) else ""
        traveller = given or line["passenger_name"] or name[:120]
        if traveller != line["passenger_name"]:
            await (
                BookingLine.update({BookingLine.passenger_name: traveller})
                .where(BookingLine.id == line["id"])
                .run()
            )


def _holding(booking: dict[str, Any], action: str) -> None:
    if booking["status"] != BookingStatus.on_hold or booking["expires_at"] <= clock.now():
        raise octo.OctoError("BAD_REQUEST", f"Only a booking on hold can be {action}")


async def confirm(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """Confirm on account, within the agency's credit limit. A prepaying agency's booking
    is confirmed by its card payment (`pay`); confirming it then records the contact."""
    found = await _row(principal, uuid)
    _contact(body)
    agency = await octo.agency_row(principal)
    async with write_transaction():
        booking, _departure = await lock_booking(found["id"])
        if booking["status"] == BookingStatus.confirmed:
            return await booking_object(booking)
        _holding(booking, "confirmed")
        if agency["payment_terms"] != PaymentTerms.on_account:
            raise octo.OctoError(
                "BAD_REQUEST",
                "This agency prepays: pay the hold by card (POST /octo/bookings/{uuid}/payment)",
            )
        # The agency's row is locked so that two confirms cannot both fit the credit left.
        await for_update(Agency.select(Agency.id).where(Agency.id == principal.agency_id)).run()
        used = await credit_used(principal.agency_id)
        if used + booking["total_amount"] > agency["credit_limit"]:
            raise octo.OctoError(
                "BAD_REQUEST",
                f"The credit limit would be exceeded: {used} of {agency['credit_limit']} used, "
                f"this booking needs {booking['total_amount']}",
                code="credit_limit_exceeded",
            )
        await _save_contact(booking, body)
        await on_account.record_payment(booking["id"], booking["total_amount"], booking["currency"])
        await transition(
            booking,
            BookingStatus.confirmed,
            actor=f"agency:{principal.agency_id}",
            reason=on_account.NAME,
        )
    return await booking_object(await _row(principal, uuid))


async def pay(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """A prepaying agency pays its hold by card: the contact is stored and a Stripe
    PaymentIntent for the net amount is made (or reused); Stripe's webhook confirms."""
    found = await _row(principal, uuid)
    _contact(body)
    agency = await octo.agency_row(principal)
    if agency["payment_terms"] != PaymentTerms.prepay:
        raise octo.OctoError("BAD_REQUEST", "This agency is on account: confirm the booking")
    async with write_transaction():
        booking, _departure = await lock_booking(found["id"])
        _holding(booking, "paid")
        await _save_contact(booking, body)
    try:
        started = await pay_booking(found["id"], actor=f"agency:{principal.agency_id}")
    except DomainError as exc:
        raise octo.OctoError("BAD_REQUEST", str(exc.detail or exc.code), code=exc.code) from exc
    return {
        "booking": await booking_object(await _row(principal, uuid)),
        "payment": {
            "provider": started.provider,
            "status": started.status,
            "amount": started.amount.amount,
            "currency": started.amount.currency,
            "clientSecret": started.client_secret,
            "publishableKey": started.publishable_key,
        },
    }


async def cancel(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """Cancel a hold, or a confirmed booking before the contract's cut-off (full refund)."""
    found = await _row(principal, uuid)
    agency = await octo.agency_row(principal)
    async with write_transaction():
        booking, departure = await lock_booking(found["id"])
        if booking["status"] == BookingStatus.cancelled:
            return await booking_object(booking)
        if booking["status"] not in (BookingStatus.on_hold, BookingStatus.confirmed):
            raise octo.OctoError("BAD_REQUEST", "This booking can no longer be cancelled")
        cutoff = departure["departs_at"] - timedelta(hours=agency["cancellation_cutoff_hours"])
        if booking["status"] == BookingStatus.confirmed and clock.now() > cutoff:
            raise octo.OctoError("BAD_REQUEST", "The cancellation cut-off has passed")
        try:
            await cancel_booking(
                booking, actor=f"agency:{principal.agency_id}", reason="cancelled_by_agency",
                full_refund=True, note=str(body.get("reason") or "")[:200],
            )  # fmt: skip
        except DomainError as exc:
            raise octo.OctoError("BAD_REQUEST", str(exc.detail or exc.code)) from exc
    await settle_after_change([found["id"]])
    return await booking_object(await _row(principal, uuid))


async def get(principal: AgencyPrincipal, uuid: str) -> dict[str, Any]:
    return await booking_object(await _row(principal, uuid))


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
    select = Booking.select().where(Booking.agency == principal.agency_id)
    if "resellerReference" in filters:
        select = select.where(Booking.reseller_reference == filters["resellerReference"])
    if "supplierReference" in filters:
        select = select.where(Booking.reference == filters["supplierReference"].upper())
    rows = [dict(r) for r in await select.order_by(Booking.created_at).run()]
    result = []
    for row in rows:
        item = await booking_object(row)
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
