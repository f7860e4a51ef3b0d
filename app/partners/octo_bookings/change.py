"""OCTO changes to a booking: extend a hold; update a hold or (before the contract's
cut-off) a confirmed booking; cancel a hold or (before the cut-off) a confirmed booking."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from app.booking.services.agency import (
    agency_booking_lines,
    cancel_agency_booking,
    lock_agency_booking,
    update_agency_booking,
)
from app.booking.services.hold import extend_hold
from app.booking.tables import BookingStatus
from app.catalogue.tables import Departure
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.contacts import contact_of, parse_contact
from app.partners.octo_bookings.reserve import hold_minutes
from app.partners.octo_bookings.view import (
    booking_object,
    cutoff_hours,
    find,
    get,
    not_on_hold,
)
from app.partners.schemas import AgencyPrincipal
from app.payments.services.settle import settle_after_change


async def extend(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """More time for a running hold (never past the close of sales)."""
    found = await find(principal, uuid)
    minutes = hold_minutes(body)
    try:
        await extend_hold(found.id, minutes, actor=f"agency:{principal.agency_id}")
    except DomainError as exc:
        if exc.code != "booking_not_on_hold":
            raise
        raise not_on_hold(found, "extended") from exc
    return await get(principal, uuid, capabilities)


async def _departs_at(departure_id: Any) -> Any:
    departure = (
        await Departure.select(Departure.departs_at)
        .where(Departure.id == departure_id)
        .first()
        .run()
    )
    assert departure is not None
    return departure["departs_at"]


def _past_cutoff(action: str, hours: int, cutoff: Any) -> octo.OctoError:
    return octo.unprocessable(
        f"The booking can no longer be {action}: the cancellation cut-off has passed "
        f"({hours} hours before departure, by the contract)",
        code="cancellation_cutoff_passed",
        utcCutoffAt=octo.utc_text(cutoff),
    )


async def _same_product(
    principal: AgencyPrincipal, body: dict[str, Any], item: dict[str, Any]
) -> None:
    """An update may name the booking's product, option and availability; unknown ones are
    the specification's INVALID_* errors, other known ones a move this API cannot make."""
    fields = ("productId", "optionId", "availabilityId")
    if not any(body.get(field) is not None for field in fields):
        return
    product_id = octo.text_field(body, "productId") or item["productId"]
    route = await octo.route_of(principal, product_id)
    option_id = octo.text_field(body, "optionId") or item["optionId"]
    await octo.check_option(route, option_id)
    availability_id = octo.text_field(body, "availabilityId") or item["availabilityId"]
    await octo.departure_of(route, availability_id)
    if (product_id, option_id, availability_id) != (
        item["productId"],
        item["optionId"],
        item["availabilityId"],
    ):
        raise octo.unprocessable(
            "A booking cannot move to another product, option or availability: cancel it "
            "and reserve again"
        )


async def update(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """PATCH /octo/bookings/{uuid}: the lead contact, notes, the agency's reference and
    the travellers' names of a running hold, or of a confirmed booking before the
    contract's cut-off (when it could still be cancelled)."""
    found = await find(principal, uuid)
    await _same_product(principal, body, await booking_object(found, ()))
    request = parse_contact(body)
    contact = contact_of(request, found, await agency_booking_lines(found), required=False)
    hours = await cutoff_hours(principal.agency_id)
    async with write_transaction():
        booking = await lock_agency_booking(found.id)
        if booking.status == BookingStatus.confirmed:
            cutoff = await _departs_at(booking.departure_id) - timedelta(hours=hours)
            if clock.now() >= cutoff:
                raise _past_cutoff("changed", hours, cutoff)
        elif not booking.hold_running:
            raise not_on_hold(booking, "changed")
        await update_agency_booking(booking.id, contact)
    if "expirationMinutes" in body and found.status == BookingStatus.on_hold:
        return await extend(principal, uuid, body, capabilities)
    return await get(principal, uuid, capabilities)


async def cancel(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """Cancel a hold, or a confirmed booking before the contract's cut-off (full refund).
    Cancelling a cancelled booking again answers it as it is."""
    found = await find(principal, uuid)
    hours = await cutoff_hours(principal.agency_id)
    async with write_transaction():
        booking = await lock_agency_booking(found.id)
        if booking.status == BookingStatus.cancelled:
            return await booking_object(booking, capabilities)
        if booking.status == BookingStatus.confirmed:
            cutoff = await _departs_at(booking.departure_id) - timedelta(hours=hours)
            if clock.now() >= cutoff:
                raise _past_cutoff("cancelled", hours, cutoff)
        elif not booking.hold_running:
            raise octo.unprocessable("This booking can no longer be cancelled")
        try:
            await cancel_agency_booking(
                booking.id,
                actor=f"agency:{principal.agency_id}",
                note=octo.text_field(body, "reason")[:200],
            )
        except DomainError as exc:
            raise octo.unprocessable(str(exc.detail or exc.code), code=exc.code) from exc
    await settle_after_change([found.id])
    return await get(principal, uuid, capabilities)
