"""Idempotent POSTs: the first response to an `Idempotency-Key` is stored and replayed.

The key is claimed in its own committed statement before the work starts, so that a
concurrent retry sees it and gets 409 instead of doing the work twice. The same key with a
different request is 422. Responses of 5xx are not stored: the client may retry them.
Records are kept at least `KEEP_FOR` (a worker job purges older ones).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request, Response

from app.core import clock
from app.core.errors import Conflict, DomainError, InvalidInput, handle_domain_error
from app.core.i18n import _
from app.core.tables import IdempotencyRecord

KEEP_FOR = timedelta(hours=24)
IN_PROGRESS_TIMEOUT = timedelta(minutes=2)


class IdempotencyMismatch(DomainError):
    status_code = 422
    code = "idempotency_key_reused"

    def title(self) -> str:
        return _("This Idempotency-Key was used for another request")


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


async def idempotent(
    request: Request[Any, Any, Any],
    key: str | None,
    scope: str,
    handler: Callable[[], Awaitable[Response[Any]]],
) -> Response[Any]:
    """Run `handler` once per (scope, key); replay its stored response to retries."""
    if key is None:
        return await handler()
    if not key.strip() or len(key) > 255:
        raise InvalidInput("Idempotency-Key", _("Use 1 to 255 characters."), source="header")
    request_hash = await _request_hash(request)
    record = IdempotencyRecord(
        scope=scope, key=key, request_hash=request_hash, created_at=clock.now()
    )
    claimed = (
        await IdempotencyRecord.insert(record)
        .on_conflict(target=(IdempotencyRecord.scope, IdempotencyRecord.key), action="DO NOTHING")
        .returning(IdempotencyRecord.id)
        .run()
    )
    record_id = record.id
    # A first use (the usual case) needs no read of what the key already holds.
    if not claimed:
        stored = (
            await IdempotencyRecord.select()
            .where((IdempotencyRecord.scope == scope) & (IdempotencyRecord.key == key))
            .first()
            .run()
        )
        assert stored is not None
        record_id = stored["id"]
        if stored["request_hash"] != request_hash:
            raise IdempotencyMismatch(
                _("Send a new key for a different request."), code="idempotency_key_reused"
            )
        if stored["status_code"] is None:
            if stored["created_at"] > clock.now() - IN_PROGRESS_TIMEOUT:
                raise Conflict(
                    _("A request with this Idempotency-Key is still being processed."),
                    code="idempotency_in_progress",
                )
            # The first attempt died without an answer: this retry takes its place.
            await (
                IdempotencyRecord.update({IdempotencyRecord.created_at: clock.now()})
                .where(IdempotencyRecord.id == record_id)
                .run()
            )
        else:
            return Response(
                content=stored["response_body"].encode(),
                status_code=stored["status_code"],
                media_type="application/problem+json"
                if stored["status_code"] >= 400
                else "application/json",
                headers={"Idempotent-Replayed": "true"},
            )
    try:
        response = await handler()
    except DomainError as exc:
        response = handle_domain_error(request, exc)
    except BaseException:
        await IdempotencyRecord.delete().where(IdempotencyRecord.id == record_id).run()
        raise
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


async def purge_expired() -> int:
    """Forget keys older than KEEP_FOR."""
    removed = (
        await IdempotencyRecord.delete()
        .where(IdempotencyRecord.created_at < clock.now() - KEEP_FOR)
        .returning(IdempotencyRecord.id)
        .run()
    )
    return len(removed)
