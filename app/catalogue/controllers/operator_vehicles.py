"""Operator endpoints for vehicles and their seats."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.controllers.common import _OperatorController
from app.catalogue.schemas.vehicles import (
    SeatMapIn,
    VehicleBrief,
    VehicleCreate,
    VehicleOut,
    VehicleUpdate,
)
from app.catalogue.services import (
    vehicles,
)
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams

SeatLabelPath = Annotated[str, PathParameter(pattern="^[A-Z0-9][A-Z0-9-]{0,15}$", max_length=16)]


class OperatorVehicleController(_OperatorController):
    path = "/api/v1/operator/vehicles"
    tags = ["Operator: vehicles and seat maps"]

    @post(
        "/",
        summary="Create a vehicle with its seat map",
        description="Give either a `layout` (sleeper cars or bus rows, labelled for you) or an "
        "explicit list of `seats`.",
        responses=problem_responses(400, 401, 403),
    )
    async def create_vehicle(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[VehicleCreate]
    ) -> VehicleOut:
        return await vehicles.create_vehicle(operator, data)

    @get("/", summary="List my vehicles", responses=problem_responses(400, 401, 403))
    async def list_vehicles(
        self, operator: NamedDependency[OperatorPrincipal], page_params: NamedDependency[PageParams]
    ) -> Page[VehicleBrief]:
        return await vehicles.list_vehicles(operator, page_params)

    @get(
        "/{vehicle_id:uuid}",
        summary="Get a vehicle and its seat map",
        responses=problem_responses(401, 403, 404),
    )
    async def get_vehicle(
        self, operator: NamedDependency[OperatorPrincipal], vehicle_id: FromPath[UUID]
    ) -> VehicleOut:
        return await vehicles.get_vehicle(operator, vehicle_id)

    @patch(
        "/{vehicle_id:uuid}",
        summary="Update a vehicle",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def update_vehicle(
        self,
        operator: NamedDependency[OperatorPrincipal],
        vehicle_id: FromPath[UUID],
        data: JSONBody[VehicleUpdate],
    ) -> VehicleOut:
        return await vehicles.update_vehicle(operator, vehicle_id, data)

    @delete(
        "/{vehicle_id:uuid}",
        summary="Delete a vehicle no departure uses",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_vehicle(
        self, operator: NamedDependency[OperatorPrincipal], vehicle_id: FromPath[UUID]
    ) -> None:
        await vehicles.delete_vehicle(operator, vehicle_id)

    @put(
        "/{vehicle_id:uuid}/seats",
        summary="Replace a vehicle's seat map",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def replace_seats(
        self,
        operator: NamedDependency[OperatorPrincipal],
        vehicle_id: FromPath[UUID],
        data: JSONBody[SeatMapIn],
    ) -> VehicleOut:
        return await vehicles.replace_seat_map(operator, vehicle_id, data)
