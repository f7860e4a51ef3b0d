"""OCTO confirmations: an agency on account confirms its hold within its credit limit;
a prepaying agency pays its hold by card. Either way the lead contact is recorded."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.booking.services.agency import (
    agency_booking_lines,
    lock_agency_booking,
    record_agency_contact,
)
from app.booking.tables import BookingStatus
from app.core.database import for_update, write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.contacts import contact_of, parse_contact
from app.partners.octo_bookings.view import (
    booking_object,
    find,
    get,
    not_on_hold,
)
from app.partners.schemas import AgencyPrincipal
from app.partners.services import credit_used
from app.partners.tables import Agency, PaymentTerms
from app.payments.services.start import charge_on_account, pay_booking


async def confirm(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """Confirm on account, within the agency's credit limit; a second confirm is
    UNPROCESSABLE_ENTITY. A prepaying agency's booking is confirmed by its card payment
    (`pay`); its confirm then answers the confirmed booking."""
    found = await find(principal, uuid)
    request = parse_contact(body)
    contact = contact_of(request, found, await agency_booking_lines(found), required=True)
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
    request = parse_contact(body)
    contact = contact_of(request, found, await agency_booking_lines(found), required=True)
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
