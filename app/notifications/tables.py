"""The transactional outbox: side effects written with the change that causes them."""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class OutboxMessage(Table):
    id = UUID(primary_key=True)
    kind = Varchar(length=64, index=True)
    # Natural key of the effect (e.g. booking reference + kind): a repeat is a no-op.
    key = Varchar(length=200, unique=True)
    payload = JSON()
    created_at = Timestamptz(default=TimestamptzNow())
    available_at = Timestamptz(default=TimestamptzNow(), index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")
    done_at = Timestamptz(null=True, default=None)
