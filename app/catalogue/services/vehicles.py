"""Vehicles and their seat maps: sleeper cars of compartments, or bus rows of seats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any
from uuid import UUID

import msgspec
from piccolo.query.functions.aggregate import Count

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.common import SeatPosition
from app.catalogue.schemas.vehicles import (
    BusLayout,
    SeatIn,
    SeatMapIn,
    SeatOut,
    TrainLayout,
    VehicleBrief,
    VehicleCreate,
    VehicleOut,
    VehicleUpdate,
)
from app.catalogue.services.common import Row, owned_vehicle
from app.catalogue.tables import Departure, DepartureStatus, Seat, Vehicle
from app.core.database import write_transaction
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.i18n import _
from app.core.pagination import Page, PageParams, fetch_page, page_of

# Berth positions within a compartment, in berth-number order.
_BERTH_POSITIONS: dict[int, tuple[SeatPosition, ...]] = {
    2: (SeatPosition.LOWER, SeatPosition.UPPER),
    4: (SeatPosition.LOWER, SeatPosition.UPPER) * 2,
    6: (SeatPosition.LOWER, SeatPosition.MIDDLE, SeatPosition.UPPER) * 2,
}


def train_seats(layout: TrainLayout) -> list[SeatIn]:
    """Berths labelled car-berth+position, e.g. 07-12U, numbered through the car."""
    seats: list[SeatIn] = []
    cars = [car.car for car in layout.cars]
    if len(set(cars)) != len(cars):
        raise InvalidInput("layout.cars", _("Each car number may appear once."))
    for car in layout.cars:
        positions = _BERTH_POSITIONS[car.berths_per_compartment]
        number = 0
        for compartment in range(1, car.compartments + 1):
            for position in positions:
                number += 1
                seats.append(
                    SeatIn(
                        label=f"{car.car:02d}-{number:02d}{position.value[0].upper()}",
                        seat_class=car.seat_class,
                        position=position,
                        car=car.car,
                        compartment=compartment,
                    )
                )
    return seats


def bus_seats(layout: BusLayout) -> list[SeatIn]:
    """Seats labelled row+letter (3C); front rows and listed seats get their own class."""
    seats: list[SeatIn] = []
    accessible = set(layout.accessible_labels)
    for row in range(1, layout.rows + 1):
        letters = layout.seat_letters
        if row == layout.rows and layout.last_row_letters:
            letters = layout.last_row_letters
        for index, letter in enumerate(letters):
            label = f"{row}{letter}"
            seat_class = layout.seat_class
            if label in accessible:
                seat_class = "accessible"
            elif row <= layout.front_rows:
                seat_class = "front"
            edge = index in (0, len(letters) - 1)
            seats.append(
                SeatIn(
                    label=label,
                    seat_class=seat_class,
                    position=SeatPosition.WINDOW if edge else SeatPosition.AISLE,
                    row=row,
                )
            )
    unknown = accessible - {seat.label for seat in seats}
    if unknown:
        raise InvalidInput(
            "layout.accessible_labels",
            _("No such seats: {labels}.").format(labels=", ".join(sorted(unknown))),
        )
    return seats


def _seat_map(
    kind: str, layout: TrainLayout | BusLayout | None, seats: list[SeatIn] | None
) -> list[SeatIn]:
    if (layout is None) == (seats is None):
        raise InvalidInput("layout", _("Give either a layout or a list of seats."))
    if layout is not None:
        if layout.__struct_config__.tag != kind:
            raise InvalidInput("layout.type", _("The layout does not match the vehicle kind."))
        result = train_seats(layout) if isinstance(layout, TrainLayout) else bus_seats(layout)
    else:
        assert seats is not None
        result = seats
    if not result:
        raise InvalidInput("seats", _("A vehicle needs at least one seat."))
    duplicates = [label for label, n in Counter(seat.label for seat in result).items() if n > 1]
    if duplicates:
        raise InvalidInput(
            "seats",
            _("Duplicate seat labels: {labels}.").format(labels=", ".join(sorted(duplicates))),
        )
    return result


def _seat_rows(vehicle_id: UUID, seats: list[SeatIn]) -> list[Seat]:
    return [
        Seat(
            vehicle=vehicle_id,
            label=seat.label,
            seat_class=seat.seat_class,
            position=seat.position.value if seat.position else None,
            car=seat.car,
            compartment=seat.compartment,
            seat_row=seat.row,
            sort_key=index,
            blocked_reason=seat.blocked_reason.value if seat.blocked_reason else None,
        )
        for index, seat in enumerate(seats)
    ]


async def _insert_seats(vehicle_id: UUID, seats: list[SeatIn]) -> None:
    rows = _seat_rows(vehicle_id, seats)
    for start in range(0, len(rows), 200):
        await Seat.insert(*rows[start : start + 200]).run()


def _seat_out(row: Row) -> SeatOut:
    return SeatOut(
        label=row["label"],
        seat_class=row["seat_class"],
        position=row["position"],
        car=row["car"],
        compartment=row["compartment"],
        row=row["seat_row"],
        blocked_reason=row["blocked_reason"],
    )


async def capacity_by_vehicle(vehicle_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Unblocked seats per class of each vehicle."""
    capacity: dict[UUID, dict[str, int]] = {vehicle_id: {} for vehicle_id in vehicle_ids}
    if not vehicle_ids:
        return capacity
    rows = (
        await Seat.select(Seat.vehicle, Seat.seat_class, Count(Seat.id, alias="seats"))
        .where(Seat.vehicle.is_in(vehicle_ids) & Seat.blocked_reason.is_null())
        .group_by(Seat.vehicle, Seat.seat_class)
        .run()
    )
    for row in rows:
        capacity[row["vehicle"]][row["seat_class"]] = int(row["seats"])
    return {vid: dict(sorted(classes.items())) for vid, classes in capacity.items()}


async def vehicle_out(vehicle_id: UUID) -> VehicleOut:
    row = await Vehicle.select().where(Vehicle.id == vehicle_id).first().run()
    if row is None:
        raise NotFound(_("Vehicle not found."), code="vehicle_not_found")
    seats = await Seat.select().where(Seat.vehicle == vehicle_id).order_by(Seat.sort_key).run()
    capacity = await capacity_by_vehicle([vehicle_id])
    return VehicleOut(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        code=row["code"],
        description=row["description"],
        capacity_by_class=capacity[vehicle_id],
        seats=[_seat_out(seat) for seat in seats],
    )


async def create_vehicle(principal: OperatorPrincipal, data: VehicleCreate) -> VehicleOut:
    require_operator_admin(principal)
    seats = _seat_map(data.kind.value, data.layout, data.seats)
    async with write_transaction():
        vehicle = Vehicle(
            operator=principal.operator_id,
            kind=data.kind.value,
            name=data.name,
            code=data.code,
            description=data.description,
        )
        await vehicle.save().run()
        await _insert_seats(vehicle.id, seats)
    return await vehicle_out(vehicle.id)


async def list_vehicles(principal: OperatorPrincipal, params: PageParams) -> Page[VehicleBrief]:
    where = Vehicle.operator == principal.operator_id
    rows, total = await fetch_page(
        Vehicle, where, params, [(Vehicle.name, True), (Vehicle.id, True)]
    )
    capacity = await capacity_by_vehicle([row["id"] for row in rows])
    items = [
        VehicleBrief(
            id=row["id"],
            kind=row["kind"],
            name=row["name"],
            code=row["code"],
            capacity_by_class=capacity[row["id"]],
        )
        for row in rows
    ]
    return page_of(items, params, total)


async def get_vehicle(principal: OperatorPrincipal, vehicle_id: UUID) -> VehicleOut:
    await owned_vehicle(principal, vehicle_id)
    return await vehicle_out(vehicle_id)


async def update_vehicle(
    principal: OperatorPrincipal, vehicle_id: UUID, data: VehicleUpdate
) -> VehicleOut:
    require_operator_admin(principal)
    values: dict[Any, Any] = {}
    if data.name is not msgspec.UNSET:
        values[Vehicle.name] = data.name
    if data.code is not msgspec.UNSET:
        values[Vehicle.code] = data.code
    if data.description is not msgspec.UNSET:
        values[Vehicle.description] = data.description
    async with write_transaction():
        await owned_vehicle(principal, vehicle_id)
        if values:
            await Vehicle.update(values).where(Vehicle.id == vehicle_id).run()
    return await vehicle_out(vehicle_id)


async def _in_use_by_live_departure(vehicle_id: UUID) -> bool:
    live = [DepartureStatus.published.value, DepartureStatus.closed.value]
    return bool(
        await Departure.exists()
        .where((Departure.vehicle == vehicle_id) & Departure.status.is_in(live))
        .run()
    )


async def replace_seat_map(
    principal: OperatorPrincipal, vehicle_id: UUID, data: SeatMapIn
) -> VehicleOut:
    """Replace every seat; refused while a published departure sells this vehicle."""
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_vehicle(principal, vehicle_id)
        seats = _seat_map(row.kind, data.layout, data.seats)
        if await _in_use_by_live_departure(vehicle_id):
            raise Conflict(
                _("A published departure uses this vehicle; its seat map cannot change."),
                code="vehicle_in_use",
            )
        await Seat.delete().where(Seat.vehicle == vehicle_id).run()
        await _insert_seats(vehicle_id, seats)
    return await vehicle_out(vehicle_id)


async def delete_vehicle(principal: OperatorPrincipal, vehicle_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        await owned_vehicle(principal, vehicle_id)
        if await Departure.exists().where(Departure.vehicle == vehicle_id).run():
            raise Conflict(_("Departures use this vehicle."), code="vehicle_in_use")
        await Vehicle.delete().where(Vehicle.id == vehicle_id).run()


async def set_seat_block(
    principal: OperatorPrincipal,
    vehicle_id: UUID,
    label: str,
    reason: str | None,
    *,
    booked: Collection[UUID],
) -> SeatOut:
    """Keep a seat off sale on every departure (crew, guides, medical staff), or release
    it. A seat in `booked` (held by a live booking on some departure) cannot be blocked."""
    require_operator_admin(principal)
    async with write_transaction():
        await owned_vehicle(principal, vehicle_id)
        seat = (
            await Seat.select()
            .where((Seat.vehicle == vehicle_id) & (Seat.label == label))
            .first()
            .run()
        )
        if seat is None:
            raise NotFound(_("Seat not found."), code="seat_not_found")
        if reason is not None and seat["id"] in booked:
            raise Conflict(
                _("Seat {label} is booked on a departure; it cannot be blocked.").format(
                    label=label
                ),
                code="seat_booked",
            )
        await Seat.update({Seat.blocked_reason: reason}).where(Seat.id == seat["id"]).run()
        seat["blocked_reason"] = reason
    return _seat_out(seat)
