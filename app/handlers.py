"""How the domains are wired at start-up: which domain hears which event, and who
answers what a lower domain may ask (`app.core.booking_checks`).

The order matters where two domains handle one event in its transaction: an agency's
webhook body is written before the refund rows its booking's change causes, as the change
left the booking.
"""

from __future__ import annotations

from app.booking import handlers as booking
from app.booking.services.live_bookings import answer_booking_checks
from app.core.events import bus
from app.notifications import handlers as notifications
from app.partners import handlers as partners
from app.payments import handlers as payments


def wire_domains() -> None:
    """Subscribe every domain's handlers to the process's bus and answer the checks lower
    domains ask; doing it again changes nothing."""
    answer_booking_checks()
    booking.subscribe(bus)
    notifications.subscribe(bus)
    partners.subscribe(bus)
    payments.subscribe(bus)
