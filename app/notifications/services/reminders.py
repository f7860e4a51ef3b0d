"""Departure reminders, payment reminders and feedback requests, each once per booking."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from app.booking.tables import Booking, BookingStatus
from app.catalogue.services.common import as_list
from app.catalogue.tables import Departure, DepartureStatus, Route
from app.core import clock
from app.notifications.services.common import _notify_bookings, _notify_once

# Departure reminders are looked for this far ahead (routes allow up to 336 hours).
MAX_REMINDER_AHEAD = timedelta(hours=336)
# An unpaid hold gets a reminder this long before it runs out.
PAYMENT_REMINDER_AHEAD = timedelta(minutes=5)
# The feedback request goes out this long after the trip returns.
FEEDBACK_AFTER = timedelta(hours=2)


async def queue_reminders() -> int:
    """Departure reminders (by default 48 h and 3 h before; set per route), payment
    reminders shortly before a hold runs out, and a feedback request after the trip.
    Each is created exactly once per booking (its key), however often this runs."""

    now = clock.now()
    created = 0
    departures = (
        await Departure.select(Departure.id, Departure.departs_at, Departure.route)
        .where(
            Departure.status.is_in([DepartureStatus.published.value, DepartureStatus.closed.value])
            & (Departure.departs_at > now)
            & (Departure.departs_at <= now + MAX_REMINDER_AHEAD)
        )
        .run()
    )
    hours_by_route = {
        row["id"]: as_list(row["reminder_hours"])
        for row in await Route.select(Route.id, Route.reminder_hours)
        .where(Route.id.is_in(sorted({d["route"] for d in departures}, key=str) or [UUID(int=0)]))
        .output(load_json=True)
        .run()
    }
    for departure in departures:
        # Only the latest reminder that is due: a booking made 2 h before departure gets
        # the 3-hour reminder, not the 48-hour one as well.
        due = [
            hours for hours in hours_by_route.get(departure["route"], [48, 3])
            if departure["departs_at"] <= now + timedelta(hours=hours)
        ]  # fmt: skip
        if not due:
            continue
        name = f"{min(due)}h"
        created += await _notify_bookings(
            departure["id"], [BookingStatus.confirmed.value], f"reminder:{name}", f"reminder.{name}"
        )
    # Payment reminders: holds with a contact that run out within PAYMENT_REMINDER_AHEAD.
    holds = (
        await Booking.select(
            Booking.id,
            Booking.reference,
            Booking.departure,
            Booking.contact_email,
            Booking.contact_phone,
            Booking.locale,
        )
        .where(
            (Booking.status == BookingStatus.on_hold.value)
            & (Booking.expires_at > now)
            & (Booking.expires_at <= now + PAYMENT_REMINDER_AHEAD)
            & (Booking.contact_email != "")
        )
        .run()
    )
    for booking in holds:
        created += await _notify_once(
            f"payment-reminder:{booking['reference']}", "payment.reminder", booking
        )
    # Feedback requests: trips that came back in the last three days.
    returned = (
        await Departure.select(Departure.id)
        .where(
            Departure.status.is_in(
                [
                    DepartureStatus.published.value,
                    DepartureStatus.closed.value,
                    DepartureStatus.departed.value,
                ]
            )
            & (Departure.returns_at <= now - FEEDBACK_AFTER)
            & (Departure.returns_at > now - timedelta(days=3))
        )
        .run()
    )
    for departure in returned:
        created += await _notify_bookings(
            departure["id"], [BookingStatus.confirmed.value], "feedback", "feedback"
        )
    return created
