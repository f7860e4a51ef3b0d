"""OCTO availability: departures (availabilities) of a product and option with vacancies
as the agency sees them, and the per-day calendar."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from app.booking.rows import DepartureRow
from app.booking.services.availability import class_counts, running_allotments
from app.catalogue.services.common import get_operator_row, in_zone
from app.catalogue.services.fares import effective_fares, route_fares
from app.catalogue.tables import Departure, DepartureStatus, PassengerType
from app.core import clock
from app.core.i18n import _
from app.partners.octo import (
    OctoError,
    check_option,
    parse_date,
    pickups_at,
    pricing,
    route_of,
    text_field,
    utc_text,
    whole_number,
)
from app.partners.pricing import agency_price_channel
from app.partners.rows import ProductRoute
from app.partners.schemas import AgencyPrincipal
from app.pricing.schemas import PartySeat
from app.pricing.services import price_party

# Below this share of seats left, availability is LIMITED rather than AVAILABLE.
LIMITED_SHARE = 0.2


def _status(departure: DepartureRow, capacity: int, vacancies: int, now: datetime) -> str:
    closes = departure.sales_end
    opens = departure.sales_open_at
    if departure.status != DepartureStatus.published or now >= closes or (opens and now < opens):
        return "CLOSED"
    if vacancies <= 0:
        return "SOLD_OUT"
    if vacancies < max(1, capacity * LIMITED_SHARE):
        return "LIMITED"
    return "AVAILABLE"


def _requested_units(body: dict[str, Any], units_sold: Collection[str]) -> dict[str, int]:
    """The units a request prices for, each one a unit the option is sold in."""
    units = body.get("units")
    if units is None:
        return {}
    if not isinstance(units, list):
        raise OctoError("BAD_REQUEST", "units must be a list of {id, quantity}")
    wanted: dict[str, int] = {}
    for index, unit in enumerate(units):
        if not isinstance(unit, dict):
            field = f"units[{index}]"
            raise OctoError("BAD_REQUEST", f"{field} must be an object", field=field)
        unit_id = text_field(unit, "id", where=f"units[{index}].id")
        quantity = whole_number(unit.get("quantity", 0), f"units[{index}].quantity")
        if unit_id not in units_sold:
            raise OctoError("INVALID_UNIT_ID", _("The unit ID was invalid"), unitId=unit_id)
        if quantity < 0:
            raise OctoError("BAD_REQUEST", "units[].quantity must be a whole number")
        wanted[unit_id] = wanted.get(unit_id, 0) + quantity
    return wanted


def _dates(body: dict[str, Any]) -> tuple[date, date] | list[str]:
    """Which availabilities a request asks for: exactly one of `localDate`, the pair
    `localDateStart` and `localDateEnd`, or `availabilityIds` (the specification's
    combinations); anything else is a BAD_REQUEST."""
    given = {
        name
        for name in ("localDate", "localDateStart", "localDateEnd", "availabilityIds")
        if body.get(name) is not None
    }
    if given == {"localDate"}:
        day = parse_date(body["localDate"], "localDate")
        return day, day
    if given == {"localDateStart", "localDateEnd"}:
        start = parse_date(body["localDateStart"], "localDateStart")
        end = parse_date(body["localDateEnd"], "localDateEnd")
        if end < start:
            raise OctoError("BAD_REQUEST", _("localDateEnd must not be before localDateStart"))
        return start, end
    if given == {"availabilityIds"}:
        ids = body["availabilityIds"]
        if not isinstance(ids, list) or not ids:
            raise OctoError("BAD_REQUEST", _("availabilityIds must be a list of availability IDs"))
        for index, availability_id in enumerate(ids):
            if not isinstance(availability_id, str):
                field = f"availabilityIds[{index}]"
                raise OctoError("BAD_REQUEST", f"{field} must be a string", field=field)
        return ids
    raise OctoError(
        "BAD_REQUEST",
        _("Give exactly one of localDate, localDateStart with localDateEnd, or availabilityIds"),
    )


async def availability(
    principal: AgencyPrincipal, body: dict[str, Any], capabilities: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Departures of a product and option on a local date or in a local date range, or
    by availability ids: vacancies as this agency sees them (its own allotment included,
    others' not)."""
    route = await route_of(principal, text_field(body, "productId"))
    option_id = text_field(body, "optionId")
    await check_option(route, option_id)
    return await _availabilities(principal, route, option_id, body, _dates(body), capabilities)


async def _availabilities(
    principal: AgencyPrincipal,
    route: ProductRoute,
    option_id: str,
    body: dict[str, Any],
    wanted_dates: tuple[date, date] | list[str],
    capabilities: Collection[str],
) -> list[dict[str, Any]]:
    operator = await get_operator_row(principal.operator_id)
    tz = clock.zone(operator.time_zone)
    query = Departure.select().where(
        (Departure.route == route.id)
        & Departure.status.is_in(
            [
                DepartureStatus.published.value,
                DepartureStatus.closed.value,
                DepartureStatus.cancelled.value,
            ]
        )
    )
    local_days: tuple[date, date] | None = None
    if isinstance(wanted_dates, list):
        parsed = []
        for availability_id in wanted_dates:
            try:
                parsed.append(UUID(availability_id))
            except ValueError:
                raise OctoError(
                    "INVALID_AVAILABILITY_ID", _("The availability ID was invalid"),
                    availabilityId=availability_id,
                ) from None  # fmt: skip
        query = query.where(Departure.id.is_in(parsed))
    else:
        start, end = local_days = wanted_dates
        # Widened by the most two zones' offsets differ (26 h): a departure's local date is
        # in its own zone (as localDateTimeStart is), kept or not below.
        query = query.where(
            (
                Departure.departs_at
                >= datetime.combine(start - timedelta(days=2), datetime.min.time(), tzinfo=tz)
            )
            & (
                Departure.departs_at
                < datetime.combine(end + timedelta(days=3), datetime.min.time(), tzinfo=tz)
            )
        )
    rows = await query.order_by(Departure.departs_at).run()
    departures = [DepartureRow.from_row(row) for row in rows]
    if local_days is not None:
        departures = [
            d
            for d in departures
            if local_days[0] <= in_zone(d.departs_at, d.time_zone).date() <= local_days[1]
        ]
    pickup_id = text_field(body, "pickupLocationId") or None
    price_channel = await agency_price_channel(principal.agency_id, route.id)
    counts = await class_counts([d.id for d in departures], principal.agency_id)
    fares = await effective_fares([(d.id, d.route_id) for d in departures])
    # The option's units: the passenger types it has a fare for, on the route or on one
    # of these departures.
    keys = {key for sheet in fares.values() for key in sheet}
    keys.update((await route_fares([route.id])).get(route.id, {}))
    wanted = _requested_units(body, {kind for seat_class, kind in keys if seat_class == option_id})
    allotments = {
        use.departure_id: use
        for use in await running_allotments([d.id for d in departures])
        if use.agency_id == principal.agency_id and use.seat_class == option_id
    }
    pickups = await pickups_at([d.id for d in departures], pickup_id) if pickup_id else {}
    now = clock.now()
    result = []
    for departure in departures:
        in_class = counts[departure.id].get(option_id)
        if in_class is None:
            continue
        vacancies = max(0, in_class.free)
        status = _status(departure, in_class.capacity, vacancies, now)
        local_start = in_zone(departure.departs_at, departure.time_zone)
        local_end = in_zone(departure.returns_at, departure.time_zone)
        item: dict[str, Any] = {
            "id": str(departure.id),
            "localDateTimeStart": local_start.isoformat(),
            "localDateTimeEnd": local_end.isoformat(),
            "allDay": False,
            "available": status in ("AVAILABLE", "LIMITED"),
            "status": status,
            "vacancies": vacancies,
            "capacity": in_class.capacity,
            "maxUnits": min(10, vacancies),
            "utcCutoffAt": utc_text(departure.sales_end),
            "openingHours": [],
        }
        if "octo/pricing" in capabilities:
            # One unit of each passenger type the option has a fare for.
            units = price_party(
                fares[departure.id],
                [
                    PartySeat(seat_class, PassengerType(kind))
                    for seat_class, kind in fares[departure.id]
                    if seat_class == option_id
                ],
                price_channel,
            )
            unit_prices = [
                pricing(
                    unit.retail.amount,
                    unit.charged.amount,
                    unit.retail.currency,
                    unit_id=unit.seat.passenger_type.value,
                )
                for unit in units.seats
            ]
            item["unitPricing"] = unit_prices
            by_unit = {price["unitId"]: price for price in unit_prices}
            # The asked-for units, else one adult (else one of the first unit).
            chosen = wanted or {next(iter(sorted(by_unit, key=_adult_first)), "adult"): 1}
            chosen = {unit: n for unit, n in chosen.items() if unit in by_unit}
            # The units' prices times their (unbounded) quantities: a party's price is the
            # sum of its seats', and no party of that size need be built to say so.
            item["pricing"] = pricing(
                sum(by_unit[unit]["retail"] * n for unit, n in chosen.items()),
                sum(by_unit[unit]["net"] * n for unit, n in chosen.items()),
                unit_prices[0]["currency"] if unit_prices else operator.currency,
            )
        if "octo/content" in capabilities:
            item["title"] = None
            item["shortDescription"] = _("Departs at {time} ({zone})").format(
                time=local_start.strftime("%H:%M"), zone=departure.time_zone
            )
        if pickup_id:
            stop = pickups.get(departure.id)
            at = in_zone(stop.at, departure.time_zone).isoformat() if stop else None
            item["localPickupDateTimeStart"] = at
            item["localPickupDateTimeEnd"] = at
        own = allotments.get(departure.id)
        if own is not None:
            # Not in OCTO: the seats kept for this agency, and until when.
            item["allotment"] = {
                "seats": own.seats,
                "used": own.used,
                "unused": own.unused,
                "utcReleaseAt": utc_text(own.release_at),
            }
        result.append(item)
    return result


def _adult_first(unit_id: str) -> tuple[bool, str]:
    return unit_id != PassengerType.adult.value, unit_id


async def calendar(
    principal: AgencyPrincipal, body: dict[str, Any], capabilities: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Per local date: the best status of that day's departures and their vacancies."""
    route = await route_of(principal, text_field(body, "productId"))
    option_id = text_field(body, "optionId")
    await check_option(route, option_id)
    start = parse_date(body.get("localDateStart"), "localDateStart")
    end = parse_date(body.get("localDateEnd"), "localDateEnd")
    if end < start or (end - start).days > 366:
        raise OctoError("BAD_REQUEST", _("Give a range of at most 366 days, end not before start"))
    slots = await _availabilities(principal, route, option_id, body, (start, end), capabilities)
    operator_currency = (await get_operator_row(principal.operator_id)).currency
    by_day: dict[str, list[dict[str, Any]]] = {}
    for slot in slots:
        by_day.setdefault(slot["localDateTimeStart"][:10], []).append(slot)
    order = ["AVAILABLE", "LIMITED", "SOLD_OUT", "CLOSED"]
    days = []
    day = start
    while day <= end:
        key = day.isoformat()
        today = by_day.get(key, [])
        status = min((s["status"] for s in today), key=order.index) if today else "CLOSED"
        entry: dict[str, Any] = {
            "localDate": key,
            "available": status in ("AVAILABLE", "LIMITED"),
            "status": status,
            "vacancies": sum(s["vacancies"] for s in today),
            "capacity": sum(s["capacity"] for s in today),
            "openingHours": [],
        }
        if "octo/pricing" in capabilities:
            cheapest: dict[str, dict[str, Any]] = {}
            for slot in today:
                for price in slot.get("unitPricing", []):
                    best = cheapest.get(price["unitId"])
                    if best is None or price["retail"] < best["retail"]:
                        cheapest[price["unitId"]] = price
            entry["unitPricingFrom"] = list(cheapest.values())
            priced = [slot["pricing"] for slot in today]
            entry["pricingFrom"] = (
                min(priced, key=lambda price: price["retail"])
                if priced
                else pricing(0, 0, operator_currency)
            )
        days.append(entry)
        day += timedelta(days=1)
    return days
