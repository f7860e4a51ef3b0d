"""OCTO changes to a booking: extend a hold; update a hold or (before the contract's
cut-off) a confirmed booking; cancel a hold or (before the cut-off) a confirmed booking."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any
from uuid import UUID

from app.booking.services.agency import (
    agency_booking_lines,
    cancel_agency_booking,
    lock_agency_booking,
    update_agency_booking,
)
from app.booking.services.hold import extend_hold
from app.booking.services.hold_change import change_hold
from app.booking.tables import BookingStatus
from app.catalogue.tables import Departure, PassengerType
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.contacts import ContactRequest, contact_of, parse_contact
from app.partners.octo_bookings.reserve import hold_minutes
from app.partners.octo_bookings.view import (
    booking_object,
    cutoff_hours,
    find,
    get,
    not_on_hold,
)
from app.partners.pricing import agency_price_channel
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


async def _route_of(departure_id: UUID) -> UUID:
    departure = (
        await Departure.select(Departure.route).where(Departure.id == departure_id).first().run()
    )
    assert departure is not None
    return UUID(str(departure["route"]))


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


async def _asked_hold(
    principal: AgencyPrincipal, request: ContactRequest, body: dict[str, Any],
    item: dict[str, Any],
) -> tuple[UUID, list[tuple[str, PassengerType]]] | None:  # fmt: skip
    """The availability and units an update asks for, when they differ from the booking's
    (None when it asks for none, or for what the booking has). Unknown ids are the
    specification's INVALID_* errors; another product is a change this API cannot make."""
    fields = ("productId", "optionId", "availabilityId")
    if request.unit_items is None and not any(body.get(field) is not None for field in fields):
        return None
    product_id = octo.text_field(body, "productId") or item["productId"]
    route = await octo.route_of(principal, product_id)
    option_id = octo.text_field(body, "optionId") or item["optionId"]
    await octo.check_option(route, option_id)
    availability_id = octo.text_field(body, "availabilityId") or item["availabilityId"]
    departure_id = await octo.departure_of(route, availability_id)
    if product_id != item["productId"]:
        raise octo.unprocessable(
            "A booking cannot move to another product: cancel it and reserve again"
        )
    units = [unit["unitId"] for unit in item["unitItems"]]
    if request.unit_items is not None:
        by_uuid = {unit["uuid"]: unit["unitId"] for unit in item["unitItems"]}
        units = []
        for index, unit in enumerate(request.unit_items):
            kind = unit.unit_id or by_uuid.get(unit.uuid, "")
            if not kind:
                field = f"unitItems[{index}].unitId"
                raise octo.OctoError("BAD_REQUEST", f"{field} is required", field=field)
            units.append(kind)
    current = [unit["unitId"] for unit in item["unitItems"]]
    if (str(departure_id), option_id, sorted(units)) == (
        item["availabilityId"],
        item["optionId"],
        sorted(current),
    ):
        return None
    return departure_id, [(option_id, PassengerType(kind)) for kind in units]


async def update(
    principal: AgencyPrincipal, uuid: str, body: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    """PATCH /octo/bookings/{uuid}: the lead contact, notes, the agency's reference and
    the travellers of a running hold, or of a confirmed booking before the contract's
    cut-off (when it could still be cancelled). A running hold may also move to another
    availability of its product, change its option or its units: all of it or nothing."""
    found = await find(principal, uuid)
    request = parse_contact(body)
    asked = await _asked_hold(principal, request, body, await booking_object(found, ()))
    if asked is not None:
        if found.status != BookingStatus.on_hold:
            raise octo.unprocessable(
                "A confirmed booking keeps its availability, option and units: cancel it "
                "and reserve again"
            )
        departure_id, party = asked
        route_id = await _route_of(found.departure_id)
        try:
            await change_hold(
                found.id, departure_id, party,
                price_channel=await agency_price_channel(principal.agency_id, route_id),
                actor=f"agency:{principal.agency_id}",
            )  # fmt: skip
        except DomainError as exc:
            if exc.code not in ("booking_not_on_hold", "hold_expired"):
                raise
            raise not_on_hold(found, "changed") from exc
        found = await find(principal, uuid)
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
