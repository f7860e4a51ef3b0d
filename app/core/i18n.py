"""Gettext for every user-facing string, with the reader's locale held in a context variable.

`_()` translates into the current locale (set per request by middleware, or by a worker
with `use_locale`). `N_()` only marks a string for extraction; translate it later with `_()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import gettext as gettext_module
import io
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from app.core.settings import PROJECT_ROOT

DOMAIN = "messages"
SUPPORTED_LOCALES: tuple[str, ...] = ("zh_Hans", "en")
DEFAULT_LOCALE = "zh_Hans"
# Where the catalogs are: the project's own, unless `configure` (at startup) says otherwise.
_locales_dir = PROJECT_ROOT / "locales"

_current_locale: contextvars.ContextVar[str] = contextvars.ContextVar(
    "tourline_locale", default=DEFAULT_LOCALE
)


def configure(locales_dir: Path) -> None:
    """Read the catalogs from `locales_dir` (the settings' TOURLINE_LOCALES_DIR)."""
    global _locales_dir
    _locales_dir = locales_dir
    _translations.cache_clear()


@lru_cache(maxsize=len(SUPPORTED_LOCALES))
def _translations(locale: str) -> gettext_module.NullTranslations:
    """Load the compiled catalog, or compile the .po in memory when no .mo was built."""
    messages_dir = _locales_dir / locale / "LC_MESSAGES"
    mo_path = messages_dir / f"{DOMAIN}.mo"
    po_path = messages_dir / f"{DOMAIN}.po"
    if mo_path.exists() and (
        not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        with mo_path.open("rb") as mo_file:
            return Translations(mo_file, domain=DOMAIN)
    if po_path.exists():
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        return Translations(buffer, domain=DOMAIN)
    return gettext_module.NullTranslations()


def compile_catalogs() -> list[str]:
    """Write each catalog's .mo next to its .po when missing or older (skipped when the
    folder is read-only: the .po is then compiled in memory at first use)."""
    written = []
    for locale in SUPPORTED_LOCALES:
        messages_dir = _locales_dir / locale / "LC_MESSAGES"
        po_path, mo_path = messages_dir / f"{DOMAIN}.po", messages_dir / f"{DOMAIN}.mo"
        if not po_path.exists():
            continue
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale)
        try:
            with mo_path.open("wb") as mo_file:
                write_mo(mo_file, catalog)
        except OSError:
            continue
        written.append(locale)
    _translations.cache_clear()
    return written


def current_locale() -> str:
    return _current_locale.get()


def set_locale(locale: str) -> contextvars.Token[str]:
    return _current_locale.set(locale if locale in SUPPORTED_LOCALES else DEFAULT_LOCALE)


@contextlib.contextmanager
def use_locale(locale: str) -> Iterator[None]:
    token = set_locale(locale)
    try:
        yield
    finally:
        _current_locale.reset(token)


def gettext(message: str) -> str:
    return _translations(current_locale()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return _translations(current_locale()).ngettext(singular, plural, count)


_ = gettext


def N_(message: str) -> str:
    """Mark a message for extraction without translating it now."""
    return message


# Readers send a handful of distinct tags and headers; parsing them (Babel) costs more than
# the rest of a cached answer, so each answer is kept (bounded, for made-up headers).
@lru_cache(maxsize=1024)
def normalize_locale(tag: str) -> str | None:
    """Map a language tag (zh, zh-CN, zh-Hans, en-GB, ...) to a supported locale, or None."""
    tag = tag.strip().replace("-", "_")
    if not tag or tag == "*":
        return None
    try:
        parsed = Locale.parse(tag)
    except (ValueError, UnknownLocaleError):
        return None
    if parsed.language == "zh":
        # Traditional-script readers still get simplified Chinese rather than English.
        return "zh_Hans"
    if parsed.language == "en":
        return "en"
    return None


@lru_cache(maxsize=1024)
def negotiate_locale(accept_language: str | None, explicit: str | None = None) -> str:
    """Pick the reader's locale: an explicit choice, then Accept-Language by q-value."""
    if explicit:
        chosen = normalize_locale(explicit)
        if chosen:
            return chosen
    if accept_language:
        weighted: list[tuple[float, int, str]] = []
        for index, part in enumerate(accept_language.split(",")):
            tag, _sep, params = part.strip().partition(";")
            quality = 1.0
            for param in params.split(";"):
                key, _eq, value = param.strip().partition("=")
                if key == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if quality > 0:
                weighted.append((-quality, index, tag))
        for _q, _i, tag in sorted(weighted):
            chosen = normalize_locale(tag)
            if chosen:
                return chosen
    return DEFAULT_LOCALE


def content_language(locale: str) -> str:
    """The BCP 47 tag for a supported locale, as sent in Content-Language."""
    return locale.replace("_", "-")


def localize(text: Mapping[str, str] | None, fallback_locale: str = DEFAULT_LOCALE) -> str:
    """Pick the reader's language from translated content, falling back sensibly."""
    if not text:
        return ""
    for locale in (current_locale(), fallback_locale, *SUPPORTED_LOCALES):
        value = text.get(locale)
        if value:
            return value
    return next((value for value in text.values() if value), "")
