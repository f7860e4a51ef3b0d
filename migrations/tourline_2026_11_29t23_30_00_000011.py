"""A partner's booking uuid is unique per agency (its idempotency key for holds)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-29T23:30:00:000011"
VERSION = "1.38.0"
DESCRIPTION = "partner booking uuid key"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_index():
        await engine_finder().run_ddl(
            'CREATE UNIQUE INDEX "booking_agency_partner_uuid_key" '
            'ON "booking" ("agency", "partner_uuid")'
        )

    async def drop_index():
        await engine_finder().run_ddl('DROP INDEX IF EXISTS "booking_agency_partner_uuid_key"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
