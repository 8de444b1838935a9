"""Small validators shared by intakes: each names the JSON field it rejects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pagerd.receivers.errors import PayloadError


def expect_object(value: Any, field: str) -> dict[str, Any]:
    """`value` as a JSON object."""
    if not isinstance(value, dict):
        raise PayloadError(field, "must be a JSON object")
    return value


def string_map(value: Any, field: str, *, required: bool = False) -> dict[str, str]:
    """A JSON object of string values (labels, annotations)."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(field, "must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{key}", "must be a string")
    return value


def optional_str(value: Any, field: str) -> str:
    """A string or absent (empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(field, "must be a string")
    return value


def timestamp(value: Any, field: str) -> datetime | None:
    """An RFC 3339 time; absent, empty and Go's zero time (0001-01-01) mean none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(field, "must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(field, "must be an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise PayloadError(field, "must be an RFC 3339 timestamp with a time zone")
    return None if parsed.year <= 1 else parsed
