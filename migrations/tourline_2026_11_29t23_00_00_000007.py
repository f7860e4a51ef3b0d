from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-29T23:00:00:000007"
VERSION = "1.38.0"
DESCRIPTION = "route reminder hours"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="tourline", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Route",
        tablename="route",
        column_name="reminder_hours",
        db_column_name="reminder_hours",
        column_class_name="JSON",
        column_class=JSON,
        params={
            "default": "[48, 3]",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
