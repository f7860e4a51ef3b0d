"""The migrations build exactly the tables the code declares, with their composite keys."""

from __future__ import annotations

import contextlib
import importlib
import io
import sqlite3
from itertools import chain
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.apps.migrations.tables import Migration

from app.accounts.tables import Operator
from app.catalogue.tables import (
    Departure,
    DepartureSeatBlock,
    Route,
    RouteFare,
    RouteTheme,
    Seat,
    Vehicle,
)
from app.core import clock, database
from app.piccolo_app import APP_CONFIG

UNIQUE_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = importlib.import_module(
    "migrations.tourline_2026_11_29t21_40_00_000002"
).UNIQUE_INDEXES

INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.exceptions.UniqueViolationError)


async def test_tables_and_migrations_agree() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        alter = await AutoMigrationManager().get_alter_statements(app_config=APP_CONFIG)
    statements = list(chain.from_iterable(item.statements for item in alter))
    assert statements == [], "tables differ from migrations; run `piccolo migrations new --auto`"


async def _index_names() -> set[str]:
    engine = database.get_engine()
    if database.is_sqlite():
        rows = await engine.run_ddl("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {row["name"] for row in rows}
    rows = await engine.run_ddl("SELECT indexname AS name FROM pg_indexes")
    return {row["name"] for row in rows}


async def test_composite_unique_indexes_exist() -> None:
    names = await _index_names()
    assert set(UNIQUE_INDEXES) <= names
    assert "seat_vehicle_label_key" in UNIQUE_INDEXES
    assert "route_theme_route_theme_key" in UNIQUE_INDEXES


async def _operator(slug: str = "raw-op") -> Operator:
    operator = Operator(
        slug=slug,
        name={"zh_Hans": "直连"},
        contact_email="raw@tourline.test",
        contact_phone="+86 371 6000 0000",
    )
    await operator.save().run()
    return operator


async def _route(operator: Operator, slug: str = "raw-route") -> Route:
    route = Route(
        operator=operator.id,
        slug=slug,
        kind="bus",
        name={"zh_Hans": "直连线"},
        description={"zh_Hans": "直连"},
        cancellation_policy=[],
    )
    await route.save().run()
    return route


async def _vehicle(operator: Operator, name: str = "raw bus") -> Vehicle:
    vehicle = Vehicle(operator=operator.id, kind="bus", name=name)
    await vehicle.save().run()
    return vehicle


async def test_duplicate_route_theme_is_rejected_by_the_database() -> None:
    route = await _route(await _operator())
    await RouteTheme(route=route.id, theme="picking").save().run()
    await RouteTheme(route=route.id, theme="family").save().run()
    with pytest.raises(INTEGRITY_ERRORS):
        await RouteTheme(route=route.id, theme="picking").save().run()
    rows = await RouteTheme.select(RouteTheme.theme).where(RouteTheme.route == route.id).run()
    assert sorted(row["theme"] for row in rows) == ["family", "picking"]


async def test_same_theme_on_two_routes_is_fine() -> None:
    operator = await _operator()
    first, second = await _route(operator, "raw-one"), await _route(operator, "raw-two")
    await RouteTheme(route=first.id, theme="picking").save().run()
    await RouteTheme(route=second.id, theme="picking").save().run()
    assert await RouteTheme.count().where(RouteTheme.theme == "picking").run() == 2


async def test_duplicate_seat_label_on_a_vehicle_is_rejected() -> None:
    operator = await _operator()
    bus, other_bus = await _vehicle(operator), await _vehicle(operator, "other bus")
    await Seat(vehicle=bus.id, label="1A", seat_class="standard").save().run()
    # The same label on another vehicle is fine.
    await Seat(vehicle=other_bus.id, label="1A", seat_class="standard").save().run()
    with pytest.raises(INTEGRITY_ERRORS):
        await Seat(vehicle=bus.id, label="1A", seat_class="front").save().run()
    assert await Seat.count().where(Seat.vehicle == bus.id).run() == 1


async def test_duplicate_route_fare_is_rejected() -> None:
    route = await _route(await _operator())
    fare: dict[str, Any] = {
        "route": route.id,
        "seat_class": "standard",
        "passenger_type": "adult",
        "currency": "CNY",
    }
    await RouteFare(**fare, amount=6800).save().run()
    await RouteFare(**{**fare, "passenger_type": "child"}, amount=3800).save().run()
    with pytest.raises(INTEGRITY_ERRORS):
        await RouteFare(**fare, amount=5000).save().run()


async def test_seat_blocked_twice_on_a_departure_is_rejected() -> None:
    operator = await _operator()
    route, bus = await _route(operator), await _vehicle(operator)
    seat = Seat(vehicle=bus.id, label="1A", seat_class="standard")
    await seat.save().run()
    now = clock.now()
    departure = Departure(
        operator=operator.id,
        route=route.id,
        vehicle=bus.id,
        departs_at=now,
        returns_at=now,
        time_zone="Asia/Shanghai",
    )
    await departure.save().run()
    await DepartureSeatBlock(departure=departure.id, seat=seat.id, reason="crew").save().run()
    with pytest.raises(INTEGRITY_ERRORS):
        await DepartureSeatBlock(departure=departure.id, seat=seat.id, reason="guide").save().run()


MIGRATION_FILES = sorted(Path(APP_CONFIG.migrations_folder_path).glob("tourline_*.py"))


async def test_migrate_is_idempotent() -> None:
    files = MIGRATION_FILES
    applied = await Migration.count().where(Migration.app_name == "tourline").run()
    assert applied == len(files) >= 2
    await database.migrate()
    await database.migrate()
    assert await Migration.count().where(Migration.app_name == "tourline").run() == applied
    assert set(UNIQUE_INDEXES) <= await _index_names()
