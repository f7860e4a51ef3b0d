"""Network effects that must wait for the database work that causes them to commit.

A service that calls a provider after its transaction (pay owed refunds, schedule a hold's
expiry job) hands the call to `after_commit`. Run alone, the call is made at once, as
before. Run inside a larger transaction that collects effects (an idempotent request: the
key, the work and the stored answer commit together), the call waits until that
transaction has committed, so that no provider is asked to act on work that may still be
rolled back (a refund paid for a cancellation that never happened), and no transaction
holds its locks while a provider answers. If the process dies after the commit and before
the call, the workers' periodic steps make it (refunds are retried, holds are expired by
the sweep).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar

logger = logging.getLogger("tourline.effects")

Effect = Callable[[], Awaitable[object]]

_pending: ContextVar[list[Effect] | None] = ContextVar("tourline_after_commit", default=None)


async def after_commit(effect: Effect) -> None:
    """Run `effect` now, or once the enclosing collecting transaction has committed."""
    pending = _pending.get()
    if pending is None:
        await effect()
    else:
        pending.append(effect)


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
