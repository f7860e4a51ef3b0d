"""The booking state machine, asked the way every check asks it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.booking.services.state import can_transition, hold_run_out, hold_running
from app.booking.tables import BookingStatus
from app.core import clock

ON_HOLD, CONFIRMED = BookingStatus.on_hold, BookingStatus.confirmed
CANCELLED, EXPIRED = BookingStatus.cancelled, BookingStatus.expired


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (ON_HOLD, CONFIRMED, True),
        (ON_HOLD, CANCELLED, True),
        (ON_HOLD, EXPIRED, True),
        (CONFIRMED, CANCELLED, True),
        # A payment that lands after expiry while the seats are still free.
        (EXPIRED, CONFIRMED, True),
        (CONFIRMED, EXPIRED, False),
        (CONFIRMED, ON_HOLD, False),
        (CANCELLED, CONFIRMED, False),
        (CANCELLED, CANCELLED, False),
        (EXPIRED, CANCELLED, False),
    ],
)
def test_the_transitions_a_booking_may_make(
    current: BookingStatus, target: BookingStatus, allowed: bool
) -> None:
    assert can_transition(current, target) is allowed
    # Statuses as read from a row (plain strings) are asked the same way.
    assert can_transition(current.value, target) is allowed


def test_a_hold_runs_until_its_time_is_up() -> None:
    now = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)
    with clock.frozen(now):
        assert hold_running(ON_HOLD, now + timedelta(seconds=1))
        assert not hold_run_out(ON_HOLD, now + timedelta(seconds=1))
        assert not hold_running(ON_HOLD, now)
        assert hold_run_out("on_hold", now)
        # Other statuses are not holds, whatever their expiry says.
        for status in (CONFIRMED, CANCELLED, EXPIRED):
            assert not hold_running(status, now + timedelta(hours=1))
            assert not hold_run_out(status, now - timedelta(hours=1))
        # A hold without an expiry has not run out.
        assert hold_running(ON_HOLD, None)
