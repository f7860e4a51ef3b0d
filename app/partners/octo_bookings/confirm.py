"""OCTO confirmations: an agency on account confirms its hold within its credit limit;
a prepaying agency pays its hold by card. Either way the lead contact is recorded."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.booking.services.agency import (
    AgencyBooking,
    AgencyBookingLine,
    AgencyContact,
    agency_booking_lines,
    lock_agency_booking,
    record_agency_contact,
)
from app.booking.tables import BookingStatus
from app.catalogue.tables import PassengerType
from app.core.database import for_update, write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.view import (
    booking_object,
    find,
    get,
    not_on_hold,
    unit_item_uuid,
)
from app.partners.schemas import AgencyPrincipal
from app.partners.services import credit_used
from app.partners.tables import Agency, PaymentTerms
from app.payments.services.start import charge_on_account, pay_booking


def _full_name(person: dict[str, Any], where: str) -> str:
    full = octo.text_field(person, "fullName", where=f"{where}.fullName")
    parts = [octo.text_field(person, k, where=f"{where}.{k}") for k in ("firstName", "lastName")]
    return full or " ".join(parts).strip()


def _object(value: Any, field: str) -> dict[str, Any]:
    """An object field of the body ({} when absent or null); any other type is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise octo.OctoError("BAD_REQUEST", f"{field} must be an object", field=field)
    return value


def unit_names(
    body: dict[str, Any], booking: AgencyBooking, lines: list[AgencyBookingLine]
) -> tuple[str, ...]:
    """Each unit's traveller name, in the booking's order ("" where none was given). A
    unit item names its unit by `uuid` (the booking's unit item uuids), else by its place
    in the list; its `unitId` must be that unit's: units cannot be swapped here."""
    items = body.get("unitItems")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise octo.OctoError("BAD_REQUEST", "unitItems must be a list", field="unitItems")
    uuids = {unit_item_uuid(booking.id, line.position): index for index, line in enumerate(lines)}
    names = [""] * len(lines)
    for index, item in enumerate(items):
        where = f"unitItems[{index}]"
        item = _object(item, where)
        unit_id = octo.text_field(item, "unitId", where=f"{where}.unitId")
        if unit_id and unit_id not in {kind.value for kind in PassengerType}:
            raise octo.OctoError("INVALID_UNIT_ID", "The unit ID was invalid", unitId=unit_id)
        place = uuids.get(octo.text_field(item, "uuid", where=f"{where}.uuid"), index)
        if len(items) != len(lines) or (unit_id and unit_id != lines[place].passenger_type):
            raise octo.unprocessable(
                "unitItems must list the booking's units (adding, removing or changing "
                "units is not possible: cancel and reserve again)"
            )
        person = _object(item.get("contact"), f"{where}.contact")
        names[place] = _full_name(person, f"{where}.contact")[:120]
    return tuple(names)


def _locale(contact: dict[str, Any]) -> str | None:
    """The messages' language from the contact's `locales` (None when none is given)."""
    locales = contact.get("locales")
    if locales is not None and not (
        isinstance(locales, list) and all(isinstance(item, str) for item in locales)
    ):
        field = "contact.locales"
        raise octo.OctoError("BAD_REQUEST", f"{field} must be a list of strings", field=field)
    if not locales:
        return None
    return "en" if locales[0].lower().startswith("en") else "zh_Hans"


def contact_of(
    body: dict[str, Any], booking: AgencyBooking, lines: list[AgencyBookingLine], *,
    required: bool,
) -> AgencyContact:  # fmt: skip
    """The lead contact, notes, reference and travellers' names of a request, merged over
    what the booking has (a field left out keeps its value). A confirmation (`required`)
    must end with the lead's name and email address."""
    given = "contact" in body and body["contact"] is not None
    contact = _object(body.get("contact"), "contact")
    name = _full_name(contact, "contact") if given else ""
    email = octo.text_field(contact, "emailAddress", where="contact.emailAddress")
    phone = octo.text_field(contact, "phoneNumber", where="contact.phoneNumber")
    name, email = name or booking.contact_name, email or booking.contact_email
    if required and (not name or not email):
        raise octo.OctoError(
            "BAD_REQUEST", "contact.fullName and contact.emailAddress are required"
        )
    notes = body.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise octo.OctoError("BAD_REQUEST", "notes must be a string", field="notes")
    contact_notes = contact.get("notes")
    if contact_notes is not None and not isinstance(contact_notes, str):
        field = "contact.notes"
        raise octo.OctoError("BAD_REQUEST", f"{field} must be a string", field=field)
    reseller_reference = octo.text_field(body, "resellerReference")
    return AgencyContact(
        name=name,
        email=email,
        phone=phone or booking.contact_phone,
        locale=_locale(contact) or booking.locale,
        reseller_reference=reseller_reference or None,
        traveller_names=unit_names(body, booking, lines),
        contact_notes=contact_notes,
        notes=notes,
    )


async def confirm(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """Confirm on account, within the agency's credit limit; a second confirm is
    UNPROCESSABLE_ENTITY. A prepaying agency's booking is confirmed by its card payment
    (`pay`); its confirm then answers the confirmed booking."""
    found = await find(principal, uuid)
    contact = contact_of(body, found, await agency_booking_lines(found), required=True)
    agency = await octo.agency_row(principal)
    async with write_transaction():
        booking = await lock_agency_booking(found.id)
        if booking.status == BookingStatus.confirmed:
            if agency.payment_terms == PaymentTerms.prepay:
                # Its card payment confirmed it: the client's OCTO confirm follows, once.
                return await booking_object(booking, capabilities)
            raise octo.unprocessable("The booking is already confirmed")
        if not booking.hold_running:
            raise not_on_hold(booking, "confirmed")
        if agency.payment_terms != PaymentTerms.on_account:
            raise octo.unprocessable(
                "This agency prepays: pay the hold by card (POST /octo/bookings/{uuid}/payment)"
            )
        # The agency's row is locked so that two confirms cannot both fit the credit left.
        await for_update(Agency.select(Agency.id).where(Agency.id == principal.agency_id)).run()
        used = await credit_used(principal.agency_id)
        if used + booking.total_amount > agency.credit_limit:
            raise octo.unprocessable(
                f"The credit limit would be exceeded: {used} of {agency.credit_limit} used, "
                f"this booking needs {booking.total_amount}",
                code="credit_limit_exceeded",
            )
        await record_agency_contact(booking.id, contact)
        await charge_on_account(booking.id, actor=f"agency:{principal.agency_id}")
    return await get(principal, uuid, capabilities)


async def pay(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """A prepaying agency pays its hold by card: the contact is stored and a Stripe
    PaymentIntent for the net amount is made (or reused); Stripe's webhook confirms."""
    found = await find(principal, uuid)
    contact = contact_of(body, found, await agency_booking_lines(found), required=True)
    agency = await octo.agency_row(principal)
    if agency.payment_terms != PaymentTerms.prepay:
        raise octo.unprocessable("This agency is on account: confirm the booking")
    try:
        await record_agency_contact(found.id, contact)
    except DomainError as exc:
        if exc.code != "booking_not_on_hold":
            raise
        raise not_on_hold(found, "paid") from exc
    try:
        started = await pay_booking(found.id, actor=f"agency:{principal.agency_id}")
    except DomainError as exc:
        raise octo.unprocessable(str(exc.detail or exc.code), code=exc.code) from exc
    return {
        "booking": await get(principal, uuid, capabilities),
        "payment": {
            "provider": started.provider,
            "status": started.status,
            "amount": started.amount.amount,
            "currency": started.amount.currency,
            "clientSecret": started.client_secret,
            "publishableKey": started.publishable_key,
        },
    }
