"""An operator's advisory (weather, heat) to the contact of every live booking."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.booking.tables import Booking, BookingStatus
from app.catalogue.services.common import owned_departure
from app.core.database import write_transaction
from app.core.errors import InvalidInput
from app.core.i18n import _
from app.notifications.services.common import notify

HEAT_DAY_CELSIUS = 35.0


async def post_advisory(
    principal: OperatorPrincipal, departure_id: UUID, data: Any, advisory_id: UUID | None = None
) -> tuple[UUID, int]:
    """Queue the advisory for the contact of every live booking of the departure, once.
    Only an operator admin may write to every passenger. The same `advisory_id` again (a
    form sent twice) queues nothing new."""

    require_operator_admin(principal)
    if data.kind == "heat" and (
        data.max_temperature_c is None or data.max_temperature_c < HEAT_DAY_CELSIUS
    ):
        raise InvalidInput(
            "max_temperature_c",
            _("A heat day is a maximum of 35 °C or more; give the forecast maximum."),
        )
    advisory_id = advisory_id or uuid.uuid4()
    async with write_transaction():
        await owned_departure(principal, departure_id)
        bookings = (
            await Booking.select(
                Booking.id, Booking.reference, Booking.contact_email, Booking.locale
            )
            .where(
                (Booking.departure == departure_id)
                & Booking.status.is_in([BookingStatus.confirmed.value, BookingStatus.on_hold.value])
            )
            .run()
        )
        payload = {
            "advisory_id": str(advisory_id),
            "advisory_kind": data.kind,
            "message": dict(data.message),
            "max_temperature_c": data.max_temperature_c,
        }
        for booking in bookings:
            await notify(
                f"advisory:{advisory_id}:{booking['reference']}", "advisory",
                booking["contact_email"], booking["locale"], booking=booking["id"],
                departure=departure_id, payload=payload,
            )  # fmt: skip
    return advisory_id, sum(1 for b in bookings if b["contact_email"])
