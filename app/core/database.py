"""Database engine: PostgreSQL with a pool in production, SQLite as the embedded default.

Writing transactions go through `write_transaction()`, which is IMMEDIATE on SQLite so two
writers never interleave a read and a write of the same rows.

An outage is bounded and named: connecting, each statement and waiting for a pooled
connection have timeouts (settings), and a database that is away, cut off or hanging
raises `DatabaseUnavailable` (a 503), never a 500 or an endless wait. Every transaction
gives its connection back whatever fails, BEGIN, COMMIT and ROLLBACK included, so that
the pool is whole again after any number of outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import asyncpg
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType
from piccolo.querystring import QueryString

from app.core.after_commit import effects_of_transaction
from app.core.change_record import current_record
from app.core.engine import get_engine, is_sqlite
from app.core.errors import DatabaseUnavailable
from app.core.settings import Settings

logger = logging.getLogger("tourline.database")

# How long a stopping process waits for its pool to close politely before cutting it:
# closing waits for every connection in use and says goodbye over each, which a dead
# database never acknowledges.
POOL_CLOSE_SECONDS = 5.0

# What a lost, refused, hanging or overwhelmed PostgreSQL raises (as opposed to an error
# of the statement itself, e.g. a constraint): the connection's state is unknown.
_POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect, statement or pool timeout: a black hole, or far too slow
    asyncpg.PostgresConnectionError,  # class 08; also "connection was closed in the middle"
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting, canceled
    asyncpg.exceptions.TooManyConnectionsError,
)


def unavailable_from(exc: BaseException) -> DatabaseUnavailable | None:
    """The 503 that `exc` amounts to, if it means the database is away (or, on SQLite,
    locked longer than the timeout); None for a bug or an error of the statement."""
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc)
        locked = "locked" in message or "busy" in message
        return DatabaseUnavailable("database_busy") if locked else None
    if isinstance(exc, asyncpg.InterfaceError):
        # asyncpg's client-side errors are mostly misuse (bugs), except a closed connection
        # or a closing pool.
        message = str(exc)
        return DatabaseUnavailable() if "closed" in message or "closing" in message else None
    return DatabaseUnavailable() if isinstance(exc, _POSTGRES_OUTAGES) else None


@contextlib.contextmanager
def _outage_is_unavailable(statement: object = None) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        unavailable = unavailable_from(exc)
        if unavailable is None or unavailable is exc:
            raise
        if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
            # The server ended a statement that ran (or waited for a lock) past the
            # statement timeout: the database is up, the statement is too slow. Still a
            # 503 to retry, but a fault of ours to fix: logged loudly, with the statement.
            logger.error(
                "statement cancelled by the server after the statement timeout (a slow "
                "query or a long lock wait, not an outage): %s",
                _shortened(statement),
                exc_info=exc,
            )
        raise unavailable from exc


# Told the text of every statement the engines send, while any is registered: tests pin how
# many statements a request costs, benchmarks count them (`statements_told_to`). Nothing
# listens in production, where this costs one check per connection taken.
StatementListener = Callable[[str], None]
_statement_listeners: list[StatementListener] = []


@contextlib.contextmanager
def statements_told_to(listener: StatementListener) -> Iterator[None]:
    """Tell `listener` the text of every statement sent to the database (BEGIN, COMMIT and
    savepoints included) by connections taken from the engines while this lasts. On
    PostgreSQL asyncpg tells it a moment after the statement's answer (on the event loop's
    next turn); on SQLite from the connection's thread as the statement starts."""
    _statement_listeners.append(listener)
    try:
        yield
    finally:
        _statement_listeners.remove(listener)


def _tell_listeners(statement: str) -> None:
    for listener in list(_statement_listeners):
        listener(statement)


def _traced_sqlite_statement(statement: str) -> None:
    # Piccolo sets this before each statement of a transaction: bookkeeping in the same
    # process, not work sent to a database.
    if statement != "PRAGMA foreign_keys = 1":
        _tell_listeners(statement)


def _logged_postgres_statement(record: Any) -> None:
    _tell_listeners(record.query)


# PostgreSQL connections (as taken from the pool) reporting to the listeners right now.
_observed: set[Any] = set()


def _observe(connection: Any) -> Any:
    """The connection, reporting its statements to the listeners if there are any."""
    if _statement_listeners:
        connection.add_query_logger(_logged_postgres_statement)
        _observed.add(connection)
    return connection


def _unobserve(connection: Any) -> None:
    """Stop a connection given back from reporting (the next to take it may not count)."""
    if _observed and connection in _observed:
        _observed.discard(connection)
        with contextlib.suppress(asyncpg.InterfaceError):  # already closed: nothing left
            connection.remove_query_logger(_logged_postgres_statement)


def _shortened(statement: object, limit: int = 500) -> str:
    """The statement for the log: its text with placeholders, without the values (which
    may be a person's details)."""
    if isinstance(statement, QueryString):
        statement = statement.compile_string(engine_type="postgres")[0]
    text = " ".join(str(statement or "(end of a transaction)").split())
    return text if len(text) <= limit else f"{text[:limit]}..."


async def _give_back(pool: Any, connection: Any, failure: BaseException | None) -> None:
    """Return a pooled connection, also after a failure. One whose statement was lost to an
    outage or interrupted (cancelled) is in an unknown state: it is terminated, at once,
    and the pool opens a fresh one when next needed. Otherwise asyncpg's release rolls back
    an open transaction (bounded by the acquire timeout, then terminated)."""
    _unobserve(connection)
    if failure is not None and (
        isinstance(failure, asyncio.CancelledError) or unavailable_from(failure) is not None
    ):
        # A connection that closed (lost) is already back in the pool: asyncpg then refuses
        # any call on it, and there is nothing left to terminate.
        with contextlib.suppress(asyncpg.InterfaceError):
            connection.terminate()
    if pool is not None:
        await pool.release(connection)
    elif failure is None:
        await connection.close()
    else:
        # Not pooled, and its state is unknown (e.g. a failed COMMIT): nothing else would
        # ever close it.
        with contextlib.suppress(asyncpg.InterfaceError):
            connection.terminate()


class _GivesConnectionBack:
    """Piccolo's transactions give their connection back only after BEGIN and then COMMIT
    or ROLLBACK succeeded: one that raises (a timeout, a reset, a cancelled task) kept the
    pooled connection out of the pool for good. This `__aenter__`/`__aexit__` gives it back
    on every path, and turns an outage into `DatabaseUnavailable`."""

    __slots__ = ()
    # Of Piccolo's transaction classes, which this is mixed into.
    _parent: Any
    _committed: bool
    _rolled_back: bool
    engine: Any
    connection: Any
    context: Any

    if TYPE_CHECKING:  # Piccolo's, and the engine's own `_give_back`

        async def get_connection(self) -> Any: ...
        async def begin(self) -> None: ...
        async def commit(self) -> None: ...
        async def rollback(self) -> None: ...
        async def _give_back(self, failure: BaseException | None) -> None: ...

    async def __aenter__(self) -> Any:
        if self._parent is not None:
            return self._parent
        with _outage_is_unavailable():
            self.connection = await self.get_connection()
            try:
                await self.begin()
            except BaseException as exc:
                await self._give_back(exc)
                raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        # What leaves the connection in an unknown state: its statements lost to an outage
        # (queries in the body went through the engine, which named them so), or a
        # failing end of the transaction.
        failure: BaseException | None = None
        try:
            with _outage_is_unavailable():
                if exception is not None and not isinstance(exception, Exception):
                    # Cancelled (SIGTERM, a stop, a time limit): the cancel must go on as
                    # it is, at once. A rollback could wait for a database that is gone,
                    # and its failure would replace the cancel by an outage; ending the
                    # connection rolls the transaction back on the server anyway.
                    failure = exception
                elif isinstance(exception, DatabaseUnavailable):
                    # Nothing left to roll back (the server does it when the connection
                    # goes), and asking would only wait for another timeout.
                    failure = exception
                elif exception is not None:
                    if not self._rolled_back:
                        await self.rollback()
                elif not self._committed and not self._rolled_back:
                    await self.commit()
        except BaseException as ending:
            failure = ending
            raise
        finally:
            self.engine.current_transaction.reset(self.context)
            await self._give_back(failure)
        return exception is None


class _PostgresTransaction(_GivesConnectionBack, PostgresTransaction):
    # The pool the connection came from: the engine's may be gone (closing) by the end.
    __slots__ = ("pool",)

    async def get_connection(self) -> Any:
        self.pool = pool = self.engine.pool
        if pool is None:
            return _observe(await self.engine.get_new_connection())
        return _observe(await pool.acquire(timeout=self.engine.acquire_timeout))

    async def begin(self) -> None:
        self.transaction = self.connection.transaction()
        await self.transaction.start()

    async def _give_back(self, failure: BaseException | None) -> None:
        await _give_back(self.pool, self.connection, failure)


class _SQLiteTransaction(_GivesConnectionBack, SQLiteTransaction):
    __slots__ = ()

    async def _give_back(self, failure: BaseException | None) -> None:
        await self.connection.close()


class BoundedPostgresEngine(PostgresEngine):
    """Piccolo's PostgresEngine with a bounded wait for a pooled connection, transactions
    that always give their connection back, and outages raised as `DatabaseUnavailable`."""

    def __init__(
        self, *args: Any, acquire_timeout: float, statement_timeout: float, **kwargs: Any
    ) -> None:
        self.acquire_timeout = acquire_timeout
        self.statement_timeout = statement_timeout
        super().__init__(*args, **kwargs)

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        return _PostgresTransaction(engine=self, allow_nested=allow_nested)

    async def _run_in_pool(self, query: str, args: Sequence[Any] | None = None) -> Any:
        pool = self.pool
        if pool is None:
            raise ValueError("A pool isn't currently running.")
        connection = _observe(await pool.acquire(timeout=self.acquire_timeout))
        return await _fetch_and_give_back(pool, connection, query, args)

    async def _run_in_new_connection(self, query: str, args: Sequence[Any] | None = None) -> Any:
        connection = _observe(await self.get_new_connection())
        return await _fetch_and_give_back(None, connection, query, args)

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        with _outage_is_unavailable(querystring):
            return await super().run_querystring(querystring, in_pool)

    async def run_ddl(self, ddl: str, in_pool: bool = True) -> Any:
        with _outage_is_unavailable(ddl):
            return await super().run_ddl(ddl, in_pool)


async def _fetch_and_give_back(
    pool: Any, connection: Any, query: str, args: Sequence[Any] | None
) -> Any:
    failure: BaseException | None = None
    try:
        return await connection.fetch(query, *(args or ()))
    except BaseException as exc:
        failure = exc
        raise
    finally:
        await _give_back(pool, connection, failure)


class BoundedSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLiteEngine whose transactions always close their connection, and whose
    "database is locked" (after the timeout) is a `DatabaseUnavailable` (busy)."""

    def __init__(self, *args: Any, statement_timeout: float, **kwargs: Any) -> None:
        # How long a writer waits for SQLite's lock before failing (a 503, busy).
        self.statement_timeout = statement_timeout
        super().__init__(*args, timeout=statement_timeout, **kwargs)

    def transaction(
        self,
        transaction_type: TransactionType = TransactionType.deferred,
        allow_nested: bool = True,
    ) -> SQLiteTransaction:
        return _SQLiteTransaction(
            engine=self, transaction_type=transaction_type, allow_nested=allow_nested
        )

    async def get_connection(self) -> Any:
        connection = await super().get_connection()
        if _statement_listeners:
            # Every statement of a transaction's connection, BEGIN and COMMIT included.
            await connection.set_trace_callback(_traced_sqlite_statement)
        return connection

    async def run_querystring(self, querystring: QueryString, in_pool: bool = False) -> Any:
        if _statement_listeners and self.current_transaction.get() is None:
            # On a connection of its own, which Piccolo opens without `get_connection`.
            _tell_listeners(querystring.compile_string(engine_type="sqlite")[0])
        with _outage_is_unavailable():
            return await super().run_querystring(querystring, in_pool)

    async def run_ddl(self, ddl: str, in_pool: bool = False) -> Any:
        with _outage_is_unavailable():
            return await super().run_ddl(ddl, in_pool)


def create_engine(settings: Settings) -> Engine[Any]:
    if settings.uses_postgres:
        return BoundedPostgresEngine(
            config={
                **_asyncpg_config(settings.database_url),
                "timeout": settings.database_connect_timeout,
            },
            extensions=(),
            log_queries=settings.log_sql,
            acquire_timeout=settings.database_acquire_timeout,
            statement_timeout=settings.database_statement_timeout,
        )
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return BoundedSQLiteEngine(
        path=str(path),
        log_queries=settings.log_sql,
        statement_timeout=settings.database_statement_timeout,
    )


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


async def _keep_session(connection: Any) -> None:
    """Return a pooled connection as it is. asyncpg's default reset (unlock advisory locks,
    close cursors, UNLISTEN, RESET ALL) costs a round trip per release, i.e. per query
    outside a transaction, and undoes nothing here: the app keeps no session state on
    pooled connections (no SET, LISTEN, held cursors or session advisory locks; the
    migration lock has a connection of its own). An open transaction is still rolled back
    by asyncpg before this is called."""


def statement_timeout() -> timedelta:
    """How long one statement may run on the app's engine (its settings, see create_engine)."""
    engine = get_engine()
    assert isinstance(engine, BoundedPostgresEngine | BoundedSQLiteEngine)
    return timedelta(seconds=engine.statement_timeout)


def _pool_options(statement_seconds: float) -> dict[str, Any]:
    return {
        "reset": _keep_session,
        # The server stops a statement after the statement timeout; the client gives up a
        # moment later (a black hole answers nothing, not even an error). So a slow
        # statement on a healthy server ends as the server's cancel (logged as the error
        # it is), and only a database that does not answer as a client timeout (an outage).
        "command_timeout": statement_seconds + min(1.0, statement_seconds / 5),
        "server_settings": {"statement_timeout": str(int(statement_seconds * 1000))},
    }


async def start_pool(min_size: int, max_size: int, engine: Engine[Any] | None = None) -> None:
    """Open the PostgreSQL engine's connection pool, with the engine's statement timeout; a
    database that cannot be reached raises `DatabaseUnavailable`."""

    engine = engine or get_engine()
    assert isinstance(engine, BoundedPostgresEngine)
    with _outage_is_unavailable():
        await engine.start_connection_pool(
            min_size=min_size, max_size=max_size, **_pool_options(engine.statement_timeout)
        )


async def open_database(settings: Settings, engine: Engine[Any] | None = None) -> None:
    engine = engine or get_engine()
    if isinstance(engine, PostgresEngine):
        await start_pool(settings.database_pool_min, settings.database_pool_max, engine)
    elif isinstance(engine, SQLiteEngine):
        # WAL lets readers proceed while one writer holds the lock; it persists in the file.
        await engine.run_ddl("PRAGMA journal_mode=WAL")


async def close_database(engine: Engine[Any] | None = None) -> None:
    """Close the pool, within POOL_CLOSE_SECONDS: then its connections are cut, so that a
    stopping process never waits on a database that is gone (or on a connection that was
    never given back)."""
    engine = engine or get_engine()
    if not isinstance(engine, PostgresEngine) or engine.pool is None:
        return
    pool, engine.pool = engine.pool, None
    try:
        await asyncio.wait_for(pool.close(), timeout=POOL_CLOSE_SECONDS)
    except Exception as exc:  # a timeout, or a connection failing to say goodbye
        logger.warning("database pool cut instead of closed: %r", exc)
        pool.terminate()


@contextlib.asynccontextmanager
async def write_transaction() -> AsyncIterator[None]:
    """A transaction for reads that lead to writes (IMMEDIATE on SQLite). The outermost
    one runs the `after_commit` effects made inside it once it has committed, and carries
    the request's change record (the audit entry of a staff write) into its COMMIT."""

    engine = get_engine()
    record = current_record() if engine.current_transaction.get() is None else None
    wrote = False
    async with effects_of_transaction():
        if isinstance(engine, SQLiteEngine):
            transaction = engine.transaction(transaction_type=TransactionType.immediate)
        else:
            transaction = engine.transaction()
        async with transaction:
            yield
            if record is not None:
                wrote = await record.write()
        if wrote and record is not None:
            record.committed()


async def ping() -> None:
    await get_engine().run_ddl("SELECT 1")


# Key of the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK_KEY = 7_311_977_001


async def migrate(quiet: bool = True) -> None:
    """Apply every pending migration (idempotent). On PostgreSQL, processes that start
    together (several API servers on a deploy) take turns: the others wait, then find
    nothing left to do."""
    engine = get_engine()
    if not isinstance(engine, PostgresEngine):
        await _run_migrations(quiet)
        return
    lock = await asyncpg.connect(**engine.config)
    requests_pool = engine.pool
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        # A migration may run longer than a request's statement timeout (an index on a
        # big table): it gets a pool of its own, without one.
        engine.pool = await asyncpg.create_pool(
            **engine.config, min_size=1, max_size=2, reset=_keep_session
        )
        try:
            await _run_migrations(quiet)
        finally:
            await engine.pool.close()
    finally:
        engine.pool = requests_pool
        await lock.close()  # ends the session, and with it the lock


async def _run_migrations(quiet: bool) -> None:
    # Piccolo's migration runner finds the apps through PICCOLO_CONF, which imports the
    # tables of every domain: loaded when migrating, not by everything that opens the pool.
    from piccolo.apps.migrations.commands.forwards import run_forwards

    output = io.StringIO()
    with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
        result = await run_forwards(app_name="all")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}\n{output.getvalue()}")


def for_update(query: Any) -> Any:
    """Lock the selected rows until the transaction ends (PostgreSQL). SQLite needs no row
    lock: a `write_transaction()` there already holds the database's single write lock."""
    if is_sqlite():
        return query
    return query.lock_rows("UPDATE")
