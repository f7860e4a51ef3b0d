"""The catalogue's question about bookings is answered by whoever composed the app, and
asking before anyone answers is a bug that says so (never a silent "no bookings")."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from app.booking.services import live_bookings
from app.core import booking_checks


@pytest.fixture
def no_answers() -> Iterator[None]:
    saved = dict(booking_checks._answers)
    booking_checks._answers.clear()
    try:
        yield
    finally:
        booking_checks._answers.clear()
        booking_checks._answers.update(saved)


@pytest.mark.usefixtures("no_answers")
async def test_asking_before_booking_answers_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="answer_booking_checks"):
        await booking_checks.departure_has_live_bookings(uuid4())


@pytest.mark.usefixtures("no_answers")
async def test_the_registered_answer_is_asked() -> None:
    asked: list[UUID] = []

    async def answer(departure_id: UUID) -> bool:
        asked.append(departure_id)
        return True

    booking_checks.answer_has_live_bookings(answer)
    departure_id = uuid4()
    assert await booking_checks.departure_has_live_bookings(departure_id) is True
    assert asked == [departure_id]


@pytest.mark.usefixtures("no_answers")
def test_booking_answers_with_its_live_lines() -> None:
    live_bookings.answer_booking_checks()
    assert booking_checks._answers["has_live_bookings"] is live_bookings.has_live_bookings
