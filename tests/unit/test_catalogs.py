"""Every message of the template is translated, not fuzzy, and both catalogs compile."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from app.core.errors import translate_validation
from app.core.i18n import SUPPORTED_LOCALES, ngettext, use_locale
from app.core.labels import duration_label, status_label
from app.core.settings import get_settings

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def _read(path: str, locale: str | None = None) -> Catalog:
    with open(path, "rb") as handle:
        return read_po(handle, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_catalog_translates_every_message_of_the_template(locale: str) -> None:
    folder = get_settings().locales_dir
    template = _read(str(folder / "messages.pot"))
    catalog = _read(str(folder / locale / "LC_MESSAGES" / "messages.po"), locale)
    assert _ids(template) <= _ids(catalog), "run `tourline i18n update`"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"fuzzy in {locale}: {message.id!r}"
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert strings, f"untranslated in {locale}: {message.id!r}"
        assert all(strings), f"untranslated in {locale}: {message.id!r}"
        source = message.id if isinstance(message.id, str) else message.id[0]
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == set(PLACEHOLDER.findall(source)), (
                f"placeholders differ in {locale}: {message.id!r}"
            )
    # Babel's own checks, as `tourline i18n compile` runs them (e.g. a "% o" in a message
    # read as a printf placeholder the translation lacks).
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog.check()]
    assert problems == [], f"catalog checks fail in {locale}"
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    assert buffer.getvalue()


def test_plural_forms_follow_each_language() -> None:
    with use_locale("en"):
        assert duration_label(1) == "1 day"
        assert duration_label(15) == "15 days"
    with use_locale("zh_Hans"):
        assert duration_label(15) == "15天"
        assert ngettext("{count} day", "{count} days", 1).format(count=1) == "1天"


def test_status_names_and_validation_messages_are_translated() -> None:
    with use_locale("zh_Hans"):
        assert status_label("on_hold") == "待支付"
        assert translate_validation("Object missing required field `name`") == "此字段为必填项。"
        assert translate_validation("Expected `int`, got `str`") == "应为整数，实际为文本。"
        assert translate_validation("Expected `str` of length >= 2") == "至少 2 个字符。"
    with use_locale("en"):
        assert status_label("on_hold") == "on hold"
        assert translate_validation("Expected `int`, got `str`") == (
            "Expected a whole number, got text."
        )
        assert translate_validation("Expected `int` >= 1") == "Must be 1 or more."
        # Messages we do not know pass through unchanged.
        assert translate_validation("Something new") == "Something new"


def test_compile_catalogs_writes_mo_files_that_translate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import shutil

    from app.core import i18n

    shutil.copytree(
        get_settings().locales_dir, tmp_path / "locales", ignore=shutil.ignore_patterns("*.mo")
    )
    settings = dataclasses.replace(get_settings(), locales_dir=tmp_path / "locales")
    monkeypatch.setattr(i18n, "_locales_dir", settings.locales_dir)
    assert sorted(i18n.compile_catalogs()) == sorted(SUPPORTED_LOCALES)
    assert (tmp_path / "locales" / "zh_Hans" / "LC_MESSAGES" / "messages.mo").stat().st_size > 0
    assert i18n.compile_catalogs() == []  # up to date: nothing rewritten
    with use_locale("zh_Hans"):
        assert i18n.gettext("Not found") == "未找到"
    i18n._translations.cache_clear()
