"""The Jinja templates of the pages, with gettext and the labels as template functions."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date, format_skeleton
from litestar import Request
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig

from app.catalogue.services.common import in_zone
from app.core.i18n import _, current_locale, localize, ngettext
from app.core.labels import (
    crew_role_label,
    datetime_text,
    meals_text,
    passenger_label,
    seat_class_label,
    status_label,
    theme_label,
)
from app.core.links import lang_code
from app.core.settings import Settings
from app.web.forms import field_id

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def date_text(moment: datetime, time_zone: str) -> str:
    """A date in the service's zone, as the reader writes dates."""
    return format_date(in_zone(moment, time_zone), "long", locale=current_locale())


def day_text(day: date) -> str:
    """A day of a trip with its weekday, short: "5月12日周三" / "Wed, May 12"."""
    return format_skeleton("MMMEd", day, locale=current_locale())


def kind_label(kind: str) -> str:
    return _("Train") if kind == "train" else _("Bus")


def page_context(request: Request[Any, Any, Any], here: str | None = None) -> dict[str, Any]:
    """What every page's layout needs: the reader's language and the way to the other one.

    The language switch reopens this page with its query (a booking's token included);
    a page answering a form names in `here` the page to reopen instead of the form's
    POST-only address."""
    locale = current_locale()
    other = "zh" if lang_code(locale) == "en" else "en"
    if here is None:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        here = request.url.path + (f"?{urlencode(query)}" if query else "")
    return {
        "locale": locale,
        "html_lang": "en" if locale == "en" else "zh-Hans",
        "other_lang": other,
        "lang_query": lang_code(locale),
        "switch_url": here + ("&" if "?" in here else "?") + f"lang={other}",
    }


def not_found_page(request: Request[Any, Any, Any]) -> Template:
    """A page that leads back to the lines; its language switch drops the query (a wrong
    token is not echoed back), and after a form it leads home."""
    here = request.url.path if request.method == "GET" else "/"
    return Template("not_found.html", context=page_context(request, here), status_code=404)


def _setup(engine: JinjaTemplateEngine, settings: Settings) -> None:
    engine.engine.globals.update(
        _=_,
        ngettext=ngettext,
        theme_label=theme_label,
        kind_label=kind_label,
        date_text=lambda moment: date_text(moment, settings.time_zone),
        day_text=day_text,
        meals_text=meals_text,
        crew_role_label=crew_role_label,
        datetime_text=datetime_text,
        seat_class_label=seat_class_label,
        passenger_label=passenger_label,
        status_label=status_label,
        field_id=field_id,
        localize=localize,
    )


def template_config(settings: Settings) -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=TEMPLATES,
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: _setup(engine, settings),
    )
