"""Departures as operators read them: one, a page of them, with stops, blocks and capacity."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.rows import DepartureRow
from app.catalogue.schemas.departures import DepartureOut, DepartureSeatBlockOut, DepartureStopOut
from app.catalogue.services.capacity import capacity_by_departure
from app.catalogue.services.common import (
    Row,
    as_dict,
    get_operator_row,
    in_zone,
    local_day_range,
    owned_departure,
)
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    DepartureStatus,
    DepartureStop,
    Route,
)
from app.core.errors import NotFound
from app.core.i18n import _
from app.core.pagination import Page, PageParams, fetch_page, page_of


async def departures_out(departures: list[DepartureRow]) -> list[DepartureOut]:
    ids = [departure.id for departure in departures]
    if not ids:
        return []
    stops = (
        await DepartureStop.select()
        .where(DepartureStop.departure.is_in(ids))
        .order_by(DepartureStop.stop_order)
        .output(load_json=True)
        .run()
    )
    stops_by_departure: dict[UUID, list[Row]] = {departure_id: [] for departure_id in ids}
    for stop in stops:
        stops_by_departure[stop["departure"]].append(stop)
    blocks = (
        await DepartureSeatBlock.select(
            DepartureSeatBlock.departure, DepartureSeatBlock.reason, DepartureSeatBlock.seat.label
        )
        .where(DepartureSeatBlock.departure.is_in(ids))
        .run()
    )
    blocks_by_departure: dict[UUID, list[DepartureSeatBlockOut]] = {d: [] for d in ids}
    for block in blocks:
        blocks_by_departure[block["departure"]].append(
            DepartureSeatBlockOut(label=block["seat.label"], reason=block["reason"])
        )
    slugs = {
        row["id"]: row["slug"]
        for row in await Route.select(Route.id, Route.slug)
        .where(Route.id.is_in(sorted({departure.route_id for departure in departures})))
        .run()
    }
    capacity = await capacity_by_departure(ids)
    result = []
    for departure in departures:
        tz = departure.time_zone
        result.append(
            DepartureOut(
                id=departure.id,
                route_id=departure.route_id,
                route_slug=slugs[departure.route_id],
                vehicle_id=departure.vehicle_id,
                status=departure.status,
                departs_at=in_zone(departure.departs_at, tz),
                returns_at=in_zone(departure.returns_at, tz),
                time_zone=tz,
                sales_open_at=(
                    in_zone(departure.sales_open_at, tz) if departure.sales_open_at else None
                ),
                # No explicit close means sales close at departure.
                sales_close_at=in_zone(departure.sales_end, tz),
                stops=[
                    DepartureStopOut(
                        kind=stop["kind"],
                        name=as_dict(stop["name"]) or {},
                        address=as_dict(stop["address"]),
                        at=in_zone(stop["at"], tz),
                    )
                    for stop in stops_by_departure[departure.id]
                ],
                capacity_by_class=capacity[departure.id],
                blocked=sorted(blocks_by_departure[departure.id], key=lambda b: b.label),
                notes=departure.notes,
                guide_phone=departure.guide_phone,
                created_at=departure.created_at,
                updated_at=departure.updated_at,
            )
        )
    return result


async def departure_out(departure_id: UUID) -> DepartureOut:
    row = await Departure.select().where(Departure.id == departure_id).first().run()
    if row is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return (await departures_out([DepartureRow.from_row(row)]))[0]


async def list_departures(
    principal: OperatorPrincipal,
    params: PageParams,
    route_id: UUID | None = None,
    status: DepartureStatus | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Page[DepartureOut]:
    """The operator's departures, between local dates (inclusive) of the operator's zone."""
    operator = await get_operator_row(principal.operator_id)
    departs_from, departs_to = local_day_range(date_from, date_to, operator.time_zone)
    where: Combinable = Departure.operator == principal.operator_id
    if route_id is not None:
        where = where & (Departure.route == route_id)
    if status is not None:
        where = where & (Departure.status == status.value)
    if departs_from is not None:
        where = where & (Departure.departs_at >= departs_from)
    if departs_to is not None:
        where = where & (Departure.departs_at < departs_to)
    rows, total = await fetch_page(
        Departure, where, params, [(Departure.departs_at, True), (Departure.id, True)]
    )
    return page_of(
        await departures_out([DepartureRow.from_row(row) for row in rows]), params, total
    )


async def get_departure(principal: OperatorPrincipal, departure_id: UUID) -> DepartureOut:
    await owned_departure(principal, departure_id)
    return await departure_out(departure_id)
