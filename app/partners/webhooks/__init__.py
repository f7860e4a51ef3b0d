"""Signed webhooks to agencies, by use case: recording an event (`events`), posting it
(`delivery`, through the shared delivery mechanism) and the operator's log (`log`).

The signature follows the Standard Webhooks specification (documented for agencies in
the README).
"""

from app.partners.webhooks.delivery import deliver_due_webhooks
from app.partners.webhooks.events import booking_event, departure_event, queue_event
from app.partners.webhooks.log import list_deliveries, retry_delivery

__all__ = [
    "booking_event",
    "deliver_due_webhooks",
    "departure_event",
    "list_deliveries",
    "queue_event",
    "retry_delivery",
]
