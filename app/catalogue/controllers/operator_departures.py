"""Operator endpoints for departures: schedule, status and fares (seat blocks are the
booking domain's: `app.booking.seat_controllers`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.controllers.common import DateFrom, DateTo, _OperatorController
from app.catalogue.schemas.crew import CrewIn, CrewOut
from app.catalogue.schemas.departures import (
    DepartureCreate,
    DepartureOut,
    DepartureUpdate,
    FareOut,
    FaresIn,
)
from app.catalogue.services import (
    crew,
    departure_edits,
    departure_status,
    departures,
    fares,
)
from app.catalogue.tables import DepartureStatus
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams


class OperatorDepartureController(_OperatorController):
    path = "/api/v1/operator/departures"
    tags = ["Operator: departures"]

    @post(
        "/", summary="Create a departure (draft)", responses=problem_responses(400, 401, 403, 409)
    )
    async def create_departure(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[DepartureCreate]
    ) -> DepartureOut:
        return await departure_edits.create_departure(operator, data)

    @get("/", summary="List my departures", responses=problem_responses(400, 401, 403))
    async def list_departures(
        self,
        operator: NamedDependency[OperatorPrincipal],
        page_params: NamedDependency[PageParams],
        route_id: Annotated[UUID | None, QueryParameter(name="route_id")] = None,
        status: Annotated[DepartureStatus | None, QueryParameter(name="status")] = None,
        date_from: DateFrom = None,
        date_to: DateTo = None,
    ) -> Page[DepartureOut]:
        return await departures.list_departures(
            operator, page_params, route_id, status, date_from, date_to
        )

    @get(
        "/{departure_id:uuid}",
        summary="Get a departure",
        responses=problem_responses(401, 403, 404),
    )
    async def get_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departures.get_departure(operator, departure_id)

    @patch(
        "/{departure_id:uuid}",
        summary="Update a departure",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_departure(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[DepartureUpdate],
    ) -> DepartureOut:
        return await departure_edits.update_departure(operator, departure_id, data)

    @delete(
        "/{departure_id:uuid}",
        summary="Delete a draft departure",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> None:
        await departure_edits.delete_departure(operator, departure_id)

    @post(
        "/{departure_id:uuid}/publish",
        summary="Put a departure on sale",
        description="Needs a published route, a vehicle with seats, a fare for every seat class "
        "on sale and a departure time in the future.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def publish_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departure_status.change_departure_status(
            operator, departure_id, DepartureStatus.published
        )

    @post(
        "/{departure_id:uuid}/unpublish",
        summary="Take a departure back to draft",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def unpublish_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departure_status.change_departure_status(
            operator, departure_id, DepartureStatus.draft
        )

    @post(
        "/{departure_id:uuid}/close",
        summary="Stop sales of a departure",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def close_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departure_status.change_departure_status(
            operator, departure_id, DepartureStatus.closed
        )

    @post(
        "/{departure_id:uuid}/reopen",
        summary="Reopen sales of a closed departure",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def reopen_departure(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departure_status.change_departure_status(
            operator, departure_id, DepartureStatus.published, only_from={DepartureStatus.closed}
        )

    @post(
        "/{departure_id:uuid}/depart",
        summary="Mark a departure as departed",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def mark_departed(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> DepartureOut:
        return await departure_status.change_departure_status(
            operator, departure_id, DepartureStatus.departed
        )

    @get(
        "/{departure_id:uuid}/fares",
        summary="A departure's effective fares",
        description="The departure's own prices, or the route's where it has none.",
        responses=problem_responses(401, 403, 404),
    )
    async def get_fares(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> list[FareOut]:
        return await fares.get_departure_fares(operator, departure_id)

    @put(
        "/{departure_id:uuid}/fares",
        summary="Replace a departure's own fares",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_fares(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[FaresIn],
    ) -> list[FareOut]:
        return await fares.replace_departure_fares(operator, departure_id, data)

    @get(
        "/{departure_id:uuid}/crew",
        summary="A departure's crew roster",
        description="The steward (列车管家), guides, narrators, medical staff and drivers "
        "travelling with the departure: name, role, phone, and the car or coach they are in.",
        responses=problem_responses(401, 403, 404),
    )
    async def get_crew(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> CrewOut:
        return await crew.get_crew(operator, departure_id)

    @put(
        "/{departure_id:uuid}/crew",
        summary="Replace a departure's crew roster",
        description="The whole roster, in the order to list it. A car must be one of the "
        "departure's vehicle's cars; the steward's and the medical staff's phones are given "
        "to travellers in their reminders before departure.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def replace_crew(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[CrewIn],
    ) -> CrewOut:
        return await crew.replace_crew(operator, departure_id, data)
