"""Server-rendered pages for tourists, built on the same services as the public API.

Every page speaks the reader's language (`?lang=`, else Accept-Language) and links keep
the choice; styles are served from /static, nothing is loaded from elsewhere.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from app.booking.services import public_departures
from app.catalogue.services import public_routes
from app.catalogue.tables import RouteKind
from app.core.pagination import PageParams
from app.core.settings import Settings
from app.web.calendar_view import departure_calendar, weekday_names
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.templates import page_context

# Themes the home page offers as filters (a line may have several).
HOME_THEMES = ("picking", "flower_field", "rural", "family", "sightseeing")
# Departures listed on a line's page.
DEPARTURES_SHOWN = 60


class TouristPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get("/")
    async def home(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        theme: Annotated[str | None, QueryParameter(name="theme", max_length=32)] = None,
        # Plain text: the form sends "" for "train or bus".
        kind: Annotated[str | None, QueryParameter(name="kind", max_length=16)] = None,
        q: Annotated[str | None, QueryParameter(name="q", max_length=100)] = None,
    ) -> Template:
        chosen_kind = RouteKind(kind) if kind in {k.value for k in RouteKind} else None
        lines = await public_routes.list_routes(
            PageParams(page=1, page_size=50),
            theme=theme or None,
            kind=chosen_kind,
            query=q or None,
            time_zone=settings.time_zone,
        )
        return Template(
            "home.html",
            context={
                **page_context(request),
                "lines": lines.items,
                "themes": HOME_THEMES,
                "kinds": [k.value for k in RouteKind],
                "theme": theme or "",
                "kind": chosen_kind.value if chosen_kind else "",
                "q": q or "",
            },
        )

    @get("/lines/{slug:str}")
    async def line(self, request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
        route = await public_routes.get_route(slug)
        departures = await public_departures.list_route_departures(
            slug, PageParams(page=1, page_size=DEPARTURES_SHOWN), None, None
        )
        return Template(
            "line.html",
            context={
                **page_context(request),
                "line": route,
                "departures": departures.items,
                "months": departure_calendar(departures.items),
                "weekdays": weekday_names(),
            },
        )
