"""Typed rows carry every column of their table, and read a row as Piccolo returns it."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from piccolo.columns import ForeignKey
from piccolo.table import Table

from app.accounts.tables import Operator
from app.booking.rows import BookingRow, ChangeRow
from app.booking.tables import Booking, BookingChange, BookingStatus
from app.catalogue.rows import DepartureRow, OperatorRow, RouteRow, VehicleRow
from app.catalogue.tables import (
    Departure,
    DepartureStatus,
    DepartureStop,
    Route,
    RouteKind,
    RouteStatus,
    Vehicle,
)
from app.notifications.rows import NotificationRow
from app.notifications.tables import Notification
from app.partners.octo import pickup_location_id
from app.partners.rows import (
    AgencyRow,
    ApiKeyRow,
    PickupStop,
    ProductRoute,
    SettlementRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
)
from app.partners.tables import (
    Agency,
    AgencyStatus,
    ApiKey,
    PaymentTerms,
    Settlement,
    WebhookAttempt,
    WebhookDelivery,
)
from app.payments.rows import PaymentRow, RefundRow
from app.payments.tables import Payment, Refund

# Columns holding another row's id without being a ForeignKey.
_ID_COLUMNS = {"agency", "booking", "departure"}

ROWS: list[tuple[type[Any], type[Table]]] = [
    (BookingRow, Booking),
    (ChangeRow, BookingChange),
    (DepartureRow, Departure),
    (RouteRow, Route),
    (OperatorRow, Operator),
    (VehicleRow, Vehicle),
    (PaymentRow, Payment),
    (RefundRow, Refund),
    (NotificationRow, Notification),
    (AgencyRow, Agency),
    (PickupStop, DepartureStop),
    (ApiKeyRow, ApiKey),
    (SettlementRow, Settlement),
    (WebhookDeliveryRow, WebhookDelivery),
    (WebhookAttemptRow, WebhookAttempt),
]


def _field_name(column: Any) -> str:
    name: str = column._meta.name
    if isinstance(column, ForeignKey) or name in _ID_COLUMNS:
        return f"{name}_id"
    return name


@pytest.mark.parametrize(("row_type", "table"), ROWS, ids=[t.__name__ for t, _ in ROWS])
def test_a_typed_row_has_a_field_for_each_column(row_type: type[Any], table: type[Table]) -> None:
    fields = [field.name for field in dataclasses.fields(row_type)]
    assert fields == [_field_name(column) for column in table._meta.columns]


def test_a_booking_row_reads_a_selected_row() -> None:
    booking = Booking(
        reference="ABCD2345", token_hash="0" * 64, operator=uuid.uuid4(),
        departure=uuid.uuid4(), currency="CNY", total_amount=300, balance_due=100,
        agency=uuid.uuid4(), created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
    )  # fmt: skip
    row = BookingRow.from_row(booking.to_dict())
    assert row.id == booking.id
    assert row.departure_id == booking.departure
    assert row.agency_id == booking.agency
    assert row.status is BookingStatus.on_hold
    assert row.paid == 200


def test_a_departure_row_ends_sales_at_their_close_or_the_departure() -> None:
    departs_at = datetime(2026, 7, 1, 8, tzinfo=UTC)
    departure = Departure(
        operator=uuid.uuid4(), route=uuid.uuid4(), departs_at=departs_at,
        returns_at=departs_at, time_zone="Asia/Shanghai", status=DepartureStatus.published,
        created_at=departs_at, updated_at=departs_at,
    )  # fmt: skip
    row = DepartureRow.from_row(departure.to_dict())
    assert (row.route_id, row.vehicle_id, row.sales_end) == (departure.route, None, departs_at)
    closes = datetime(2026, 6, 30, 20, tzinfo=UTC)
    assert dataclasses.replace(row, sales_close_at=closes).sales_end == closes


def test_a_route_row_reads_a_selected_row() -> None:
    now = datetime.now(UTC)
    route = Route(
        operator=uuid.uuid4(), slug="great-wall", kind=RouteKind.bus, name={"en": "Wall"},
        description={"en": "A walk"}, cancellation_policy=[], reminder_hours=[24],
        status=RouteStatus.published, created_at=now, updated_at=now,
    )  # fmt: skip
    row = RouteRow.from_row(route.to_dict())
    assert (row.id, row.operator_id, row.name) == (route.id, route.operator, {"en": "Wall"})
    assert (row.kind, row.status, row.reminder_hours) == (
        RouteKind.bus,
        RouteStatus.published,
        [24],
    )


def test_an_operator_row_reads_a_selected_row() -> None:
    operator = Operator(slug="acme", name={"en": "Acme"}, created_at=datetime.now(UTC))
    row = OperatorRow.from_row(operator.to_dict())
    assert (row.id, row.slug, row.currency, row.hold_minutes) == (operator.id, "acme", "CNY", 15)


def test_a_vehicle_row_reads_a_selected_row() -> None:
    vehicle = Vehicle(operator=uuid.uuid4(), kind=RouteKind.train, name="G101")
    row = VehicleRow.from_row(vehicle.to_dict())
    assert (row.operator_id, row.kind, row.name, row.code) == (
        vehicle.operator,
        RouteKind.train,
        "G101",
        "",
    )


def test_an_agency_row_reads_its_allowed_routes_as_ids() -> None:
    route_id = uuid.uuid4()
    agency = Agency(
        operator=uuid.uuid4(), name="Silk Road Travel", contact_email="a@example.com",
        payment_terms=PaymentTerms.prepay, allowed_routes=[str(route_id)],
        created_at=datetime.now(UTC),
    )  # fmt: skip
    row = AgencyRow.from_row(agency.to_dict())
    assert (row.operator_id, row.allowed_routes) == (agency.operator, (route_id,))
    assert (row.status, row.payment_terms) == (AgencyStatus.active, PaymentTerms.prepay)
    # JSON as text, as raw SQL returns it.
    text = AgencyRow.from_row({**agency.to_dict(), "allowed_routes": f'["{route_id}"]'})
    assert text.allowed_routes == (route_id,)


def test_a_pickup_stop_keeps_the_location_id_of_its_name() -> None:
    name = {"en": "Gate 2", "zh_Hans": "2号门"}
    stop = DepartureStop(departure=uuid.uuid4(), stop_order=1, name=name, at=datetime.now(UTC))
    row = PickupStop.from_row(stop.to_dict())
    assert (row.departure_id, row.name, row.address) == (stop.departure, name, None)
    assert pickup_location_id(row.name) == pickup_location_id(name)


def test_a_product_route_reads_the_route_columns_octo_shows() -> None:
    route = Route(
        operator=uuid.uuid4(), slug="tibet-train", kind="train", name={"en": "Tibet"},
        description={"en": "By train"}, duration_days=3,
    )  # fmt: skip
    row = ProductRoute.from_row(route.to_dict())
    assert (row.id, row.slug, row.name, row.duration_days) == (
        route.id, "tibet-train", {"en": "Tibet"}, 3,
    )  # fmt: skip
