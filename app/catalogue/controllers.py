"""Catalogue HTTP API: the operator's publishing endpoints and the public read endpoints."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES
from app.accounts.schemas import OperatorPrincipal
from app.catalogue.schemas import (
    BulkScheduleIn,
    BulkScheduleOut,
    DepartureBlocksIn,
    DepartureCreate,
    DepartureOut,
    DepartureUpdate,
    FareOut,
    FaresIn,
    ItineraryIn,
    ItineraryOut,
    OperatorOut,
    OperatorUpdate,
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicRouteDetail,
    PublicRouteSummary,
    PublicSeatMap,
    RouteCreate,
    RouteOut,
    RouteUpdate,
    SeasonalOfferIn,
    SeasonalOfferOut,
    SeasonalOfferUpdate,
    SeatBlockIn,
    SeatMapIn,
    SeatOut,
    Theme,
    VehicleBrief,
    VehicleCreate,
    VehicleOut,
    VehicleUpdate,
)
from app.catalogue.services import (
    departure_edits,
    departure_status,
    departures,
    fares,
    operators,
    public,
    routes,
    seasons,
    seat_blocks,
    vehicles,
)
from app.catalogue.tables import DepartureStatus, RouteKind, RouteStatus
from app.core.errors import problem_responses
from app.core.pagination import Page, PageParams

DateFrom = Annotated[
    date | None, QueryParameter(name="from", description="First local date, inclusive (YYYY-MM-DD)")
]
DateTo = Annotated[
    date | None, QueryParameter(name="to", description="Last local date, inclusive (YYYY-MM-DD)")
]
SeatLabelPath = Annotated[str, PathParameter(pattern="^[A-Z0-9][A-Z0-9-]{0,15}$", max_length=16)]


class _OperatorController(Controller):
    dependencies = OPERATOR_DEPENDENCIES
    security = BEARER_SECURITY


class OperatorProfileController(_OperatorController):
    path = "/api/v1/operator/profile"
    tags = ["Operator: profile"]

    @get("/", summary="My operator", responses=problem_responses(401, 403))
    async def get_profile(self, operator: NamedDependency[OperatorPrincipal]) -> OperatorOut:
        return await operators.get_own_operator(operator)

    @patch("/", summary="Update my operator", responses=problem_responses(400, 401, 403))
    async def update_profile(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[OperatorUpdate]
    ) -> OperatorOut:
        return await operators.update_own_operator(operator, data)


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
        return await routes.get_itinerary(operator, route_id)

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
        return await routes.replace_itinerary(operator, route_id, data)

    @delete(
        "/{route_id:uuid}/itinerary",
        summary="Delete a draft route's itinerary",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def delete_itinerary(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> None:
        await routes.delete_itinerary(operator, route_id)

    @get(
        "/{route_id:uuid}/offers",
        summary="List a route's seasonal offers",
        responses=problem_responses(401, 403, 404),
    )
    async def list_offers(
        self, operator: NamedDependency[OperatorPrincipal], route_id: FromPath[UUID]
    ) -> list[SeasonalOfferOut]:
        return await routes.list_offers(operator, route_id)

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
        return await routes.create_offer(operator, route_id, data)

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
        return await routes.update_offer(operator, route_id, offer_id, data)

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
        await routes.delete_offer(operator, route_id, offer_id)

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
        return await vehicles.set_seat_block(operator, vehicle_id, label, data.reason.value)

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
        return await vehicles.set_seat_block(operator, vehicle_id, label, None)


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
        return await seat_blocks.replace_blocks(operator, departure_id, data)


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
