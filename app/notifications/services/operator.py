"""An operator's view of the notifications: listing them, and sending one again."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from app.booking.services.access import booking_not_found, normalize_reference
from app.booking.tables import Booking
from app.catalogue.services.common import owned_departure
from app.core import clock
from app.core.errors import Conflict, NotFound
from app.core.i18n import _
from app.notifications.rows import NotificationRow
from app.notifications.tables import Notification, NotificationStatus


async def list_notifications(
    principal: Any, departure_id: UUID | None = None, reference: str | None = None
) -> list[NotificationRow]:

    if departure_id is not None:
        await owned_departure(principal, departure_id)
        where = Notification.departure == departure_id
    else:
        booking = (
            await Booking.select(Booking.id)
            .where(
                (Booking.reference == normalize_reference(reference or ""))
                & (Booking.operator == principal.operator_id)
            )
            .first()
            .run()
        )
        if booking is None:
            raise booking_not_found()
        where = Notification.booking == booking["id"]
    return [
        NotificationRow.from_row(row)
        for row in await Notification.select().where(where).order_by(Notification.created_at).run()
    ]


async def resend(principal: Any, notification_id: UUID) -> NotificationRow:
    """Send a notification again (a failed one, or one the tourist did not get)."""

    row = await Notification.select().where(Notification.id == notification_id).first().run()
    owner = None
    if row is not None and row["booking"] is not None:
        owner = (
            await Booking.select(Booking.operator).where(Booking.id == row["booking"]).first().run()
        )
    if row is None or owner is None or owner["operator"] != principal.operator_id:
        raise NotFound(_("Notification not found."), code="notification_not_found")
    reset = (
        await Notification.update(
            {
                Notification.status: NotificationStatus.pending.value,
                Notification.attempts: 0,
                Notification.next_attempt_at: clock.now(),
                Notification.last_error: "",
            }
        )
        .where(
            (Notification.id == notification_id)
            & (Notification.status != NotificationStatus.sending.value)
        )
        .returning(Notification.id)
        .run()
    )
    if not reset:
        # A worker is sending it right now: a second copy would go out beside it.
        raise Conflict(_("This message is being sent right now."), code="notification_sending")
    updated = await Notification.select().where(Notification.id == notification_id).first().run()
    assert updated is not None
    return NotificationRow.from_row(updated)
