"""Published departures as tourists read them: schedule, stops, fares and offers.

How many seats are left is the booking domain's to say: its public views
(`app.booking.services.public_departures`) count them and hand them in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from app.catalogue.rows import DepartureRow
from app.catalogue.schemas.public import (
    ClassAvailability,
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicFare,
    PublicStop,
)
from app.catalogue.services.common import Row, as_dict, in_zone, local_day_range
from app.catalogue.services.fares import effective_fares, lowest_adult_price
from app.catalogue.services.offers import offers_of
from app.catalogue.services.published import (
    LISTED_DEPARTURE_STATUSES,
    VisibleDeparture,
    VisibleRoute,
    offers_in_season,
    published_route,
    visible_departure_of,
    visible_route,
)
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    DepartureStop,
    PassengerType,
    Seat,
)
from app.core import clock
from app.core.i18n import localize
from app.core.labels import datetime_text
from app.core.money import PriceOut
from app.core.pagination import Page, PageParams, fetch_page, page_of


@dataclass(frozen=True, slots=True)
class RouteDepartures:
    """One page of a published route's upcoming departures."""

    route: VisibleRoute
    departures: list[VisibleDeparture]
    total: int
    params: PageParams


@dataclass(frozen=True, slots=True)
class PlannedSeat:
    """A seat of a departure's vehicle; `blocked` when kept off sale on the vehicle or on
    this departure."""

    id: UUID
    label: str
    seat_class: str
    position: str | None
    car: int | None
    compartment: int | None
    row: int | None
    blocked: bool


async def route_departures(
    slug: str, params: PageParams, date_from: date | None, date_to: date | None
) -> RouteDepartures:
    """Upcoming departures of a route, between local dates (inclusive) of its operator's zone."""
    route = await visible_route(await published_route(slug))
    now = clock.now()
    departs_from, departs_to = local_day_range(date_from, date_to, route.operator.time_zone)
    where = (Departure.route == route.id) & Departure.status.is_in(list(LISTED_DEPARTURE_STATUSES))
    where = where & (Departure.departs_at >= max(departs_from or now, now))
    if departs_to is not None:
        where = where & (Departure.departs_at < departs_to)
    rows, total = await fetch_page(
        Departure, where, params, [(Departure.departs_at, True), (Departure.id, True)]
    )
    departures = [visible_departure_of(DepartureRow.from_row(row), route) for row in rows]
    return RouteDepartures(route=route, departures=departures, total=total, params=params)


async def departure_summaries(
    listing: RouteDepartures, classes_by_departure: dict[UUID, list[ClassAvailability]]
) -> Page[PublicDepartureSummary]:
    """The page of departures, each with its seats left per class (`classes_by_departure`)."""
    route = listing.route
    fares = await effective_fares([(d.id, route.id) for d in listing.departures])
    offers = await offers_of([route.id])
    fallback = route.operator.default_locale
    now = clock.now()
    items = []
    for departure in listing.departures:
        classes = classes_by_departure[departure.id]
        tz = departure.time_zone
        departs_local = in_zone(departure.departs_at, tz)
        price = lowest_adult_price(
            {key: money for key, (money, _source) in fares[departure.id].items()},
            {c.seat_class for c in classes},
        )
        items.append(
            PublicDepartureSummary(
                id=departure.id,
                route_slug=route.slug,
                status=departure.status,
                departs_at=departs_local,
                departs_at_text=datetime_text(departs_local),
                returns_at=in_zone(departure.returns_at, tz),
                time_zone=tz,
                on_sale=departure.on_sale(now),
                seats_left=sum(c.seats_left for c in classes),
                classes=classes,
                lowest_adult_price=PriceOut.of(price) if price else None,
                offers_in_season=offers_in_season(offers, departs_local, fallback),
            )
        )
    return page_of(items, listing.params, listing.total)


async def departure_detail(
    departure: VisibleDeparture, classes: list[ClassAvailability]
) -> PublicDepartureDetail:
    """The departure with stops, fares of the classes on sale and its seats left per class
    (`classes`)."""
    route = departure.route
    fallback = route.operator.default_locale
    tz = departure.time_zone
    stops: list[Row] = (
        await DepartureStop.select()
        .where(DepartureStop.departure == departure.id)
        .order_by(DepartureStop.stop_order)
        .output(load_json=True)
        .run()
    )
    fares = (await effective_fares([(departure.id, route.id)]))[departure.id]
    offers = await offers_of([route.id])
    departs_local = in_zone(departure.departs_at, tz)
    sold_classes = {c.seat_class for c in classes}
    return PublicDepartureDetail(
        id=departure.id,
        route_slug=route.slug,
        route_name=localize(route.name, fallback),
        kind=route.kind,
        status=departure.status,
        departs_at=departs_local,
        departs_at_text=datetime_text(departs_local),
        returns_at=in_zone(departure.returns_at, tz),
        time_zone=tz,
        sales_open_at=in_zone(departure.sales_open_at, tz) if departure.sales_open_at else None,
        sales_close_at=in_zone(departure.sales_close_at, tz) if departure.sales_close_at else None,
        on_sale=departure.on_sale(clock.now()),
        meeting_point=localize(route.meeting_point, fallback) if route.meeting_point else None,
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
        offers_in_season=offers_in_season(offers, departs_local, fallback),
    )


async def seat_plan(departure: VisibleDeparture) -> list[PlannedSeat]:
    """The seats of the departure's vehicle in seat order (none without a vehicle)."""
    if departure.vehicle_id is None:
        return []
    seats = (
        await Seat.select()
        .where(Seat.vehicle == departure.vehicle_id)
        .order_by(Seat.sort_key)
        .run()
    )
    blocked_here = {
        block["seat"]
        for block in await DepartureSeatBlock.select(DepartureSeatBlock.seat)
        .where(DepartureSeatBlock.departure == departure.id)
        .run()
    }
    return [
        PlannedSeat(
            id=seat["id"],
            label=seat["label"],
            seat_class=seat["seat_class"],
            position=seat["position"],
            car=seat["car"],
            compartment=seat["compartment"],
            row=seat["seat_row"],
            blocked=seat["blocked_reason"] is not None or seat["id"] in blocked_here,
        )
        for seat in seats
    ]
