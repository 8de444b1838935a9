"""Restrictions: the parts of the week in which a layer may page anyone.

A restriction is written in the layer's local wall clock ("Mon-Fri 09:00-17:00", "nights
18:00-08:00", "Fri 17:00 to Mon 09:00"). It yields naive wall-clock windows; the layer turns
them into instants with `wallclock.resolve`, so a window edge inside a DST gap or fold follows
the same rule as a handoff does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import ClassVar

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))

WallWindow = tuple[datetime, datetime]


@dataclass(frozen=True)
class DailyRestriction:
    """A window on each listed day (Monday is 0) from `start` to `end`, local time.

    An `end` before `start` runs past midnight into the next day (nights: 18:00 to 08:00), and
    an `end` equal to `start` means the whole 24 hours. A window belongs to the day it starts on.
    """

    # A window starts at most a day before any instant it covers (two, with a DST change).
    lookback: ClassVar[timedelta] = timedelta(days=2)

    start: time
    end: time
    days: frozenset[int] = field(default=ALL_DAYS)

    def __post_init__(self) -> None:
        if not self.days or not self.days <= ALL_DAYS:
            raise ValueError(f"days must be a non-empty set of 0..6, not {sorted(self.days)}")

    def windows(self, first: date, last: date) -> Iterator[WallWindow]:
        """The wall-clock windows that start on each day from `first` to `last`, in order."""
        day = first
        while day <= last:
            if day.weekday() in self.days:
                begin = datetime.combine(day, self.start)
                end = datetime.combine(day, self.end)
                yield begin, end if end > begin else end + timedelta(days=1)
            day += timedelta(days=1)


@dataclass(frozen=True)
class WeeklyRestriction:
    """One window a week, from `start` on `start_day` to `end` on `end_day` (Monday is 0).

    Fri 17:00 to Mon 09:00 is a weekend; an end at or before the start wraps into the next
    week, so equal ends mean the whole week.
    """

    lookback: ClassVar[timedelta] = timedelta(days=8)

    start_day: int
    start: time
    end_day: int
    end: time

    def __post_init__(self) -> None:
        for day in (self.start_day, self.end_day):
            if day not in ALL_DAYS:
                raise ValueError(f"a weekday is 0..6, not {day}")

    def windows(self, first: date, last: date) -> Iterator[WallWindow]:
        """The wall-clock windows that start on a day from `first` to `last`, in order."""
        day = first + timedelta(days=(self.start_day - first.weekday()) % 7)
        span = timedelta(days=(self.end_day - self.start_day) % 7)
        while day <= last:
            begin = datetime.combine(day, self.start)
            end = datetime.combine(day + span, self.end)
            yield begin, end if end > begin else end + timedelta(weeks=1)
            day += timedelta(weeks=1)


Restriction = DailyRestriction | WeeklyRestriction
