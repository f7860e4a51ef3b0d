"""What the OCTO modules share: errors, the agency's visible products (routes), options
(seat classes), pick-up locations, prices and dates. Specification: octotravel/octo-types.

Only routes the agency's contract allows, published, of the agency's operator, are
visible; anything else is an OCTO error as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any
from uuid import UUID

from babel.numbers import get_currency_precision

from app.catalogue.services.common import as_dict
from app.catalogue.tables import Departure, DepartureStop, Route, RouteStatus, Seat, StopKind
from app.core import clock
from app.core.i18n import _, localize
from app.partners.rows import AgencyRow, PickupStop, ProductRoute
from app.partners.schemas import AgencyPrincipal
from app.partners.tables import Agency


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


def unprocessable(message: str, **extra: Any) -> OctoError:
    """OCTO's UNPROCESSABLE_ENTITY: a well-formed request the booking's state or the
    agency's contract refuses (sold out, confirmed twice, past the cut-off ...)."""
    return OctoError("UNPROCESSABLE_ENTITY", message, **extra)


def text_field(body: dict[str, Any], name: str, default: str = "", *, where: str = "") -> str:
    """A text field of an OCTO request body: absent or null is `default`; any other type
    is a BAD_REQUEST naming the field, never converted (`"productId": 5` is not "5")."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        field = where or name
        raise OctoError("BAD_REQUEST", f"{field} must be a string", field=field)
    return value


def whole_number(value: Any, field: str) -> int:
    """A whole number of an OCTO request body (true, 2.0 and "2" are not)."""
    if type(value) is not int:
        raise OctoError("BAD_REQUEST", f"{field} must be a whole number", field=field)
    return value


async def agency_row(principal: AgencyPrincipal) -> AgencyRow:
    row = (
        await Agency.select()
        .where(Agency.id == principal.agency_id)
        .first()
        .output(load_json=True)
        .run()
    )
    assert row is not None
    return AgencyRow.from_row(row)


async def _routes(principal: AgencyPrincipal) -> list[ProductRoute]:
    agency = await agency_row(principal)
    query = Route.select().where(
        (Route.operator == principal.operator_id) & (Route.status == RouteStatus.published.value)
    )
    allowed = list(agency.allowed_routes)
    if allowed:
        query = query.where(Route.id.is_in(allowed))
    rows = await query.order_by(Route.slug).output(load_json=True).run()
    return [ProductRoute.from_row(row) for row in rows]


async def route_of(principal: AgencyPrincipal, product_id: str) -> ProductRoute:
    for route in await _routes(principal):
        if str(route.id) == product_id:
            return route
    raise OctoError(
        "INVALID_PRODUCT_ID", _("The product ID was invalid or missing"), productId=product_id
    )


async def _classes(route: ProductRoute) -> list[str]:
    """Seat classes sold on the route's departures (the route's options)."""
    vehicles = {
        row["vehicle"]
        for row in await Departure.select(Departure.vehicle)
        .where((Departure.route == route.id) & Departure.vehicle.is_not_null())
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


async def check_option(route: ProductRoute, option_id: str) -> None:
    if option_id not in await _classes(route):
        raise OctoError(
            "INVALID_OPTION_ID", _("The option ID was invalid or missing"), optionId=option_id
        )


async def departure_of(route: ProductRoute, availability_id: str) -> UUID:
    """The departure behind an availability id, if it belongs to the product."""
    try:
        departure_id = UUID(availability_id)
    except ValueError:
        departure_id = None
    found = (
        departure_id is not None
        and await Departure.exists()
        .where((Departure.id == departure_id) & (Departure.route == route.id))
        .run()
    )
    if not found or departure_id is None:
        raise OctoError(
            "INVALID_AVAILABILITY_ID", "The availability ID was invalid",
            availabilityId=availability_id,
        )  # fmt: skip
    return departure_id


def pickup_location_id(stop_name: Any) -> str:
    """A pick-up point's id, the same on every departure that stops there (stops are
    stored per departure): derived from its name."""
    digest = hashlib.sha1(json.dumps(as_dict(stop_name), sort_keys=True).encode()).hexdigest()
    return f"pickup-{digest[:12]}"


def pickup_location(stop: PickupStop, fallback: str) -> dict[str, Any]:
    """The OCTO PickupLocation object of a stop."""
    address = localize(stop.address, fallback) if stop.address else None
    return {
        "id": pickup_location_id(stop.name),
        "title": localize(stop.name, fallback),
        "shortDescription": address,
        "place": {
            "latitude": None,
            "longitude": None,
            "postalAddress": {"streetAddress": address} if address else None,
        },
    }


async def pickups_at(departure_ids: list[UUID], location_id: str) -> dict[UUID, PickupStop]:
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
        stop["departure"]: PickupStop.from_row(stop)
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


def parse_date(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise OctoError("BAD_REQUEST", f"{field} must be a date (YYYY-MM-DD)", field=field)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise OctoError("BAD_REQUEST", f"{field} must be a date (YYYY-MM-DD)") from None
    if not clock.within_calendar(day):
        raise OctoError(
            "BAD_REQUEST",
            f"{field} must be between {clock.EARLIEST_DATE} and {clock.LATEST_DATE}",
        )
    return day
