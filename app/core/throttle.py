"""A sliding-window counter of failures per key (e.g. wrong booking tokens per client IP).

It lives in the process's memory: each API process throttles on its own, which bounds
guessing to (processes x limit) attempts per window.
"""

from __future__ import annotations

import time
from collections import deque
from math import ceil

from app.core.errors import TooManyRequests
from app.core.i18n import _


class FailureThrottle:
    def __init__(self, limit: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def check(self, key: str) -> None:
        """Refuse with 429 while `key` has reached its limit of failures in the window."""
        now = time.monotonic()
        failures = self._recent(key, now)
        if len(failures) >= self.limit:
            retry_after = max(1, ceil(failures[0] + self.window - now))
            raise TooManyRequests(
                _("Too many failed attempts; try again later."),
                code="too_many_attempts",
                retry_after=retry_after,
            )

    def fail(self, key: str) -> None:
        if len(self._failures) >= self.max_keys:
            self._failures.clear()
        self._failures.setdefault(key, deque()).append(time.monotonic())

    def reset(self) -> None:
        self._failures.clear()
