"""Readers for the values in on-call config: names, zones, clock times, days, dates, delays.

Each reader takes a value as YAML produced it and returns it typed, or raises ValueError with
a reason fit to follow "file:line: field:". YAML has two traps here, handled on purpose: a
bare number such as `9` is no clock time, and an unquoted `2026-01-05` is a date.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pagerd.durations import parse_duration
from pagerd.oncall.users import mask

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_DAY_WORDS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def name(value: Any) -> str:
    """A name others refer to: letters, digits and . _ @ + -, starting with a letter or digit."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{value!r} is not a name (letters, digits, '._@+-')")
    return value


def names(value: Any) -> list[str]:
    """A list of names."""
    if not isinstance(value, list):
        raise ValueError("must be a list of names")
    return [name(item) for item in value]


def zone(value: Any) -> ZoneInfo:
    """An IANA time zone such as Europe/London."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be an IANA time zone name such as Europe/London")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc


def clock(value: Any, *, allow_24: bool = False) -> time:
    """A local clock time "HH:MM"; "24:00" (the end of a day) only where `allow_24`."""
    if isinstance(value, int) and not isinstance(value, bool):
        # A bare 9 could mean 09:00 or 00:09; refusing it is safer than guessing. (pagerd's
        # loader reads an unquoted 17:00 as the text "17:00", as Alertmanager does.)
        raise ValueError(f"write clock times as '09:00' (YAML read the number {value})")
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a clock time 'HH:MM'")
    hours, minutes = int(match[1]), int(match[2])
    if hours == 24 and (minutes or not allow_24):
        raise ValueError(f"{value!r} is not a clock time; 24:00 only ends a window")
    return time(hours % 24, minutes)


def weekday(value: Any) -> int:
    """A day name, "mon" or "monday" (any prefix of three letters or more); Monday is 0."""
    word = value.strip().lower() if isinstance(value, str) else ""
    for index, full in enumerate(_DAY_WORDS):
        if len(word) >= 3 and full.startswith(word):
            return index
    raise ValueError(f"{value!r} is not a day of the week (mon .. sun)")


def days(value: Any) -> frozenset[int]:
    """Days of the week: a list of day names, or a range "mon-fri" (which may wrap)."""
    if isinstance(value, str) and "-" in value:
        first, last = (weekday(part) for part in value.split("-", 1))
        return frozenset((first + offset) % 7 for offset in range((last - first) % 7 + 1))
    if isinstance(value, list) and value:
        return frozenset(weekday(item) for item in value)
    if isinstance(value, str):
        return frozenset([weekday(value)])
    raise ValueError("must be day names, as [mon, tue] or 'mon-fri'")


def day_and_clock(value: Any) -> tuple[int, time]:
    """A day and a clock time, "fri 17:00"."""
    parts = value.split() if isinstance(value, str) else []
    if len(parts) != 2:
        raise ValueError(f"{value!r} is not a day and a time, as 'fri 17:00'")
    return weekday(parts[0]), clock(parts[1], allow_24=True)


def start(value: Any) -> date | datetime:
    """A local date, or a local date and time, with no offset: the zone is the layer's."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (2026-01-05) or date and time") from exc
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("is local time in the layer's zone; drop the offset")
        return value
    if isinstance(value, date):
        return value
    raise ValueError("must be a date (2026-01-05) or a local date and time (2026-01-05T09:00)")


def delay(value: Any) -> timedelta:
    """A delay: a duration string ("15m", "1h30m") or a whole number of minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("cannot be negative")
        return timedelta(minutes=value)
    if isinstance(value, str):
        return timedelta(seconds=parse_duration(value))
    raise ValueError(f"{value!r} is not a duration such as 15m, or a number of minutes")


def whole_minutes(value: Any) -> int:
    """A delay in whole minutes, at least one."""
    span = delay(value)
    if span % timedelta(minutes=1) or span < timedelta(minutes=1):
        raise ValueError("must be a whole number of minutes, at least 1m")
    return span // timedelta(minutes=1)


def count(value: Any) -> int:
    """A whole number, 0 or more."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def phone(value: Any) -> str:
    """A phone number in E.164 form, +447700900123."""
    if not isinstance(value, str) or not _PHONE.match(value):
        shown = mask(value) if isinstance(value, str) else repr(value)
        raise ValueError(f"{shown} is not an E.164 number ('+' and 7 to 15 digits)")
    return value


def email(value: Any) -> str:
    """An email address (checked only for one @ with text either side)."""
    if not isinstance(value, str) or value.count("@") != 1 or value.startswith("@") or (
        value.endswith("@")
    ):
        raise ValueError(f"{value!r} is not an email address")
    return value


def url(value: Any) -> str:
    """An http or https URL."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def sha256_hex(value: Any) -> str:
    """A SHA-256 digest written as 64 hex digits (how a user's API token is stored)."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError("must be the SHA-256 of the token, as 64 hex digits")
    return value.lower()
