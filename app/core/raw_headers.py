"""Setting response headers on an ASGI `http.response.start` message in one pass.

Litestar's MutableScopeHeaders scans every header for each one set; the middlewares around
every request set several, so they replace them all at once here instead."""

from __future__ import annotations

from collections.abc import Iterable

from litestar.types import HTTPResponseStartEvent

RawHeader = tuple[bytes, bytes]


def header(name: str, value: str) -> RawHeader:
    return name.lower().encode("latin-1"), value.encode("latin-1")


def set_headers(message: HTTPResponseStartEvent, headers: Iterable[RawHeader]) -> None:
    """Set `headers` (lower-case names), replacing any of the same names."""
    new = list(headers)
    names = {name for name, _value in new}
    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    message["headers"] = kept + new


def header_names(message: HTTPResponseStartEvent) -> set[bytes]:
    return {name.lower() for name, _value in message.get("headers", [])}
