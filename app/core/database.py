"""Database engine: PostgreSQL with a pool in production, SQLite as the embedded default.

Writing transactions go through `write_transaction()`, which is IMMEDIATE on SQLite so two
writers never interleave a read and a write of the same rows.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlparse

from piccolo.engine.base import Engine
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app.core.settings import Settings


def create_engine(settings: Settings) -> Engine[Any]:
    if settings.uses_postgres:
        return PostgresEngine(
            config=_asyncpg_config(settings.database_url),
            extensions=(),
            log_queries=settings.log_sql,
        )
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # timeout: how long a writer waits for SQLite's lock before failing.
    return SQLiteEngine(path=str(path), log_queries=settings.log_sql, timeout=30)


def _asyncpg_config(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    config: dict[str, Any] = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": unquote(parsed.username) if parsed.username else "postgres",
        "database": parsed.path.lstrip("/") or "postgres",
    }
    if parsed.password:
        config["password"] = unquote(parsed.password)
    return config


def get_engine() -> Engine[Any]:
    engine = engine_finder()
    if engine is None:
        raise RuntimeError("Piccolo engine not configured (PICCOLO_CONF)")
    return engine


def is_sqlite() -> bool:
    return isinstance(get_engine(), SQLiteEngine)


async def _keep_session(connection: Any) -> None:
    """Return a pooled connection as it is. asyncpg's default reset (unlock advisory locks,
    close cursors, UNLISTEN, RESET ALL) costs a round trip per release, i.e. per query
    outside a transaction, and undoes nothing here: the app keeps no session state on
    pooled connections (no SET, LISTEN, held cursors or session advisory locks; the
    migration lock has a connection of its own). An open transaction is still rolled back
    by asyncpg before this is called."""


async def start_pool(min_size: int, max_size: int) -> None:
    """Open the PostgreSQL engine's connection pool."""
    engine = get_engine()
    assert isinstance(engine, PostgresEngine)
    await engine.start_connection_pool(min_size=min_size, max_size=max_size, reset=_keep_session)


async def open_database(settings: Settings) -> None:
    engine = get_engine()
    if isinstance(engine, PostgresEngine):
        await start_pool(settings.database_pool_min, settings.database_pool_max)
    elif isinstance(engine, SQLiteEngine):
        # WAL lets readers proceed while one writer holds the lock; it persists in the file.
        await engine.run_ddl("PRAGMA journal_mode=WAL")


async def close_database() -> None:
    engine = get_engine()
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()


@contextlib.asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    """A transaction for reads that lead to writes (IMMEDIATE on SQLite)."""
    engine = get_engine()
    if isinstance(engine, SQLiteEngine):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with engine.transaction():
            yield


async def ping() -> None:
    await get_engine().run_ddl("SELECT 1")


# Key of the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK_KEY = 7_311_977_001


async def migrate(quiet: bool = True) -> None:
    """Apply every pending migration (idempotent). On PostgreSQL, processes that start
    together (several API servers on a deploy) take turns: the others wait, then find
    nothing left to do."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    engine = get_engine()
    lock = None
    if isinstance(engine, PostgresEngine):
        import asyncpg

        lock = await asyncpg.connect(**engine.config)
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        output = io.StringIO()
        with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
            result = await run_forwards(app_name="all")
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}\n{output.getvalue()}")
    finally:
        if lock is not None:
            await lock.close()  # ends the session, and with it the lock


def for_update(query: Any) -> Any:
    """Lock the selected rows until the transaction ends (PostgreSQL). SQLite needs no row
    lock: a `write_transaction()` there already holds the database's single write lock."""
    if is_sqlite():
        return query
    return query.lock_rows("UPDATE")
