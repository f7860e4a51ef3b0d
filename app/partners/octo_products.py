"""The OCTO view of the catalogue: the supplier, products (routes) with their options
(seat classes), units (passenger types) and pick-up locations."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.booking.schemas import MAX_PARTY
from app.catalogue.rows import OperatorRow
from app.catalogue.schemas.routes import HotelOut, ItineraryOut
from app.catalogue.services.common import get_operator_row, in_zone
from app.catalogue.services.fares import route_fares
from app.catalogue.services.itineraries import itinerary_of
from app.catalogue.tables import (
    PASSENGER_AGES,
    Departure,
    DepartureStatus,
    DepartureStop,
    Meal,
    PassengerType,
    Seat,
    StopKind,
)
from app.core import clock
from app.core.i18n import _, content_language, localize, ngettext
from app.core.labels import meal_label, meals_text, passenger_label, seat_class_label
from app.partners.octo import (
    _routes,
    agency_row,
    pickup_location,
    pickup_location_id,
    pricing,
    route_of,
)
from app.partners.pricing import agency_price_channel
from app.partners.rows import AgencyRow, PickupStop, ProductRoute
from app.partners.schemas import AgencyPrincipal
from app.pricing.schemas import PartySeat
from app.pricing.services import price_party

UNIT_TYPES = {
    PassengerType.adult: "ADULT",
    PassengerType.child: "CHILD",
    PassengerType.senior: "SENIOR",
}
REQUIRED_CONTACT_FIELDS = ["firstName", "lastName", "emailAddress", "phoneNumber"]
# The capabilities of the OCTO specification this API implements, with their revisions.
CAPABILITIES = {"octo/content": 1, "octo/pickups": 1, "octo/pricing": 1}


def capabilities() -> list[dict[str, Any]]:
    """GET /octo/capabilities: each one optional, asked for with `Octo-Capabilities`."""
    return [
        {
            "id": capability,
            "revision": revision,
            "required": False,
            "dependencies": [],
            "docs": "https://docs.octo.travel/",
        }
        for capability, revision in CAPABILITIES.items()
    ]


async def supplier(principal: AgencyPrincipal, capabilities: Collection[str]) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    name = localize(operator.name, operator.default_locale)
    found: dict[str, Any] = {
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
    if "octo/content" in capabilities:
        # The operator has no description or pictures of its own.
        found.update({"shortDescription": None, "media": []})
    return found


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


async def _start_times(route: ProductRoute) -> dict[str, list[str]]:
    """Per seat class (option), the local clock times its departures start at: those still
    to come, else every one (an option is listed once it has had a departure)."""
    rows = (
        await Departure.select(Departure.vehicle, Departure.departs_at, Departure.time_zone)
        .where((Departure.route == route.id) & Departure.vehicle.is_not_null())
        .run()
    )
    if not rows:
        return {}
    seats = (
        await Seat.select(Seat.vehicle, Seat.seat_class)
        .where(Seat.vehicle.is_in(list({row["vehicle"] for row in rows})))
        .distinct()
        .run()
    )
    classes: dict[Any, set[str]] = {}
    for seat in seats:
        classes.setdefault(seat["vehicle"], set()).add(seat["seat_class"])
    now = clock.now()
    coming: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}
    for row in rows:
        local = in_zone(row["departs_at"], row["time_zone"]).strftime("%H:%M")
        for seat_class in classes.get(row["vehicle"], ()):
            every.setdefault(seat_class, set()).add(local)
            if row["departs_at"] > now:
                coming.setdefault(seat_class, set()).add(local)
    return {
        seat_class: sorted(coming.get(seat_class) or times)
        for seat_class, times in sorted(every.items())
    }


def _unit(
    kind: PassengerType,
    prices: dict[str, dict[str, Any]] | None,
    content: bool,
) -> dict[str, Any]:
    min_age, max_age = PASSENGER_AGES[kind]
    unit: dict[str, Any] = {
        "id": kind.value,
        "internalName": kind.value,
        "reference": kind.value,
        "type": UNIT_TYPES[kind],
        "requiredContactFields": [],
        "restrictions": {
            "minAge": min_age,
            "maxAge": max_age,
            "idRequired": False,
            "minQuantity": None,
            "maxQuantity": MAX_PARTY,
            "paxCount": 1,
            "accompaniedBy": [PassengerType.adult.value] if kind == PassengerType.child else [],
        },
    }
    if prices is not None:
        price = prices[kind.value]
        unit.update({"pricingFrom": [price], "pricing": [price]})
    if content:
        unit.update(
            {
                "title": passenger_label(kind.value),
                "shortDescription": _("Aged {low} to {high}").format(low=min_age, high=max_age),
                "features": [],
            }
        )
    return unit


def _itinerary_features(itinerary: ItineraryOut, fallback: str) -> list[dict[str, Any]]:
    """The itinerary, one feature per day: the day's title, its stops and times, the meals,
    where the night is spent and when to be back on board (OCTO has no itinerary of its
    own); then what the days include, as INCLUSION features."""
    features = []
    for day in itinerary.days:
        parts = [
            _("Day {number}: {title}").format(
                number=day.day_number, title=localize(day.title, fallback)
            )
        ]
        for stop in day.stops:
            times = "–".join(t for t in (stop.arrive_time, stop.depart_time) if t)
            activities = ", ".join(localize(a, fallback) for a in stop.activities)
            text = localize(stop.place, fallback)
            if times:
                text += f" ({times})"
            if activities:
                text += f": {activities}"
            parts.append(text)
        if day.meals:
            parts.append(_("Meals included: {meals}").format(meals=meals_text(list(day.meals))))
        if day.overnight == "train":
            parts.append(_("Night: on the train"))
        elif day.overnight is not None:
            parts.append(
                _("Night: {hotel}, {address}").format(
                    hotel=localize(day.overnight.name, fallback),
                    address=localize(day.overnight.address, fallback),
                )
            )
        if day.back_on_board_at:
            parts.append(_("Back on board by {time}").format(time=day.back_on_board_at))
        features.append({"shortDescription": "; ".join(parts), "type": "ADDITIONAL_INFORMATION"})
    return features + _inclusions(itinerary)


def _inclusions(itinerary: ItineraryOut) -> list[dict[str, Any]]:
    """The meals and nights the trip includes, counted over its days."""
    found = []
    for meal in Meal:
        count = sum(1 for day in itinerary.days if meal in day.meals)
        if count:
            found.append(
                {
                    "shortDescription": _("{meal}: {count} included").format(
                        meal=meal_label(meal.value).capitalize(), count=count
                    ),
                    "type": "INCLUSION",
                }
            )
    train = sum(1 for day in itinerary.days if day.overnight == "train")
    hotel = sum(1 for day in itinerary.days if isinstance(day.overnight, HotelOut))
    if train:
        found.append(
            {
                "shortDescription": ngettext(
                    "{count} night in a sleeper berth on the train",
                    "{count} nights in a sleeper berth on the train",
                    train,
                ).format(count=train),
                "type": "INCLUSION",
            }
        )
    if hotel:
        found.append(
            {
                "shortDescription": ngettext(
                    "{count} night in a hotel", "{count} nights in hotels", hotel
                ).format(count=hotel),
                "type": "INCLUSION",
            }
        )
    return found


def _content(
    title: str, description: str | None, features: list[dict[str, Any]], minutes: int
) -> dict[str, Any]:
    """The fields octo/content adds to a product and to an option."""
    return {
        "title": title,
        "shortDescription": description.split("\n", 1)[0][:200] if description else None,
        "description": description,
        "features": features,
        "faqs": [],
        "media": [],
        "locations": [],
        "categoryLabels": [],
        "durationMinutesFrom": minutes,
        "durationMinutesTo": None,
        "commentary": [],
    }


async def _product(
    route: ProductRoute,
    operator: OperatorRow,
    agency: AgencyRow,
    capabilities: Collection[str],
) -> dict[str, Any]:
    fallback = operator.default_locale
    pickups = (
        [pickup_location(stop, fallback) for stop in await _pickup_stops(route)]
        if "octo/pickups" in capabilities
        else []
    )
    content = "octo/content" in capabilities
    fares = (await route_fares([route.id])).get(route.id, {})
    channel = (
        await agency_price_channel(agency.id, route.id) if "octo/pricing" in capabilities else None
    )
    cutoff = agency.cancellation_cutoff_hours
    features: list[dict[str, Any]] = []
    minutes = 0
    if content:
        cancellation = {
            "shortDescription": ngettext(
                "Free cancellation up to {hours} hour before departure.",
                "Free cancellation up to {hours} hours before departure.",
                cutoff,
            ).format(hours=cutoff),
            "type": "CANCELLATION_TERM",
        }
        features = [*_itinerary_features(await itinerary_of(route.id), fallback), cancellation]
        minutes = await _duration_minutes(route)
    options = []
    for index, (seat_class, start_times) in enumerate((await _start_times(route)).items()):
        kinds = [kind for kind in PassengerType if (seat_class, kind.value) in fares]
        prices: dict[str, dict[str, Any]] | None = None
        if channel is not None:
            quote = price_party(
                {key: (money, "route") for key, money in fares.items()},
                [PartySeat(seat_class, kind) for kind in kinds],
                channel,
            )
            prices = {
                seat.seat.passenger_type.value: pricing(
                    seat.retail.amount, seat.charged.amount, seat.retail.currency
                )
                for seat in quote.seats
            }
        option: dict[str, Any] = {
            "id": seat_class,
            "default": index == 0,
            "internalName": seat_class,
            "reference": seat_class,
            "availabilityLocalStartTimes": start_times,
            "cancellationCutoff": f"{cutoff} hours",
            "cancellationCutoffAmount": cutoff,
            "cancellationCutoffUnit": "hour",
            "requiredContactFields": REQUIRED_CONTACT_FIELDS,
            "restrictions": {"minUnits": 1, "maxUnits": MAX_PARTY},
            "units": [_unit(kind, prices, content) for kind in kinds],
        }
        if prices is not None:
            cheapest = min(prices.values(), key=lambda price: price["retail"], default=None)
            option["pricingFrom"] = [cheapest] if cheapest else []
            option["pricing"] = option["pricingFrom"]
        if content:
            option.update(_content(seat_class_label(seat_class), None, features, minutes))
        if "octo/pickups" in capabilities:
            option.update(
                {
                    "pickupAvailable": bool(pickups),
                    "pickupRequired": False,
                    "pickupLocations": pickups,
                    "pickupAreas": [],
                }
            )
        options.append(option)
    product: dict[str, Any] = {
        "id": str(route.id),
        "internalName": localize(route.name, fallback),
        "reference": route.slug,
        "locale": content_language(fallback),
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
    if content:
        description = localize(route.description, fallback)
        product.update(
            _content(localize(route.name, fallback), description or None, features, minutes)
        )
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
    agency = await agency_row(principal)
    listed = [
        await _product(route, operator, agency, capabilities) for route in await _routes(principal)
    ]
    return [product for product in listed if product["options"]]


async def product(
    principal: AgencyPrincipal, product_id: str, capabilities: Collection[str]
) -> dict[str, Any]:
    operator = await get_operator_row(principal.operator_id)
    route = await route_of(principal, product_id)
    return await _product(route, operator, await agency_row(principal), capabilities)
