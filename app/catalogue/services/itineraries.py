"""A route's day-by-day itinerary: days, stops, times and activities, and each day's plan
(where the night is spent, the meals included, when to be back on the train); and the
itinerary as readers see it, on the route or dated for one departure."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.public import (
    PublicHotel,
    PublicItineraryDay,
    PublicItineraryStop,
    TripDay,
)
from app.catalogue.schemas.routes import (
    HotelIn,
    HotelOut,
    ItineraryDayIn,
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
    Meal,
    Route,
    RouteKind,
    RouteStatus,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.i18n import _, localize

MEAL_ORDER = list(Meal)


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
                overnight=_overnight_out(day),
                night_on_train=day["night_on_train"],
                meals=[Meal(meal) for meal in as_list(day["meals"])],
                back_on_board_at=format_clock_time(day["back_on_board_at"]),
                stops=stops_by_day[day["id"]],
            )
            for day in days
        ]
    )


def _overnight_out(day: dict[str, Any]) -> Literal["train"] | HotelOut | None:
    if day["night_on_train"]:
        return "train"
    hotel = as_dict(day["hotel"])
    if hotel is None:
        return None
    return HotelOut(name=hotel["name"], address=hotel["address"], phone=hotel.get("phone"))


def public_days(itinerary: ItineraryOut, fallback: str) -> list[PublicItineraryDay]:
    """The itinerary in the reader's language (`fallback`: the operator's)."""
    return [
        PublicItineraryDay(
            day_number=day.day_number,
            title=localize(day.title, fallback),
            description=localize(day.description, fallback) if day.description else None,
            overnight=_public_overnight(day.overnight, fallback),
            night_on_train=day.night_on_train,
            meals=day.meals,
            back_on_board_at=day.back_on_board_at,
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
    ]


def _public_overnight(
    overnight: Literal["train"] | HotelOut | None, fallback: str
) -> Literal["train"] | PublicHotel | None:
    if overnight is None or overnight == "train":
        return overnight
    return PublicHotel(
        name=localize(overnight.name, fallback),
        address=localize(overnight.address, fallback),
        phone=overnight.phone,
    )


async def trip_days(
    route_id: UUID, departs_at: datetime, time_zone: str, fallback: str
) -> list[TripDay]:
    """The route's day plans on the calendar of a departure that leaves at `departs_at`:
    day 1 is its local departure date, and each back-on-board time a moment in its zone."""
    zone = clock.zone(time_zone)
    first: date = departs_at.astimezone(zone).date()
    days = []
    for day in public_days(await itinerary_of(route_id), fallback):
        on = first + timedelta(days=day.day_number - 1)
        back = parse_clock_time(day.back_on_board_at)
        days.append(
            TripDay(
                day_number=day.day_number,
                date=on,
                title=day.title,
                description=day.description,
                overnight=day.overnight,
                meals=day.meals,
                back_on_board_at=datetime.combine(on, back, tzinfo=zone) if back else None,
                stops=day.stops,
            )
        )
    return days


async def get_itinerary(principal: OperatorPrincipal, route_id: UUID) -> ItineraryOut:
    await owned_route(principal, route_id)
    return await itinerary_of(route_id)


def _check_itinerary(data: ItineraryIn, duration_days: int, kind: RouteKind) -> None:
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
        _check_day_plan(index, day, duration_days, kind)


def _check_day_plan(index: int, day: ItineraryDayIn, duration_days: int, kind: RouteKind) -> None:
    """Where the night is spent, the meals and the time to be back on board make sense."""
    field = f"days[{index}]"
    overnight = _overnight_in(day)
    if day.night_on_train and isinstance(day.overnight, HotelIn):
        raise InvalidInput(
            f"{field}.night_on_train",
            _("A night is spent either on the train or in a hotel, not both."),
        )
    if overnight is not None and day.day_number == duration_days:
        raise InvalidInput(
            f"{field}.overnight",
            _("The trip ends on day {day}: there is no night to spend.").format(day=duration_days),
        )
    if overnight == "train" and kind != RouteKind.train:
        raise InvalidInput(
            f"{field}.overnight", _("Only a train line can spend the night on board.")
        )
    if len(set(day.meals)) != len(day.meals):
        raise InvalidInput(f"{field}.meals", _("Each meal may appear once."))
    if day.back_on_board_at is not None:
        if overnight != "train":
            raise InvalidInput(
                f"{field}.back_on_board_at",
                _("Only a day whose night is spent on the train has a time to be back on board."),
            )
        for stop in day.stops:
            if stop.arrive_time and stop.arrive_time > day.back_on_board_at:
                raise InvalidInput(
                    f"{field}.back_on_board_at",
                    _("Back on board cannot be before the arrival at {place} ({time}).").format(
                        place=localize(text_dict(stop.place)), time=stop.arrive_time
                    ),
                )


def _overnight_in(day: ItineraryDayIn) -> Literal["train"] | HotelIn | None:
    """The day's night as sent: `overnight`, or `night_on_train` from older clients."""
    if day.overnight is None and day.night_on_train:
        return "train"
    return day.overnight


def _hotel_row(hotel: HotelIn) -> dict[str, Any]:
    return {"name": dict(hotel.name), "address": dict(hotel.address), "phone": hotel.phone}


async def replace_itinerary(
    principal: OperatorPrincipal, route_id: UUID, data: ItineraryIn
) -> ItineraryOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        _check_itinerary(data, row.duration_days, row.kind)
        await ItineraryDay.delete().where(ItineraryDay.route == route_id).run()
        for day in sorted(data.days, key=lambda d: d.day_number):
            overnight = _overnight_in(day)
            day_row = ItineraryDay(
                route=route_id,
                day_number=day.day_number,
                title=dict(day.title),
                description=text_dict(day.description),
                night_on_train=overnight == "train",
                hotel=_hotel_row(overnight) if isinstance(overnight, HotelIn) else None,
                meals=[meal.value for meal in MEAL_ORDER if meal in day.meals],
                back_on_board_at=parse_clock_time(day.back_on_board_at),
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
