"""The inventory invariant and idempotency keys, as unique indexes both databases accept."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-29T22:10:00:000004"
VERSION = "1.38.0"
DESCRIPTION = "booking unique keys"

INDEXES = [
    # A seat belongs to at most one live booking line per departure.
    'CREATE UNIQUE INDEX "booking_line_live_seat_key" ON "booking_line" ("departure", "seat") '
    'WHERE "live"',
    'CREATE UNIQUE INDEX "idempotency_record_scope_key" ON "idempotency_record" ("scope", "key")',
    'CREATE INDEX "booking_departure_status" ON "booking" ("departure", "status")',
    'CREATE INDEX "waitlist_entry_departure_status" ON "waitlist_entry" ("departure", "status")',
]
NAMES = [
    "booking_line_live_seat_key",
    "idempotency_record_scope_key",
    "booking_departure_status",
    "waitlist_entry_departure_status",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_indexes():
        engine = engine_finder()
        for statement in INDEXES:
            await engine.run_ddl(statement)

    async def drop_indexes():
        engine = engine_finder()
        for name in NAMES:
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
