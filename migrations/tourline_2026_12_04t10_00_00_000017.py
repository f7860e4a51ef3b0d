"""Notifications are claimed (status `sending`, by a worker) before they are sent, and
skipped when they no longer apply."""

from enum import Enum

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-04T10:00:00:000017"
VERSION = "1.38.0"
DESCRIPTION = "notifications claimed before sending"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="tourline", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Notification",
        tablename="notification",
        column_name="claimed_by",
        db_column_name="claimed_by",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 120,
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
        schema=None,
    )

    manager.alter_column(
        table_class_name="Notification",
        tablename="notification",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "NotificationStatus",
                {
                    "pending": "pending",
                    "sending": "sending",
                    "sent": "sent",
                    "failed": "failed",
                    "skipped": "skipped",
                },
            )
        },
        old_params={
            "choices": Enum(
                "NotificationStatus",
                {"pending": "pending", "sent": "sent", "failed": "failed"},
            )
        },
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
