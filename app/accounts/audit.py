"""The audit log of staff actions: every change made through the operator and admin APIs
and the staff pages, by whom, when, with what, and how it ended.

`AuditMiddleware` sees each request whole: the staff principal the bearer token (or the
staff pages' cookie) resolved to, left in the request state by `provide_principal`, the
body as sent and the status answered. A change is recorded in its own transaction: the
first transaction of the request that commits writes the entry just before its COMMIT
(`app.core.change_record`), so a change is never committed without its entry, and an
entry never stays for a change that rolled back. A request that committed nothing (refused,
invalid, in conflict) is recorded after its answer, with its status: an attempt, not a
change.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl
from uuid import UUID

from litestar.enums import ScopeType
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from piccolo.custom_types import Combinable

from app.accounts.schemas import AuditEntryOut, AuditFilters, OperatorPrincipal, Principal
from app.accounts.services import require_operator_admin, require_platform_admin
from app.accounts.tables import AuditEntry
from app.core import clock
from app.core.change_record import recording
from app.core.observability import request_id_var
from app.core.pagination import Page, PageParams, fetch_page, page_of

logger = logging.getLogger("tourline.audit")

AUDITED_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
AUDITED_PREFIXES = ("/api/v1/operator/", "/api/v1/admin/", "/staff/departures/")
# Where the principal is left for this middleware (scope["state"]).
PRINCIPAL_STATE_KEY = "staff_principal"
# Body fields never written to the log, at any depth.
SECRET_FIELDS = ("password", "secret", "token", "key", "card", "csrf")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if any(word in key.lower() for word in SECRET_FIELDS) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _changes(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        # The operator pages' forms; a field sent twice keeps its last value.
        return redact(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    try:
        return redact(json.loads(body))
    except (ValueError, RecursionError):
        return {"unparsed_bytes": len(body)}


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return str(value.decode("latin-1")).lower()
    return ""


class _RequestRecord:
    """The audit entry of one request: written inside the request's first committing
    transaction (a `ChangeRecord`), or else after the answer."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.body = bytearray()
        self.status: int | None = None
        # The entry written in a transaction that committed, and the status it says.
        self.entry_id: Any = None
        self.recorded_status: int | None = None
        # Written in a transaction not yet committed.
        self.pending: tuple[Any, int] | None = None
        # Once the answer is sent, transactions (of tasks the request started) leave it.
        self.closed = False

    def principal(self) -> Principal | None:
        principal = self.scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
        return principal if isinstance(principal, Principal) else None

    def _entry(self, principal: Principal, status: int) -> AuditEntry:
        method = str(self.scope.get("method", ""))
        changes = _changes(bytes(self.body), _content_type(self.scope))
        return AuditEntry(
            at=clock.now(),
            seq=time.time_ns(),
            staff=principal.staff_id,
            operator=principal.operator_id,
            method=method,
            route=str(self.scope.get("path_template") or self.scope["path"])[:200],
            path=self.scope["path"][:500],
            status_code=status,
            request_id=request_id_var.get() or "",
            # As JSON text: Piccolo would take a bare string (a body of "x") for JSON text.
            changes=None if changes is None else json.dumps(changes),
        )

    async def write(self) -> bool:
        principal = self.principal()
        if self.closed or self.entry_id is not None or principal is None:
            return False
        # The status the handler answers when it succeeds; corrected after the answer if
        # it answered another.
        status = int(getattr(self.scope.get("route_handler"), "status_code", None) or 200)
        entry = self._entry(principal, status)
        await AuditEntry.insert(entry).run()
        self.pending = (entry.id, status)
        return True

    def committed(self) -> None:
        if self.pending is not None:
            self.entry_id, self.recorded_status = self.pending

    async def finish(self) -> None:
        """After the answer: correct the committed entry's status, or record the attempt
        that committed nothing."""
        self.closed = True
        status = self.status or 500
        principal = self.principal()
        try:
            if self.entry_id is not None:
                if status != self.recorded_status:
                    await (
                        AuditEntry.update({AuditEntry.status_code: status})
                        .where(AuditEntry.id == self.entry_id)
                        .run()
                    )
            elif principal is not None:
                await AuditEntry.insert(self._entry(principal, status)).run()
        except Exception:  # the answer is sent; losing its log line must not fail it
            logger.exception("could not write the audit entry of %s", self.scope["path"])


class AuditMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] not in AUDITED_METHODS
            or not scope["path"].startswith(AUDITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        record = _RequestRecord(scope)

        async def receive_and_keep() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request" and len(record.body) <= self.max_body_bytes:
                record.body.extend(message.get("body", b""))
            return message

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            with recording(record):
                await self.app(scope, receive_and_keep, send_and_note)
        finally:
            await record.finish()


def _out(row: dict[str, Any]) -> AuditEntryOut:
    return AuditEntryOut(
        id=row["id"], at=row["at"], staff_id=row["staff"], operator_id=row["operator"],
        method=row["method"], route=row["route"], path=row["path"],
        status_code=row["status_code"], request_id=row["request_id"], changes=row["changes"],
    )  # fmt: skip


def provide_filters(
    staff_id: Annotated[UUID | None, QueryParameter(name="staff_id")] = None,
    since: Annotated[datetime | None, QueryParameter(name="since")] = None,
    until: Annotated[datetime | None, QueryParameter(name="until")] = None,
) -> AuditFilters:
    return AuditFilters(staff_id=staff_id, since=since, until=until)


async def _page(
    where: Combinable, params: PageParams, filters: AuditFilters
) -> Page[AuditEntryOut]:
    if filters.staff_id is not None:
        where = where & (AuditEntry.staff == filters.staff_id)
    if filters.since is not None:
        where = where & (AuditEntry.at >= filters.since)
    if filters.until is not None:
        where = where & (AuditEntry.at < filters.until)
    order = [(AuditEntry.at, False), (AuditEntry.seq, False), (AuditEntry.id, False)]
    rows, total = await fetch_page(AuditEntry, where, params, order, load_json=True)
    return page_of([_out(row) for row in rows], params, total)


async def operator_audit(
    principal: OperatorPrincipal, params: PageParams, filters: AuditFilters
) -> Page[AuditEntryOut]:
    """The operator's own log, newest first (admins only)."""
    require_operator_admin(principal)
    return await _page(AuditEntry.operator == principal.operator_id, params, filters)


async def platform_audit(
    principal: Principal, params: PageParams, filters: AuditFilters
) -> Page[AuditEntryOut]:
    """Every entry, newest first (platform admins only)."""
    require_platform_admin(principal)
    return await _page(AuditEntry.id.is_not_null(), params, filters)
