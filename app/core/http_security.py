"""What every answer and every anonymous caller gets, whatever the route: security headers
on each response, and a per-IP request limit on the public API shared through Redis."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from app.core import ratelimit
from app.core.errors import PROBLEM_MEDIA_TYPE, Problem, TooManyRequests
from app.core.i18n import _
from app.core.settings import Settings

# The API serves JSON and CSV only; the docs pages (/schema) need their own scripts.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net "
    "https://unpkg.com; style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net "
    "https://unpkg.com https://fonts.googleapis.com; font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https:; connect-src 'self'; frame-ancestors 'none'"
)
# Anonymous callers: tourists browsing and booking, and staff logging in.
PUBLIC_PREFIXES = ("/api/v1/routes", "/api/v1/departures", "/api/v1/bookings", "/api/v1/auth/login")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith("/schema")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers["Content-Security-Policy"] = DOCS_CSP if docs else API_CSP
                if not docs:
                    # Answers with bookings, tokens and manifests are never cached by proxies.
                    headers.setdefault("Cache-Control", "no-store")
                if self.https:
                    headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The caller's address (the server resolves trusted proxies' X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


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
            or not scope["path"].startswith(PUBLIC_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        verdict = await ratelimit.hit(self.settings.redis_url, f"ip:{address}", limit)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        refusal = TooManyRequests(
            _("Too many requests from your address; try again in a minute."),
            code="rate_limited",
            retry_after=verdict.retry_after,
        )
        problem = Problem(
            title=refusal.title(), status=429, code=refusal.code, detail=refusal.detail,
            instance=scope["path"],
        )  # fmt: skip
        body = msgspec.json.encode(problem)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(verdict.retry_after).encode()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
