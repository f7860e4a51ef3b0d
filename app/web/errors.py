"""Errors on the pages are pages: the API's problem (status, title, detail, fields), shown
in the reader's language with a way back, never a JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from app.core.errors import EXCEPTION_HANDLERS, Problem
from app.web.templates import page_context

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


PAGE_EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    kind: _as_page(handler) for kind, handler in EXCEPTION_HANDLERS.items()
}
