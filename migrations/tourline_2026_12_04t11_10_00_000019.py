"""Payments from before `settled_at` existed that can move no more money are settled, so
that the reconciliation sweep does not ask Stripe about every old intent.

Cancelled payments were cancelled at Stripe (or, replaced by a rebooking, left to it);
succeeded ones were applied when they succeeded. Failed ones are left unsettled: their
intent may still take the tourist's money (a declined card can be retried), which is the
case the sweep exists for; it asks Stripe about each once and settles it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-12-04T11:10:00:000019"
VERSION = "1.38.0"
DESCRIPTION = "settle old payments"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tourline", description=DESCRIPTION)

    async def settle():
        engine = engine_finder()
        await engine.run_ddl(
            'UPDATE "payment" SET "settled_at" = "updated_at" '
            "WHERE \"settled_at\" IS NULL AND \"status\" = 'cancelled'"
        )
        await engine.run_ddl(
            'UPDATE "payment" SET "settled_at" = COALESCE("succeeded_at", "updated_at") '
            "WHERE \"settled_at\" IS NULL AND \"status\" = 'succeeded'"
        )

    manager.add_raw(settle)
    return manager
