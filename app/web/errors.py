"""Errors on the pages are pages: the API's problem (status, title, detail, fields), shown
in the reader's language with a way back, never a JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import NotFoundException
from litestar.response import Template

from app.core.errors import EXCEPTION_HANDLERS, NotFound, Problem, handle_http_exception
from app.core.http_security import API_PREFIXES
from app.web.templates import not_found_page, page_context

Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]


def _as_page(handler: Handler) -> Handler:
    def render(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        answer = handler(request, exc)
        problem = answer.content
        if not isinstance(problem, Problem):
            return answer
        # A form's POST-only address is no page to switch language on: go home instead.
        here = None if request.method == "GET" else "/"
        return Template(
            "error.html",
            context={**page_context(request, here), "problem": problem},
            status_code=problem.status,
            headers={k: v for k, v in answer.headers.items() if k.lower() == "retry-after"},
        )

    return render


def _not_found(request: Request[Any, Any, Any], exc: NotFound) -> Response[Any]:
    # A line, departure or booking that is not there (or not the reader's): the page that
    # leads back, never echoing what was asked for.
    return not_found_page(request)


PAGE_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    **{kind: _as_page(handler) for kind, handler in EXCEPTION_HANDLERS.items()},
    NotFound: _not_found,
}


def unknown_address(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """No route at all: a problem for API clients, the page leading back for readers."""
    if request.url.path.startswith((*API_PREFIXES, "/static/")):
        return handle_http_exception(request, exc)
    return not_found_page(request)


APP_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    **EXCEPTION_HANDLERS,
    NotFoundException: unknown_address,
}
