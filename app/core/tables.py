"""Tables of cross-cutting concerns: stored responses for idempotent retries, and the
outbox of published events."""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Integer, Text, Timestamptz, Varchar
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
    # For a guest's key: a hash of the guest session that made it (`app.core.idempotency`).
    owner = Varchar(length=64, default="")
    # None while the first request is still running.
    status_code = Integer(null=True, default=None)
    response_body = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)


class OutboxMessage(Table):
    """A published event (`app.core.events`) and its outbox handlers' progress."""

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
    # Set when the dispatcher gave up after its last attempt.
    failed_at = Timestamptz(null=True, default=None)


class AttemptCounter(Table):
    """Failed attempts (logins, booking tokens) per key and window, where Redis does not
    count them (`app.core.throttle`): one row per counter, added to in one upsert."""

    name = Varchar(length=120, primary_key=True)
    hits = Integer(default=0)
    # Unix seconds: when the counter's window has ended and the row may go.
    expires_at = Integer(default=0, index=True)
