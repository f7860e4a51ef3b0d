"""What the service tells its operators: JSON logs that carry the request id (and the
booking reference where there is one), and the request series of /metrics.

`RequestContextMiddleware` wraps the whole app: it takes the caller's `X-Request-ID` (or
makes one), returns it, logs one access line per request and counts the request by route
template, so /api/v1/departures/{departure_id} is one series, not one per departure.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.core.raw_headers import header, set_headers

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several server processes write their request series there for /metrics to add up.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import Counter, Histogram

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
booking_reference_var: ContextVar[str | None] = ContextVar("booking_reference", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is kept only if it looks like one (no log injection).
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

HTTP_REQUESTS = Counter(
    "tourline_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "tourline_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

access_logger = logging.getLogger("tourline.access")


def note_booking(reference: str) -> None:
    """Tag the rest of this request's (or job's) log lines with a booking reference."""
    booking_reference_var.set(reference)


_LOG_ENCODER = msgspec.json.Encoder(enc_hook=str)


def _json_line(
    created: float, level: str, logger: str, message: str, fields: dict[str, Any] | None
) -> str:
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    request_id = request_id_var.get()
    if request_id:
        entry["request_id"] = request_id
    booking = booking_reference_var.get()
    if booking:
        entry["booking"] = booking
    if fields:
        entry.update(fields)
    # msgspec: several times faster than json.dumps, and one line is written per request.
    return _LOG_ENCODER.encode(entry).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, booking."""

    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, "fields", None)
        fields = dict(extra) if isinstance(extra, dict) else {}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), fields
        )


# Where JSON access lines go straight to (set by configure_logging): one line per request
# through the logging module (a record, handler locks, a formatter) costs more than the
# rest of a cached answer. Text logs, and any other line, go through logging.
_access_stream: TextIO | None = None


# Methods counted by name; anything else is one series, so made-up methods cannot grow them.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def count_request(method: str, route: str, status: int, elapsed: float) -> None:
    """Count the request and its latency; each series' children are looked up once."""
    method = method if method in COUNTED_METHODS else "OTHER"
    key = (method, route, status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
    series[0].inc()
    series[1].observe(elapsed)


def log_access(method: str, path: str, route: str, status: int, elapsed: float) -> None:
    fields = {
        "method": method, "path": path, "route": route, "status": status,
        "duration_ms": round(elapsed * 1000, 1),
    }  # fmt: skip
    if _access_stream is None:
        access_logger.info("%s %s %s", method, path, status, extra={"fields": fields})
    elif access_logger.isEnabledFor(logging.INFO):
        line = _json_line(time.time(), "info", access_logger.name, f"{method} {path} {status}",
                          fields)  # fmt: skip
        _access_stream.write(line + "\n")


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Route every logger (ours, the server's, the libraries') through one handler."""
    global _access_stream
    handler = logging.StreamHandler(sys.stderr)
    _access_stream = None
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        _access_stream = sys.stderr
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # Our lines never show the caller's file, thread or process: not looking them up
    # makes each line (one per request) about a third cheaper.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "arq"):
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = []
        server_logger.propagate = True
    # Our access line replaces the server's (it has the request id and the route).
    logging.getLogger("uvicorn.access").disabled = True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        id_token = request_id_var.set(request_id)
        booking_token = booking_reference_var.set(None)
        started = time.perf_counter()
        status = 500

        id_header = header(REQUEST_ID_HEADER, request_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                set_headers(message, [id_header])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            # Unrouted paths (404s) are one series, not one per path tried.
            route = str(scope.get("path_template") or "unmatched")
            count_request(method, route, status, elapsed)
            log_access(method, scope["path"], route, status, elapsed)
            booking_reference_var.reset(booking_token)
            request_id_var.reset(id_token)
