"""Counting the statements a piece of work sends to the database, for tests that pin them.

    async with count_statements() as sent:
        response = await client.post("/api/v1/bookings", json=body)
    assert sent.statements == [...]  # or len(sent), sent.round_trips

Counted at the engines' boundary (`app.core.database.statements_told_to`): every statement
of every connection the app takes, Piccolo queries, raw SQL, BEGIN, COMMIT and savepoints
alike. On PostgreSQL each statement is one round trip to the server once asyncpg has it
prepared on the connection (its first use on a connection costs one more, to prepare it):
`round_trips` counts the statements, as a warm server sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from app.core import database

_FIRST_WORD = re.compile(r"\s*(\w+)")


@dataclass
class SentStatements:
    """The statements sent while counting, in order (their text, without values)."""

    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def round_trips(self) -> int:
        """Round trips to the database: one per statement (see the module's note)."""
        return len(self.texts)

    @property
    def kinds(self) -> list[str]:
        """The first keyword of each statement, upper case: SELECT, INSERT, BEGIN, ..."""
        return [_kind(text) for text in self.texts]

    def describe(self) -> str:
        """One line per statement, for an assertion's message."""
        lines = (f"{i + 1:3d}. {' '.join(t.split())[:160]}" for i, t in enumerate(self.texts))
        return "\n".join(lines)


def _kind(text: str) -> str:
    match = _FIRST_WORD.match(text)
    return match.group(1).upper() if match else ""


@contextlib.asynccontextmanager
async def count_statements() -> AsyncIterator[SentStatements]:
    """Count what the app sends to the database inside the block (this process only)."""
    sent = SentStatements()
    with database.statements_told_to(sent.texts.append):
        try:
            yield sent
        finally:
            # asyncpg tells its loggers on the event loop's next turn; SQLite's thread has
            # told them before the statement's answer came back.
            for _ in range(3):
                await asyncio.sleep(0)
