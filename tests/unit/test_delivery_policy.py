"""The retry policy of the delivery mechanism: growing pauses, a cap, giving up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core.backoff import Backoff, RetryPolicy

MINUTE = timedelta(minutes=1)


def test_a_doubling_backoff_grows_to_its_cap_and_stays_there() -> None:
    backoff = Backoff.doubling(MINUTE, timedelta(hours=1))
    assert [backoff.after(n) / MINUTE for n in range(0, 10)] == [
        1, 1, 2, 4, 8, 16, 32, 60, 60, 60,
    ]  # fmt: skip


def test_a_schedule_of_pauses_repeats_its_last_one() -> None:
    backoff = Backoff((MINUTE, 5 * MINUTE, 15 * MINUTE))
    assert [backoff.after(n) / MINUTE for n in (1, 2, 3, 4, 50)] == [1, 5, 15, 15, 15]


def test_retries_stop_after_the_last_attempt_or_the_window() -> None:
    since = datetime(2027, 6, 1, tzinfo=UTC)
    counted = RetryPolicy(Backoff((MINUTE,)), max_attempts=3)
    assert [counted.gives_up(n, since, since) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert counted.exhausted(3)
    assert not counted.exhausted(2)

    windowed = RetryPolicy(Backoff((MINUTE,)), window=timedelta(days=3))
    assert not windowed.gives_up(100, since + timedelta(days=3), since)
    assert windowed.gives_up(100, since + timedelta(days=3, seconds=1), since)
    assert not windowed.exhausted(1000)
