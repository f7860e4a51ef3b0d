"""Input no handler can take is refused in one place, before any handler (or the audit
log, or the database) sees it: a 400 naming the parameter or field, never a 500.

- Text with a NUL character, in a path parameter, the query string, a form field or a
  JSON string (PostgreSQL cannot store it, and no name, reference or note needs it).
- A request body that is not a JSON object (`"x"`, `[]`, `1`, `null`), that is not JSON at
  all, or that is nested deeper than `MAX_JSON_DEPTH` (deep nesting exhausts the
  decoder's recursion). Every JSON body of this API is an object, also for the handlers
  that take none: a malformed body is refused before the change runs.

`StrictJsonRequest` then decodes the JSON body of a handler strictly against its type:
`"count": "2"` is a wrong type, not 2 (query parameters, strings on the wire, still are
converted).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from litestar.types.internal_types import PathParameterDefinition

from app.core.errors import FieldError, InvalidInput, Problem
from app.core.http_security import API_PREFIXES, refusal_page, send_html, send_json, send_problem
from app.core.i18n import _

# Far deeper than any body of this API (an itinerary is 6 levels); shallow enough that
# nothing that walks a document (the decoder, the audit log, JSON columns) runs out of stack.
MAX_JSON_DEPTH = 32
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Bodies that are not JSON: the pages' forms.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _Refusal(Exception):
    def __init__(self, field: str, source: str, message: str, code: str = "validation_error"):
        super().__init__(message)
        self.field = field
        self.source = source
        self.message = message
        self.code = code


def _nul_message() -> str:
    return _("Text may not contain NUL characters.")


def _walk(value: Any) -> None:
    """Refuse a decoded JSON document nested deeper than MAX_JSON_DEPTH, or holding text
    with a NUL character (naming where). Iterative: it cannot itself run out of stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _Refusal(path or "body", "body", _nul_message())
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    raise _Refusal(where, "body", _nul_message())
                stack.append((child, where, depth + 1))
        else:
            for index, child in enumerate(item):
                stack.append((child, f"{path}[{index}]", depth + 1))


def _too_deep() -> _Refusal:
    return _Refusal(
        "body",
        "body",
        _("The JSON document is nested too deeply (at most {depth} levels).").format(
            depth=MAX_JSON_DEPTH
        ),
    )


def check_json_body(body: bytes) -> None:
    """Raise `_Refusal` unless `body` is a JSON object within the depth limit, without NUL
    characters in its text."""
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.DecodeError:
        raise _Refusal("body", "body", _("Send a valid JSON document."), "malformed_json") from None
    if not isinstance(value, dict):
        raise _Refusal("body", "body", _("Send a JSON object in the request body."))
    # Cheap tests first: a document with fewer brackets than the limit cannot be too deep.
    if b"\\u0000" in body or body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        _walk(value)


def check_form_body(body: bytes) -> None:
    for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            raise _Refusal(name.replace("\x00", ""), "body", _nul_message())


def _path_parameter(routes: Iterable[HTTPRoute], path: str) -> str:
    """The name of the route's parameter at the first segment of `path` with a NUL
    character, e.g. `reference` for /api/v1/bookings/a%00b; `path` if no route matches."""
    segments = path.strip("/").split("/")
    at = next(index for index, segment in enumerate(segments) if "\x00" in segment)
    best: tuple[int, str] | None = None
    for route in routes:
        components = route.path_components
        if len(components) != len(segments) and not any(
            isinstance(c, PathParameterDefinition) and c.type is Path for c in components
        ):
            continue
        fixed = 0
        name: str | None = None
        for index, component in enumerate(components):
            if index >= len(segments):
                break
            if isinstance(component, PathParameterDefinition):
                if index == at or (component.type is Path and at >= index):
                    name = component.name
                if component.type is Path:
                    break
            elif component == segments[index]:
                fixed += 1
            else:
                name = None
                break
        if name is not None and (best is None or fixed > best[0]):
            best = (fixed, name)
    return best[1] if best else "path"


class RequestInputMiddleware:
    """Refuse the input described in this module's docstring before routing."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, routes: Iterable[Any]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = [route for route in routes if isinstance(route, HTTPRoute)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        try:
            self._check_url(scope)
        except _Refusal as refusal:
            await self._refuse(scope, send, refusal)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self.max_body_bytes:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not more and body.strip():
            # A body over the limit is left whole to the router, which answers 413.
            try:
                self._check_body(scope, body)
            except _Refusal as refusal:
                await self._refuse(scope, send, refusal)
                return
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    def _check_url(self, scope: Scope) -> None:
        if "\x00" in scope["path"]:
            raise _Refusal(_path_parameter(self.routes, scope["path"]), "path", _nul_message())
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    raise _Refusal(name.replace("\x00", ""), "query", _nul_message())

    @staticmethod
    def _check_body(scope: Scope, body: bytes) -> None:
        content_type = ""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
        if content_type.startswith(FORM_TYPES[0]):
            check_form_body(body)
        elif content_type.startswith(FORM_TYPES[1]):
            if b"\x00" in body:
                raise _Refusal("body", "body", _nul_message())
        else:
            # JSON, or what the router would read as JSON whatever its declared type.
            check_json_body(body)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refusal: _Refusal) -> None:
        path = scope["path"]
        if path.startswith("/octo/"):
            # OCTO clients expect OCTO's error body.
            octo_error = {"error": "BAD_REQUEST", "errorMessage": refusal.message}
            if refusal.field != "body":
                octo_error["field"] = refusal.field
            await send_json(send, 400, octo_error)
            return
        if refusal.code == "malformed_json":
            title = _("The request body could not be read")
        else:
            title = InvalidInput(refusal.field, refusal.message).title()
        if not path.startswith(API_PREFIXES):
            # A page: a page in answer, not a JSON document.
            await send_html(send, 400, refusal_page(title, refusal.message))
            return
        error = FieldError(field=refusal.field, message=refusal.message, source=refusal.source)
        problem = Problem(
            title=title, status=400, code=refusal.code, detail=refusal.message, instance=path,
            # Malformed JSON has no field to name (as the router answers it).
            errors=None if refusal.code == "malformed_json" else [error],
        )  # fmt: skip
        await send_problem(send, problem, {})


def _json_body_type(request: Request[Any, Any, Any]) -> Any:
    """The type a handler's `data: JSONBody[T]` asks for (None: no JSON body, or Any)."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    field = signature.parameters.get("data") if signature is not None else None
    if field is None or field.annotation is Any:
        return None
    return field.annotation


class StrictJsonRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded strictly against the handler's body type.

    Litestar converts a handler's arguments leniently (right for query and path parameters,
    which are text on the wire) and the body with them, so `"count": "2"` became 2. Here
    the body is converted first, strictly: the handler then gets the typed value as is.
    A body that is wrong in a way the lenient conversion also finds is left to it (so the
    answer, after the caller is identified, lists every wrong field as before); a wrong
    type only the strict conversion finds is a 400 naming the field at once."""

    async def json(self) -> Any:
        value = await super().json()
        kind = _json_body_type(self)
        if kind is None:
            return value
        try:
            return msgspec.convert(value, kind, strict=True)
        except msgspec.ValidationError as strict_error:
            try:
                msgspec.convert(value, kind, strict=False)
            except msgspec.ValidationError:
                return value
            raise ValidationException(
                extra=[{"key": "data", "message": str(strict_error), "source": "body"}]
            ) from strict_error
