"""A record that commits together with a request's change, or not at all.

The audit log's entry of a staff write must not be lost when the change commits, nor stay
when it rolls back. The request sets its record with `recording(record)`; the first
outermost `write_transaction()` of the request that reaches its COMMIT writes the record
inside the transaction, just before committing, and tells it once the COMMIT succeeded.
A transaction that raises writes nothing (its record would roll back with it anyway), so
a later transaction of the same request (or the request's own fallback) can still write it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol


class ChangeRecord(Protocol):
    async def write(self) -> bool:
        """Inside the transaction, before COMMIT: write the record unless it is written
        already (or there is nothing to record); True if it wrote."""

    def committed(self) -> None:
        """The transaction that wrote the record has committed."""


_record: ContextVar[ChangeRecord | None] = ContextVar("tourline_change_record", default=None)


@contextlib.contextmanager
def recording(record: ChangeRecord) -> Iterator[None]:
    """Have the transactions run inside the block carry `record` (see the module)."""
    token = _record.set(record)
    try:
        yield
    finally:
        _record.reset(token)


def current_record() -> ChangeRecord | None:
    return _record.get()
