"""What every answer and every anonymous caller gets, whatever the route: security headers
on each response, and a per-IP request limit on the public API shared through Redis."""

from __future__ import annotations

import html
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from app.core import ratelimit
from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
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
            await send_html(send, 429, refusal_page(refusal.title(), refusal.detail or ""), headers)
            return
        problem = Problem(
            title=refusal.title(), status=429, code=refusal.code, detail=refusal.detail,
            instance=scope["path"],
        )  # fmt: skip
        await send_problem(send, problem, headers)


def refusal_page(title: str, message: str) -> str:
    """A bare page for a refusal made before any template could run."""
    lang = "en" if current_locale() == "en" else "zh-Hans"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )


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
