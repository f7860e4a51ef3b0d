"""Idempotent POSTs: the first response to an `Idempotency-Key` is stored and replayed.

The key is claimed in the same database transaction as the work it protects: the record
is inserted, the handler's writes are made and its response is stored, then all of it
commits at once. So a request that crashes (an exception, a killed process, a dropped
connection) rolls its claim back with its work, and a retry runs once as if it were the
first; a retry that comes while the first request is still running waits on the key's
unique index, then replays the stored answer. A domain error (409 sold out, 404 ...) rolls
the handler's writes back to a savepoint and is stored like any answer; 5xx answers are
not stored (the claim is rolled back too): the client may retry them.

Network effects of the handler (paying a refund, scheduling the hold's expiry job) run
only after the commit (`app.core.after_commit`), so no provider acts on work that is then
rolled back, and a rerun finds the same committed rows, and so the same provider
idempotency keys, as the first run.

Keys belong to their caller. Staff and agencies' keys are scoped by who they are (the
scope names the staff member or agency), so another caller's key is a key of its own. A
guest has no identity but a session: the `tourline_guest` cookie (random, HttpOnly),
set on the first answer to a guest's idempotent request that came without one. A guest's
key is stored with a hash of that session, and its answer (which may hold a booking's
access token) is replayed only to the same session. A caller with another session gets a
fresh result of its own; a caller without a session cannot be told apart from anyone, so
it gets 409 `idempotency_key_taken` and nothing of the first answer: a retry that lost
the first answer (and so its cookie) never books twice, and never sees what another
client booked. Clients that keep cookies (browsers, most HTTP libraries) retry within
their session.

Keys in progress expire after a short lease: on PostgreSQL a retry waits at most
`IN_PROGRESS_WAIT` for the first request, then gets 409 `idempotency_in_progress`; a first
request that hangs between statements for `IN_PROGRESS_LEASE` has its session ended by the
server, which rolls its claim back. A dead process's claim goes at once (the server rolls
back the transaction of a closed connection). A record committed without an answer (left
by an earlier version, which claimed keys in a transaction of their own) is taken over
after `IN_PROGRESS_TIMEOUT`. Records are kept at least `KEEP_FOR` (a worker job purges
older ones).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie

from app.core import clock
from app.core.after_commit import Effect, effects_after_commit
from app.core.database import statement_timeout, write_transaction
from app.core.engine import get_engine, is_sqlite
from app.core.errors import Conflict, DomainError, InvalidInput, handle_domain_error
from app.core.i18n import _
from app.core.tables import IdempotencyRecord

KEEP_FOR = timedelta(hours=24)
# How long a retry waits for a first request with the same key that is still running; less
# than the statement timeout (DATABASE_STATEMENT_TIMEOUT, 5 s by default), which would end
# the wait as a database outage (503) instead of the 409 it is.
IN_PROGRESS_WAIT = timedelta(seconds=3)
# How long a first request may sit idle inside its transaction before the server ends it.
IN_PROGRESS_LEASE = timedelta(seconds=30)
# When a record committed without an answer (an earlier version's) may be taken over.
IN_PROGRESS_TIMEOUT = timedelta(minutes=2)
# Keys forgotten per statement by `purge_expired` (each well inside the statement timeout).
PURGE_BATCH = 1000
# PostgreSQL's SQLSTATE for lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"


def _in_progress_wait() -> timedelta:
    """IN_PROGRESS_WAIT, shortened below a statement timeout configured shorter than it."""
    return min(IN_PROGRESS_WAIT, statement_timeout() * 0.8)


class IdempotencyMismatch(DomainError):
    status_code = 422
    code = "idempotency_key_reused"

    def title(self) -> str:
        return _("This Idempotency-Key was used for another request")


class _NotStored(Exception):
    """A 5xx answer: roll the claim back with the work and answer it unstored."""

    def __init__(self, response: Response[Any]) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _request_hash(request: Request[Any, Any, Any]) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def _encode(response: Response[Any]) -> bytes:
    content = response.content
    if isinstance(content, bytes):
        return content
    return msgspec.json.encode(content)


# The guest session's cookie, and how long it lasts (the life of a stored key, and more).
GUEST_COOKIE = "tourline_guest"
GUEST_COOKIE_SECONDS = 30 * 24 * 3600
_SESSION = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@dataclass(frozen=True, slots=True)
class GuestSession:
    """A guest caller's session: its id, whether the caller sent it (else it is new and
    goes back in a cookie), and whether that cookie is marked Secure."""

    id: str
    presented: bool
    secure: bool

    @property
    def owner(self) -> str:
        return hashlib.sha256(self.id.encode()).hexdigest()

    def cookie(self) -> Cookie:
        return Cookie(
            key=GUEST_COOKIE, value=self.id, path="/", max_age=GUEST_COOKIE_SECONDS,
            httponly=True, samesite="lax", secure=self.secure,
        )  # fmt: skip


def guest_session(request: Request[Any, Any, Any], *, secure: bool) -> GuestSession:
    """The caller's guest session, or a new one."""
    sent = request.cookies.get(GUEST_COOKIE, "")
    if _SESSION.match(sent):
        return GuestSession(sent, presented=True, secure=secure)
    return GuestSession(secrets.token_urlsafe(32), presented=False, secure=secure)


def _taken() -> Conflict:
    return Conflict(
        _("This Idempotency-Key was used by another client; send a new key."),
        code="idempotency_key_taken",
    )


def _in_progress() -> Conflict:
    conflict = Conflict(
        _("A request with this Idempotency-Key is still being processed."),
        code="idempotency_in_progress",
    )
    conflict.headers["Retry-After"] = str(int(IN_PROGRESS_WAIT.total_seconds()))
    return conflict


def _replay(stored: dict[str, Any]) -> Response[Any]:
    return Response(
        content=stored["response_body"].encode(),
        status_code=stored["status_code"],
        media_type="application/problem+json"
        if stored["status_code"] >= 400
        else "application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def _ms(duration: timedelta) -> str:
    return f"{int(duration.total_seconds() * 1000)}ms"


async def idempotent(
    request: Request[Any, Any, Any],
    key: str | None,
    scope: str,
    handler: Callable[[], Awaitable[Response[Any]]],
    *,
    guest: GuestSession | None = None,
) -> Response[Any]:
    """Run `handler` once per (scope, key); replay its stored response to retries. `scope`
    names the caller (staff member, agency, booking token); a `guest` caller's key is also
    bound to its session."""
    if key is None:
        return await handler()
    if not key.strip() or len(key) > 255:
        raise InvalidInput("Idempotency-Key", _("Use 1 to 255 characters."), source="header")
    request_hash = await _request_hash(request)
    try:
        async with effects_after_commit() as effects, write_transaction():
            response = await _claim_and_run(
                request, scope, key, request_hash, handler, effects, guest
            )
    except _NotStored as not_stored:
        response = not_stored.response
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise _in_progress() from exc
        raise
    if guest is not None and not guest.presented:
        response.cookies.append(guest.cookie())
    return response


async def _claim_and_run(
    request: Request[Any, Any, Any],
    scope: str,
    key: str,
    request_hash: str,
    handler: Callable[[], Awaitable[Response[Any]]],
    effects: list[Effect],
    guest: GuestSession | None,
) -> Response[Any]:
    """Inside the request's transaction: claim the key (or find its answer), run the
    handler, store its answer."""
    owner = guest.owner if guest is not None else ""
    postgres = not is_sqlite()
    lock_timeout = ""
    if postgres:
        # A concurrent first request with this key holds its index entry until it ends:
        # wait for it only this long (for this statement; the setting is restored after).
        [row] = await IdempotencyRecord.raw(
            "SELECT current_setting('lock_timeout') AS previous, "
            "set_config('lock_timeout', {}, true)",
            _ms(_in_progress_wait()),
        ).run()
        lock_timeout = row["previous"]
    record = IdempotencyRecord(
        scope=scope, key=key, request_hash=request_hash, owner=owner, created_at=clock.now()
    )
    claimed = (
        await IdempotencyRecord.insert(record)
        .on_conflict(target=(IdempotencyRecord.scope, IdempotencyRecord.key), action="DO NOTHING")
        .returning(IdempotencyRecord.id)
        .run()
    )
    record_id = record.id
    if postgres:
        await IdempotencyRecord.raw(
            "SELECT set_config('lock_timeout', {}, true), "
            "set_config('idle_in_transaction_session_timeout', {}, true)",
            lock_timeout,
            _ms(IN_PROGRESS_LEASE),
        ).run()
    # A first use (the usual case) needs no read of what the key already holds.
    if not claimed:
        stored = (
            await IdempotencyRecord.select()
            .where((IdempotencyRecord.scope == scope) & (IdempotencyRecord.key == key))
            .first()
            .run()
        )
        if stored is None:  # purged in between: a first use after all
            raise _in_progress()
        record_id = stored["id"]
        if stored["owner"] != owner:
            # Another guest's key: never its answer. A caller with a session of its own
            # gets its own result, under a scope of that session.
            if guest is None or not guest.presented or scope.endswith(owner[:32]):
                raise _taken()
            return await _claim_and_run(
                request, f"{scope}:{owner[:32]}", key, request_hash, handler, effects, guest
            )
        if stored["request_hash"] != request_hash:
            raise IdempotencyMismatch(
                _("Send a new key for a different request."), code="idempotency_key_reused"
            )
        if stored["status_code"] is not None:
            return _replay(dict(stored))
        if stored["created_at"] > clock.now() - IN_PROGRESS_TIMEOUT:
            raise _in_progress()
        # Committed without an answer by an attempt that died: this retry takes its place
        # (conditionally: of two such retries, one does).
        taken = (
            await IdempotencyRecord.update({IdempotencyRecord.created_at: clock.now()})
            .where(
                (IdempotencyRecord.id == record_id)
                & IdempotencyRecord.status_code.is_null()
                & (IdempotencyRecord.created_at == stored["created_at"])
            )
            .returning(IdempotencyRecord.id)
            .run()
        )
        if not taken:
            raise _in_progress()
    transaction = get_engine().current_transaction.get()
    assert transaction is not None
    savepoint = await transaction.savepoint()
    mark = len(effects)
    try:
        response = await handler()
    except DomainError as exc:
        # The answer is stored; the handler's writes and effects are not kept.
        await savepoint.rollback_to()
        del effects[mark:]
        response = handle_domain_error(request, exc)
    if (response.status_code or 200) >= 500:
        raise _NotStored(response)
    body = _encode(response)
    await (
        IdempotencyRecord.update(
            {
                IdempotencyRecord.status_code: response.status_code,
                IdempotencyRecord.response_body: body.decode(),
            }
        )
        .where(IdempotencyRecord.id == record_id)
        .run()
    )
    response.content = body
    return response


async def purge_expired(limit: int = PURGE_BATCH) -> int:
    """Forget up to `limit` keys older than KEEP_FOR; how many. A day of keys in one DELETE
    could run past the statement timeout, fail the same way every time and never purge
    anything: the periodic step calls this again until nothing is left (`Step.drain`)."""
    due = (
        await IdempotencyRecord.select(IdempotencyRecord.id)
        .where(IdempotencyRecord.created_at < clock.now() - KEEP_FOR)
        .limit(limit)
        .run()
    )
    if not due:
        return 0
    removed = (
        await IdempotencyRecord.delete()
        .where(IdempotencyRecord.id.is_in([row["id"] for row in due]))
        .returning(IdempotencyRecord.id)
        .run()
    )
    return len(removed)
