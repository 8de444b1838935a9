"""Named time intervals (`time_intervals:`), that mute a route or make it active.

A `TimeInterval` is a name and a list of periods; it contains an instant if any period does.
A period restricts times of day, weekdays, days of the month (negative counts from the
month's end), months and years, each a list of inclusive ranges, in its `location` (UTC
unless named). A field left out does not restrict; a field given as an empty list
matches nothing, as in Alertmanager.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

Range = tuple[int, int]


@dataclass(frozen=True)
class TimePeriod:
    """One period of a time interval; None for a field that does not restrict.

    `times` are minutes of the day, end exclusive; `weekdays` count Sunday as 0;
    `days_of_month` may be negative (-1 is the last day).
    """

    times: tuple[Range, ...] | None = None
    weekdays: tuple[Range, ...] | None = None
    days_of_month: tuple[Range, ...] | None = None
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str = "UTC"

    def contains(self, at: datetime) -> bool:
        """Whether the instant `at` (timezone-aware) falls in this period."""
        local = _in_location(at, self.location)
        minute = local.hour * 60 + local.minute
        weekday = (local.weekday() + 1) % 7
        checks: list[tuple[tuple[Range, ...] | None, Callable[[Range], bool]]] = [
            (self.times, lambda r: r[0] <= minute < r[1]),
            (self.days_of_month, lambda r: _day_in(r, local)),
            (self.months, lambda r: r[0] <= local.month <= r[1]),
            (self.weekdays, lambda r: r[0] <= weekday <= r[1]),
            (self.years, lambda r: r[0] <= local.year <= r[1]),
        ]
        return all(ranges is None or any(map(test, ranges)) for ranges, test in checks)


@dataclass(frozen=True)
class TimeInterval:
    """A named list of periods; it contains an instant that any of its periods contains."""

    name: str
    periods: tuple[TimePeriod, ...]

    def contains(self, at: datetime) -> bool:
        """Whether the instant `at` (timezone-aware) is in this interval."""
        if at.tzinfo is None:
            raise ValueError("time intervals need a timezone-aware datetime")
        return any(period.contains(at) for period in self.periods)


def _in_location(at: datetime, location: str) -> datetime:
    if location == "Local":
        # The zone of the host, as Go's time.Local is.
        return at.astimezone()
    return at.astimezone(zone(location))


def zone(location: str) -> tzinfo:
    """The zone a `location:` names (not `Local`); ZoneInfoNotFoundError or ValueError if
    there is none."""
    if location in ("", "UTC"):
        return UTC
    return ZoneInfo(location)


def _day_in(days: Range, at: datetime) -> bool:
    """Alertmanager's day-of-month test: negative days count back from the month's end,
    and a range is clamped to the month (so 1:31 is the whole of February)."""
    length = calendar.monthrange(at.year, at.month)[1]
    begin = length + days[0] + 1 if days[0] < 0 else days[0]
    end = length + days[1] + 1 if days[1] < 0 else days[1]
    if begin > length:
        return False
    begin = max(-length, min(begin, length))
    end = max(-length, min(end, length))
    return begin <= at.day <= end
