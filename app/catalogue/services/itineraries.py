"""A route's day-by-day itinerary: days, stops, times and activities."""

from __future__ import annotations

from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.routes import (
    ItineraryDayOut,
    ItineraryIn,
    ItineraryOut,
    ItineraryStopOut,
)
from app.catalogue.services.common import (
    as_dict,
    as_list,
    format_clock_time,
    owned_route,
    parse_clock_time,
    text_dict,
)
from app.catalogue.tables import (
    ItineraryDay,
    ItineraryStop,
    Route,
    RouteStatus,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.i18n import _


async def last_itinerary_day(route_id: UUID) -> int:
    row = (
        await ItineraryDay.select(ItineraryDay.day_number)
        .where(ItineraryDay.route == route_id)
        .order_by(ItineraryDay.day_number, ascending=False)
        .first()
        .run()
    )
    return int(row["day_number"]) if row else 0


async def itinerary_of(route_id: UUID) -> ItineraryOut:
    days = (
        await ItineraryDay.select()
        .where(ItineraryDay.route == route_id)
        .order_by(ItineraryDay.day_number)
        .output(load_json=True)
        .run()
    )
    stops_by_day: dict[UUID, list[ItineraryStopOut]] = {day["id"]: [] for day in days}
    if days:
        stops = (
            await ItineraryStop.select()
            .where(ItineraryStop.day.is_in(list(stops_by_day)))
            .order_by(ItineraryStop.stop_order)
            .output(load_json=True)
            .run()
        )
        for stop in stops:
            stops_by_day[stop["day"]].append(
                ItineraryStopOut(
                    place=as_dict(stop["place"]) or {},
                    arrive_time=format_clock_time(stop["arrive_time"]),
                    depart_time=format_clock_time(stop["depart_time"]),
                    activities=as_list(stop["activities"]),
                    coach_transfer=stop["coach_transfer"],
                    notes=as_dict(stop["notes"]),
                )
            )
    return ItineraryOut(
        days=[
            ItineraryDayOut(
                day_number=day["day_number"],
                title=as_dict(day["title"]) or {},
                description=as_dict(day["description"]),
                night_on_train=day["night_on_train"],
                stops=stops_by_day[day["id"]],
            )
            for day in days
        ]
    )


async def get_itinerary(principal: OperatorPrincipal, route_id: UUID) -> ItineraryOut:
    await owned_route(principal, route_id)
    return await itinerary_of(route_id)


def _check_itinerary(data: ItineraryIn, duration_days: int) -> None:
    seen: set[int] = set()
    for index, day in enumerate(data.days):
        if day.day_number in seen:
            raise InvalidInput(f"days[{index}].day_number", _("Each day number may appear once."))
        if day.day_number > duration_days:
            raise InvalidInput(
                f"days[{index}].day_number",
                _("The route lasts {days} days.").format(days=duration_days),
            )
        seen.add(day.day_number)
        for stop_index, stop in enumerate(day.stops):
            if stop.arrive_time and stop.depart_time and stop.depart_time < stop.arrive_time:
                raise InvalidInput(
                    f"days[{index}].stops[{stop_index}].depart_time",
                    _("Departure from a stop cannot be before arrival."),
                )


async def replace_itinerary(
    principal: OperatorPrincipal, route_id: UUID, data: ItineraryIn
) -> ItineraryOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        _check_itinerary(data, row.duration_days)
        await ItineraryDay.delete().where(ItineraryDay.route == route_id).run()
        for day in sorted(data.days, key=lambda d: d.day_number):
            day_row = ItineraryDay(
                route=route_id,
                day_number=day.day_number,
                title=dict(day.title),
                description=text_dict(day.description),
                night_on_train=day.night_on_train,
            )
            await day_row.save().run()
            if day.stops:
                await ItineraryStop.insert(
                    *[
                        ItineraryStop(
                            day=day_row.id,
                            stop_order=order,
                            place=dict(stop.place),
                            arrive_time=parse_clock_time(stop.arrive_time),
                            depart_time=parse_clock_time(stop.depart_time),
                            activities=[dict(activity) for activity in stop.activities],
                            coach_transfer=stop.coach_transfer,
                            notes=text_dict(stop.notes),
                        )
                        for order, stop in enumerate(day.stops, start=1)
                    ]
                ).run()
        await Route.update({Route.updated_at: clock.now()}).where(Route.id == route_id).run()
    return await itinerary_of(route_id)


async def delete_itinerary(principal: OperatorPrincipal, route_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        if row.status == RouteStatus.published:
            raise Conflict(_("A published route must keep its itinerary."), code="route_published")
        await ItineraryDay.delete().where(ItineraryDay.route == route_id).run()
