"""Where a guest's booking lives on the pages: the one way to write its link."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from app.core.i18n import current_locale
from app.core.settings import DEVELOPMENT_PUBLIC_URL, DEVELOPMENT_SECRET_KEY

# Where tourists open the pages (TOURLINE_PUBLIC_URL) and the key ticket links are signed
# with (derived from TOURLINE_SECRET_KEY), set once at startup by `configure`.
_public_url = DEVELOPMENT_PUBLIC_URL


def _derive_ticket_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"tourline ticket links", hashlib.sha256).digest()


_ticket_key = _derive_ticket_key(DEVELOPMENT_SECRET_KEY)


def configure(public_url: str, secret_key: str = DEVELOPMENT_SECRET_KEY) -> None:
    global _public_url, _ticket_key
    _public_url = public_url
    _ticket_key = _derive_ticket_key(secret_key)


def ticket_signature(reference: str) -> str:
    """What makes a booking's ticket link unguessable: an HMAC of its (unique, never
    reused) reference, so that the link needs no token and survives the guest's token
    being replaced; a new TOURLINE_SECRET_KEY revokes every link."""
    return hmac.new(_ticket_key, reference.encode(), hashlib.sha256).hexdigest()[:32]


def ticket_path(reference: str) -> str:
    """`/tickets/{reference}/{signature}/ticket.pdf`: the booking's printable ticket."""
    return f"/tickets/{reference}/{ticket_signature(reference)}/ticket.pdf"


def ticket_url(reference: str, locale: str) -> str:
    """The ticket as vouchers and messages link to it, in the reader's language."""
    query = urlencode({"lang": lang_code(locale)})
    return f"{_public_url}{ticket_path(reference)}?{query}"


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
