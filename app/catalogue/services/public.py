"""What tourists see: published routes and departures, in the reader's language."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from app.catalogue.schemas import (
    OperatorBrief,
    PolicyTierOut,
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicFare,
    PublicItineraryDay,
    PublicItineraryStop,
    PublicRouteDetail,
    PublicRouteSummary,
    PublicSeasonalOffer,
    PublicSeat,
    PublicSeatMap,
    PublicStop,
)
from app.catalogue.services.availability import (
    allotment_holdback,
    availability_by_departure,
    held_back_seats,
)
from app.catalogue.services.common import (
    Row,
    as_datetime,
    as_dict,
    as_list,
    in_zone,
    local_day_range,
)
from app.catalogue.services.fares import effective_fares, lowest_adult_price, route_fares
from app.catalogue.services.routes import itinerary_of, offers_of, themes_by_route
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    DepartureStatus,
    DepartureStop,
    Operator,
    PassengerType,
    Route,
    RouteKind,
    RouteStatus,
    Seat,
)
from app.core import clock
from app.core.errors import NotFound
from app.core.i18n import _, localize
from app.core.labels import datetime_text, duration_label
from app.core.money import Money, PriceOut
from app.core.pagination import Page, PageParams, fetch_page, page_of

# Departures the public may open by id; drafts are never visible.
VISIBLE_DEPARTURE_STATUSES = (
    DepartureStatus.published.value,
    DepartureStatus.closed.value,
    DepartureStatus.cancelled.value,
    DepartureStatus.departed.value,
)
# Departures listed under a route.
LISTED_DEPARTURE_STATUSES = (DepartureStatus.published.value, DepartureStatus.closed.value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _offers_in_season(
    offers: list[Row], moment: datetime, fallback: str
) -> list[PublicSeasonalOffer]:
    return [
        _public_offer(offer, fallback)
        for offer in offers
        if moment.month in as_list(offer["months"])
    ]


def _public_offer(offer: Row, fallback: str) -> PublicSeasonalOffer:
    description = as_dict(offer["description"])
    return PublicSeasonalOffer(
        name=localize(as_dict(offer["name"]), fallback),
        description=localize(description, fallback) if description else None,
        months=as_list(offer["months"]),
    )


async def _operators(operator_ids: list[UUID]) -> dict[UUID, Row]:
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
    return {row["id"]: row for row in rows}


def _operator_brief(operator: Row) -> OperatorBrief:
    return OperatorBrief(
        slug=operator["slug"],
        name=localize(as_dict(operator["name"]), operator["default_locale"]),
    )


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
    operators = await _operators(sorted({row["operator"] for row in rows}))
    themes = await themes_by_route(route_ids)
    prices = await _lowest_adult_prices(route_ids, now)
    items = []
    for row in rows:
        operator = operators[row["operator"]]
        fallback = operator["default_locale"]
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
                operator=_operator_brief(operator),
                next_departure_at=(
                    in_zone(next_departure, operator["time_zone"]) if next_departure else None
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
    availability = await availability_by_departure([row["id"] for row in upcoming])
    lowest: dict[UUID, Money] = {}
    for row in upcoming:
        classes = {c.seat_class for c in availability[row["id"]] if c.capacity > 0}
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


async def _published_route(slug: str) -> Row:
    row = (
        await Route.select()
        .where((Route.slug == slug) & (Route.status == RouteStatus.published.value))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Route not found."), code="route_not_found")
    return dict(row)


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
    row = await _published_route(slug)
    operator = (await _operators([row["operator"]]))[row["operator"]]
    fallback = operator["default_locale"]
    itinerary = await itinerary_of(row["id"])
    offers = await offers_of([row["id"]])
    meeting_point = as_dict(row["meeting_point"])
    return PublicRouteDetail(
        slug=row["slug"],
        kind=RouteKind(row["kind"]),
        themes=(await themes_by_route([row["id"]]))[row["id"]],
        name=localize(as_dict(row["name"]), fallback),
        description=localize(as_dict(row["description"]), fallback),
        duration_days=row["duration_days"],
        duration=duration_label(row["duration_days"]),
        meeting_point=localize(meeting_point, fallback) if meeting_point else None,
        cancellation_policy=[PolicyTierOut(**tier) for tier in as_list(row["cancellation_policy"])],
        operator=_operator_brief(operator),
        itinerary=[
            PublicItineraryDay(
                day_number=day.day_number,
                title=localize(day.title, fallback),
                description=localize(day.description, fallback) if day.description else None,
                night_on_train=day.night_on_train,
                stops=[
                    PublicItineraryStop(
                        place=localize(stop.place, fallback),
                        arrive_time=stop.arrive_time,
                        depart_time=stop.depart_time,
                        activities=[localize(activity, fallback) for activity in stop.activities],
                        coach_transfer=stop.coach_transfer,
                        notes=localize(stop.notes, fallback) if stop.notes else None,
                    )
                    for stop in day.stops
                ],
            )
            for day in itinerary.days
        ],
        seasonal_offers=[_public_offer(offer, fallback) for offer in offers],
        next_departure_at=await _next_departure(row["id"], operator["time_zone"]),
    )


def _on_sale(row: Row, now: datetime) -> bool:
    return (
        row["status"] == DepartureStatus.published
        and row["departs_at"] > now
        and (row["sales_open_at"] is None or row["sales_open_at"] <= now)
        and (row["sales_close_at"] is None or row["sales_close_at"] > now)
    )


async def list_route_departures(
    slug: str, params: PageParams, date_from: date | None, date_to: date | None
) -> Page[PublicDepartureSummary]:
    """Upcoming departures of a route, between local dates (inclusive) of its operator's zone."""
    route = await _published_route(slug)
    operator = (await _operators([route["operator"]]))[route["operator"]]
    now = clock.now()
    departs_from, departs_to = local_day_range(date_from, date_to, operator["time_zone"])
    where = (Departure.route == route["id"]) & Departure.status.is_in(
        list(LISTED_DEPARTURE_STATUSES)
    )
    where = where & (Departure.departs_at >= max(departs_from or now, now))
    if departs_to is not None:
        where = where & (Departure.departs_at < departs_to)
    rows, total = await fetch_page(
        Departure, where, params, [(Departure.departs_at, True), (Departure.id, True)]
    )
    ids = [row["id"] for row in rows]
    availability = await availability_by_departure(ids)
    fares = await effective_fares([(row["id"], row["route"]) for row in rows])
    offers = await offers_of([route["id"]])
    fallback = operator["default_locale"]
    items = []
    for row in rows:
        classes = availability[row["id"]]
        tz = row["time_zone"]
        departs_local = in_zone(row["departs_at"], tz)
        price = lowest_adult_price(
            {key: money for key, (money, _source) in fares[row["id"]].items()},
            {c.seat_class for c in classes},
        )
        items.append(
            PublicDepartureSummary(
                id=row["id"],
                route_slug=route["slug"],
                status=DepartureStatus(row["status"]),
                departs_at=departs_local,
                departs_at_text=datetime_text(departs_local),
                returns_at=in_zone(row["returns_at"], tz),
                time_zone=tz,
                on_sale=_on_sale(row, now),
                seats_left=sum(c.seats_left for c in classes),
                classes=classes,
                lowest_adult_price=PriceOut.of(price) if price else None,
                offers_in_season=_offers_in_season(offers, departs_local, fallback),
            )
        )
    return page_of(items, params, total)


async def _visible_departure(departure_id: UUID) -> tuple[Row, Row]:
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
    return row, route


async def get_departure(departure_id: UUID) -> PublicDepartureDetail:
    row, route = await _visible_departure(departure_id)
    operator = (await _operators([route["operator"]]))[route["operator"]]
    fallback = operator["default_locale"]
    tz = row["time_zone"]
    stops = (
        await DepartureStop.select()
        .where(DepartureStop.departure == departure_id)
        .order_by(DepartureStop.stop_order)
        .output(load_json=True)
        .run()
    )
    classes = (await availability_by_departure([departure_id]))[departure_id]
    fares = (await effective_fares([(departure_id, row["route"])]))[departure_id]
    offers = await offers_of([route["id"]])
    departs_local = in_zone(row["departs_at"], tz)
    meeting_point = as_dict(route["meeting_point"])
    sold_classes = {c.seat_class for c in classes}
    return PublicDepartureDetail(
        id=row["id"],
        route_slug=route["slug"],
        route_name=localize(as_dict(route["name"]), fallback),
        kind=RouteKind(route["kind"]),
        status=DepartureStatus(row["status"]),
        departs_at=departs_local,
        departs_at_text=datetime_text(departs_local),
        returns_at=in_zone(row["returns_at"], tz),
        time_zone=tz,
        sales_open_at=in_zone(row["sales_open_at"], tz) if row["sales_open_at"] else None,
        sales_close_at=in_zone(row["sales_close_at"], tz) if row["sales_close_at"] else None,
        on_sale=_on_sale(row, clock.now()),
        meeting_point=localize(meeting_point, fallback) if meeting_point else None,
        stops=[
            PublicStop(
                id=stop["id"],
                kind=stop["kind"],
                name=localize(as_dict(stop["name"]), fallback),
                address=localize(as_dict(stop["address"]), fallback) if stop["address"] else None,
                at=in_zone(stop["at"], tz),
            )
            for stop in stops
        ],
        fares=[
            PublicFare(
                seat_class=seat_class,
                passenger_type=PassengerType(passenger_type),
                price=PriceOut.of(money),
            )
            for (seat_class, passenger_type), (money, _source) in fares.items()
            if seat_class in sold_classes
        ],
        seats_left=sum(c.seats_left for c in classes),
        classes=classes,
        offers_in_season=_offers_in_season(offers, departs_local, fallback),
    )


async def taken_seats(departure_id: UUID) -> set[UUID]:
    """Seats held by live bookings, except holds whose time has run out."""
    rows = await Departure.raw(
        """
        SELECT l.seat AS seat FROM booking_line l JOIN booking b ON b.id = l.booking
        WHERE l.departure = {} AND l.live
          AND NOT (b.status = 'on_hold' AND b.expires_at <= {})
        """,
        departure_id,
        clock.now(),
    ).run()
    return {
        row["seat"] if isinstance(row["seat"], UUID) else UUID(str(row["seat"])) for row in rows
    }


async def get_seat_map(departure_id: UUID) -> PublicSeatMap:
    row, route = await _visible_departure(departure_id)
    seats: list[Row] = []
    blocked: set[UUID] = set()
    if row["vehicle"] is not None:
        seats = (
            await Seat.select().where(Seat.vehicle == row["vehicle"]).order_by(Seat.sort_key).run()
        )
        blocked = {
            block["seat"]
            for block in await DepartureSeatBlock.select(DepartureSeatBlock.seat)
            .where(DepartureSeatBlock.departure == departure_id)
            .run()
        }
        blocked |= await taken_seats(departure_id)
        free = [
            (seat["id"], seat["seat_class"])
            for seat in seats
            if seat["blocked_reason"] is None and seat["id"] not in blocked
        ]
        kept = (await allotment_holdback([departure_id]))[departure_id]
        blocked |= held_back_seats(free, kept)
    on_sale = _on_sale(row, clock.now())
    return PublicSeatMap(
        departure_id=departure_id,
        kind=RouteKind(route["kind"]),
        seats=[
            PublicSeat(
                label=seat["label"],
                seat_class=seat["seat_class"],
                position=seat["position"],
                car=seat["car"],
                compartment=seat["compartment"],
                row=seat["seat_row"],
                free=on_sale and seat["blocked_reason"] is None and seat["id"] not in blocked,
            )
            for seat in seats
        ],
    )
