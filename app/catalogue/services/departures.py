"""Departures: dated runs of a route with a vehicle, their stops, blocks, status and seasons."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas import (
    BulkScheduleIn,
    BulkScheduleOut,
    DepartureBlocksIn,
    DepartureCreate,
    DepartureOut,
    DepartureSeatBlockOut,
    DepartureStopIn,
    DepartureStopOut,
    DepartureUpdate,
)
from app.catalogue.services.availability import capacity_by_departure
from app.catalogue.services.common import (
    Row,
    as_dict,
    get_operator_row,
    in_zone,
    local_day_range,
    owned_departure,
    owned_route,
    owned_vehicle,
    parse_clock_time,
    require_aware,
    require_calendar_date,
    require_time_zone,
    text_dict,
)
from app.catalogue.services.fares import effective_fares
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    DepartureStatus,
    DepartureStop,
    Route,
    RouteStatus,
    Seat,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.i18n import _
from app.core.labels import status_label
from app.core.pagination import Page, PageParams, fetch_page, page_of

MAX_BULK_DEPARTURES = 366
# How early before its scheduled time a departure may be marked as departed.
DEPART_EARLY = timedelta(hours=2)

_TRANSITIONS: dict[DepartureStatus, set[DepartureStatus]] = {
    DepartureStatus.draft: {DepartureStatus.published, DepartureStatus.cancelled},
    DepartureStatus.published: {
        DepartureStatus.draft,
        DepartureStatus.closed,
        DepartureStatus.cancelled,
        DepartureStatus.departed,
    },
    DepartureStatus.closed: {
        DepartureStatus.published,
        DepartureStatus.cancelled,
        DepartureStatus.departed,
    },
    DepartureStatus.cancelled: set(),
    DepartureStatus.departed: set(),
}
_EDITABLE = {DepartureStatus.draft, DepartureStatus.published, DepartureStatus.closed}


# ---------------------------------------------------------------- reading


async def booked_seats(departure_id: UUID) -> set[UUID]:
    """Seats held by a live booking line on this departure."""
    from app.booking.tables import BookingLine

    rows = (
        await BookingLine.select(BookingLine.seat)
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )
    return {row["seat"] for row in rows}


async def has_live_bookings(departure_id: UUID) -> bool:
    from app.booking.tables import BookingLine

    return bool(
        await BookingLine.exists()
        .where((BookingLine.departure == departure_id) & (BookingLine.live == True))  # noqa: E712
        .run()
    )


async def departures_out(rows: list[Row]) -> list[DepartureOut]:
    ids = [row["id"] for row in rows]
    if not ids:
        return []
    stops = (
        await DepartureStop.select()
        .where(DepartureStop.departure.is_in(ids))
        .order_by(DepartureStop.stop_order)
        .output(load_json=True)
        .run()
    )
    stops_by_departure: dict[UUID, list[Row]] = {departure_id: [] for departure_id in ids}
    for stop in stops:
        stops_by_departure[stop["departure"]].append(stop)
    blocks = (
        await DepartureSeatBlock.select(
            DepartureSeatBlock.departure, DepartureSeatBlock.reason, DepartureSeatBlock.seat.label
        )
        .where(DepartureSeatBlock.departure.is_in(ids))
        .run()
    )
    blocks_by_departure: dict[UUID, list[DepartureSeatBlockOut]] = {d: [] for d in ids}
    for block in blocks:
        blocks_by_departure[block["departure"]].append(
            DepartureSeatBlockOut(label=block["seat.label"], reason=block["reason"])
        )
    slugs = {
        row["id"]: row["slug"]
        for row in await Route.select(Route.id, Route.slug)
        .where(Route.id.is_in(sorted({row["route"] for row in rows})))
        .run()
    }
    capacity = await capacity_by_departure(ids)
    result = []
    for row in rows:
        tz = row["time_zone"]
        result.append(
            DepartureOut(
                id=row["id"],
                route_id=row["route"],
                route_slug=slugs[row["route"]],
                vehicle_id=row["vehicle"],
                status=row["status"],
                departs_at=in_zone(row["departs_at"], tz),
                returns_at=in_zone(row["returns_at"], tz),
                time_zone=tz,
                sales_open_at=in_zone(row["sales_open_at"], tz) if row["sales_open_at"] else None,
                # No explicit close means sales close at departure.
                sales_close_at=in_zone(row["sales_close_at"] or row["departs_at"], tz),
                stops=[
                    DepartureStopOut(
                        kind=stop["kind"],
                        name=as_dict(stop["name"]) or {},
                        address=as_dict(stop["address"]),
                        at=in_zone(stop["at"], tz),
                    )
                    for stop in stops_by_departure[row["id"]]
                ],
                capacity_by_class=capacity[row["id"]],
                blocked=sorted(blocks_by_departure[row["id"]], key=lambda b: b.label),
                notes=row["notes"],
                guide_phone=row["guide_phone"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
        )
    return result


async def departure_out(departure_id: UUID) -> DepartureOut:
    row = await Departure.select().where(Departure.id == departure_id).first().run()
    if row is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return (await departures_out([row]))[0]


async def list_departures(
    principal: OperatorPrincipal,
    params: PageParams,
    route_id: UUID | None = None,
    status: DepartureStatus | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> Page[DepartureOut]:
    """The operator's departures, between local dates (inclusive) of the operator's zone."""
    operator = await get_operator_row(principal.operator_id)
    departs_from, departs_to = local_day_range(date_from, date_to, operator["time_zone"])
    where: Combinable = Departure.operator == principal.operator_id
    if route_id is not None:
        where = where & (Departure.route == route_id)
    if status is not None:
        where = where & (Departure.status == status.value)
    if departs_from is not None:
        where = where & (Departure.departs_at >= departs_from)
    if departs_to is not None:
        where = where & (Departure.departs_at < departs_to)
    rows, total = await fetch_page(
        Departure, where, params, [(Departure.departs_at, True), (Departure.id, True)]
    )
    return page_of(await departures_out(rows), params, total)


async def get_departure(principal: OperatorPrincipal, departure_id: UUID) -> DepartureOut:
    await owned_departure(principal, departure_id)
    return await departure_out(departure_id)


# ---------------------------------------------------------------- writing


class _Schedule(msgspec.Struct, kw_only=True):
    departs_at: datetime
    returns_at: datetime
    time_zone: str
    sales_open_at: datetime | None
    sales_close_at: datetime | None


def _check_schedule(schedule: _Schedule) -> None:
    if schedule.returns_at <= schedule.departs_at:
        raise InvalidInput("returns_at", _("The return must be after the departure."))
    if schedule.sales_close_at and schedule.sales_close_at > schedule.departs_at:
        raise InvalidInput("sales_close_at", _("Sales must close by the departure time."))
    if (
        schedule.sales_open_at
        and schedule.sales_close_at
        and schedule.sales_open_at >= schedule.sales_close_at
    ):
        raise InvalidInput("sales_open_at", _("Sales must open before they close."))


def _stop_rows(
    departure_id: UUID, stops: list[DepartureStopIn], schedule: _Schedule
) -> list[DepartureStop]:
    rows = []
    earliest = schedule.departs_at - timedelta(hours=12)
    for index, stop in enumerate(stops):
        at = require_aware(f"stops[{index}].at", stop.at)
        assert at is not None
        if not earliest <= at <= schedule.returns_at:
            raise InvalidInput(
                f"stops[{index}].at",
                _("A stop must fall between 12 hours before departure and the return."),
            )
        rows.append(
            DepartureStop(
                departure=departure_id,
                stop_order=index + 1,
                kind=stop.kind.value,
                name=dict(stop.name),
                address=text_dict(stop.address),
                at=at,
            )
        )
    return rows


async def _check_vehicle(principal: OperatorPrincipal, vehicle_id: UUID | None, route: Row) -> None:
    if vehicle_id is None:
        return
    vehicle = await owned_vehicle(principal, vehicle_id, field="vehicle_id")
    if vehicle["kind"] != route["kind"]:
        raise InvalidInput(
            "vehicle_id", _("A {kind} route needs a {kind} vehicle.").format(kind=route["kind"])
        )


async def create_departure(principal: OperatorPrincipal, data: DepartureCreate) -> DepartureOut:
    require_operator_admin(principal)
    operator = await get_operator_row(principal.operator_id)
    async with write_transaction():
        try:
            route = await owned_route(principal, data.route_id)
        except NotFound:
            raise InvalidInput("route_id", _("No such route."), code="route_not_found") from None
        if route["status"] == RouteStatus.archived:
            raise Conflict(_("An archived route takes no new departures."), code="route_archived")
        await _check_vehicle(principal, data.vehicle_id, route)
        departs_at = require_aware("departs_at", data.departs_at)
        assert departs_at is not None
        returns_at = require_aware("returns_at", data.returns_at) or departs_at + timedelta(
            days=route["duration_days"]
        )
        schedule = _Schedule(
            departs_at=departs_at,
            returns_at=returns_at,
            time_zone=require_time_zone("time_zone", data.time_zone or operator["time_zone"]),
            sales_open_at=require_aware("sales_open_at", data.sales_open_at),
            sales_close_at=require_aware("sales_close_at", data.sales_close_at),
        )
        _check_schedule(schedule)
        departure = Departure(
            operator=principal.operator_id,
            route=route["id"],
            vehicle=data.vehicle_id,
            departs_at=schedule.departs_at,
            returns_at=schedule.returns_at,
            time_zone=schedule.time_zone,
            sales_open_at=schedule.sales_open_at,
            sales_close_at=schedule.sales_close_at,
            status=DepartureStatus.draft.value,
            notes=data.notes,
            guide_phone=data.guide_phone or "",
        )
        stops = _stop_rows(departure.id, data.stops, schedule)
        await departure.save().run()
        if stops:
            await DepartureStop.insert(*stops).run()
    return await departure_out(departure.id)


async def update_departure(
    principal: OperatorPrincipal, departure_id: UUID, data: DepartureUpdate
) -> DepartureOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if DepartureStatus(row["status"]) not in _EDITABLE:
            raise Conflict(
                _("A {status} departure cannot be changed.").format(
                    status=status_label(row["status"])
                ),
                code="departure_not_editable",
            )
        route = await owned_route(principal, row["route"])
        values: dict[Any, Any] = {Departure.updated_at: clock.now()}
        if data.vehicle_id is not msgspec.UNSET:
            if row["status"] != DepartureStatus.draft and data.vehicle_id != row["vehicle"]:
                raise Conflict(
                    _("Unpublish the departure before changing its vehicle."),
                    code="departure_published",
                )
            await _check_vehicle(principal, data.vehicle_id, route)
            values[Departure.vehicle] = data.vehicle_id

        def pick(field: str, value: Any) -> Any:
            return row[field] if value is msgspec.UNSET else value

        schedule = _Schedule(
            departs_at=require_aware("departs_at", pick("departs_at", data.departs_at)),
            returns_at=require_aware("returns_at", pick("returns_at", data.returns_at)),
            time_zone=require_time_zone("time_zone", pick("time_zone", data.time_zone)),
            sales_open_at=require_aware("sales_open_at", pick("sales_open_at", data.sales_open_at)),
            sales_close_at=require_aware(
                "sales_close_at", pick("sales_close_at", data.sales_close_at)
            ),
        )
        _check_schedule(schedule)
        if (
            row["status"] != DepartureStatus.draft
            and data.departs_at is not msgspec.UNSET
            and schedule.departs_at <= clock.now()
        ):
            raise InvalidInput("departs_at", _("A departure on sale cannot move into the past."))
        values.update(
            {
                Departure.departs_at: schedule.departs_at,
                Departure.returns_at: schedule.returns_at,
                Departure.time_zone: schedule.time_zone,
                Departure.sales_open_at: schedule.sales_open_at,
                Departure.sales_close_at: schedule.sales_close_at,
            }
        )
        if data.notes is not msgspec.UNSET:
            values[Departure.notes] = data.notes
        if data.guide_phone is not msgspec.UNSET:
            values[Departure.guide_phone] = data.guide_phone or ""
        if data.stops is not msgspec.UNSET:
            stops = _stop_rows(departure_id, data.stops, schedule)
            await DepartureStop.delete().where(DepartureStop.departure == departure_id).run()
            if stops:
                await DepartureStop.insert(*stops).run()
        else:
            # The kept stops must still fall in the (possibly moved) window.
            earliest = schedule.departs_at - timedelta(hours=12)
            kept = await DepartureStop.select(DepartureStop.at).where(
                DepartureStop.departure == departure_id
            )
            if any(not earliest <= stop["at"] <= schedule.returns_at for stop in kept):
                raise InvalidInput(
                    "stops",
                    _("A stop must fall between 12 hours before departure and the return."),
                )
        await Departure.update(values).where(Departure.id == departure_id).run()
        changes = [
            name
            for name, before, after in (
                ("departs_at", row["departs_at"], schedule.departs_at),
                ("returns_at", row["returns_at"], schedule.returns_at),
            )
            if before != after
        ]
        if data.stops is not msgspec.UNSET:
            changes.append("stops")
        if changes and await has_live_bookings(departure_id):
            from app.notifications.services.outbox import enqueue

            version = clock.now().isoformat()
            await enqueue(
                "departure.changed",
                f"departure.changed:{departure_id}:{version}",
                {"departure_id": str(departure_id), "version": version, "changes": changes},
            )
    return await departure_out(departure_id)


async def delete_departure(principal: OperatorPrincipal, departure_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if row["status"] != DepartureStatus.draft:
            raise Conflict(
                _("Only a draft departure can be deleted; cancel it instead."),
                code="departure_not_draft",
            )
        await Departure.delete().where(Departure.id == departure_id).run()


async def publish_problems(row: Row, route: Row) -> list[FieldError]:
    """Why a departure cannot go on sale yet (empty when it can)."""
    problems = []
    if route["status"] != RouteStatus.published:
        problems.append(FieldError(field="route", message=_("Publish the route first.")))
    if row["departs_at"] <= clock.now():
        problems.append(FieldError(field="departs_at", message=_("The departure is in the past.")))
    if row["vehicle"] is None:
        problems.append(FieldError(field="vehicle_id", message=_("Assign a vehicle first.")))
        return problems
    capacity = (await capacity_by_departure([row["id"]]))[row["id"]]
    if not capacity:
        problems.append(
            FieldError(field="vehicle_id", message=_("The vehicle has no seat on sale."))
        )
    fares = (await effective_fares([(row["id"], row["route"])]))[row["id"]]
    priced_classes = {seat_class for seat_class, _type in fares}
    for seat_class in capacity:
        if seat_class not in priced_classes:
            problems.append(
                FieldError(
                    field="fares",
                    message=_("No fare for seat class {seat_class}.").format(seat_class=seat_class),
                )
            )
    return problems


async def change_departure_status(
    principal: OperatorPrincipal,
    departure_id: UUID,
    target: DepartureStatus,
    only_from: set[DepartureStatus] | None = None,
) -> DepartureOut:
    """The one place a departure changes status; publishing checks it can be sold.

    `only_from` narrows the allowed starting states for actions such as reopen
    (closed -> published), which must not publish a draft.
    """
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        current = DepartureStatus(row["status"])
        if target not in _TRANSITIONS[current] or (only_from and current not in only_from):
            raise Conflict(
                _("A {current} departure cannot become {target}.").format(
                    current=status_label(current.value), target=status_label(target.value)
                ),
                code="illegal_transition",
            )
        if target == DepartureStatus.departed and clock.now() < row["departs_at"] - DEPART_EARLY:
            raise Conflict(
                _("A departure can be marked departed from two hours before it leaves."),
                code="departure_not_due",
            )
        if target == DepartureStatus.draft and await has_live_bookings(departure_id):
            raise Conflict(
                _("The departure has bookings; close or cancel it instead."),
                code="departure_has_bookings",
            )
        if target == DepartureStatus.published:
            route = await owned_route(principal, row["route"])
            problems = await publish_problems(row, route)
            if problems:
                raise Conflict(
                    _("The departure cannot be published yet."),
                    code="departure_not_publishable",
                    errors=problems,
                )
        await (
            Departure.update({Departure.status: target.value, Departure.updated_at: clock.now()})
            .where(Departure.id == departure_id)
            .run()
        )
    return await departure_out(departure_id)


async def replace_blocks(
    principal: OperatorPrincipal, departure_id: UUID, data: DepartureBlocksIn
) -> DepartureOut:
    """Seats kept off sale on this departure only (this run's guides or medical staff)."""
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_departure(principal, departure_id)
        if row["vehicle"] is None:
            raise InvalidInput("blocks", _("Assign a vehicle first."))
        labels = [block.label for block in data.blocks]
        if len(set(labels)) != len(labels):
            raise InvalidInput("blocks", _("Each seat may be blocked once."))
        seats = {}
        if labels:
            seats = {
                seat["label"]: seat["id"]
                for seat in await Seat.select(Seat.id, Seat.label)
                .where((Seat.vehicle == row["vehicle"]) & Seat.label.is_in(labels))
                .run()
            }
        for index, label in enumerate(labels):
            if label not in seats:
                raise InvalidInput(f"blocks[{index}].label", _("No such seat on this vehicle."))
        booked = await booked_seats(departure_id)
        for index, label in enumerate(labels):
            if seats[label] in booked:
                raise Conflict(
                    _("Seat {label} is booked; it cannot be blocked.").format(label=label),
                    code="seat_booked",
                    errors=[FieldError(field=f"blocks[{index}].label", message=_("Booked."))],
                )
        await DepartureSeatBlock.delete().where(DepartureSeatBlock.departure == departure_id).run()
        if data.blocks:
            await DepartureSeatBlock.insert(
                *[
                    DepartureSeatBlock(
                        departure=departure_id, seat=seats[block.label], reason=block.reason.value
                    )
                    for block in data.blocks
                ]
            ).run()
        await (
            Departure.update({Departure.updated_at: clock.now()})
            .where(Departure.id == departure_id)
            .run()
        )
    return await departure_out(departure_id)


# ---------------------------------------------------------------- bulk scheduling


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
    time_zone = require_time_zone("time_zone", data.time_zone or operator["time_zone"])
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
        if route["status"] == RouteStatus.archived:
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
                day + timedelta(days=route["duration_days"] - 1), data.return_time, time_zone
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
                problems = await publish_problems(row, route)
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
    return BulkScheduleOut(created=len(rows), departures=await departures_out(rows))
