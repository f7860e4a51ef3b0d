"""Public read endpoints: published routes (their departures, with seats left, are the
booking domain's: `app.booking.seat_controllers`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from app.catalogue.controllers.common import DateFrom, DateTo
from app.catalogue.schemas.common import Theme
from app.catalogue.schemas.public import PublicRouteDetail, PublicRouteSummary
from app.catalogue.services import public_routes
from app.catalogue.tables import RouteKind
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams
from app.core.settings import Settings


class PublicRouteController(Controller):
    path = "/api/v1/routes"
    tags = ["Public: routes"]

    @get(
        "/",
        cache=True,
        summary="Find themed lines",
        description="Published routes, soonest next departure first.",
        responses=problem_responses(400),
    )
    async def list_routes(
        self,
        page_params: NamedDependency[PageParams],
        settings: NamedDependency[Settings],
        theme: Annotated[Theme | None, QueryParameter(name="theme")] = None,
        kind: Annotated[RouteKind | None, QueryParameter(name="kind")] = None,
        q: Annotated[
            str | None, QueryParameter(name="q", max_length=100, description="Text search")
        ] = None,
        operator: Annotated[
            str | None, QueryParameter(name="operator", max_length=64, description="Operator slug")
        ] = None,
        date_from: DateFrom = None,
        date_to: DateTo = None,
    ) -> Page[PublicRouteSummary]:
        return await public_routes.list_routes(
            page_params,
            theme=theme.value if theme else None,
            kind=kind,
            query=q,
            date_from=date_from,
            date_to=date_to,
            operator_slug=operator,
            time_zone=settings.time_zone,
        )

    @get(
        "/{slug:str}",
        cache=True,
        summary="A themed line with itinerary and offers",
        responses=problem_responses(404),
    )
    async def get_route(self, slug: FromPath[str]) -> PublicRouteDetail:
        return await public_routes.get_route(slug)
