"""OCTO changes to a booking: extend a hold, cancel a hold or (before the contract's
cut-off) a confirmed booking."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.booking.services.agency import cancel_agency_booking, lock_agency_booking
from app.booking.services.hold import extend_hold
from app.booking.services.state import can_transition
from app.booking.tables import BookingStatus
from app.catalogue.tables import Departure
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import DomainError
from app.partners import octo
from app.partners.octo_bookings.reserve import hold_minutes
from app.partners.octo_bookings.view import booking_object, find, get, not_on_hold
from app.partners.schemas import AgencyPrincipal
from app.payments.services.settle import settle_after_change


async def extend(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """More time for a running hold (never past the close of sales)."""
    found = await find(principal, uuid)
    minutes = hold_minutes(body)
    try:
        await extend_hold(found.id, minutes, actor=f"agency:{principal.agency_id}")
    except DomainError as exc:
        if exc.code != "booking_not_on_hold":
            raise
        raise not_on_hold("extended") from exc
    return await get(principal, uuid)


async def cancel(principal: AgencyPrincipal, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
    """Cancel a hold, or a confirmed booking before the contract's cut-off (full refund)."""
    found = await find(principal, uuid)
    agency = await octo.agency_row(principal)
    async with write_transaction():
        booking = await lock_agency_booking(found.id)
        if booking.status == BookingStatus.cancelled:
            return await booking_object(booking)
        if not can_transition(booking.status, BookingStatus.cancelled):
            raise octo.OctoError("BAD_REQUEST", "This booking can no longer be cancelled")
        departure = (
            await Departure.select(Departure.departs_at)
            .where(Departure.id == booking.departure_id)
            .first()
            .run()
        )
        assert departure is not None
        cutoff = departure["departs_at"] - timedelta(hours=agency.cancellation_cutoff_hours)
        if booking.status == BookingStatus.confirmed and clock.now() > cutoff:
            raise octo.OctoError(
                "BAD_REQUEST",
                f"The cancellation cut-off has passed: {agency.cancellation_cutoff_hours} "
                "hours before departure, by the contract",
                code="cancellation_cutoff_passed",
                utcCutoffAt=octo.utc_text(cutoff),
            )
        try:
            await cancel_agency_booking(
                booking.id,
                actor=f"agency:{principal.agency_id}",
                note=octo.text_field(body, "reason")[:200],
            )
        except DomainError as exc:
            raise octo.OctoError("BAD_REQUEST", str(exc.detail or exc.code)) from exc
    await settle_after_change([found.id])
    return await get(principal, uuid)
