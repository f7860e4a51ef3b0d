"""Tables of cross-cutting concerns: stored responses for idempotent retries."""

from __future__ import annotations

from piccolo.columns import UUID, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class IdempotencyRecord(Table):
    """The first response to a (scope, key) pair, replayed to every retry with the same body.

    (scope, key) is a unique index created in a migration.
    """

    id = UUID(primary_key=True)
    scope = Varchar(length=120)
    key = Varchar(length=255)
    request_hash = Varchar(length=64)
    # None while the first request is still running.
    status_code = Integer(null=True, default=None)
    response_body = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
