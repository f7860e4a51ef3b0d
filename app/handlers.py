"""Which domain hears which event: every subscription of the process, made at start-up.

The order matters where two domains handle one event in its transaction: an agency's
webhook body is written before the refund rows its booking's change causes, as the change
left the booking.
"""

from __future__ import annotations

from app.booking import handlers as booking
from app.core.events import bus
from app.notifications import handlers as notifications
from app.partners import handlers as partners
from app.payments import handlers as payments


def install_event_handlers() -> None:
    """Subscribe every domain's handlers to the process's bus (again: a no-op)."""
    booking.subscribe(bus)
    notifications.subscribe(bus)
    partners.subscribe(bus)
    payments.subscribe(bus)
