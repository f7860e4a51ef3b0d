"""The operator's coach plan of a departure behind staff login: its excursions day by day,
the coaches of each with the parties on them, moving a party to another coach (a form per
party, no script needed), running the automatic assignment, and the coach manifest to
print or as CSV. Changes go through the excursions services, as the API's do, and land in
the audit log the same way (the forms post under /staff/departures/)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.services.departures import get_departure
from app.catalogue.services.routes import route_out
from app.core.errors import DomainError
from app.core.i18n import _, localize
from app.core.links import lang_code
from app.core.security import staff_form_token
from app.excursions.controllers import coach_manifest_csv_response
from app.excursions.schemas import AssignmentOutcome, AssignmentsIn
from app.excursions.services.assignments import assignments, change_assignments
from app.excursions.services.excursions import list_excursions
from app.excursions.services.manifest import coach_manifest
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, convert, text
from app.web.staff_pages import staff_form_action, staff_page_access
from app.web.templates import page_context


def _excursion_id(form: FormMultiDict) -> UUID | None:
    try:
        return UUID(text(form, "excursion_id"))
    except ValueError:
        return None


class CoachPagesController(Controller):
    path = "/staff/departures"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    async def _plan_page(
        self,
        request: Request[Any, Any, Any],
        principal: OperatorPrincipal,
        token: str,
        departure_id: UUID,
        excursion_id: UUID | None,
        *,
        problems: FormProblems | None = None,
        outcome: AssignmentOutcome | None = None,
        status_code: int = 200,
    ) -> Response[Any]:
        departure = await get_departure(principal, departure_id)
        route = await route_out(departure.route_id)
        excursions = await list_excursions(principal, departure_id)
        selected = next((e for e in excursions if e.id == excursion_id), None)
        if selected is None and excursions:
            selected = excursions[0]
        plan = await assignments(principal, selected.id) if selected else None
        here = f"/staff/departures/{departure_id}/coaches"
        if selected is not None:
            here += f"?excursion={selected.id}"
        return Template(
            "staff/coaches.html",
            context={
                **page_context(request, here),
                "departure": departure,
                "route_name": localize(route.name),
                "excursions": excursions,
                "selected": selected,
                "plan": plan,
                "csrf": staff_form_token(token),
                "problems": problems or FormProblems(),
                "outcome": outcome,
            },
            status_code=status_code,
        )

    @get("/{departure_id:uuid}/coaches")
    async def coach_plan(
        self,
        request: Request[Any, Any, Any],
        departure_id: FromPath[UUID],
        excursion: Annotated[UUID | None, QueryParameter(name="excursion")] = None,
    ) -> Response[Any]:
        staff = await staff_page_access(request)
        if isinstance(staff, Response):
            return staff
        return await self._plan_page(request, *staff, departure_id, excursion)

    async def _change(
        self,
        request: Request[Any, Any, Any],
        departure_id: UUID,
        wanted: Callable[[FormMultiDict], dict[str, Any]],
    ) -> Response[Any]:
        """Change the plan as the form asks (`wanted`: the API's body from the form)."""
        action = await staff_form_action(request)
        if isinstance(action, Response):
            return action
        principal, token, form = action
        excursion_id = _excursion_id(form)
        problems = FormProblems()
        data = convert(wanted(form), AssignmentsIn, problems) if excursion_id else None
        if excursion_id is None:
            problems.summary = _("Choose the excursion again and retry.")
        if data is None or excursion_id is None:
            return await self._plan_page(
                request, principal, token, departure_id, excursion_id, problems=problems,
                status_code=400,
            )  # fmt: skip
        try:
            result = await change_assignments(principal, excursion_id, data)
        except DomainError as exc:
            return await self._plan_page(
                request, principal, token, departure_id, excursion_id,
                problems=FormProblems.of(exc), status_code=exc.status_code,
            )  # fmt: skip
        if result.departure_id != departure_id:
            # An excursion of another of the operator's departures: shown on its own page.
            departure_id = result.departure_id
        return await self._plan_page(
            request, principal, token, departure_id, excursion_id, outcome=result.outcome
        )

    @post("/{departure_id:uuid}/coaches/auto", status_code=200)
    async def auto_assign(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        return await self._change(
            request, departure_id, lambda form: {"auto": True, "redo": text(form, "redo") == "yes"}
        )

    @post("/{departure_id:uuid}/coaches/move", status_code=200)
    async def move_party(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        def move(form: FormMultiDict) -> dict[str, Any]:
            # The party's travellers shown in the row (a party may ride several coaches).
            seats = [label for label in form.getall("seat", []) if isinstance(label, str)]
            return {
                "reference": text(form, "reference") or None,
                # The choice "no coach" is empty.
                "coach_id": text(form, "coach_id") or None,
                "seat_labels": seats or None,
            }

        return await self._change(request, departure_id, move)

    @get("/{departure_id:uuid}/excursions/{excursion_id:uuid}/manifest")
    async def coach_manifest_page(
        self,
        request: Request[Any, Any, Any],
        departure_id: FromPath[UUID],
        excursion_id: FromPath[UUID],
        format: Annotated[Literal["html", "csv"], QueryParameter(name="format")] = "html",
    ) -> Response[Any]:
        staff = await staff_page_access(request)
        if isinstance(staff, Response):
            return staff
        principal, _token = staff
        data = await coach_manifest(principal, excursion_id)
        if data.departure_id != departure_id:
            page = f"/staff/departures/{data.departure_id}/excursions/{excursion_id}/manifest"
            return Redirect(f"{page}?lang={lang_code()}", status_code=303)
        if format == "csv":
            return coach_manifest_csv_response(data)
        departure = await get_departure(principal, departure_id)
        route = await route_out(departure.route_id)
        return Template(
            "staff/coach_manifest.html",
            context={
                **page_context(request),
                "manifest": data,
                "departure": departure,
                "route_name": localize(route.name),
            },
        )
