"""The OCTO view of the catalogue: products (routes), options (seat classes), units
(passenger types), availability (departures). Specification: octotravel/octo-types.

Only routes the agency's contract allows, published, of the agency's operator, are
visible; anything else is an OCTO error as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from babel.numbers import get_currency_precision

from app.catalogue.services.availability import class_counts, running_allotments
from app.catalogue.services.common import as_dict, as_list, get_operator_row, in_zone
from app.catalogue.services.fares import effective_fares
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    PassengerType,
    Route,
    RouteStatus,
    Seat,
    StopKind,
)
from app.core import clock
from app.core.i18n import localize
from app.partners.pricing import agency_pricing
from app.partners.schemas import AgencyPrincipal
from app.partners.tables import Agency

UNIT_TYPES = {
    PassengerType.adult: "ADULT",
    PassengerType.child: "CHILD",
    PassengerType.senior: "SENIOR",
}
# Below this share of seats left, availability is LIMITED rather than AVAILABLE.
LIMITED_SHARE = 0.2


def utc_text(moment: datetime) -> str:
    """A moment as OCTO writes UTC times: ISO 8601 ending in Z."""
    return moment.astimezone(clock.zone("UTC")).isoformat().replace("+00:00", "Z")


class OctoError(Exception):
    """An OCTO error body: {"error": CODE, "errorMessage": ...} with extra ids."""

    def __init__(
        self,
        error: str,
        message: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "errorMessage": self.message, **self.extra}


async def agency_row(principal: AgencyPrincipal) -> dict[str, Any]:
    row = (
        await Agency.select()
        .where(Agency.id == principal.agency_id)
        .first()
        .output(load_json=True)
        .run()
    )
    assert row is not None
    return dict(row)


async def _routes(principal: AgencyPrincipal) -> list[dict[str, Any]]:
    agency = await agency_row(principal)
    query = Route.select().where(
        (Route.operator == principal.operator_id) & (Route.status == RouteStatus.published.value)
    )
    allowed = [UUID(str(r)) for r in as_list(agency["allowed_routes"])]
    if allowed:
        query = query.where(Route.id.is_in(allowed))
    return [dict(r) for r in await query.order_by(Route.slug).output(load_json=True).run()]


async def route_of(principal: AgencyPrincipal, product_id: str) -> dict[str, Any]:
    for route in await _routes(principal):
        if str(route["id"]) == product_id:
            return route
    raise OctoError(
        "INVALID_PRODUCT_ID", "The product ID was invalid or missing", productId=product_id
    )


async def _classes(route: dict[str, Any]) -> list[str]:
    """Seat classes sold on the route's departures (the route's options)."""
    vehicles = {
        row["vehicle"]
        for row in await Departure.select(Departure.vehicle)
        .where((Departure.route == route["id"]) & Departure.vehicle.is_not_null())
        .run()
    }
    if not vehicles:
        return []
    rows = (
        await Seat.select(Seat.seat_class)
        .where(Seat.vehicle.is_in(list(vehicles)))
        .distinct()
        .run()
    )
    return sorted({row["seat_class"] for row in rows})


async def check_option(route: dict[str, Any], option_id: str) -> None:
    if option_id not in await _classes(route):
        raise OctoError(
            "INVALID_OPTION_ID", "The option ID was invalid or missing", optionId=option_id
        )


async def departure_of(route: dict[str, Any], availability_id: str) -> UUID:
    """The departure behind an availability id, if it belongs to the product."""
    try:
        departure_id = UUID(availability_id)
    except ValueError:
        departure_id = None
    found = (
        departure_id is not None
        and await Departure.exists()
        .where((Departure.id == departure_id) & (Departure.route == route["id"]))
        .run()
    )
    if not found or departure_id is None:
        raise OctoError(
            "INVALID_AVAILABILITY_ID", "The availability ID was invalid",
            availabilityId=availability_id,
        )  # fmt: skip
    return departure_id


async def supplier(principal: AgencyPrincipal) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    name = localize(as_dict(operator["name"]), operator["default_locale"])
    return {
        "id": str(operator["id"]),
        "name": name,
        "endpoint": "/octo",
        "contact": {
            "website": None,
            "email": operator["contact_email"],
            "telephone": operator["contact_phone"],
            "address": None,
        },
    }


def pickup_location_id(stop_name: Any) -> str:
    """A pick-up point's id, the same on every departure that stops there (stops are
    stored per departure): derived from its name."""
    digest = hashlib.sha1(json.dumps(as_dict(stop_name), sort_keys=True).encode()).hexdigest()
    return f"pickup-{digest[:12]}"


def pickup_location(stop: dict[str, Any], fallback: str) -> dict[str, Any]:
    address = localize(as_dict(stop["address"]), fallback) if stop["address"] else None
    return {
        "id": pickup_location_id(stop["name"]),
        "title": localize(as_dict(stop["name"]), fallback),
        "shortDescription": address,
        "place": {
            "latitude": None,
            "longitude": None,
            "postalAddress": {"streetAddress": address} if address else None,
        },
    }


async def _pickup_stops(route: dict[str, Any]) -> list[dict[str, Any]]:
    """Pick-up stops of the route's departures still to come, one per place."""
    departures = [
        row["id"]
        for row in await Departure.select(Departure.id)
        .where(
            (Departure.route == route["id"])
            & (Departure.departs_at > clock.now())
            & (Departure.status == DepartureStatus.published.value)
        )
        .run()
    ]
    if not departures:
        return []
    stops = (
        await DepartureStop.select()
        .where(
            DepartureStop.departure.is_in(departures)
            & (DepartureStop.kind == StopKind.pickup.value)
        )
        .order_by(DepartureStop.stop_order)
        .output(load_json=True)
        .run()
    )
    unique: dict[str, dict[str, Any]] = {}
    for stop in stops:
        unique.setdefault(pickup_location_id(stop["name"]), dict(stop))
    return list(unique.values())


async def pickups_at(departure_ids: list[UUID], location_id: str) -> dict[UUID, dict[str, Any]]:
    """Per departure, its stop at a pick-up location (departures that do not stop there
    are left out); one query for them all."""
    if not departure_ids:
        return {}
    stops = (
        await DepartureStop.select()
        .where(
            DepartureStop.departure.is_in(departure_ids)
            & (DepartureStop.kind == StopKind.pickup.value)
        )
        .output(load_json=True)
        .run()
    )
    return {
        stop["departure"]: dict(stop)
        for stop in stops
        if pickup_location_id(stop["name"]) == location_id
    }


def pricing(retail: int, net: int, currency: str, unit_id: str | None = None) -> dict[str, Any]:
    """An OCTO Pricing object (minor units); with `unitId` for per-unit pricing."""
    item: dict[str, Any] = {"unitId": unit_id} if unit_id is not None else {}
    item.update(
        {
            "original": retail,
            "retail": retail,
            "net": net,
            "currency": currency,
            "currencyPrecision": get_currency_precision(currency),
            "includedTaxes": [],
        }
    )
    return item


async def _product(
    route: dict[str, Any], operator: dict[str, Any], capabilities: Collection[str]
) -> dict[str, Any]:
    fallback = operator["default_locale"]
    pickups = (
        [pickup_location(stop, fallback) for stop in await _pickup_stops(route)]
        if "octo/pickups" in capabilities
        else []
    )
    options = []
    for index, seat_class in enumerate(await _classes(route)):
        options.append(
            {
                "id": seat_class,
                "default": index == 0,
                "internalName": seat_class,
                "reference": seat_class,
                "availabilityLocalStartTimes": [],
                "cancellationCutoff": "0 hours",
                "cancellationCutoffAmount": 0,
                "cancellationCutoffUnit": "hour",
                "requiredContactFields": ["firstName", "lastName", "emailAddress", "phoneNumber"],
                "restrictions": {"minUnits": 1, "maxUnits": 10},
                "units": [
                    {
                        "id": kind.value,
                        "internalName": kind.value,
                        "reference": kind.value,
                        "type": UNIT_TYPES[kind],
                        "requiredContactFields": [],
                        "restrictions": {
                            "minAge": 0,
                            "maxAge": 120,
                            "idRequired": False,
                            "minQuantity": None,
                            "maxQuantity": None,
                            "paxCount": 1,
                            "accompaniedBy": [],
                        },
                    }
                    for kind in PassengerType
                ],
            }
        )
        if "octo/pickups" in capabilities:
            options[-1].update(
                {
                    "pickupAvailable": bool(pickups),
                    "pickupRequired": False,
                    "pickupLocations": pickups,
                    "pickupAreas": [],
                }
            )
    product: dict[str, Any] = {
        "id": str(route["id"]),
        "internalName": localize(as_dict(route["name"]), fallback),
        "reference": route["slug"],
        "locale": fallback.replace("_", "-"),
        "timeZone": operator["time_zone"],
        "allowFreesale": False,
        "instantConfirmation": True,
        "instantDelivery": True,
        "availabilityRequired": True,
        "availabilityType": "START_TIME",
        "deliveryFormats": ["QRCODE"],
        "deliveryMethods": ["VOUCHER"],
        "redemptionMethod": "DIGITAL",
        "options": options,
    }
    if "octo/pricing" in capabilities:
        product["defaultCurrency"] = operator["currency"]
        product["availableCurrencies"] = [operator["currency"]]
        product["pricingPer"] = "UNIT"
    if "octo/content" in capabilities:
        title = localize(as_dict(route["name"]), fallback)
        description = localize(as_dict(route["description"]), fallback)
        product.update(
            {
                "title": title,
                "shortDescription": description.split("\n", 1)[0][:200] or None,
                "description": description or None,
                "features": [],
                "faqs": [],
                "media": [],
                "locations": [],
                "categoryLabels": [],
                "durationMinutesFrom": await _duration_minutes(route),
                "durationMinutesTo": None,
                "commentary": [],
                "durationDays": route["duration_days"],
            }
        )
        for option in product["options"]:
            option.update({"title": option["id"], "shortDescription": None, "description": None})
    return product


async def _duration_minutes(route: dict[str, Any]) -> int:
    """How long a trip lasts: its next departure's, else the route's days."""
    upcoming = (
        await Departure.select(Departure.departs_at, Departure.returns_at)
        .where((Departure.route == route["id"]) & (Departure.departs_at > clock.now()))
        .order_by(Departure.departs_at)
        .first()
        .run()
    )
    if upcoming is None:
        return int(route["duration_days"]) * 24 * 60
    return int((upcoming["returns_at"] - upcoming["departs_at"]).total_seconds() // 60)


async def products(
    principal: AgencyPrincipal, capabilities: Collection[str]
) -> list[dict[str, Any]]:
    """Sellable products: OCTO requires at least one option, so a route without any
    departure with seats yet is not listed."""
    operator = await get_operator_row(principal.operator_id)
    listed = [await _product(route, operator, capabilities) for route in await _routes(principal)]
    return [product for product in listed if product["options"]]


async def product(
    principal: AgencyPrincipal, product_id: str, capabilities: Collection[str]
) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    return await _product(await route_of(principal, product_id), operator, capabilities)


def parse_date(value: Any, field: str) -> date:
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        raise OctoError("BAD_REQUEST", f"{field} must be a date (YYYY-MM-DD)") from None
    if not clock.within_calendar(day):
        raise OctoError(
            "BAD_REQUEST",
            f"{field} must be between {clock.EARLIEST_DATE} and {clock.LATEST_DATE}",
        )
    return day


def _status(departure: dict[str, Any], capacity: int, vacancies: int, now: datetime) -> str:
    closes = departure["sales_close_at"] or departure["departs_at"]
    opens = departure["sales_open_at"]
    if departure["status"] != DepartureStatus.published or now >= closes or (opens and now < opens):
        return "CLOSED"
    if vacancies <= 0:
        return "SOLD_OUT"
    if vacancies < max(1, capacity * LIMITED_SHARE):
        return "LIMITED"
    return "AVAILABLE"


def _requested_units(body: dict[str, Any]) -> dict[str, int]:
    units = body.get("units")
    if units is None:
        return {}
    if not isinstance(units, list):
        raise OctoError("BAD_REQUEST", "units must be a list of {id, quantity}")
    wanted: dict[str, int] = {}
    for unit in units:
        unit_id = str(unit.get("id", "")) if isinstance(unit, dict) else ""
        quantity = unit.get("quantity", 0) if isinstance(unit, dict) else 0
        if unit_id not in {kind.value for kind in PassengerType}:
            raise OctoError("INVALID_UNIT_ID", "The unit ID was invalid", unitId=unit_id)
        if not isinstance(quantity, int) or quantity < 0:
            raise OctoError("BAD_REQUEST", "units[].quantity must be a whole number")
        wanted[unit_id] = wanted.get(unit_id, 0) + quantity
    return wanted


async def availability(
    principal: AgencyPrincipal, body: dict[str, Any], capabilities: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Departures of a product and option in a local date range, or by availability ids:
    vacancies as this agency sees them (its own allotment included, others' not)."""
    route = await route_of(principal, str(body.get("productId", "")))
    option_id = str(body.get("optionId", ""))
    await check_option(route, option_id)
    operator = await get_operator_row(principal.operator_id)
    tz = clock.zone(operator["time_zone"])
    query = Departure.select().where(
        (Departure.route == route["id"])
        & Departure.status.is_in(
            [
                DepartureStatus.published.value,
                DepartureStatus.closed.value,
                DepartureStatus.cancelled.value,
            ]
        )
    )
    local_days: tuple[date, date] | None = None
    ids = body.get("availabilityIds")
    if ids:
        if not isinstance(ids, list):
            raise OctoError("BAD_REQUEST", "availabilityIds must be a list")
        parsed = []
        for availability_id in ids:
            try:
                parsed.append(UUID(str(availability_id)))
            except ValueError:
                raise OctoError(
                    "INVALID_AVAILABILITY_ID", "The availability ID was invalid",
                    availabilityId=str(availability_id),
                ) from None  # fmt: skip
        query = query.where(Departure.id.is_in(parsed))
    else:
        start = parse_date(body.get("localDateStart"), "localDateStart")
        end = parse_date(body.get("localDateEnd"), "localDateEnd")
        if end < start:
            raise OctoError("BAD_REQUEST", "localDateEnd must not be before localDateStart")
        local_days = (start, end)
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
    departures = [dict(d) for d in await query.order_by(Departure.departs_at).run()]
    if local_days is not None:
        departures = [
            d
            for d in departures
            if local_days[0] <= in_zone(d["departs_at"], d["time_zone"]).date() <= local_days[1]
        ]
    wanted = _requested_units(body)
    pickup_id = body.get("pickupLocationId")
    if pickup_id is not None and not isinstance(pickup_id, str):
        raise OctoError("BAD_REQUEST", "pickupLocationId must be a string")
    agency_prices = await agency_pricing(principal.agency_id, route["id"])
    counts = await class_counts([d["id"] for d in departures], principal.agency_id)
    fares = await effective_fares([(d["id"], d["route"]) for d in departures])
    allotments = {
        use.departure_id: use
        for use in await running_allotments([d["id"] for d in departures])
        if use.agency_id == principal.agency_id and use.seat_class == option_id
    }
    pickups = await pickups_at([d["id"] for d in departures], pickup_id) if pickup_id else {}
    now = clock.now()
    result = []
    for departure in departures:
        in_class = counts[departure["id"]].get(option_id)
        if in_class is None:
            continue
        vacancies = max(0, in_class.free)
        status = _status(departure, in_class.capacity, vacancies, now)
        local_start = in_zone(departure["departs_at"], departure["time_zone"])
        local_end = in_zone(departure["returns_at"], departure["time_zone"])
        item: dict[str, Any] = {
            "id": str(departure["id"]),
            "localDateTimeStart": local_start.isoformat(),
            "localDateTimeEnd": local_end.isoformat(),
            "allDay": False,
            "available": status in ("AVAILABLE", "LIMITED"),
            "status": status,
            "vacancies": vacancies,
            "capacity": in_class.capacity,
            "maxUnits": min(10, vacancies),
            "utcCutoffAt": utc_text(departure["sales_close_at"] or departure["departs_at"]),
            "openingHours": [],
        }
        if "octo/pricing" in capabilities:
            unit_prices = [
                pricing(
                    money.amount,
                    agency_prices.net(option_id, kind, money.amount),
                    money.currency,
                    unit_id=kind,
                )
                for (seat_class, kind), (money, _source) in fares[departure["id"]].items()
                if seat_class == option_id
            ]
            item["unitPricing"] = unit_prices
            by_unit = {price["unitId"]: price for price in unit_prices}
            chosen = wanted or ({"adult": 1} if "adult" in by_unit else {})
            if unit_prices and all(unit in by_unit for unit in chosen):
                item["pricing"] = pricing(
                    sum(by_unit[unit]["retail"] * n for unit, n in chosen.items()),
                    sum(by_unit[unit]["net"] * n for unit, n in chosen.items()),
                    unit_prices[0]["currency"],
                )
        if pickup_id:
            stop = pickups.get(departure["id"])
            at = in_zone(stop["at"], departure["time_zone"]).isoformat() if stop else None
            item["localPickupDateTimeStart"] = at
            item["localPickupDateTimeEnd"] = at
        own = allotments.get(departure["id"])
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


async def calendar(
    principal: AgencyPrincipal, body: dict[str, Any], capabilities: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Per local date: the best status of that day's departures and their vacancies."""
    start = parse_date(body.get("localDateStart"), "localDateStart")
    end = parse_date(body.get("localDateEnd"), "localDateEnd")
    if end < start or (end - start).days > 366:
        raise OctoError("BAD_REQUEST", "Give a range of at most 366 days, end not before start")
    slots = await availability(principal, body, capabilities)
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
        days.append(entry)
        day += timedelta(days=1)
    return days
