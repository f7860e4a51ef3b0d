"""Per-request locale: chosen from `?lang=` or Accept-Language, announced in Content-Language."""

from __future__ import annotations

from urllib.parse import parse_qs

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.core.i18n import _current_locale, content_language, negotiate_locale
from app.core.raw_headers import header, set_headers


def locale_of_scope(scope: Scope) -> str:
    accept_language = None
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            accept_language = value.decode("latin-1")
            break
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    explicit = query.get("lang", [None])[0]
    return negotiate_locale(accept_language, explicit)


class LocaleMiddleware:
    """Pure ASGI middleware wrapped around the whole app, so 404s and 405s speak it too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        locale = locale_of_scope(scope)
        token = _current_locale.set(locale)
        language = header("Content-Language", content_language(locale))

        async def send_with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, [language])
            await send(message)

        try:
            await self.app(scope, receive, send_with_language)
        finally:
            _current_locale.reset(token)
