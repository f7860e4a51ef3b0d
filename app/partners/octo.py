"""The OCTO view of the catalogue: products (routes), options (seat classes), units
(passenger types), availability (departures). Specification: octotravel/octo-types.

Only routes the agency's contract allows, published, of the agency's operator, are
visible; anything else is an OCTO error as if it did not exist.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from app.catalogue.services.availability import class_counts
from app.catalogue.services.common import as_dict, as_list, get_operator_row, in_zone
from app.catalogue.services.fares import effective_fares
from app.catalogue.tables import Departure, DepartureStatus, PassengerType, Route, RouteStatus, Seat
from app.core import clock
from app.core.i18n import localize
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


async def _product(
    route: dict[str, Any], operator: dict[str, Any], content: bool
) -> dict[str, Any]:
    fallback = operator["default_locale"]
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
    if content:
        product["title"] = localize(as_dict(route["name"]), fallback)
        product["description"] = localize(as_dict(route["description"]), fallback)
        product["durationDays"] = route["duration_days"]
    return product


async def products(principal: AgencyPrincipal, content: bool) -> list[dict[str, Any]]:
    """Sellable products: OCTO requires at least one option, so a route without any
    departure with seats yet is not listed."""
    operator = await get_operator_row(principal.operator_id)
    listed = [await _product(route, operator, content) for route in await _routes(principal)]
    return [product for product in listed if product["options"]]


async def product(principal: AgencyPrincipal, product_id: str, content: bool) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    return await _product(await route_of(principal, product_id), operator, content)


def _parse_date(value: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise OctoError("BAD_REQUEST", f"{field} must be a date (YYYY-MM-DD)") from None


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


async def availability(principal: AgencyPrincipal, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Departures of a product and option in a local date range, or by availability ids."""
    route = await route_of(principal, str(body.get("productId", "")))
    option_id = str(body.get("optionId", ""))
    if option_id not in await _classes(route):
        raise OctoError(
            "INVALID_OPTION_ID", "The option ID was invalid or missing", optionId=option_id
        )
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
        start = _parse_date(body.get("localDateStart"), "localDateStart")
        end = _parse_date(body.get("localDateEnd"), "localDateEnd")
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
    commission_bp = (await agency_row(principal))["commission_bp"]
    counts = await class_counts([d["id"] for d in departures])
    fares = await effective_fares([(d["id"], d["route"]) for d in departures])
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
        prices = fares[departure["id"]]
        item["unitPricingFrom"] = [
            {
                "unitId": kind,
                "original": money.amount,
                "retail": money.amount,
                # What the agency owes: the retail price less its commission.
                "net": money.amount - money.amount * commission_bp // 10_000,
                "currency": money.currency,
                "currencyPrecision": 2,
            }
            for (seat_class, kind), (money, _source) in prices.items()
            if seat_class == option_id
        ]
        result.append(item)
    return result


async def calendar(principal: AgencyPrincipal, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Per local date: the best status of that day's departures and their vacancies."""
    start = _parse_date(body.get("localDateStart"), "localDateStart")
    end = _parse_date(body.get("localDateEnd"), "localDateEnd")
    if end < start or (end - start).days > 366:
        raise OctoError("BAD_REQUEST", "Give a range of at most 366 days, end not before start")
    slots = await availability(principal, body)
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
        days.append(
            {
                "localDate": key,
                "available": status in ("AVAILABLE", "LIMITED"),
                "status": status,
                "vacancies": sum(s["vacancies"] for s in today),
                "capacity": sum(s["capacity"] for s in today),
                "openingHours": [],
            }
        )
        day += timedelta(days=1)
    return days
