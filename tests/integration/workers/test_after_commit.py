"""Effects handed to `after_commit` inside a write transaction (a Redis job, a provider
call) run only once its outermost COMMIT is done, and never when it rolls back; a savepoint
drops the effects of the work it undoes."""

from __future__ import annotations

import pytest

from app.core.after_commit import after_commit, savepoint
from app.core.database import get_engine, write_transaction
from app.core.events import Event, publish
from app.core.tables import OutboxMessage


class Marker(Event, frozen=True, kw_only=True):
    """An event nobody handles: its outbox row shows whether the work committed."""

    name = "test.marker"
    marker: str

    @property
    def key(self) -> str:
        return self.marker


async def enqueue(key: str) -> None:
    await publish(Marker(marker=key))


async def _committed(key: str) -> bool:
    """Whether `key` is visible outside the writing transaction."""
    assert get_engine().current_transaction.get() is None
    return await OutboxMessage.exists().where(OutboxMessage.key == key).run()


async def test_an_effect_in_a_nested_write_transaction_waits_for_the_outermost_commit() -> None:
    seen: list[bool] = []

    async def effect() -> None:
        seen.append(await _committed("effect:committed"))

    async with write_transaction():
        await enqueue("effect:committed")
        async with write_transaction():
            await after_commit(effect)
        assert seen == []  # the inner block ended, the transaction has not
        await enqueue("effect:also")
        assert seen == []
    assert seen == [True]


async def test_an_effect_of_a_rolled_back_transaction_never_runs() -> None:
    ran: list[str] = []

    async def effect() -> None:
        ran.append("ran")

    async def fails() -> None:
        async with write_transaction():
            await enqueue("effect:rolled-back")
            await after_commit(effect)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fails()
    assert ran == []
    assert not await _committed("effect:rolled-back")


async def test_a_savepoint_drops_the_effects_of_the_work_it_undoes() -> None:
    ran: list[str] = []

    async def effect(name: str) -> None:
        ran.append(name)

    async def undone() -> None:
        async with savepoint():
            await enqueue("effect:undone")
            await after_commit(lambda: effect("undone"))
            raise ValueError("undone")

    async with write_transaction():
        await after_commit(lambda: effect("kept"))
        with pytest.raises(ValueError, match="undone"):
            await undone()
        await enqueue("effect:kept")
    assert ran == ["kept"]
    assert await _committed("effect:kept")
    assert not await _committed("effect:undone")


async def test_an_effect_outside_a_transaction_runs_at_once() -> None:
    ran: list[str] = []

    async def effect() -> None:
        ran.append("ran")

    await after_commit(effect)
    assert ran == ["ran"]
