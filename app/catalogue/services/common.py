"""Lookups and conversions shared by the catalogue services."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast, overload
from uuid import UUID

from app.accounts.schemas import OperatorPrincipal
from app.accounts.tables import Operator
from app.catalogue.rows import DepartureRow, OperatorRow, RouteRow, VehicleRow
from app.catalogue.tables import Departure, Route, Vehicle
from app.core import clock
from app.core.errors import InvalidInput, NotFound
from app.core.i18n import _

Row = dict[str, Any]


def as_dict(value: Any) -> dict[str, Any] | None:
    """JSON columns come back decoded from Piccolo, or as text from raw SQL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return cast(dict[str, Any], value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    return cast(list[Any], value)


def as_uuid(value: object) -> UUID:
    """UUIDs from raw SQL: UUID objects on PostgreSQL, sometimes text on SQLite."""
    return value if isinstance(value, UUID) else UUID(str(value))


def as_datetime(value: Any) -> datetime | None:
    """Timestamps from raw SQL are text on SQLite and datetimes on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    moment = cast(datetime, value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_day_range(
    date_from: date | None, date_to: date | None, time_zone: str
) -> tuple[datetime | None, datetime | None]:
    """Inclusive local dates as a half-open UTC range [start of from, end of to)."""
    require_calendar_date("from", date_from)
    require_calendar_date("to", date_to)
    if date_from and date_to and date_to < date_from:
        raise InvalidInput(
            "to", _("The end of the range must not be before its start."), source="query"
        )
    tz = clock.zone(time_zone)
    start = datetime.combine(date_from, time(0), tzinfo=tz).astimezone(UTC) if date_from else None
    end = (
        datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        if date_to
        else None
    )
    return start, end


def in_zone(moment: datetime, time_zone: str) -> datetime:
    return moment.astimezone(clock.zone(time_zone))


def parse_clock_time(value: str | None) -> time | None:
    if value is None:
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def format_clock_time(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def text_dict(value: Mapping[Any, str] | None) -> dict[str, str] | None:
    return dict(value) if value is not None else None


@overload
def require_aware(field: str, moment: datetime) -> datetime: ...
@overload
def require_aware(field: str, moment: None) -> None: ...
@overload
def require_aware(field: str, moment: datetime | None) -> datetime | None: ...
def require_aware(field: str, moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidInput(
            field, _("Give the time with its UTC offset, e.g. 2026-05-16T08:30:00+08:00.")
        )
    require_calendar_date(field, moment.date(), source="body")
    return clock.to_utc(moment)


def require_calendar_date(field: str, day: date | None, source: str = "query") -> None:
    """A 400 naming `field` for a date no booking can be about (before 1970, after 2199)."""
    if day is not None and not clock.within_calendar(day):
        raise InvalidInput(
            field,
            _("Give a date between {earliest} and {latest}.").format(
                earliest=clock.EARLIEST_DATE.isoformat(), latest=clock.LATEST_DATE.isoformat()
            ),
            source=source,
        )


async def get_operator_row(operator_id: UUID) -> OperatorRow:
    row = (
        await Operator.select()
        .where(Operator.id == operator_id)
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Operator not found."), code="operator_not_found")
    return OperatorRow.from_row(row)


async def owned_route(principal: OperatorPrincipal, route_id: UUID) -> RouteRow:
    """The route if it belongs to the caller's operator; anything else is a 404."""
    row = (
        await Route.select()
        .where((Route.id == route_id) & (Route.operator == principal.operator_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Route not found."), code="route_not_found")
    return RouteRow.from_row(row)


async def owned_vehicle(
    principal: OperatorPrincipal, vehicle_id: UUID, field: str | None = None
) -> VehicleRow:
    row = (
        await Vehicle.select()
        .where((Vehicle.id == vehicle_id) & (Vehicle.operator == principal.operator_id))
        .first()
        .run()
    )
    if row is None:
        if field:
            raise InvalidInput(field, _("No such vehicle."), code="vehicle_not_found")
        raise NotFound(_("Vehicle not found."), code="vehicle_not_found")
    return VehicleRow.from_row(row)


async def owned_departure(principal: OperatorPrincipal, departure_id: UUID) -> DepartureRow:
    row = (
        await Departure.select()
        .where((Departure.id == departure_id) & (Departure.operator == principal.operator_id))
        .first()
        .run()
    )
    if row is None:
        raise NotFound(_("Departure not found."), code="departure_not_found")
    return DepartureRow.from_row(row)
