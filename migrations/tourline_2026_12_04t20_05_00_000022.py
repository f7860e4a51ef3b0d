"""At most one pending change per booking (raw SQL runs before a migration's tables, so
this index has a migration of its own)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-04T20:05:00:000022"
VERSION = "1.38.0"
DESCRIPTION = "one pending change per booking"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_index():
        await engine_finder().run_ddl(
            'CREATE UNIQUE INDEX "booking_change_one_pending" ON "booking_change" ("booking") '
            "WHERE status = 'pending'"
        )

    async def drop_index():
        await engine_finder().run_ddl('DROP INDEX IF EXISTS "booking_change_one_pending"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
