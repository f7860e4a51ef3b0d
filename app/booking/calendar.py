"""A booking as an iCalendar (RFC 5545) event: the `.ics` file downloaded and mailed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import icalendar

from app.booking.schemas import BookingOut
from app.core import clock
from app.core.i18n import _

# SEQUENCE counts revisions of the event. Each file is built from the booking as it is
# now (a mail at sending time, a download when asked), so the newest file is always the
# truest: its SEQUENCE is the seconds since this epoch, which grows with every file and
# lets calendar clients replace what they hold. A signed 32-bit INTEGER lasts until 2088.
_SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def calendar_event(booking: BookingOut, returns_at: datetime, meeting_point: str | None) -> bytes:
    """An iCalendar (RFC 5545) event for the trip: when, where to board, which seats.

    Times are in the departure's zone, with its VTIMEZONE; the UID is the booking's, so a
    later file (moved departure, another pick-up stop) replaces the event in a calendar."""
    seats = ", ".join(line.seat_label for line in booking.lines)
    where = booking.pickup_stop.name if booking.pickup_stop else (meeting_point or "")
    zone = ZoneInfo(booking.time_zone)
    start = (booking.pickup_stop.at if booking.pickup_stop else booking.departs_at).astimezone(zone)
    end = returns_at.astimezone(zone)
    now = clock.now()
    event = icalendar.Event()
    event.add("uid", f"{booking.reference}@tourline")
    event.add("dtstamp", now)
    event.add("sequence", int((now - _SEQUENCE_EPOCH).total_seconds()))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", booking.route_name)
    event.add("location", where)
    event.add(
        "description",
        "\n".join(
            [
                _("Booking {reference}").format(reference=booking.reference),
                _("Seats: {seats}").format(seats=seats),
            ]
        ),
    )
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Tourline//Bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add_component(event)
    # The zone's rules for the years the trip spans, not icalendar's default 1970-2038.
    calendar.add_missing_timezones(
        first_date=date(start.year, 1, 1), last_date=date(end.year + 1, 1, 1)
    )
    content: bytes = calendar.to_ical()  # typed Any by icalendar
    return content
