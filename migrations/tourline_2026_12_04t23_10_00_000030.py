from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-04T23:10:00:000030"
VERSION = "1.38.0"
DESCRIPTION = "a booking's notes and its lead contact's notes (OCTO `notes`, `contact.notes`)"


def _text(column: str) -> dict[str, object]:
    return {
        "table_class_name": "Booking",
        "tablename": "booking",
        "column_name": column,
        "db_column_name": column,
        "column_class_name": "Text",
        "column_class": Text,
        "params": {
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        "schema": None,
    }


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)
    manager.add_column(**_text("notes"))
    manager.add_column(**_text("contact_notes"))
    return manager
