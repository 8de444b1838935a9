"""Reading `time_intervals:` (and the deprecated `mute_time_intervals:`) from config.

The range syntax is Alertmanager's: `monday:friday`, `1:15`, `-3:-1`, `january:march`,
`2024:2025`, `times` as `HH:MM` from 00:00 to 24:00 (end exclusive), and a tz database
`location`. Values Alertmanager refuses are refused here with its reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from pagerd.errors import ConfigError
from pagerd.routing.configread import Fields, scalar_text, shape
from pagerd.routing.timeintervals import Range, TimeInterval, TimePeriod, zone
from pagerd.yamlsource import position

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_TIME = re.compile(r"(([01][0-9]|2[0-3]):[0-5][0-9])|24:00")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_PERIOD_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")
_INTERVAL_KEYS = ("name", "time_intervals")


def parse_time_intervals(
    items: list[Any], errors: list[ConfigError], *, legacy: bool, seen: set[str]
) -> list[TimeInterval]:
    """The intervals of a `time_intervals:` list (`legacy`: `mute_time_intervals:`).

    Names must be unique across both lists; `seen` carries the names already defined.
    """
    what = "mute time interval" if legacy else "time interval"
    intervals = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(ConfigError(position(items, index), f"{what}: expected a mapping"))
            continue
        fields = Fields(item, _INTERVAL_KEYS, errors)
        name = fields.string("name")
        if not name:
            fields.error(f"missing name in {what}")
        elif name in seen:
            fields.error(f"{what} {name!r} is not unique", "name")
        periods = fields.sequence("time_intervals") or []
        parsed = [_parse_period(periods, i, errors) for i in range(len(periods))]
        if name:
            seen.add(name)
            intervals.append(TimeInterval(name, tuple(p for p in parsed if p is not None)))
    return intervals


def _parse_period(items: list[Any], index: int, errors: list[ConfigError]) -> TimePeriod | None:
    node = items[index]
    if not isinstance(node, dict):
        errors.append(ConfigError(position(items, index), "time interval: expected a mapping"))
        return None
    fields = Fields(node, _PERIOD_KEYS, errors)
    before = len(errors)
    period = TimePeriod(
        times=_ranges(fields, "times", _parse_time_range),
        weekdays=_ranges(fields, "weekdays", _parse_weekdays),
        days_of_month=_ranges(fields, "days_of_month", _parse_days_of_month),
        months=_ranges(fields, "months", _parse_months),
        years=_ranges(fields, "years", _parse_years),
        location=_parse_location(fields),
    )
    return period if len(errors) == before else None


def _ranges(fields: Fields, key: str, parse: Callable[[Any], Range]) -> tuple[Range, ...] | None:
    items = fields.sequence(key)
    if items is None:
        return None
    ranges = []
    for index, item in enumerate(items):
        try:
            ranges.append(parse(item))
        except ValueError as exc:
            fields.item_error(items, index, f"{key}: {exc}")
    return tuple(ranges)


def _parse_location(fields: Fields) -> str:
    name = fields.string("location")
    if name is None:
        return "UTC"
    if name != "Local":
        try:
            zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            fields.error(f"location: unknown time zone {name}", "location")
    return name


def _parse_time_range(node: Any) -> Range:
    if not isinstance(node, dict):
        raise ValueError(f"expected a mapping of start_time and end_time, got {shape(node)}")
    unknown = set(node) - {"start_time", "end_time"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    start, end = node.get("start_time"), node.get("end_time")
    if start is None or end is None or start == "" or end == "":
        raise ValueError("both start and end times must be provided")
    start_minute, end_minute = _parse_time(start), _parse_time(end)
    if start_minute >= end_minute:
        raise ValueError("start time cannot be equal or greater than end time")
    return start_minute, end_minute


def _parse_time(value: Any) -> int:
    """Minutes of the day in `HH:MM` (00:00 to 24:00)."""
    text = scalar_text(value) or ""
    if not _TIME.fullmatch(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _parse_range(value: Any, member: Callable[[str], int]) -> Range:
    """`a` or `a:b` (inclusive) with each member read by `member`."""
    text = (scalar_text(value) or "").lower()
    parts = text.split(":")
    if len(parts) > 2:
        raise ValueError(f"couldn't parse range {text}, invalid format")
    begin, end = member(parts[0]), member(parts[-1])
    return begin, end


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    return int(text)


def _parse_weekdays(value: Any) -> Range:
    def member(text: str) -> int:
        if text not in WEEKDAYS:
            raise ValueError(f"{text} is not a valid weekday")
        return WEEKDAYS.index(text)

    begin, end = _parse_range(value, member)
    if begin > end:
        raise ValueError("start day cannot be before end day")
    return begin, end


def _parse_days_of_month(value: Any) -> Range:
    begin, end = _parse_range(value, _integer)
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise ValueError("end day must be negative if start day is negative")
    # With negative days the order depends on the month; refuse what is wrong in every
    # month (taking the shortest, 28 days), as Alertmanager does.
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def _parse_months(value: Any) -> Range:
    def member(text: str) -> int:
        if text in MONTHS:
            return MONTHS.index(text) + 1
        try:
            number = _integer(text)
        except ValueError:
            raise ValueError(f"{text} is not a valid month") from None
        # Alertmanager takes any number here and so never matches month 13; pagerd refuses
        # it, as no one means it.
        if not 1 <= number <= 12:
            raise ValueError(f"{text} is not a valid month: out of range")
        return number

    begin, end = _parse_range(value, member)
    if begin > end:
        raise ValueError(f"end month {MONTHS[end - 1]} is before start month {MONTHS[begin - 1]}")
    return begin, end


def _parse_years(value: Any) -> Range:
    begin, end = _parse_range(value, _integer)
    if begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end
