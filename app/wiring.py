"""How a process (server, worker, command) is put together at start-up: what it sets up
from its settings, which domain hears which event, and who answers what a lower domain
may ask (`app.core.booking_checks`, `app.core.agency_contacts`).

The order matters where two domains handle one event in its transaction: an agency's
webhook body is written before the refund rows its booking's change causes, as the change
left the booking.
"""

from __future__ import annotations

from app.booking import handlers as booking
from app.booking.services.live_bookings import answer_booking_checks
from app.core import delivery, i18n, links, outbound, security
from app.core.events import bus
from app.core.settings import Settings
from app.notifications import handlers as notifications
from app.notifications.services import sending
from app.partners import handlers as partners
from app.partners.services import answer_agency_contacts
from app.payments import handlers as payments
from app.payments import providers


def wire_domains() -> None:
    """Subscribe every domain's handlers to the process's bus and answer the checks lower
    domains ask; doing it again changes nothing."""
    answer_booking_checks()
    answer_agency_contacts()
    booking.subscribe(bus)
    notifications.subscribe(bus)
    partners.subscribe(bus)
    payments.subscribe(bus)


def configure_process(settings: Settings) -> None:
    """What a process sets up once from its settings: the keys of staff tokens, the
    catalogs, the public address in links, the payment providers and the mail server. The
    database engine is made from them in app/piccolo_conf.py."""
    security.configure(settings)
    i18n.configure(settings.locales_dir)
    links.configure(settings.public_url, settings.secret_key)
    providers.configure(settings)
    delivery.configure(settings)
    outbound.configure(settings)
    sending.configure(settings)
