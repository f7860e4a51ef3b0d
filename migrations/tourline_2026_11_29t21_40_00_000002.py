"""Composite unique keys of the catalogue, as unique indexes both PostgreSQL and SQLite accept."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-29T21:40:00:000002"
VERSION = "1.38.0"
DESCRIPTION = "catalogue unique keys"

UNIQUE_INDEXES = {
    "route_theme_route_theme_key": ("route_theme", ("route", "theme")),
    "itinerary_day_route_day_key": ("itinerary_day", ("route", "day_number")),
    "seat_vehicle_label_key": ("seat", ("vehicle", "label")),
    "route_fare_class_type_key": ("route_fare", ("route", "seat_class", "passenger_type")),
    "departure_fare_class_type_key": (
        "departure_fare",
        ("departure", "seat_class", "passenger_type"),
    ),
    "departure_seat_block_key": ("departure_seat_block", ("departure", "seat")),
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for name, (table, columns) in UNIQUE_INDEXES.items():
            column_list = ", ".join(f'"{column}"' for column in columns)
            await engine.run_ddl(f'CREATE UNIQUE INDEX "{name}" ON "{table}" ({column_list})')

    async def drop_indexes():
        engine = engine_finder()
        for name in UNIQUE_INDEXES:
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
