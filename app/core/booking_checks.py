"""What a domain below booking may ask about bookings; the booking domain answers.

The catalogue imports nothing from booking, yet one of its rules depends on bookings: a
departure with live bookings cannot go back to draft (and a change of its schedule is news
for its passengers). It asks here. The booking domain gives the answer when the
application is composed (`app.booking.services.live_bookings.answer_booking_checks`,
called by `create_app`, the worker and the CLI): asking before that is a bug, not a "no".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

HasLiveBookings = Callable[[UUID], Awaitable[bool]]

_answers: dict[str, HasLiveBookings] = {}


def answer_has_live_bookings(answer: HasLiveBookings) -> None:
    _answers["has_live_bookings"] = answer


async def departure_has_live_bookings(departure_id: UUID) -> bool:
    """Whether a live booking line (held or sold) is on the departure."""
    answer = _answers.get("has_live_bookings")
    if answer is None:
        raise RuntimeError(
            "nothing answers departure_has_live_bookings: call "
            "app.booking.services.live_bookings.answer_booking_checks() at startup"
        )
    return await answer(departure_id)
