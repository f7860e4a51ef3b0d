"""The one place a departure changes status: publishing checks it can be sold."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.rows import DepartureRow, RouteRow
from app.catalogue.schemas.departures import DepartureOut
from app.catalogue.services.capacity import capacity_by_departure
from app.catalogue.services.common import (
    owned_departure,
    owned_route,
)
from app.catalogue.services.departures import departure_out
from app.catalogue.services.fares import effective_fares
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    RouteStatus,
)
from app.core import clock
from app.core.booking_checks import departure_has_live_bookings
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError
from app.core.i18n import _
from app.core.labels import status_label

# How early before its scheduled time a departure may be marked as departed.
DEPART_EARLY = timedelta(hours=2)

_TRANSITIONS: dict[DepartureStatus, set[DepartureStatus]] = {
    DepartureStatus.draft: {DepartureStatus.published, DepartureStatus.cancelled},
    DepartureStatus.published: {
        DepartureStatus.draft,
        DepartureStatus.closed,
        DepartureStatus.cancelled,
        DepartureStatus.departed,
    },
    DepartureStatus.closed: {
        DepartureStatus.published,
        DepartureStatus.cancelled,
        DepartureStatus.departed,
    },
    DepartureStatus.cancelled: set(),
    DepartureStatus.departed: set(),
}


async def publish_problems(row: DepartureRow, route: RouteRow) -> list[FieldError]:
    """Why a departure cannot go on sale yet (empty when it can)."""
    problems = []
    if route.status != RouteStatus.published:
        problems.append(FieldError(field="route", message=_("Publish the route first.")))
    if row.departs_at <= clock.now():
        problems.append(FieldError(field="departs_at", message=_("The departure is in the past.")))
    if row.vehicle_id is None:
        problems.append(FieldError(field="vehicle_id", message=_("Assign a vehicle first.")))
        return problems
    capacity = (await capacity_by_departure([row.id]))[row.id]
    if not capacity:
        problems.append(
            FieldError(field="vehicle_id", message=_("The vehicle has no seat on sale."))
        )
    fares = (await effective_fares([(row.id, row.route_id)]))[row.id]
    priced_classes = {seat_class for seat_class, _type in fares}
    for seat_class in capacity:
        if seat_class not in priced_classes:
            problems.append(
                FieldError(
                    field="fares",
                    message=_("No fare for seat class {seat_class}.").format(seat_class=seat_class),
                )
            )
    return problems


async def change_departure_status(
    principal: OperatorPrincipal,
    departure_id: UUID,
    target: DepartureStatus,
    only_from: set[DepartureStatus] | None = None,
) -> DepartureOut:
    """The one place a departure changes status; publishing checks it can be sold.

    `only_from` narrows the allowed starting states for actions such as reopen
    (closed -> published), which must not publish a draft.
    """
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        current = row.status
        if target not in _TRANSITIONS[current] or (only_from and current not in only_from):
            raise Conflict(
                _("A {current} departure cannot become {target}.").format(
                    current=status_label(current.value), target=status_label(target.value)
                ),
                code="illegal_transition",
            )
        if target == DepartureStatus.departed and clock.now() < row.departs_at - DEPART_EARLY:
            raise Conflict(
                _("A departure can be marked departed from two hours before it leaves."),
                code="departure_not_due",
            )
        if target == DepartureStatus.draft and await departure_has_live_bookings(departure_id):
            raise Conflict(
                _("The departure has bookings; close or cancel it instead."),
                code="departure_has_bookings",
            )
        if target == DepartureStatus.published:
            route = await owned_route(principal, row.route_id)
            problems = await publish_problems(row, route)
            if problems:
                raise Conflict(
                    _("The departure cannot be published yet."),
                    code="departure_not_publishable",
                    errors=problems,
                )
        await (
            Departure.update({Departure.status: target.value, Departure.updated_at: clock.now()})
            .where(Departure.id == departure_id)
            .run()
        )
    return await departure_out(departure_id)
