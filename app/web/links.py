"""Where a guest's booking lives on the pages: the one way to write its link."""

from __future__ import annotations

from urllib.parse import urlencode

from app.core.settings import get_settings


def booking_path(reference: str, token: str, suffix: str = "", **query: str) -> str:
    """`/bookings/{reference}{suffix}?token=...`: the booking (or one of its pages)."""
    return f"/bookings/{reference}{suffix}?" + urlencode({"token": token, **query})


def booking_url(reference: str, token: str, locale: str) -> str:
    """The booking's page as messages link to it, in the reader's language."""
    lang = "en" if locale == "en" else "zh"
    return get_settings().public_url + booking_path(reference, token, lang=lang)


def find_booking_url(reference: str, locale: str) -> str:
    """The page that mails a fresh link to a booking's contact."""
    lang = "en" if locale == "en" else "zh"
    query = urlencode({"reference": reference, "lang": lang})
    return f"{get_settings().public_url}/find-booking?{query}"
