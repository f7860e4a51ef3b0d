"""Scheduling a season: a route's departures on chosen weekdays, created all at once or none."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import UUID

from app.accounts.operators import require_time_zone
from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.rows import DepartureRow
from app.catalogue.schemas.departures import BulkScheduleIn, BulkScheduleOut
from app.catalogue.services.common import (
    get_operator_row,
    in_zone,
    owned_route,
    parse_clock_time,
    require_calendar_date,
    text_dict,
)
from app.catalogue.services.departure_edits import _check_vehicle
from app.catalogue.services.departure_status import publish_problems
from app.catalogue.services.departures import departures_out
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    RouteStatus,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput
from app.core.i18n import _

MAX_BULK_DEPARTURES = 366


def season_dates(data: BulkScheduleIn) -> list[date]:
    require_calendar_date("start_date", data.start_date, source="body")
    require_calendar_date("end_date", data.end_date, source="body")
    if data.end_date < data.start_date:
        raise InvalidInput("end_date", _("The season must end on or after its start."))
    weekdays = set(data.weekdays)
    skips = set(data.skip_dates)
    for index, skipped in enumerate(data.skip_dates):
        if not data.start_date <= skipped <= data.end_date:
            raise InvalidInput(f"skip_dates[{index}]", _("This date is outside the season."))
    dates = []
    day = data.start_date
    while day <= data.end_date:
        if day.isoweekday() in weekdays and day not in skips:
            dates.append(day)
        day += timedelta(days=1)
    if not dates:
        raise InvalidInput("weekdays", _("No date of the season matches these weekdays."))
    if len(dates) > MAX_BULK_DEPARTURES:
        raise InvalidInput(
            "end_date",
            _("At most {count} departures per request.").format(count=MAX_BULK_DEPARTURES),
        )
    return dates


def _local(day: date, clock_time: str, time_zone: str) -> datetime:
    local_time = parse_clock_time(clock_time)
    assert local_time is not None
    return clock.to_utc(datetime.combine(day, local_time, tzinfo=clock.zone(time_zone)))


async def schedule_season(
    principal: OperatorPrincipal, route_id: UUID, data: BulkScheduleIn
) -> BulkScheduleOut:
    """Create (and optionally publish) a season's departures at once: all of them or none."""
    require_operator_admin(principal)
    operator = await get_operator_row(principal.operator_id)
    time_zone = require_time_zone("time_zone", data.time_zone or operator.time_zone)
    dates = season_dates(data)
    if (
        data.sales_open_days_before is not None
        and data.sales_open_days_before * 24 * 60 <= data.sales_close_minutes_before
    ):
        # The same rule as _check_schedule for one departure: sales open before they close.
        raise InvalidInput("sales_open_days_before", _("Sales must open before they close."))
    now = clock.now()
    async with write_transaction():
        route = await owned_route(principal, route_id)
        if route.status == RouteStatus.archived:
            raise Conflict(_("An archived route takes no new departures."), code="route_archived")
        await _check_vehicle(principal, data.vehicle_id, route)
        departures: list[Departure] = []
        stops: list[DepartureStop] = []
        for day in dates:
            departs_at = _local(day, data.departure_time, time_zone)
            if departs_at <= now:
                raise InvalidInput(
                    "start_date",
                    _("{day} is in the past; start the season later.").format(day=day.isoformat()),
                )
            returns_at = _local(
                day + timedelta(days=route.duration_days - 1), data.return_time, time_zone
            )
            if returns_at <= departs_at:
                raise InvalidInput("return_time", _("The return must be after the departure."))
            sales_open_at = (
                departs_at - timedelta(days=data.sales_open_days_before)
                if data.sales_open_days_before is not None
                else None
            )
            departure = Departure(
                operator=principal.operator_id,
                route=route_id,
                vehicle=data.vehicle_id,
                departs_at=departs_at,
                returns_at=returns_at,
                time_zone=time_zone,
                sales_open_at=sales_open_at,
                sales_close_at=departs_at - timedelta(minutes=data.sales_close_minutes_before),
                status=DepartureStatus.draft.value,
            )
            departures.append(departure)
            for index, stop in enumerate(data.stops):
                at = _local(day + timedelta(days=stop.day_offset), stop.time, time_zone)
                if not departs_at - timedelta(hours=12) <= at <= returns_at:
                    raise InvalidInput(
                        f"stops[{index}].time",
                        _("A stop must fall between 12 hours before departure and the return."),
                    )
                stops.append(
                    DepartureStop(
                        departure=departure.id,
                        stop_order=index + 1,
                        kind=stop.kind.value,
                        name=dict(stop.name),
                        address=text_dict(stop.address),
                        at=at,
                    )
                )
        existing = await (
            Departure.select(Departure.departs_at)
            .where(
                (Departure.route == route_id)
                & (Departure.status != DepartureStatus.cancelled.value)
                & Departure.departs_at.is_in([d.departs_at for d in departures])
            )
            .run()
        )
        if existing:
            taken = sorted(in_zone(row["departs_at"], time_zone).isoformat() for row in existing)
            raise Conflict(
                _("The route already departs at: {times}.").format(times=", ".join(taken)),
                code="departures_exist",
            )
        for start in range(0, len(departures), 100):
            await Departure.insert(*departures[start : start + 100]).run()
        for start in range(0, len(stops), 200):
            await DepartureStop.insert(*stops[start : start + 200]).run()
        if data.publish:
            # Published departures must be sellable: checked for every one before any commits.
            for departure in departures:
                row = await Departure.select().where(Departure.id == departure.id).first().run()
                assert row is not None
                problems = await publish_problems(DepartureRow.from_row(row), route)
                if problems:
                    raise Conflict(
                        _("The departures cannot be published yet."),
                        code="departure_not_publishable",
                        errors=problems,
                    )
            await (
                Departure.update({Departure.status: DepartureStatus.published.value})
                .where(Departure.id.is_in([d.id for d in departures]))
                .run()
            )
    rows = (
        await Departure.select()
        .where(Departure.id.is_in([d.id for d in departures]))
        .order_by(Departure.departs_at)
        .run()
    )
    return BulkScheduleOut(
        created=len(rows),
        departures=await departures_out([DepartureRow.from_row(row) for row in rows]),
    )
