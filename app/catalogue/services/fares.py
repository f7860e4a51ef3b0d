"""Fares: a route's default prices, overridden per departure, always in the operator's currency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar
from uuid import UUID

from piccolo.columns import Column

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.departures import FareIn, FareOut, FaresIn
from app.catalogue.services.common import as_uuid, get_operator_row, owned_departure, owned_route
from app.catalogue.tables import DepartureFare, PassengerType, RouteFare
from app.core.database import write_transaction
from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.money import Money, PriceOut

FareKey = tuple[str, str]
# A departure's price per (seat class, passenger type) and where it comes from.
EffectiveFares = dict[FareKey, tuple[Money, str]]


def _check_fares(fares: Sequence[FareIn], currency: str) -> None:
    seen: set[FareKey] = set()
    for index, fare in enumerate(fares):
        key = (fare.seat_class, fare.passenger_type.value)
        if key in seen:
            raise InvalidInput(
                f"fares[{index}]", _("Each seat class and passenger type may have one fare.")
            )
        seen.add(key)
        if fare.currency is not None and fare.currency != currency:
            raise InvalidInput(
                f"fares[{index}].currency",
                _("Prices are in the operator's currency, {currency}.").format(currency=currency),
            )


FareTable = TypeVar("FareTable", RouteFare, DepartureFare)


async def _load_fares(
    table: type[FareTable], owner: Column, owner_ids: list[UUID]
) -> dict[UUID, dict[FareKey, Money]]:
    fares: dict[UUID, dict[FareKey, Money]] = {owner_id: {} for owner_id in owner_ids}
    if not owner_ids:
        return fares
    for row in await table.select().where(owner.is_in(owner_ids)).run():
        fares[row[owner._meta.name]][(row["seat_class"], row["passenger_type"])] = Money(
            amount=row["amount"], currency=row["currency"]
        )
    return fares


async def _replace_fares(
    table: type[FareTable], owner: Column, owner_id: UUID, fares: Sequence[FareIn], currency: str
) -> None:
    await table.delete().where(owner == owner_id).run()
    if fares:
        await table.insert(
            *[
                table(
                    {
                        owner: owner_id,
                        table.seat_class: fare.seat_class,
                        table.passenger_type: fare.passenger_type.value,
                        table.amount: fare.amount,
                        table.currency: currency,
                    }
                )
                for fare in fares
            ]
        ).run()


async def route_fares(route_ids: list[UUID]) -> dict[UUID, dict[FareKey, Money]]:
    return await _load_fares(RouteFare, RouteFare.route, route_ids)


async def departure_fares(departure_ids: list[UUID]) -> dict[UUID, dict[FareKey, Money]]:
    return await _load_fares(DepartureFare, DepartureFare.departure, departure_ids)


async def effective_fares(
    departures: list[tuple[UUID, UUID]],
) -> dict[UUID, EffectiveFares]:
    """Price of each (class, passenger type) per departure, with where it comes from.

    `departures` are (departure_id, route_id) pairs.
    """
    if not departures:
        return {}
    route_ids = sorted({route_id for _d, route_id in departures})
    departure_ids = [departure_id for departure_id, _r in departures]
    # Both tables in one statement: a booking reads them on its way to the seat lock.
    rows = await RouteFare.raw(
        f"""
        SELECT 'route' AS source, f.route AS owner, f.seat_class AS seat_class,
               f.passenger_type AS passenger_type, f.amount AS amount, f.currency AS currency
        FROM route_fare f WHERE f.route IN ({", ".join("{}" for _ in route_ids)})
        UNION ALL
        SELECT 'departure', f.departure, f.seat_class, f.passenger_type, f.amount, f.currency
        FROM departure_fare f WHERE f.departure IN ({", ".join("{}" for _ in departure_ids)})
        """,
        *route_ids,
        *departure_ids,
    ).run()
    by_route: dict[UUID, dict[FareKey, Money]] = {route_id: {} for route_id in route_ids}
    by_departure: dict[UUID, dict[FareKey, Money]] = {d: {} for d in departure_ids}
    for row in rows:
        owners = by_route if row["source"] == "route" else by_departure
        owners[as_uuid(row["owner"])][(row["seat_class"], row["passenger_type"])] = Money(
            amount=row["amount"], currency=row["currency"]
        )
    return {
        departure_id: merged_fares(by_route[route_id], by_departure[departure_id])
        for departure_id, route_id in departures
    }


def merged_fares(route: dict[FareKey, Money], departure: dict[FareKey, Money]) -> EffectiveFares:
    """A departure's fares: its route's, each overridden by the departure's own."""
    merged = {key: (money, "route") for key, money in route.items()}
    merged.update({key: (money, "departure") for key, money in departure.items()})
    return dict(sorted(merged.items()))


def lowest_adult_price(
    fares: dict[FareKey, Money], classes: set[str] | None = None
) -> Money | None:
    adult = [
        money
        for (seat_class, passenger_type), money in fares.items()
        if passenger_type == PassengerType.adult and (classes is None or seat_class in classes)
    ]
    return min(adult, key=lambda money: money.amount) if adult else None


def _fare_outs(fares: dict[FareKey, tuple[Money, str]]) -> list[FareOut]:
    return [
        FareOut(
            seat_class=seat_class,
            passenger_type=PassengerType(passenger_type),
            price=PriceOut.of(money),
            source="departure" if source == "departure" else "route",
        )
        for (seat_class, passenger_type), (money, source) in fares.items()
    ]


async def get_route_fares(principal: OperatorPrincipal, route_id: UUID) -> list[FareOut]:
    await owned_route(principal, route_id)
    fares = (await route_fares([route_id]))[route_id]
    return _fare_outs({key: (money, "route") for key, money in sorted(fares.items())})


async def replace_route_fares(
    principal: OperatorPrincipal, route_id: UUID, data: FaresIn
) -> list[FareOut]:
    require_operator_admin(principal)
    currency = (await get_operator_row(principal.operator_id)).currency
    _check_fares(data.fares, currency)
    async with write_transaction():
        await owned_route(principal, route_id)
        await _replace_fares(RouteFare, RouteFare.route, route_id, data.fares, currency)
    return await get_route_fares(principal, route_id)


async def get_departure_fares(principal: OperatorPrincipal, departure_id: UUID) -> list[FareOut]:
    row = await owned_departure(principal, departure_id)
    fares = await effective_fares([(departure_id, row.route_id)])
    return _fare_outs(fares[departure_id])


async def replace_departure_fares(
    principal: OperatorPrincipal, departure_id: UUID, data: FaresIn
) -> list[FareOut]:
    """Set this departure's own prices; classes it does not list keep the route's fares."""
    require_operator_admin(principal)
    currency = (await get_operator_row(principal.operator_id)).currency
    _check_fares(data.fares, currency)
    async with write_transaction():
        await owned_departure(principal, departure_id)
        await _replace_fares(
            DepartureFare, DepartureFare.departure, departure_id, data.fares, currency
        )
    return await get_departure_fares(principal, departure_id)
