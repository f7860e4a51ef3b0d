"""Where a guest's booking lives on the pages: the one way to write its link."""

from __future__ import annotations

from urllib.parse import urlencode

from app.core.i18n import current_locale
from app.core.settings import DEVELOPMENT_PUBLIC_URL

# Where tourists open the pages (TOURLINE_PUBLIC_URL), set once at startup by `configure`.
_public_url = DEVELOPMENT_PUBLIC_URL


def configure(public_url: str) -> None:
    global _public_url
    _public_url = public_url


def lang_code(locale: str | None = None) -> str:
    """The `?lang=` value of a locale (the reader's by default): `en` or `zh`."""
    return "en" if (locale or current_locale()) == "en" else "zh"


def booking_path(reference: str, token: str, suffix: str = "", **query: str) -> str:
    """`/bookings/{reference}{suffix}?token=...`: the booking (or one of its pages); without
    a token, the browser's own for the booking is used."""
    return f"/bookings/{reference}{suffix}?" + urlencode(
        {"token": token, **query} if token else query
    )


def booking_url(reference: str, token: str, locale: str) -> str:
    """The booking's page as messages link to it, in the reader's language."""
    return _public_url + booking_path(reference, token, lang=lang_code(locale))


def find_booking_url(reference: str, locale: str) -> str:
    """The page that mails a fresh link to a booking's contact."""
    query = urlencode({"reference": reference, "lang": lang_code(locale)})
    return f"{_public_url}/find-booking?{query}"
