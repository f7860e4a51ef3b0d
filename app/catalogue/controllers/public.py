"""Public read endpoints: published routes, their departures and seat maps."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from app.catalogue.controllers.common import DateFrom, DateTo
from app.catalogue.schemas import (
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicRouteDetail,
    PublicRouteSummary,
    PublicSeatMap,
    Theme,
)
from app.catalogue.services import (
    public,
)
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
        return await public.list_routes(
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
        return await public.get_route(slug)

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
        return await public.list_route_departures(slug, page_params, date_from, date_to)


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
        return await public.get_departure(departure_id)

    @get(
        "/{departure_id:uuid}/seats",
        cache=True,
        summary="A departure's seat map",
        description="Every seat or berth with its class and whether it is free.",
        responses=problem_responses(404),
    )
    async def get_seats(self, departure_id: FromPath[UUID]) -> PublicSeatMap:
        return await public.get_seat_map(departure_id)
