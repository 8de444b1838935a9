"""The one clock pagerd reads time from, so tests can run days of escalation in
milliseconds with a fake one."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time for due times; monotonic time for waiting."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        return datetime.fromtimestamp(self.time(), UTC)


class FakeClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._mono = 0.0

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += seconds
        self._mono += seconds
