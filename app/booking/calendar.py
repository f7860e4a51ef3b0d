"""A booking as iCalendar (RFC 5545) events: the `.ics` file downloaded and mailed.

A one-day trip is one event. A trip of several itinerary days is one event per day, each with
that day's plan (sights and times, meals, where the night is spent, when to be back on
board), so that a calendar shows the 15 days of a train trip as 15 days and not as one
block. Day 1 keeps the booking's own UID (the one event files carried before trips were
split by day), so a file sent earlier is replaced, not doubled; day N is
`{reference}-day{N}@tourline`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar

from app.booking.schemas import BookingOut
from app.catalogue.schemas.public import TripDay
from app.core import clock
from app.core.i18n import _
from app.core.labels import meals_text

# SEQUENCE counts revisions of the event. Each file is built from the booking as it is
# now (a mail at sending time, a download when asked), so the newest file is always the
# truest: its SEQUENCE is the seconds since this epoch, which grows with every file and
# lets calendar clients replace what they hold. A signed 32-bit INTEGER lasts until 2088.
_SEQUENCE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def booking_uid(reference: str) -> str:
    """The UID of a booking's event (of day 1 of a trip split by day)."""
    return f"{reference}@tourline"


def day_uid(reference: str, day_number: int) -> str:
    """The UID of one day of a trip split by day: stable, so a later file replaces it."""
    return booking_uid(reference) if day_number == 1 else f"{reference}-day{day_number}@tourline"


def calendar_event(booking: BookingOut, returns_at: datetime, meeting_point: str | None) -> bytes:
    """The trip as iCalendar events: when, where to board, which seats, and each day's plan.

    Times are in the departure's zone, with its VTIMEZONE."""
    zone = ZoneInfo(booking.time_zone)
    start = (booking.pickup_stop.at if booking.pickup_stop else booking.departs_at).astimezone(zone)
    end = returns_at.astimezone(zone)
    boarding = booking.pickup_stop.name if booking.pickup_stop else (meeting_point or "")
    now = clock.now()
    sequence = int((now - _SEQUENCE_EPOCH).total_seconds())
    booking_lines = [
        _("Booking {reference}").format(reference=booking.reference),
        _("Seats: {seats}").format(seats=", ".join(line.seat_label for line in booking.lines)),
    ]
    days = booking.itinerary or []
    events = []
    if len(days) <= 1:
        event = icalendar.Event()
        event.add("uid", booking_uid(booking.reference))
        event.add("summary", booking.route_name)
        event.add("dtstart", start)
        event.add("dtend", end)
        event.add("location", boarding)
        plan = _day_plan(days[0]) if days else []
        event.add("description", "\n".join([*booking_lines, *plan]))
        events.append(event)
    else:
        last = days[-1].day_number
        for day in days:
            event = icalendar.Event()
            event.add("uid", day_uid(booking.reference, day.day_number))
            event.add(
                "summary",
                _("{line} · Day {number}: {title}").format(
                    line=booking.route_name, number=day.day_number, title=day.title
                ),
            )
            first = start if day.day_number == 1 else None
            final = end if day.day_number == last else None
            day_start, day_end = _day_span(day, zone, first, final)
            event.add("dtstart", day_start)
            event.add("dtend", day_end)
            place = day.stops[0].place if day.stops else ""
            event.add("location", boarding if day.day_number == 1 else place)
            event.add("description", "\n".join([*_day_plan(day), *booking_lines]))
            events.append(event)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Tourline//Bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    for event in events:
        event.add("dtstamp", now)
        event.add("sequence", sequence)
        calendar.add_component(event)
    # The zone's rules for the years the trip spans, not icalendar's default 1970-2038.
    calendar.add_missing_timezones(
        first_date=date(start.year, 1, 1), last_date=date(end.year + 1, 1, 1)
    )
    content: bytes = calendar.to_ical()  # typed Any by icalendar
    return content


def _clock(value: str | None) -> time | None:
    if value is None:
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _day_span(
    day: TripDay, zone: ZoneInfo, first: datetime | None, final: datetime | None
) -> tuple[datetime | date, datetime | date]:
    """When a day's event starts and ends: from boarding (day 1) or the first stop's time,
    to the time to be back on board, the last stop's time or the return (last day). A day
    without two such times is an all-day event of its date."""
    times = sorted(
        clock_time
        for stop in day.stops
        for clock_time in (_clock(stop.arrive_time), _clock(stop.depart_time))
        if clock_time is not None
    )
    start = first or (datetime.combine(day.date, times[0], tzinfo=zone) if times else None)
    end = (
        final
        or day.back_on_board_at
        or (datetime.combine(day.date, times[-1], tzinfo=zone) if times else None)
    )
    if start is None or end is None or end <= start:
        return day.date, day.date + timedelta(days=1)
    return start, end


def _day_plan(day: TripDay) -> list[str]:
    """A day's plan as lines of text: the title, stops with times and activities, meals,
    the night, the time to be back on board."""
    lines = [_("Day {number}: {title}").format(number=day.day_number, title=day.title)]
    if day.description:
        lines.append(day.description)
    for stop in day.stops:
        text = stop.place
        times = "–".join(t for t in (stop.arrive_time, stop.depart_time) if t)
        if times:
            text += f" ({times})"
        if stop.activities:
            text += ": " + ", ".join(stop.activities)
        lines.append(text)
    if day.meals:
        lines.append(_("Meals included: {meals}").format(meals=meals_text(list(day.meals))))
    if day.overnight == "train":
        lines.append(_("Night: on the train"))
    elif day.overnight is not None:
        hotel = day.overnight
        lines.append(
            _("Night: {hotel}, {address}").format(hotel=hotel.name, address=hotel.address)
            + (f" ({hotel.phone})" if hotel.phone else "")
        )
    if day.back_on_board_at:
        lines.append(
            _("Back on board by {time}").format(time=day.back_on_board_at.strftime("%H:%M"))
        )
    return lines
