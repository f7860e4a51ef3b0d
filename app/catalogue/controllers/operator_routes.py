"""Operator endpoints for routes: status, itinerary, offers, fares and seasons."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.accounts.schemas import OperatorPrincipal
from app.catalogue.controllers.common import _OperatorController
from app.catalogue.schemas.departures import BulkScheduleIn, BulkScheduleOut, FareOut, FaresIn
from app.catalogue.schemas.routes import (
    ItineraryIn,
    ItineraryOut,
    RouteCreate,
    RouteOut,
    RouteUpdate,
    SeasonalOfferIn,
    SeasonalOfferOut,
    SeasonalOfferUpdate,
)
from app.catalogue.services import (
    fares,
    itineraries,
    offers,
    routes,
    seasons,
)
from app.catalogue.tables import RouteStatus
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams


class OperatorRouteController(_OperatorController):
    path = "/api/v1/operator/routes"
    tags = ["Operator: routes"]

    @post("/", summary="Create a route (draft)", responses=problem_responses(400, 401, 403, 409))
    async def create_route(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[RouteCreate]
    ) -> RouteOut:
        return await routes.create_route(operator, data)

    @get("/", summary="List my routes", responses=problem_responses(400, 401, 403))
    async def list_routes(
        self,
        operator: NamedDependency[OperatorPrincipal],
        page_params: NamedDependency[PageParams],
        status: Annotated[RouteStatus | None, QueryParameter(name="status")] = None,
    ) -> Page[RouteOut]:
        return await routes.list_routes(operator, page_params, status)

    @get("/{route_id:uuid}", summary="Get a route", responses=problem_responses(401, 403, 404))
    async def get_route(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> RouteOut:
        return await routes.get_route(operator, route_id)

    @patch(
        "/{route_id:uuid}",
        summary="Update a route",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def update_route(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        data: JSONBody[RouteUpdate],
    ) -> RouteOut:
        return await routes.update_route(operator, route_id, data)

    @delete(
        "/{route_id:uuid}",
        summary="Delete a draft route without departures",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_route(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> None:
        await routes.delete_route(operator, route_id)

    @post(
        "/{route_id:uuid}/publish",
        summary="Publish a route",
        description="Needs an itinerary. A published route is visible to the public.",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def publish_route(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> RouteOut:
        return await routes.change_route_status(operator, route_id, RouteStatus.published)

    @post(
        "/{route_id:uuid}/unpublish",
        summary="Take a route back to draft",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def unpublish_route(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> RouteOut:
        return await routes.change_route_status(operator, route_id, RouteStatus.draft)

    @post(
        "/{route_id:uuid}/archive",
        summary="Archive a route",
        responses=problem_responses(401, 403, 404, 409),
        status_code=200,
    )
    async def archive_route(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> RouteOut:
        return await routes.change_route_status(operator, route_id, RouteStatus.archived)

    @get(
        "/{route_id:uuid}/itinerary",
        summary="Get a route's itinerary",
        responses=problem_responses(401, 403, 404),
    )
    async def get_itinerary(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> ItineraryOut:
        return await itineraries.get_itinerary(operator, route_id)

    @put(
        "/{route_id:uuid}/itinerary",
        summary="Replace a route's itinerary",
        description="Days and their stops, replaced as a whole.",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_itinerary(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        data: JSONBody[ItineraryIn],
    ) -> ItineraryOut:
        return await itineraries.replace_itinerary(operator, route_id, data)

    @delete(
        "/{route_id:uuid}/itinerary",
        summary="Delete a draft route's itinerary",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_itinerary(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> None:
        await itineraries.delete_itinerary(operator, route_id)

    @get(
        "/{route_id:uuid}/offers",
        summary="List a route's seasonal offers",
        responses=problem_responses(401, 403, 404),
    )
    async def list_offers(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> list[SeasonalOfferOut]:
        return await offers.list_offers(operator, route_id)

    @post(
        "/{route_id:uuid}/offers",
        summary="Add a seasonal offer",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def create_offer(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        data: JSONBody[SeasonalOfferIn],
    ) -> SeasonalOfferOut:
        return await offers.create_offer(operator, route_id, data)

    @patch(
        "/{route_id:uuid}/offers/{offer_id:uuid}",
        summary="Update a seasonal offer",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def update_offer(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        offer_id: FromPath[UUID],
        data: JSONBody[SeasonalOfferUpdate],
    ) -> SeasonalOfferOut:
        return await offers.update_offer(operator, route_id, offer_id, data)

    @delete(
        "/{route_id:uuid}/offers/{offer_id:uuid}",
        summary="Delete a seasonal offer",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_offer(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        offer_id: FromPath[UUID],
    ) -> None:
        await offers.delete_offer(operator, route_id, offer_id)

    @get(
        "/{route_id:uuid}/fares",
        summary="Get a route's default fares",
        responses=problem_responses(401, 403, 404),
    )
    async def get_fares(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> list[FareOut]:
        return await fares.get_route_fares(operator, route_id)

    @put(
        "/{route_id:uuid}/fares",
        summary="Replace a route's default fares",
        description="Prices per seat class and passenger type, in minor units of the "
        "operator's currency; every departure inherits them unless it has its own.",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_fares(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        data: JSONBody[FaresIn],
    ) -> list[FareOut]:
        return await fares.replace_route_fares(operator, route_id, data)

    @post(
        "/{route_id:uuid}/departures/bulk",
        summary="Schedule a season of departures",
        description="Creates every departure of a recurrence (weekdays between two dates at a "
        "local time, minus skipped dates) in one transaction: all of them or none.",
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    async def schedule_season(
        self,
        operator: NamedDependency[OperatorPrincipal],
        route_id: FromPath[UUID],
        data: JSONBody[BulkScheduleIn],
    ) -> BulkScheduleOut:
        return await seasons.schedule_season(operator, route_id, data)
