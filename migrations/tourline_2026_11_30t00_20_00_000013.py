"""One net rate per agency and fare; one allotment per agency, departure and class."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-30T00:20:00:000013"
VERSION = "1.38.0"
DESCRIPTION = "net rate and allotment keys"

INDEXES = {
    "net_rate_fare_key": ('"net_rate"', '"agency", "route", "seat_class", "passenger_type"'),
    "allotment_class_key": ('"allotment"', '"agency", "departure", "seat_class"'),
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_indexes():
        for name, (table, columns) in INDEXES.items():
            await engine_finder().run_ddl(f'CREATE UNIQUE INDEX "{name}" ON {table} ({columns})')

    async def drop_indexes():
        for name in INDEXES:
            await engine_finder().run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
