"""Network effects that must wait for the database work that causes them to commit.

A service that calls a provider or Redis because of its writes (pay owed refunds,
schedule a hold's expiry job) hands the call to `after_commit`. Inside a transaction the
call waits until the outermost one has committed, and is dropped if it rolls back:
`write_transaction()` collects the effects made inside it (unless an enclosing
`effects_after_commit()` already does, e.g. an idempotent request, whose key, work and
stored answer commit together). So no provider is asked to act on work that may still be
rolled back (a refund paid for a cancellation that never happened), and no transaction
holds its locks while a provider or Redis answers. Outside any transaction the call is
made at once. If the process dies after the commit and before the call, the workers'
periodic steps make it (refunds are retried, holds are expired by the sweep).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar

from app.core.engine import get_engine

logger = logging.getLogger("tourline.effects")

Effect = Callable[[], Awaitable[object]]

_pending: ContextVar[list[Effect] | None] = ContextVar("tourline_after_commit", default=None)


def _transaction_open() -> bool:
    return get_engine().current_transaction.get() is not None


async def after_commit(effect: Effect) -> None:
    """Run `effect` once the enclosing transaction has committed (dropped if it rolls
    back); at once outside any transaction."""
    pending = _pending.get()
    if pending is not None:
        pending.append(effect)
    elif _transaction_open():
        # Only a transaction opened around write_transaction() collects nothing: running
        # the effect now would act before the commit, waiting would lose it.
        raise RuntimeError("after_commit inside a transaction that does not collect effects")
    else:
        await effect()


@contextlib.asynccontextmanager
async def effects_after_commit() -> AsyncIterator[list[Effect]]:
    """Collect `after_commit` effects made inside the block (wrap the transaction in it);
    run them when the block ends without an error, drop them when it raises. The caller
    may drop effects of work it rolled back to a savepoint (`del effects[mark:]`)."""
    pending: list[Effect] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)
    for effect in pending:
        try:
            await effect()
        except Exception:  # the work is committed; the workers' sweeps retry the effect
            logger.exception("an effect after commit failed")


@contextlib.asynccontextmanager
async def effects_of_transaction() -> AsyncIterator[None]:
    """For `write_transaction()`, around its transaction: the outermost one collects the
    effects made inside it and runs them after its COMMIT; a nested one, or one inside an
    `effects_after_commit()` block, leaves them to the enclosing collector."""
    if _pending.get() is not None or _transaction_open():
        yield
        return
    async with effects_after_commit():
        yield


@contextlib.asynccontextmanager
async def savepoint() -> AsyncIterator[None]:
    """Inside a transaction: when the block raises, undo its writes (ROLLBACK TO
    SAVEPOINT) and drop the effects it registered, and re-raise; the transaction goes on
    usable (on PostgreSQL a failed statement otherwise aborts the whole transaction)."""
    transaction = get_engine().current_transaction.get()
    if transaction is None:
        raise RuntimeError("savepoint() outside a transaction")
    pending = _pending.get()
    mark = len(pending) if pending is not None else 0
    point = await transaction.savepoint()
    try:
        yield
    except Exception:
        await point.rollback_to()
        if pending is not None:
            del pending[mark:]
        raise
    await point.release()
