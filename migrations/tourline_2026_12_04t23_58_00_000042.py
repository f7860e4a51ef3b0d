from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Text, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-04T23:58:00:000042"
VERSION = "1.38.0"
DESCRIPTION = "contacts of each passenger and the agency's unit item uuid and reference (OCTO unitItems); the lead contact's country and postal code"

_TABLES = {"Booking": "booking", "BookingLine": "booking_line"}


def _column(table: str, column: str, length: int | None, null: bool = False) -> dict[str, object]:
    params: dict[str, object] = {
        "default": None if null else "",
        "null": null,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    if length is not None:
        params["length"] = length
    return {
        "table_class_name": table,
        "tablename": _TABLES[table],
        "column_name": column,
        "db_column_name": column,
        "column_class_name": "Varchar" if length is not None else "Text",
        "column_class": Varchar if length is not None else Text,
        "params": params,
        "schema": None,
    }


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)
    manager.add_column(**_column("Booking", "contact_country", 2))
    manager.add_column(**_column("Booking", "contact_postal_code", 16))
    manager.add_column(**_column("BookingLine", "passenger_email", 254))
    manager.add_column(**_column("BookingLine", "passenger_phone", 32))
    manager.add_column(**_column("BookingLine", "passenger_country", 2))
    manager.add_column(**_column("BookingLine", "passenger_notes", None))
    manager.add_column(**_column("BookingLine", "partner_uuid", 64, null=True))
    manager.add_column(**_column("BookingLine", "reseller_reference", 64))
    return manager
