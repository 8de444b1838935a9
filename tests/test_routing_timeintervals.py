"""Time intervals: each field, negative days of the month, zones, and the YAML forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pagerd.routing.config import parse_routing
from pagerd.routing.timeintervals import TimeInterval, TimePeriod
from pagerd.yamlsource import load


def interval(period_yaml: str) -> TimeInterval:
    """The interval named `x` whose only period is `period_yaml` (a flow mapping)."""
    text = (
        "route: {receiver: r}\n"
        f"time_intervals:\n  - name: x\n    time_intervals:\n      - {period_yaml}\n"
    )
    routing = parse_routing(load(text, "t.yml"), receivers={"r"}, owners=set(), severities=set())
    return routing.time_intervals["x"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# (period, instant, contained)
TABLE = [
    # Times: start inclusive, end exclusive; 24:00 is the end of the day.
    ("{times: [{start_time: '09:00', end_time: '17:00'}]}", utc(2024, 3, 4, 9, 0), True),
    ("{times: [{start_time: '09:00', end_time: '17:00'}]}", utc(2024, 3, 4, 16, 59), True),
    ("{times: [{start_time: '09:00', end_time: '17:00'}]}", utc(2024, 3, 4, 17, 0), False),
    ("{times: [{start_time: '09:00', end_time: '17:00'}]}", utc(2024, 3, 4, 8, 59), False),
    ("{times: [{start_time: '23:00', end_time: '24:00'}]}", utc(2024, 3, 4, 23, 59), True),
    # Unquoted times, as Alertmanager configs often have them.
    ("{times: [{start_time: 09:00, end_time: 17:30}]}", utc(2024, 3, 4, 17, 29), True),
    # Weekdays: ranges inclusive, names in any case; 2024-03-04 is a Monday.
    ("{weekdays: ['monday:friday']}", utc(2024, 3, 4, 12), True),
    ("{weekdays: ['monday:friday']}", utc(2024, 3, 8, 23, 59), True),
    ("{weekdays: ['monday:friday']}", utc(2024, 3, 9, 0, 0), False),
    ("{weekdays: ['Saturday', 'SUNDAY']}", utc(2024, 3, 10, 12), True),
    ("{weekdays: ['sunday:monday']}", utc(2024, 3, 5, 12), False),
    # Days of the month: negative counts from the end, ranges clamp to the month.
    ("{days_of_month: ['-1']}", utc(2024, 2, 29, 12), True),  # leap year
    ("{days_of_month: ['-1']}", utc(2023, 2, 28, 12), True),
    ("{days_of_month: ['-1']}", utc(2024, 2, 28, 12), False),
    ("{days_of_month: ['-3:-1']}", utc(2024, 4, 28, 0), True),
    ("{days_of_month: ['-3:-1']}", utc(2024, 4, 27, 23, 59), False),
    ("{days_of_month: ['1:31']}", utc(2024, 2, 29, 12), True),
    ("{days_of_month: ['30:31']}", utc(2024, 2, 29, 12), False),  # skipped in February
    ("{days_of_month: [1, 15]}", utc(2024, 5, 15, 12), True),
    ("{days_of_month: ['7:-7']}", utc(2024, 5, 25, 12), True),
    ("{days_of_month: ['7:-7']}", utc(2024, 5, 26, 12), False),
    # Months by name or number; years.
    ("{months: ['january:march', 'december']}", utc(2024, 12, 31, 23), True),
    ("{months: ['1:3']}", utc(2024, 4, 1), False),
    ("{years: ['2024:2025']}", utc(2025, 12, 31, 23, 59), True),
    ("{years: [2026]}", utc(2025, 12, 31, 23, 59), False),
    # All fields together must hold.
    ("{weekdays: [monday], months: [march], years: ['2024']}", utc(2024, 3, 4), True),
    ("{weekdays: [monday], months: [april]}", utc(2024, 3, 4), False),
    # No fields: always; an empty list: never (as in Alertmanager).
    ("{}", utc(2024, 3, 4), True),
    ("{weekdays: []}", utc(2024, 3, 4), False),
]


@pytest.mark.parametrize(("period", "at", "expected"), TABLE)
def test_contains(period: str, at: datetime, expected: bool) -> None:
    """Each field of a period, alone and together."""
    assert interval(period).contains(at) is expected


# (period, instant, contained): the fields are read in the period's location.
ZONE_TABLE = [
    # 07:30 UTC is 09:30 in Berlin in summer (CEST, +2)...
    (
        "{times: [{start_time: '09:00', end_time: '17:00'}], location: Europe/Berlin}",
        utc(2024, 7, 1, 7, 30),
        True,
    ),
    # ...and 08:30 in winter (CET, +1).
    (
        "{times: [{start_time: '09:00', end_time: '17:00'}], location: Europe/Berlin}",
        utc(2024, 1, 8, 7, 30),
        False,
    ),
    # Sunday 23:30 UTC is already Monday in Tokyo.
    ("{weekdays: [monday], location: Asia/Tokyo}", utc(2024, 3, 3, 23, 30), True),
    ("{weekdays: [monday]}", utc(2024, 3, 3, 23, 30), False),
    # 31 Dec 20:00 in New York is 1 Jan 01:00 UTC: month and year are New York's.
    (
        "{months: [december], years: ['2023'], location: America/New_York}",
        utc(2024, 1, 1, 1, 0),
        True,
    ),
    # The last day of the month in Sydney.
    ("{days_of_month: ['-1'], location: Australia/Sydney}", utc(2024, 4, 29, 14, 0), True),
    ("{days_of_month: ['-1'], location: UTC}", utc(2024, 4, 29, 14, 0), False),
]


@pytest.mark.parametrize(("period", "at", "expected"), ZONE_TABLE)
def test_contains_in_location(period: str, at: datetime, expected: bool) -> None:
    """Times, weekdays, days, months and years are those of the location, DST included."""
    assert interval(period).contains(at) is expected


def test_instant_zone_does_not_matter() -> None:
    """The same instant given in another offset is the same answer."""
    business = interval(
        "{times: [{start_time: '09:00', end_time: '17:00'}], location: Europe/Berlin}"
    )
    instant = utc(2024, 7, 1, 7, 30)
    assert business.contains(instant.astimezone(timezone(timedelta(hours=-7))))


def test_any_period_contains() -> None:
    """An interval with several periods contains what any of them contains."""
    both = TimeInterval("x", (TimePeriod(weekdays=((6, 6),)), TimePeriod(times=((0, 60),))))
    assert both.contains(utc(2024, 3, 9, 12))  # Saturday
    assert both.contains(utc(2024, 3, 4, 0, 30))  # Monday, early
    assert not both.contains(utc(2024, 3, 4, 12))


def test_naive_datetime_is_refused() -> None:
    """A wall time without a zone is ambiguous; refuse it rather than guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        interval("{}").contains(datetime(2024, 3, 4, 12))
