"""A line's departures as month calendars: each day with its departures and seats left."""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from babel.dates import format_skeleton, get_day_names

from app.catalogue.schemas.public import PublicDepartureSummary
from app.core.i18n import current_locale


@dataclass
class CalendarDay:
    day: date
    departures: list[PublicDepartureSummary] = field(default_factory=list)


@dataclass
class CalendarMonth:
    title: str
    # Weeks from Monday; None pads the days of the neighbouring months.
    weeks: list[list[CalendarDay | None]]


def weekday_names() -> list[str]:
    """Monday first, abbreviated in the reader's language."""
    names = get_day_names("abbreviated", locale=current_locale())
    return [names[index] for index in range(7)]


def departure_calendar(departures: list[PublicDepartureSummary]) -> list[CalendarMonth]:
    """The months the departures fall in (their local dates), in order."""
    by_day: dict[date, list[PublicDepartureSummary]] = defaultdict(list)
    for departure in departures:
        by_day[departure.departs_at.date()].append(departure)
    months = sorted({(day.year, day.month) for day in by_day})
    weeks_of = calendar.Calendar(firstweekday=calendar.MONDAY).monthdatescalendar
    return [
        CalendarMonth(
            title=format_skeleton("yMMMM", date(year, month, 1), locale=current_locale()),
            weeks=[
                [
                    CalendarDay(day, by_day.get(day, [])) if day.month == month else None
                    for day in week
                ]
                for week in weeks_of(year, month)
            ],
        )
        for year, month in months
    ]
