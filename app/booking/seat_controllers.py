"""Seats over HTTP: the public's departures with seats left and seat maps, and the
operator's seat blocks (refused for booked seats). Same URLs as the catalogue's endpoints
beside them; the inventory answers these."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.booking.services import public_departures, seat_blocks
from app.catalogue.controllers.common import DateFrom, DateTo
from app.catalogue.schemas.departures import DepartureBlocksIn, DepartureOut
from app.catalogue.schemas.public import (
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicSeatMap,
)
from app.catalogue.schemas.vehicles import SeatBlockIn, SeatOut
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams

SeatLabelPath = Annotated[str, PathParameter(pattern="^[A-Z0-9][A-Z0-9-]{0,15}$", max_length=16)]


class PublicRouteDepartureController(Controller):
    path = "/api/v1/routes"
    tags = ["Public: routes"]

    @get(
        "/{slug:str}/departures",
        cache=True,
        summary="Departures of a line",
        description="Upcoming departures with seats left per class and the lowest adult price.",
        responses=problem_responses(400, 404),
    )
    async def list_departures(
        self,
        slug: FromPath[str],
        page_params: NamedDependency[PageParams],
        date_from: DateFrom = None,
        date_to: DateTo = None,
    ) -> Page[PublicDepartureSummary]:
        return await public_departures.list_route_departures(slug, page_params, date_from, date_to)


class PublicDepartureController(Controller):
    path = "/api/v1/departures"
    tags = ["Public: departures"]

    @get(
        "/{departure_id:uuid}",
        cache=True,
        summary="A departure with stops, fares and seats left",
        responses=problem_responses(404),
    )
    async def get_departure(self, departure_id: FromPath[UUID]) -> PublicDepartureDetail:
        return await public_departures.get_departure(departure_id)

    @get(
        "/{departure_id:uuid}/seats",
        cache=True,
        summary="A departure's seat map",
        description="Every seat or berth with its class and whether it is free.",
        responses=problem_responses(404),
    )
    async def get_seats(self, departure_id: FromPath[UUID]) -> PublicSeatMap:
        return await public_departures.get_seat_map(departure_id)


class OperatorDepartureBlockController(Controller):
    path = "/api/v1/operator/departures"
    tags = ["Operator: departures"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @put(
        "/{departure_id:uuid}/blocks",
        summary="Replace the seats blocked on this departure",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_blocks(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[DepartureBlocksIn],
    ) -> DepartureOut:
        return await seat_blocks.replace_departure_blocks(operator, departure_id, data)


class OperatorSeatBlockController(Controller):
    path = "/api/v1/operator/vehicles"
    tags = ["Operator: vehicles and seat maps"]
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY

    @put(
        "/{vehicle_id:uuid}/seats/{label:str}/block",
        summary="Block a seat on every departure",
        description="For crew, guides, stewards or medical staff; 409 while a live booking "
        "holds the seat.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def block_seat(
        self,
        operator: NamedDependency[OperatorPrincipal],
        vehicle_id: FromPath[UUID],
        label: SeatLabelPath,
        data: JSONBody[SeatBlockIn],
    ) -> SeatOut:
        return await seat_blocks.set_vehicle_seat_block(
            operator, vehicle_id, label, data.reason.value
        )

    @delete(
        "/{vehicle_id:uuid}/seats/{label:str}/block",
        summary="Release a blocked seat",
        responses=problem_responses(401, 403, 404),
        status_code=200,
    )
    async def unblock_seat(
        self,
        operator: NamedDependency[OperatorPrincipal],
        vehicle_id: FromPath[UUID],
        label: SeatLabelPath,
    ) -> SeatOut:
        return await seat_blocks.set_vehicle_seat_block(operator, vehicle_id, label, None)
