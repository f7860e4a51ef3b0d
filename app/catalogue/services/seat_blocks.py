"""Seats kept off sale on one departure, never one already booked.

Which seats are booked is the booking domain's to say: its use case
(`app.booking.services.seat_blocks`) passes them in."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.departures import DepartureBlocksIn, DepartureOut
from app.catalogue.services.common import (
    owned_departure,
)
from app.catalogue.services.departures import departure_out
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    Seat,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput
from app.core.i18n import _


async def replace_blocks(
    principal: OperatorPrincipal,
    departure_id: UUID,
    data: DepartureBlocksIn,
    *,
    booked: Collection[UUID],
) -> DepartureOut:
    """Seats kept off sale on this departure only (this run's guides or medical staff);
    a `booked` seat is refused."""
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if row.vehicle_id is None:
            raise InvalidInput("blocks", _("Assign a vehicle first."))
        labels = [block.label for block in data.blocks]
        if len(set(labels)) != len(labels):
            raise InvalidInput("blocks", _("Each seat may be blocked once."))
        seats = {}
        if labels:
            seats = {
                seat["label"]: seat["id"]
                for seat in await Seat.select(Seat.id, Seat.label)
                .where((Seat.vehicle == row.vehicle_id) & Seat.label.is_in(labels))
                .run()
            }
        for index, label in enumerate(labels):
            if label not in seats:
                raise InvalidInput(f"blocks[{index}].label", _("No such seat on this vehicle."))
        for index, label in enumerate(labels):
            if seats[label] in booked:
                raise Conflict(
                    _("Seat {label} is booked; it cannot be blocked.").format(label=label),
                    code="seat_booked",
                    errors=[FieldError(field=f"blocks[{index}].label", message=_("Booked."))],
                )
        await DepartureSeatBlock.delete().where(DepartureSeatBlock.departure == departure_id).run()
        if data.blocks:
            await DepartureSeatBlock.insert(
                *[
                    DepartureSeatBlock(
                        departure=departure_id, seat=seats[block.label], reason=block.reason.value
                    )
                    for block in data.blocks
                ]
            ).run()
        await (
            Departure.update({Departure.updated_at: clock.now()})
            .where(Departure.id == departure_id)
            .run()
        )
    return await departure_out(departure_id)
