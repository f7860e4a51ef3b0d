"""Published departures as tourists see them: the catalogue's schedule, stops and fares,
with the seats left that only the inventory knows."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from app.booking.services.availability import (
    allotment_holdback,
    availability_by_departure,
    held_back_seats,
    taken_seats,
)
from app.catalogue.schemas.public import (
    PublicDepartureDetail,
    PublicDepartureSummary,
    PublicSeat,
    PublicSeatMap,
)
from app.catalogue.services import public_departures
from app.catalogue.services.published import visible_departure
from app.core import clock
from app.core.pagination import Page, PageParams


async def list_route_departures(
    slug: str, params: PageParams, date_from: date | None, date_to: date | None
) -> Page[PublicDepartureSummary]:
    """Upcoming departures of a route with seats left per class, between local dates
    (inclusive) of its operator's zone."""
    listing = await public_departures.route_departures(slug, params, date_from, date_to)
    availability = await availability_by_departure([d.id for d in listing.departures])
    return await public_departures.departure_summaries(listing, availability)


async def get_departure(departure_id: UUID) -> PublicDepartureDetail:
    departure = await visible_departure(departure_id)
    classes = (await availability_by_departure([departure_id]))[departure_id]
    return await public_departures.departure_detail(departure, classes)


async def get_seat_map(departure_id: UUID) -> PublicSeatMap:
    """Every seat of the departure with whether it is free: not blocked, not taken by a
    live booking and not kept for an agency's allotment (while the departure is on sale)."""
    departure = await visible_departure(departure_id)
    seats = await public_departures.seat_plan(departure)
    unavailable: set[UUID] = set()
    if seats:
        unavailable = await taken_seats(departure_id)
        free = [
            (seat.id, seat.seat_class)
            for seat in seats
            if not seat.blocked and seat.id not in unavailable
        ]
        kept = (await allotment_holdback([departure_id]))[departure_id]
        unavailable |= held_back_seats(free, kept)
    on_sale = departure.on_sale(clock.now())
    return PublicSeatMap(
        departure_id=departure_id,
        kind=departure.route.kind,
        seats=[
            PublicSeat(
                label=seat.label,
                seat_class=seat.seat_class,
                position=seat.position,
                car=seat.car,
                compartment=seat.compartment,
                row=seat.row,
                free=on_sale and not seat.blocked and seat.id not in unavailable,
            )
            for seat in seats
        ],
    )
