"""The Jinja templates of the pages, with gettext and the labels as template functions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from babel.dates import format_date
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from app.catalogue.services.common import in_zone
from app.core.i18n import _, current_locale
from app.core.labels import theme_label
from app.core.settings import get_settings

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def date_text(moment: datetime) -> str:
    """A date in the service's zone, as the reader writes dates."""
    local = in_zone(moment, get_settings().time_zone)
    return format_date(local, "long", locale=current_locale())


def kind_label(kind: str) -> str:
    return _("Train") if kind == "train" else _("Bus")


def _setup(engine: JinjaTemplateEngine) -> None:
    engine.engine.globals.update(
        _=_, theme_label=theme_label, kind_label=kind_label, date_text=date_text
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_setup)
