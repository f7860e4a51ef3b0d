"""Status and theme names as readers see them, translated (the API's own values stay English)."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_date, format_time

from app.core.i18n import N_, _, current_locale, ngettext

_STATUS_LABELS = {
    "draft": N_("draft"),
    "published": N_("published"),
    "archived": N_("archived"),
    "closed": N_("closed"),
    "cancelled": N_("cancelled"),
    "departed": N_("departed"),
    "on_hold": N_("on hold"),
    "confirmed": N_("confirmed"),
    "expired": N_("expired"),
}


_THEME_LABELS = {
    "picking": N_("fruit picking"),
    "flower_field": N_("flower fields"),
    "rural": N_("farm days"),
    "family": N_("for families"),
    "sightseeing": N_("sightseeing"),
    "nature": N_("nature"),
    "culture": N_("culture"),
}


_SEAT_CLASS_LABELS = {
    "standard": N_("standard seat"),
    "front": N_("front seat"),
    "soft_sleeper": N_("soft sleeper"),
    "hard_sleeper": N_("hard sleeper"),
    "deluxe_sleeper": N_("deluxe sleeper"),
}

_PASSENGER_LABELS = {
    "adult": N_("adult"),
    "child": N_("child"),
    "senior": N_("senior"),
}


_MEAL_LABELS = {
    "breakfast": N_("breakfast"),
    "lunch": N_("lunch"),
    "dinner": N_("dinner"),
}

_CREW_ROLE_LABELS = {
    "steward": N_("train steward"),
    "guide": N_("guide"),
    "narrator": N_("narrator"),
    "medical": N_("medical staff"),
    "driver": N_("driver"),
    "other": N_("crew"),
}


def meal_label(value: str) -> str:
    return _(_MEAL_LABELS[value]) if value in _MEAL_LABELS else value


def meals_text(values: list[str]) -> str:
    """The meals of a day as one phrase: "breakfast, lunch" / "早餐、午餐"."""
    return _(", ").join(meal_label(value) for value in values)


def crew_role_label(value: str) -> str:
    return _(_CREW_ROLE_LABELS[value]) if value in _CREW_ROLE_LABELS else value


def seat_class_label(value: str) -> str:
    """Known classes by name; an operator's own class shows as written, underscores spaced."""
    return _(_SEAT_CLASS_LABELS[value]) if value in _SEAT_CLASS_LABELS else value.replace("_", " ")


def passenger_label(value: str) -> str:
    return _(_PASSENGER_LABELS[value]) if value in _PASSENGER_LABELS else value


def theme_label(value: str) -> str:
    return _(_THEME_LABELS[value]) if value in _THEME_LABELS else value


def status_label(value: str) -> str:
    return _(_STATUS_LABELS[value]) if value in _STATUS_LABELS else value


def duration_label(days: int) -> str:
    """ "15 days" / "15天", with the language's plural rules."""
    return ngettext("{count} day", "{count} days", days).format(count=days)


def datetime_text(moment: datetime) -> str:
    """A moment written for the reader in its own time zone: "2027年5月16日 07:30" /
    "May 16, 2027 7:30 AM"."""
    locale = current_locale()
    day = format_date(moment, "long", locale=locale)
    return f"{day} {format_time(moment, 'short', locale=locale)}"
