"""A place in a departure's crew roster is held by one member."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-04T23:42:00:000037"
VERSION = "1.38.0"
DESCRIPTION = "crew roster positions unique per departure"

NAME = "departure_crew_member_position_key"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_index():
        await engine_finder().run_ddl(
            f'CREATE UNIQUE INDEX "{NAME}" ON "departure_crew_member" ("departure", "position")'
        )

    async def drop_index():
        await engine_finder().run_ddl(f'DROP INDEX IF EXISTS "{NAME}"')

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
