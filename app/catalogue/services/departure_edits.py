"""Creating, changing and deleting a departure: its schedule, vehicle and stops."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.accounts.operators import require_time_zone
from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.events import DepartureChanged
from app.catalogue.rows import RouteRow
from app.catalogue.schemas.departures import (
    DepartureCreate,
    DepartureOut,
    DepartureStopIn,
    DepartureUpdate,
)
from app.catalogue.services.common import (
    get_operator_row,
    owned_departure,
    owned_route,
    owned_vehicle,
    require_aware,
    text_dict,
)
from app.catalogue.services.departures import departure_out
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    RouteStatus,
)
from app.core import clock
from app.core.booking_checks import departure_has_live_bookings
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.events import publish
from app.core.i18n import _
from app.core.labels import status_label

_EDITABLE = {DepartureStatus.draft, DepartureStatus.published, DepartureStatus.closed}


class _Schedule(msgspec.Struct, kw_only=True):
    departs_at: datetime
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None


def _check_schedule(schedule: _Schedule) -> None:
    if schedule.returns_at <= schedule.departs_at:
        raise InvalidInput("returns_at", _("The return must be after the departure."))
    if schedule.sales_close_at and schedule.sales_close_at > schedule.departs_at:
        raise InvalidInput("sales_close_at", _("Sales must close by the departure time."))
    if (
        schedule.sales_open_at
        and schedule.sales_close_at
        and schedule.sales_open_at >= schedule.sales_close_at
    ):
        raise InvalidInput("sales_open_at", _("Sales must open before they close."))


def _stop_rows(
    departure_id: UUID, stops: list[DepartureStopIn], schedule: _Schedule
) -> list[DepartureStop]:
    rows = []
    earliest = schedule.departs_at - timedelta(hours=12)
    for index, stop in enumerate(stops):
        at = require_aware(f"stops[{index}].at", stop.at)
        assert at is not None
        if not earliest <= at <= schedule.returns_at:
            raise InvalidInput(
                f"stops[{index}].at",
                _("A stop must fall between 12 hours before departure and the return."),
            )
        rows.append(
            DepartureStop(
                departure=departure_id,
                stop_order=index + 1,
                kind=stop.kind.value,
                name=dict(stop.name),
                address=text_dict(stop.address),
                at=at,
            )
        )
    return rows


async def _check_vehicle(
    principal: OperatorPrincipal, vehicle_id: UUID | None, route: RouteRow
) -> None:
    if vehicle_id is None:
        return
    vehicle = await owned_vehicle(principal, vehicle_id, field="vehicle_id")
    if vehicle.kind != route.kind:
        raise InvalidInput(
            "vehicle_id", _("A {kind} route needs a {kind} vehicle.").format(kind=route.kind)
        )


async def create_departure(principal: OperatorPrincipal, data: DepartureCreate) -> DepartureOut:
    require_operator_admin(principal)
    operator = await get_operator_row(principal.operator_id)
    async with write_transaction():
        try:
            route = await owned_route(principal, data.route_id)
        except NotFound:
            raise InvalidInput("route_id", _("No such route."), code="route_not_found") from None
        if route.status == RouteStatus.archived:
            raise Conflict(_("An archived route takes no new departures."), code="route_archived")
        await _check_vehicle(principal, data.vehicle_id, route)
        departs_at = require_aware("departs_at", data.departs_at)
        assert departs_at is not None
        returns_at = require_aware("returns_at", data.returns_at) or departs_at + timedelta(
            days=route.duration_days
        )
        schedule = _Schedule(
            departs_at=departs_at,
            returns_at=returns_at,
            time_zone=require_time_zone("time_zone", data.time_zone or operator.time_zone),
            sales_open_at=require_aware("sales_open_at", data.sales_open_at),
            sales_close_at=require_aware("sales_close_at", data.sales_close_at),
        )
        _check_schedule(schedule)
        departure = Departure(
            operator=principal.operator_id,
            route=route.id,
            vehicle=data.vehicle_id,
            departs_at=schedule.departs_at,
            returns_at=schedule.returns_at,
            time_zone=schedule.time_zone,
            sales_open_at=schedule.sales_open_at,
            sales_close_at=schedule.sales_close_at,
            status=DepartureStatus.draft.value,
            notes=data.notes,
            guide_phone=data.guide_phone or "",
        )
        stops = _stop_rows(departure.id, data.stops, schedule)
        await departure.save().run()
        if stops:
            await DepartureStop.insert(*stops).run()
    return await departure_out(departure.id)


async def update_departure(
    principal: OperatorPrincipal, departure_id: UUID, data: DepartureUpdate
) -> DepartureOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if row.status not in _EDITABLE:
            raise Conflict(
                _("A {status} departure cannot be changed.").format(
                    status=status_label(row.status)
                ),
                code="departure_not_editable",
            )
        route = await owned_route(principal, row.route_id)
        values: dict[Any, Any] = {Departure.updated_at: clock.now()}
        if data.vehicle_id is not msgspec.UNSET:
            if row.status != DepartureStatus.draft and data.vehicle_id != row.vehicle_id:
                raise Conflict(
                    _("Unpublish the departure before changing its vehicle."),
                    code="departure_published",
                )
            await _check_vehicle(principal, data.vehicle_id, route)
            values[Departure.vehicle] = data.vehicle_id

        def pick(field: str, value: Any) -> Any:
            return getattr(row, field) if value is msgspec.UNSET else value

        schedule = _Schedule(
            departs_at=require_aware("departs_at", pick("departs_at", data.departs_at)),
            returns_at=require_aware("returns_at", pick("returns_at", data.returns_at)),
            time_zone=require_time_zone("time_zone", pick("time_zone", data.time_zone)),
            sales_open_at=require_aware("sales_open_at", pick("sales_open_at", data.sales_open_at)),
            sales_close_at=require_aware(
                "sales_close_at", pick("sales_close_at", data.sales_close_at)
            ),
        )
        _check_schedule(schedule)
        if (
            row.status != DepartureStatus.draft
            and data.departs_at is not msgspec.UNSET
            and schedule.departs_at <= clock.now()
        ):
            raise InvalidInput("departs_at", _("A departure on sale cannot move into the past."))
        values.update(
            {
                Departure.departs_at: schedule.departs_at,
                Departure.returns_at: schedule.returns_at,
                Departure.time_zone: schedule.time_zone,
                Departure.sales_open_at: schedule.sales_open_at,
                Departure.sales_close_at: schedule.sales_close_at,
            }
        )
        if data.notes is not msgspec.UNSET:
            values[Departure.notes] = data.notes
        if data.guide_phone is not msgspec.UNSET:
            values[Departure.guide_phone] = data.guide_phone or ""
        if data.stops is not msgspec.UNSET:
            stops = _stop_rows(departure_id, data.stops, schedule)
            await DepartureStop.delete().where(DepartureStop.departure == departure_id).run()
            if stops:
                await DepartureStop.insert(*stops).run()
        else:
            # The kept stops must still fall in the (possibly moved) window.
            earliest = schedule.departs_at - timedelta(hours=12)
            kept = await DepartureStop.select(DepartureStop.at).where(
                DepartureStop.departure == departure_id
            )
            if any(not earliest <= stop["at"] <= schedule.returns_at for stop in kept):
                raise InvalidInput(
                    "stops",
                    _("A stop must fall between 12 hours before departure and the return."),
                )
        await Departure.update(values).where(Departure.id == departure_id).run()
        changes = [
            name
            for name, before, after in (
                ("departs_at", row.departs_at, schedule.departs_at),
                ("returns_at", row.returns_at, schedule.returns_at),
            )
            if before != after
        ]
        if data.stops is not msgspec.UNSET:
            changes.append("stops")
        if changes and await departure_has_live_bookings(departure_id):
            version = clock.now().isoformat()
            await publish(
                DepartureChanged(departure_id=departure_id, version=version, changes=changes)
            )
    return await departure_out(departure_id)


async def delete_departure(principal: OperatorPrincipal, departure_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if row.status != DepartureStatus.draft:
            raise Conflict(
                _("Only a draft departure can be deleted; cancel it instead."),
                code="departure_not_draft",
            )
        await Departure.delete().where(Departure.id == departure_id).run()
