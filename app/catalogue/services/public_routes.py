"""Published routes as tourists find and read them, in the reader's language."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from app.catalogue.schemas.public import PublicRouteDetail, PublicRouteSummary
from app.catalogue.schemas.routes import PolicyTierOut
from app.catalogue.services.capacity import capacity_by_departure
from app.catalogue.services.common import as_datetime, as_dict, in_zone, local_day_range
from app.catalogue.services.fares import effective_fares, lowest_adult_price, route_fares
from app.catalogue.services.itineraries import itinerary_of, public_days
from app.catalogue.services.offers import offers_of
from app.catalogue.services.published import operators_by_id, public_offer, published_route
from app.catalogue.services.routes import themes_by_route
from app.catalogue.tables import Departure, DepartureStatus, Route, RouteKind, RouteStatus
from app.core import clock
from app.core.i18n import localize
from app.core.labels import duration_label
from app.core.money import Money, PriceOut
from app.core.pagination import Page, PageParams, page_of


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_routes(
    params: PageParams,
    theme: str | None = None,
    kind: RouteKind | None = None,
    query: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    operator_slug: str | None = None,
    *,
    time_zone: str,
) -> Page[PublicRouteSummary]:
    """Published routes matching the filters, soonest next departure first.

    The travel dates are local dates in `time_zone` (the service's), both inclusive.
    """
    now = clock.now()
    travel_from, travel_to = local_day_range(date_from, date_to, time_zone)
    conditions = ["r.status = {}"]
    args: list[Any] = [RouteStatus.published.value]
    if kind is not None:
        conditions.append("r.kind = {}")
        args.append(kind.value)
    if theme:
        conditions.append("r.id IN (SELECT t.route FROM route_theme t WHERE t.theme = {})")
        args.append(theme)
    if query and query.strip():
        conditions.append("r.search_text LIKE {} ESCAPE '\\'")
        args.append(f"%{_escape_like(query.strip().lower())}%")
    if operator_slug:
        conditions.append("r.operator IN (SELECT o.id FROM operator o WHERE o.slug = {})")
        args.append(operator_slug)
    if travel_from is not None or travel_to is not None:
        range_conditions = ["d2.route = r.id", "d2.status = {}"]
        args.append(DepartureStatus.published.value)
        if travel_from is not None:
            range_conditions.append("d2.departs_at >= {}")
            args.append(travel_from)
        if travel_to is not None:
            range_conditions.append("d2.departs_at < {}")
            args.append(travel_to)
        conditions.append(
            f"EXISTS (SELECT 1 FROM departure d2 WHERE {' AND '.join(range_conditions)})"
        )
    where = " AND ".join(conditions)
    count_rows = await Route.raw(f"SELECT COUNT(*) AS n FROM route r WHERE {where}", *args).run()
    total = int(count_rows[0]["n"])
    rows = await Route.raw(
        f"""
        SELECT * FROM (
            SELECT r.id, r.slug, r.kind, r.name, r.description, r.duration_days, r.operator,
                   (SELECT MIN(d.departs_at) FROM departure d
                     WHERE d.route = r.id AND d.status = {{}} AND d.departs_at > {{}})
                     AS next_departure_at
            FROM route r
            WHERE {where}
        ) AS listed
        ORDER BY CASE WHEN next_departure_at IS NULL THEN 1 ELSE 0 END, next_departure_at, slug
        LIMIT {{}} OFFSET {{}}
        """,
        DepartureStatus.published.value,
        now,
        *args,
        params.page_size,
        params.offset,
    ).run()
    for row in rows:
        if not isinstance(row["id"], UUID):
            row["id"] = UUID(str(row["id"]))
            row["operator"] = UUID(str(row["operator"]))
    route_ids = [row["id"] for row in rows]
    operators = await operators_by_id(sorted({row["operator"] for row in rows}))
    themes = await themes_by_route(route_ids)
    prices = await _lowest_adult_prices(route_ids, now)
    items = []
    for row in rows:
        operator = operators[row["operator"]]
        fallback = operator.default_locale
        next_departure = as_datetime(row["next_departure_at"])
        items.append(
            PublicRouteSummary(
                slug=row["slug"],
                kind=RouteKind(row["kind"]),
                themes=themes[row["id"]],
                name=localize(as_dict(row["name"]), fallback),
                description=localize(as_dict(row["description"]), fallback),
                duration_days=int(row["duration_days"]),
                duration=duration_label(int(row["duration_days"])),
                operator=operator.brief(),
                next_departure_at=(
                    in_zone(next_departure, operator.time_zone) if next_departure else None
                ),
                lowest_adult_price=PriceOut.of(prices[row["id"]])
                if prices.get(row["id"])
                else None,
            )
        )
    return page_of(items, params, total)


async def _lowest_adult_prices(route_ids: list[UUID], now: datetime) -> dict[UUID, Money]:
    """Cheapest adult price of each route over its upcoming published departures."""
    if not route_ids:
        return {}
    upcoming = (
        await Departure.select(Departure.id, Departure.route)
        .where(
            Departure.route.is_in(route_ids)
            & (Departure.status == DepartureStatus.published.value)
            & (Departure.departs_at > now)
        )
        .run()
    )
    fares = await effective_fares([(row["id"], row["route"]) for row in upcoming])
    capacity = await capacity_by_departure([row["id"] for row in upcoming])
    lowest: dict[UUID, Money] = {}
    for row in upcoming:
        classes = set(capacity[row["id"]])
        price = lowest_adult_price(
            {key: money for key, (money, _source) in fares[row["id"]].items()}, classes
        )
        current = lowest.get(row["route"])
        if price and (current is None or price.amount < current.amount):
            lowest[row["route"]] = price
    without = [route_id for route_id in route_ids if route_id not in lowest]
    for route_id, route_fare in (await route_fares(without)).items():
        price = lowest_adult_price(route_fare)
        if price:
            lowest[route_id] = price
    return lowest


async def _next_departure(route_id: UUID, time_zone: str) -> datetime | None:
    row = (
        await Departure.select(Departure.departs_at)
        .where(
            (Departure.route == route_id)
            & (Departure.status == DepartureStatus.published.value)
            & (Departure.departs_at > clock.now())
        )
        .order_by(Departure.departs_at)
        .first()
        .run()
    )
    return in_zone(row["departs_at"], time_zone) if row else None


async def get_route(slug: str) -> PublicRouteDetail:
    row = await published_route(slug)
    operator = (await operators_by_id([row.operator_id]))[row.operator_id]
    fallback = operator.default_locale
    itinerary = await itinerary_of(row.id)
    offers = await offers_of([row.id])
    meeting_point = row.meeting_point
    return PublicRouteDetail(
        slug=row.slug,
        kind=row.kind,
        themes=(await themes_by_route([row.id]))[row.id],
        name=localize(row.name, fallback),
        description=localize(row.description, fallback),
        duration_days=row.duration_days,
        duration=duration_label(row.duration_days),
        meeting_point=localize(meeting_point, fallback) if meeting_point else None,
        cancellation_policy=[PolicyTierOut(**tier) for tier in row.cancellation_policy],
        operator=operator.brief(),
        itinerary=public_days(itinerary, fallback),
        seasonal_offers=[public_offer(offer, fallback) for offer in offers],
        next_departure_at=await _next_departure(row.id, operator.time_zone),
    )
