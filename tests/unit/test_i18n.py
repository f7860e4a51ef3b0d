"""Choosing the reader's language and picking translated content."""

from __future__ import annotations

import pytest

from app.core.i18n import (
    DEFAULT_LOCALE,
    content_language,
    current_locale,
    gettext,
    localize,
    negotiate_locale,
    use_locale,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-cn", "zh_Hans"),
        ("zh-Hans", "zh_Hans"),
        ("zh-Hans-CN", "zh_Hans"),
        # Traditional-script readers still get simplified Chinese rather than English.
        ("zh-TW", "zh_Hans"),
        ("zh-Hant-HK", "zh_Hans"),
        ("en", "en"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("EN-us", "en"),
        ("fr", "zh_Hans"),
        ("fr-FR, de;q=0.9", "zh_Hans"),
    ],
)
def test_negotiate_single_languages(header: str, expected: str) -> None:
    assert negotiate_locale(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr;q=1, en;q=0.5", "en"),  # the best supported language, not the first one
        ("en;q=0.3, zh-CN;q=0.8", "zh_Hans"),
        ("zh-CN;q=0.3, en", "en"),  # no q means 1
        ("de-DE,de;q=0.9,en;q=0.8,zh;q=0.7", "en"),
        ("en;q=0.5, zh;q=0.5", "en"),  # ties keep the header's order
        ("zh;q=0.5, en;q=0.5", "zh_Hans"),
        ("en;q=0, zh-CN;q=0.1", "zh_Hans"),  # q=0 means "not this one"
        ("en;q=0", DEFAULT_LOCALE),
        ("*", DEFAULT_LOCALE),
        ("*, en;q=0.1", "en"),
    ],
)
def test_negotiate_by_quality(header: str, expected: str) -> None:
    assert negotiate_locale(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        ",,,;;;",
        "garbage!!",
        "en;q=abc;q",
        "q=0.5",
        "ÿ\x00\x01",
        "a" * 500,
        "zz-ZZ-x-private",
    ],
)
def test_negotiate_garbage_falls_back_to_the_default(header: str | None) -> None:
    assert negotiate_locale(header) == DEFAULT_LOCALE == "zh_Hans"


def test_bad_quality_value_only_drops_that_language() -> None:
    assert negotiate_locale("en;q=abc, zh;q=0.1") == "zh_Hans"
    assert negotiate_locale("zh;q=abc, en;q=0.1") == "en"


@pytest.mark.parametrize(
    ("explicit", "header", "expected"),
    [
        ("en", "zh-CN", "en"),
        ("en-US", "zh-CN,zh;q=0.9", "en"),
        ("zh", "en", "zh_Hans"),
        ("zh-Hans", "en-GB", "zh_Hans"),
        # An unsupported or broken explicit choice is ignored, not an error.
        ("fr", "en", "en"),
        ("!!", "en", "en"),
        ("", "en", "en"),
        (None, "en", "en"),
        ("xx", None, "zh_Hans"),
    ],
)
def test_explicit_lang_wins_when_supported(
    explicit: str | None, header: str | None, expected: str
) -> None:
    assert negotiate_locale(header, explicit) == expected


def test_content_language_is_a_bcp47_tag() -> None:
    assert content_language("zh_Hans") == "zh-Hans"
    assert content_language("en") == "en"


def test_use_locale_sets_and_restores() -> None:
    assert current_locale() == DEFAULT_LOCALE
    with use_locale("en"):
        assert current_locale() == "en"
        with use_locale("fr"):  # unsupported: the default, not "fr"
            assert current_locale() == DEFAULT_LOCALE
        assert current_locale() == "en"
    assert current_locale() == DEFAULT_LOCALE


def test_gettext_follows_the_current_locale() -> None:
    with use_locale("en"):
        assert gettext("Some fields are invalid") == "Some fields are invalid"
        assert gettext("A message nobody translated") == "A message nobody translated"
    with use_locale("zh_Hans"):
        assert gettext("A message nobody translated") == "A message nobody translated"
        assert gettext("Some fields are invalid") != "Some fields are invalid"


TEXT = {"zh_Hans": "采摘号", "en": "Picking Line"}


def test_localize_picks_the_readers_language() -> None:
    with use_locale("zh_Hans"):
        assert localize(TEXT) == "采摘号"
    with use_locale("en"):
        assert localize(TEXT) == "Picking Line"
        assert localize(TEXT, fallback_locale="zh_Hans") == "Picking Line"


def test_localize_falls_back_to_the_given_locale_then_any() -> None:
    with use_locale("en"):
        assert localize({"zh_Hans": "采摘号"}) == "采摘号"
        assert localize({"zh_Hans": "采摘号"}, fallback_locale="en") == "采摘号"
    with use_locale("zh_Hans"):
        assert localize({"en": "Picking Line"}) == "Picking Line"
        assert localize({"en": "Picking Line"}, fallback_locale="en") == "Picking Line"
        # An empty translation counts as missing.
        assert localize({"zh_Hans": "", "en": "Picking Line"}) == "Picking Line"
        # Content in a locale the service does not speak is still better than nothing.
        assert localize({"fr": "Ligne"}) == "Ligne"


def test_localize_prefers_the_fallback_over_other_locales() -> None:
    text = {"fr": "Ligne", "en": "Line", "de": "Linie"}
    with use_locale("zh_Hans"):
        assert localize(text, fallback_locale="en") == "Line"
        assert localize(text, fallback_locale="de") == "Linie"


@pytest.mark.parametrize("text", [None, {}, {"en": ""}, {"zh_Hans": "", "en": ""}])
def test_localize_of_nothing_is_empty(text: dict[str, str] | None) -> None:
    assert localize(text) == ""
