"""What the public may see of the catalogue, shared by the public views: published routes,
visible departures, the operators behind them and the offers in season."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.accounts.tables import Operator
from app.catalogue.rows import DepartureRow, RouteRow
from app.catalogue.schemas.public import OperatorBrief, PublicSeasonalOffer
from app.catalogue.schemas.routes import SeasonalOfferOut
from app.catalogue.services.common import as_dict
from app.catalogue.tables import Departure, DepartureStatus, Route, RouteKind, RouteStatus
from app.core.errors import NotFound
from app.core.i18n import _, localize

# Departures the public may open by id; drafts are never visible.
VISIBLE_DEPARTURE_STATUSES = (
    DepartureStatus.published.value,
    DepartureStatus.closed.value,
    DepartureStatus.cancelled.value,
    DepartureStatus.departed.value,
)
# Departures listed under a route.
LISTED_DEPARTURE_STATUSES = (DepartureStatus.published.value, DepartureStatus.closed.value)


@dataclass(frozen=True, slots=True)
class PublicOperator:
    id: UUID
    slug: str
    name: dict[str, str]
    default_locale: str
    time_zone: str

    def brief(self) -> OperatorBrief:
        return OperatorBrief(slug=self.slug, name=localize(self.name, self.default_locale))


@dataclass(frozen=True, slots=True)
class VisibleRoute:
    """A published route, with what a departure's public view shows of it."""

    id: UUID
    slug: str
    kind: RouteKind
    name: dict[str, str]
    meeting_point: dict[str, str] | None
    operator: PublicOperator


@dataclass(frozen=True, slots=True)
class VisibleDeparture:
    """A departure the public may open (never a draft), on a published route."""

    id: UUID
    vehicle_id: UUID | None
    status: DepartureStatus
    departs_at: datetime
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None
    route: VisibleRoute

    def on_sale(self, now: datetime) -> bool:
        return (
            self.status == DepartureStatus.published
            and self.departs_at > now
            and (self.sales_open_at is None or self.sales_open_at <= now)
            and (self.sales_close_at is None or self.sales_close_at > now)
        )


async def operators_by_id(operator_ids: list[UUID]) -> dict[UUID, PublicOperator]:
    if not operator_ids:
        return {}
    rows = (
        await Operator.select(
            Operator.id, Operator.slug, Operator.name, Operator.default_locale, Operator.time_zone
        )
        .where(Operator.id.is_in(operator_ids))
        .output(load_json=True)
        .run()
    )
    return {
        row["id"]: PublicOperator(
            id=row["id"],
            slug=row["slug"],
            name=as_dict(row["name"]) or {},
            default_locale=row["default_locale"],
            time_zone=row["time_zone"],
        )
        for row in rows
    }


async def published_route(slug: str) -> RouteRow:
    row = (
        await Route.select()
        .where((Route.slug == slug) & (Route.status == RouteStatus.published.value))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Route not found."), code="route_not_found")
    return RouteRow.from_row(row)


async def visible_route(route: RouteRow) -> VisibleRoute:
    operator = (await operators_by_id([route.operator_id]))[route.operator_id]
    return VisibleRoute(
        id=route.id,
        slug=route.slug,
        kind=route.kind,
        name=route.name,
        meeting_point=route.meeting_point,
        operator=operator,
    )


def visible_departure_of(departure: DepartureRow, route: VisibleRoute) -> VisibleDeparture:
    return VisibleDeparture(
        id=departure.id,
        vehicle_id=departure.vehicle_id,
        status=departure.status,
        departs_at=departure.departs_at,
        returns_at=departure.returns_at,
        time_zone=departure.time_zone,
        sales_open_at=departure.sales_open_at,
        sales_close_at=departure.sales_close_at,
        route=route,
    )


async def visible_departure(departure_id: UUID) -> VisibleDeparture:
    """The departure if the public may see it; a draft, or one of an unpublished route,
    is a 404."""
    row = (
        await Departure.select()
        .where(
            (Departure.id == departure_id)
            & Departure.status.is_in(list(VISIBLE_DEPARTURE_STATUSES))
        )
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    route = (
        await Route.select().where(Route.id == row["route"]).first().output(load_json=True).run()
    )
    if route is None or route["status"] != RouteStatus.published:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return visible_departure_of(
        DepartureRow.from_row(row), await visible_route(RouteRow.from_row(route))
    )


def public_offer(offer: SeasonalOfferOut, fallback: str) -> PublicSeasonalOffer:
    return PublicSeasonalOffer(
        name=localize(offer.name, fallback),
        description=localize(offer.description, fallback) if offer.description else None,
        months=offer.months,
    )


def offers_in_season(
    offers: list[SeasonalOfferOut], moment: datetime, fallback: str
) -> list[PublicSeasonalOffer]:
    return [public_offer(offer, fallback) for offer in offers if moment.month in offer.months]
