"""The retry policy of outgoing deliveries, defined once: growing pauses after each failed
attempt, and when retrying stops (after so many attempts, or so long after it began)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    """The pauses after the 1st, 2nd ... failed attempt; the last one repeats."""

    pauses: tuple[timedelta, ...]

    @classmethod
    def doubling(cls, first: timedelta, longest: timedelta) -> Backoff:
        """`first`, twice that, four times ..., at most `longest`."""
        pauses = [first]
        while pauses[-1] < longest:
            pauses.append(min(pauses[-1] * 2, longest))
        return cls(tuple(pauses))

    def after(self, attempts: int) -> timedelta:
        return self.pauses[min(max(attempts, 1), len(self.pauses)) - 1]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again, and when retrying stops."""

    backoff: Backoff
    # No more attempts than this.
    max_attempts: int | None = None
    # No retry later than this after the row's `Ledger.retry_from`.
    window: timedelta | None = None

    def exhausted(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts

    def gives_up(self, attempts: int, retry_at: datetime, since: datetime | None) -> bool:
        """Whether the attempt `attempts`, failed, was the last one."""
        late = self.window is not None and since is not None and retry_at - since > self.window
        return self.exhausted(attempts) or late
