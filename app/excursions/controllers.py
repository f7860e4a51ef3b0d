"""Operator API of coach excursions: a departure's excursions, their coaches, who rides
which coach, and the coach manifest."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS
from app.accounts.schemas import OperatorPrincipal
from app.core.errors import problem_responses
from app.core.openapi import JsonOrCsvOperation
from app.excursions.schemas import (
    AssignmentsIn,
    AssignmentsOut,
    CoachIn,
    CoachManifest,
    CoachOut,
    CoachUpdate,
    ExcursionIn,
    ExcursionOut,
    ExcursionUpdate,
)
from app.excursions.services import assignments, excursions
from app.excursions.services.manifest import coach_manifest, coach_manifest_csv

TAG = "Operator: coach excursions"


def coach_manifest_csv_response(data: CoachManifest) -> Response[bytes]:
    """The coach manifest as a spreadsheet (with a BOM, so that Excel reads the Chinese)."""
    name = f"coaches-day{data.day_number}-{data.excursion_id}.csv"
    return Response(
        content=coach_manifest_csv(data).encode("utf-8-sig"),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class _Operator(Controller):
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY
    tags = [TAG]


class DepartureExcursionController(_Operator):
    path = "/api/v1/operator/departures"

    @get(
        "/{departure_id:uuid}/excursions",
        summary="A departure's coach excursions",
        description="By day and time, each with its coaches and how many of the departure's "
        "confirmed travellers have a seat on them. Times in the departure's time zone.",
        responses=problem_responses(401, 403, 404),
    )
    async def list_excursions(
        self, operator: NamedDependency[OperatorPrincipal], departure_id: FromPath[UUID]
    ) -> list[ExcursionOut]:
        return await excursions.list_excursions(operator, departure_id)

    @post(
        "/{departure_id:uuid}/excursions",
        summary="Plan a coach excursion",
        description="On day `day_number` of the trip: the sight, where the coaches wait at the "
        "station, and when they leave and are back (local times of the departure's zone, the "
        "same day, within the trip). Operator admins only.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def create_excursion(
        self,
        operator: NamedDependency[OperatorPrincipal],
        departure_id: FromPath[UUID],
        data: JSONBody[ExcursionIn],
    ) -> ExcursionOut:
        return await excursions.create_excursion(operator, departure_id, data)


class ExcursionController(_Operator):
    path = "/api/v1/operator/excursions"

    @get(
        "/{excursion_id:uuid}",
        summary="A coach excursion",
        responses=problem_responses(401, 403, 404),
    )
    async def get_excursion(
        self, operator: NamedDependency[OperatorPrincipal], excursion_id: FromPath[UUID]
    ) -> ExcursionOut:
        return await excursions.get_excursion(operator, excursion_id)

    @patch(
        "/{excursion_id:uuid}",
        summary="Change a coach excursion",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_excursion(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        data: JSONBody[ExcursionUpdate],
    ) -> ExcursionOut:
        return await excursions.update_excursion(operator, excursion_id, data)

    @delete(
        "/{excursion_id:uuid}",
        summary="Drop a coach excursion",
        description="With its coaches and who rides them.",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_excursion(
        self, operator: NamedDependency[OperatorPrincipal], excursion_id: FromPath[UUID]
    ) -> None:
        await excursions.delete_excursion(operator, excursion_id)

    # ------------------------------------------------------------ coaches

    @get(
        "/{excursion_id:uuid}/coaches",
        summary="The coaches of an excursion",
        responses=problem_responses(401, 403, 404),
    )
    async def list_coaches(
        self, operator: NamedDependency[OperatorPrincipal], excursion_id: FromPath[UUID]
    ) -> list[CoachOut]:
        return await excursions.list_coaches(operator, excursion_id)

    @post(
        "/{excursion_id:uuid}/coaches",
        summary="Add a coach to an excursion",
        description="Its seats for travellers, plate, driver and guide; it comes last on the "
        "plan unless `position` says otherwise. Operator admins only.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def create_coach(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        data: JSONBody[CoachIn],
    ) -> CoachOut:
        return await excursions.create_coach(operator, excursion_id, data)

    @patch(
        "/{excursion_id:uuid}/coaches/{coach_id:uuid}",
        summary="Change a coach",
        description="409 `coach_capacity_below_assigned` for a capacity below the travellers "
        "it carries.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_coach(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        coach_id: FromPath[UUID],
        data: JSONBody[CoachUpdate],
    ) -> CoachOut:
        return await excursions.update_coach(operator, excursion_id, coach_id, data)

    @delete(
        "/{excursion_id:uuid}/coaches/{coach_id:uuid}",
        summary="Drop a coach",
        description="Its travellers are left without a coach until assigned again.",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_coach(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        coach_id: FromPath[UUID],
    ) -> None:
        await excursions.delete_coach(operator, excursion_id, coach_id)

    # ------------------------------------------------------------ assignments

    @get(
        "/{excursion_id:uuid}/assignments",
        summary="Who rides which coach",
        description="Each coach with its parties (bookings) and their travellers, and the "
        "confirmed travellers without a coach.",
        responses=problem_responses(401, 403, 404),
    )
    async def get_assignments(
        self, operator: NamedDependency[OperatorPrincipal], excursion_id: FromPath[UUID]
    ) -> AssignmentsOut:
        return await assignments.assignments(operator, excursion_id)

    @post(
        "/{excursion_id:uuid}/assignments",
        summary="Assign travellers to coaches, automatically or by hand",
        description='`{"auto": true}` gives every confirmed traveller without a coach a seat: '
        "parties stay together, people of one car together, coach 1 fills first, no coach "
        'goes over its capacity; `outcome.not_placed` says who did not fit. `"redo": true` '
        'starts from empty coaches. A move: `{"reference": "K7M2Q9XD", "coach_id": "..."}` '
        "(optionally `seat_labels`) puts the party on that coach, 409 `coach_full` when it "
        'has too few free places; `"coach_id": null` takes it off the coaches. Travellers of '
        "a booking cancelled later leave their coach; a booking confirmed later waits for the "
        "next automatic assignment or a move.",
        responses=problem_responses(400, 401, 403, 404, 409),
        status_code=200,
    )
    async def change_assignments(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        data: JSONBody[AssignmentsIn],
    ) -> AssignmentsOut:
        return await assignments.change_assignments(operator, excursion_id, data)

    @get(
        "/{excursion_id:uuid}/manifest",
        operation_class=JsonOrCsvOperation,
        summary="Coach manifest",
        description="Per coach: its plate, driver and guide, its travellers and the headcount "
        "(passengers, adults, seniors, children); the meeting point and times; travellers "
        "without a coach apart. `format=csv` for a spreadsheet, one row per traveller.",
        responses=problem_responses(400, 401, 403, 404),
        media_type="application/json",
    )
    async def manifest(
        self,
        operator: NamedDependency[OperatorPrincipal],
        excursion_id: FromPath[UUID],
        format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        data = await coach_manifest(operator, excursion_id)
        if format == "csv":
            return coach_manifest_csv_response(data)
        return Response(data)
