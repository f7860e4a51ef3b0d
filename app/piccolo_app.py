"""The single Piccolo app: every table of every domain, migrations in the top-level folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

import migrations

TABLE_MODULES = [
    "app.core.tables",
    "app.accounts.tables",
    "app.catalogue.tables",
    "app.booking.tables",
    "app.notifications.tables",
    "app.payments.tables",
    "app.partners.tables",
    "app.excursions.tables",
]

APP_CONFIG = AppConfig(
    app_name="tourline",
    migrations_folder_path=str(Path(migrations.__file__).parent),
    table_classes=table_finder(TABLE_MODULES, exclude_imported=True),
    migration_dependencies=[],
    commands=[],
)
