"""What every answer and every anonymous caller gets, whatever the route: security headers
on each response, and a per-IP request limit on the public API shared through Redis."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from app.core import ratelimit
from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    InvalidInput,
    Problem,
    TooManyRequests,
)
from app.core.i18n import _, current_locale
from app.core.raw_headers import header, header_names, set_headers
from app.core.settings import Settings

# The API serves JSON and CSV only; the docs pages (/schema) need their own scripts.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net "
    "https://unpkg.com; style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net "
    "https://unpkg.com https://fonts.googleapis.com; font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https:; connect-src 'self'; frame-ancestors 'none'"
)
# The web pages: their own styles and scripts only, forms posting back to us.
PAGES_CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
# The payment page also runs Stripe.js, which draws the card form in Stripe's own frames
# and talks to Stripe's API: Stripe's documented allow-list, on that page only.
STRIPE_JS_URL = "https://js.stripe.com/v3/"
PAYMENT_PAGE_CSP = (
    "default-src 'self'; script-src 'self' https://js.stripe.com; "
    "frame-src https://js.stripe.com https://hooks.stripe.com; "
    "connect-src 'self' https://api.stripe.com; img-src 'self' data: https://*.stripe.com; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


API_PREFIXES = ("/api/", "/octo/", "/health", "/ready", "/metrics")
# Anonymous callers: tourists browsing and booking, and staff logging in.
PUBLIC_PREFIXES = ("/api/v1/routes", "/api/v1/departures", "/api/v1/bookings", "/api/v1/auth/login")
# The pages that read or change the same things (holding seats through a form counts like
# holding them through the API).
PUBLIC_PAGE_PREFIXES = ("/lines/", "/departures/", "/bookings/", "/find-booking", "/staff/login")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https
        common = [
            header("X-Content-Type-Options", "nosniff"),
            header("X-Frame-Options", "DENY"),
            header("Referrer-Policy", "no-referrer"),
            header("Cross-Origin-Opener-Policy", "same-origin"),
            header("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            common.append(
                header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
            )
        self.common = common

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith("/schema")
        api = scope["path"].startswith(API_PREFIXES)
        policy = DOCS_CSP if docs else (API_CSP if api else PAGES_CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = header_names(message)
                headers = list(self.common)
                if docs or api or b"content-security-policy" not in present:
                    # A page may bring its own (stricter or Stripe's) policy; the API may not.
                    headers.append(header("Content-Security-Policy", policy))
                if not docs and b"cache-control" not in present:
                    # Answers with bookings, tokens and manifests are never cached by proxies.
                    headers.append(header("Cache-Control", "no-store"))
                set_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The caller's address (the server resolves trusted proxies' X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


async def send_json(
    send: Send,
    status: int,
    content: Any,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
) -> None:
    """Answer from outside the router (where no exception handler runs)."""
    await _send_body(send, status, msgspec.json.encode(content), headers, media_type)


async def send_html(
    send: Send, status: int, page: str, headers: dict[str, str] | None = None
) -> None:
    await _send_body(send, status, page.encode(), headers, "text/html; charset=utf-8")


async def _send_body(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None, media_type: str
) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *[(name.encode(), value.encode()) for name, value in (headers or {}).items()],
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_problem(send: Send, problem: Problem, headers: dict[str, str]) -> None:
    await send_json(send, problem.status, problem, headers, PROBLEM_MEDIA_TYPE)


class PublicRateLimitMiddleware:
    """Refuse a client address over its per-minute budget on the public API.

    Outside the router, so that it also holds for answers served from the response cache.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.settings.public_rate_limit
        if (
            scope["type"] != ScopeType.HTTP
            or not limit
            or not scope["path"].startswith(PUBLIC_PREFIXES + PUBLIC_PAGE_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        # Counted in batches of up to 5 % of the limit: a rush of readers costs Redis one
        # round trip per batch, not one per request (small limits stay exact).
        verdict = await ratelimit.hit(
            self.settings.redis_url, f"ip:{address}", limit, batch=min(50, max(1, limit // 20))
        )
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        refusal = TooManyRequests(
            _("Too many requests from your address; try again in a minute."),
            code="rate_limited",
            retry_after=verdict.retry_after,
        )
        headers = {"retry-after": str(verdict.retry_after)}
        if scope["path"].startswith(PUBLIC_PAGE_PREFIXES):
            await send_html(send, 429, _page(refusal.title(), refusal.detail or ""), headers)
            return
        problem = Problem(
            title=refusal.title(), status=429, code=refusal.code, detail=refusal.detail,
            instance=scope["path"],
        )  # fmt: skip
        await send_problem(send, problem, headers)


def _page(title: str, message: str) -> str:
    """A bare page for a refusal made before any template could run."""
    lang = "en" if current_locale() == "en" else "zh-Hans"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )


def _nul_path(value: Any, path: str = "") -> str | None:
    """Where in a decoded JSON document the first text with a NUL character is."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = _nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


REPEATED_SLASHES = re.compile(r"/{2,}")


class CanonicalPathMiddleware:
    """Repeated slashes collapse into one before anything else looks at the path: the
    router already reads `//staff/x` as `/staff/x`, so the limits and the audit log must
    too, or a doubled slash would slip past them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and "//" in scope["path"]:
            path = REPEATED_SLASHES.sub("/", scope["path"])
            scope["path"], scope["raw_path"] = path, path.encode()
        await self.app(scope, receive, send)


class RejectNulMiddleware:
    """Text with a NUL character is refused (400 naming the field) before any handler sees
    it: PostgreSQL cannot store it, and no name, reference or note needs it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    await self._refuse(scope, send, name, "query")
                    return
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
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
        if b"\\u0000" in body or b"\x00" in body:
            try:
                field = _nul_path(json.loads(body)) or "body"
            except ValueError:
                field = "body"
            await self._refuse(scope, send, field, "body")
            return
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, field: str, source: str) -> None:
        message = _("Text may not contain NUL characters.")
        if scope["path"].startswith("/octo/"):
            # OCTO clients expect OCTO's error body.
            await send_json(
                send,
                400,
                {"error": "BAD_REQUEST", "errorMessage": message, "field": field},
            )
            return
        problem = Problem(
            title=InvalidInput(field, message).title(), status=400, code="validation_error",
            detail=message, instance=scope["path"],
            errors=[FieldError(field=field, message=message, source=source)],
        )  # fmt: skip
        await send_problem(send, problem, {})
