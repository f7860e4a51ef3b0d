"""OCTO confirmations: an agency on account confirms its hold within its credit limit;
a prepaying agency pays its hold by card. Either way the lead contact is recorded."""

from __future__ import annotations

from typing import Any

from app.booking.services.agency import AgencyContact, lock_agency_booking, record_agency_contact
from app.booking.tables import BookingStatus
from app.core.database import for_update, write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.view import booking_object, find, get, not_on_hold
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


def _unit_names(body: dict[str, Any]) -> tuple[str, ...]:
    """Each unit item's traveller name, in order ("" where none was given)."""
    items = body.get("unitItems")
    if items is not None and not isinstance(items, list):
        raise octo.OctoError("BAD_REQUEST", "unitItems must be a list", field="unitItems")
    names = []
    for index, item in enumerate(items or []):
        where = f"unitItems[{index}]"
        person = _object(_object(item, where).get("contact"), f"{where}.contact")
        names.append(_full_name(person, f"{where}.contact")[:120])
    return tuple(names)


def _contact(body: dict[str, Any]) -> AgencyContact:
    """The lead contact of a confirm (or payment) request, and the travellers' names."""
    contact = _object(body.get("contact"), "contact")
    name = _full_name(contact, "contact")
    email = octo.text_field(contact, "emailAddress", where="contact.emailAddress")
    if not name or not email:
        raise octo.OctoError(
            "BAD_REQUEST", "contact.fullName and contact.emailAddress are required"
        )
    locales = contact.get("locales")
    if locales is not None and not (
        isinstance(locales, list) and all(isinstance(item, str) for item in locales)
    ):
        field = "contact.locales"
        raise octo.OctoError("BAD_REQUEST", f"{field} must be a list of strings", field=field)
    locale = locales[0] if locales else "zh-Hans"
    reseller_reference = octo.text_field(body, "resellerReference")
    return AgencyContact(
        name=name,
        email=email,
        phone=octo.text_field(contact, "phoneNumber", where="contact.phoneNumber"),
        locale="en" if locale.lower().startswith("en") else "zh_Hans",
        reseller_reference=reseller_reference or None,
        traveller_names=_unit_names(body),
    )


async def confirm(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """Confirm on account, within the agency's credit limit. A prepaying agency's booking
    is confirmed by its card payment (`pay`); confirming it then records the contact."""
    found = await find(principal, uuid)
    contact = _contact(body)
    agency = await octo.agency_row(principal)
    async with write_transaction():
        booking = await lock_agency_booking(found.id)
        if booking.status == BookingStatus.confirmed:
            return await booking_object(booking)
        if not booking.hold_running:
            raise not_on_hold("confirmed")
        if agency.payment_terms != PaymentTerms.on_account:
            raise octo.OctoError(
                "BAD_REQUEST",
                "This agency prepays: pay the hold by card (POST /octo/bookings/{uuid}/payment)",
            )
        # The agency's row is locked so that two confirms cannot both fit the credit left.
        await for_update(Agency.select(Agency.id).where(Agency.id == principal.agency_id)).run()
        used = await credit_used(principal.agency_id)
        if used + booking.total_amount > agency.credit_limit:
            raise octo.OctoError(
                "BAD_REQUEST",
                f"The credit limit would be exceeded: {used} of {agency.credit_limit} used, "
                f"this booking needs {booking.total_amount}",
                code="credit_limit_exceeded",
            )
        await record_agency_contact(booking.id, contact)
        await charge_on_account(booking.id, actor=f"agency:{principal.agency_id}")
    return await get(principal, uuid)


async def pay(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """A prepaying agency pays its hold by card: the contact is stored and a Stripe
    PaymentIntent for the net amount is made (or reused); Stripe's webhook confirms."""
    found = await find(principal, uuid)
    contact = _contact(body)
    agency = await octo.agency_row(principal)
    if agency.payment_terms != PaymentTerms.prepay:
        raise octo.OctoError("BAD_REQUEST", "This agency is on account: confirm the booking")
    try:
        await record_agency_contact(found.id, contact)
    except DomainError as exc:
        if exc.code != "booking_not_on_hold":
            raise
        raise not_on_hold("paid") from exc
    try:
        started = await pay_booking(found.id, actor=f"agency:{principal.agency_id}")
    except DomainError as exc:
        raise octo.OctoError("BAD_REQUEST", str(exc.detail or exc.code), code=exc.code) from exc
    return {
        "booking": await get(principal, uuid),
        "payment": {
            "provider": started.provider,
            "status": started.status,
            "amount": started.amount.amount,
            "currency": started.amount.currency,
            "clientSecret": started.client_secret,
            "publishableKey": started.publishable_key,
        },
    }
