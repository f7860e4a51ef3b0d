"""A coach's place holds one traveller, and a traveller rides one coach per excursion
(raw SQL runs before a migration's tables, so these indexes have a migration of their own)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-04T23:51:00:000039"
VERSION = "1.38.0"
DESCRIPTION = "one traveller per coach place, one coach per traveller and excursion"

INDEXES = (
    ("coach_assignment_place_key", "coach_assignment", '"coach", "place"'),
    ("coach_assignment_line_key", "coach_assignment", '"excursion", "line"'),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def create_indexes():
        for name, table, columns in INDEXES:
            await engine_finder().run_ddl(f'CREATE UNIQUE INDEX "{name}" ON "{table}" ({columns})')

    async def drop_indexes():
        for name, _table, _columns in INDEXES:
            await engine_finder().run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
