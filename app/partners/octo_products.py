"""The OCTO view of the catalogue: the supplier, products (routes) with their options
(seat classes), units (passenger types) and pick-up locations."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.catalogue.rows import OperatorRow
from app.catalogue.services.common import get_operator_row
from app.catalogue.tables import Departure, DepartureStatus, DepartureStop, PassengerType, StopKind
from app.core import clock
from app.core.i18n import localize
from app.partners.octo import _classes, _routes, pickup_location, pickup_location_id, route_of
from app.partners.rows import PickupStop, ProductRoute
from app.partners.schemas import AgencyPrincipal

UNIT_TYPES = {
    PassengerType.adult: "ADULT",
    PassengerType.child: "CHILD",
    PassengerType.senior: "SENIOR",
}


async def supplier(principal: AgencyPrincipal) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    name = localize(operator.name, operator.default_locale)
    return {
        "id": str(operator.id),
        "name": name,
        "endpoint": "/octo",
        "contact": {
            "website": None,
            "email": operator.contact_email,
            "telephone": operator.contact_phone,
            "address": None,
        },
    }


async def _pickup_stops(route: ProductRoute) -> list[PickupStop]:
    """Pick-up stops of the route's departures still to come, one per place."""
    departures = [
        row["id"]
        for row in await Departure.select(Departure.id)
        .where(
            (Departure.route == route.id)
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
    unique: dict[str, PickupStop] = {}
    for stop in stops:
        unique.setdefault(pickup_location_id(stop["name"]), PickupStop.from_row(stop))
    return list(unique.values())


async def _product(
    route: ProductRoute, operator: OperatorRow, capabilities: Collection[str]
) -> dict[str, Any]:
    fallback = operator.default_locale
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
        "id": str(route.id),
        "internalName": localize(route.name, fallback),
        "reference": route.slug,
        "locale": fallback.replace("_", "-"),
        "timeZone": operator.time_zone,
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
        product["defaultCurrency"] = operator.currency
        product["availableCurrencies"] = [operator.currency]
        product["pricingPer"] = "UNIT"
    if "octo/content" in capabilities:
        title = localize(route.name, fallback)
        description = localize(route.description, fallback)
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
                "durationDays": route.duration_days,
            }
        )
        for option in product["options"]:
            option.update({"title": option["id"], "shortDescription": None, "description": None})
    return product


async def _duration_minutes(route: ProductRoute) -> int:
    """How long a trip lasts: its next departure's, else the route's days."""
    upcoming = (
        await Departure.select(Departure.departs_at, Departure.returns_at)
        .where((Departure.route == route.id) & (Departure.departs_at > clock.now()))
        .order_by(Departure.departs_at)
        .first()
        .run()
    )
    if upcoming is None:
        return int(route.duration_days) * 24 * 60
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
