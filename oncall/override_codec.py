"""Overrides as the API and the store write them: JSON with ISO 8601 times."""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import datetime
from typing import Any

from pagerd.oncall.overrides import Add, Override, OverrideError, Swap, Take

KINDS = ("take", "swap", "add")
_TIMES = {
    "take": ("start", "end"), "add": ("start", "end"),
    "swap": ("first_start", "first_end", "second_start", "second_end"),
}
_NAMES = {"take": ("user", "covering"), "add": ("user",), "swap": ("first", "second")}


def _time(data: Mapping[str, Any], key: str) -> datetime:
    value = data.get(key)
    if not isinstance(value, str):
        raise OverrideError(key, "must be an ISO 8601 time with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise OverrideError(key, "must be an ISO 8601 time with an offset") from None
    if parsed.tzinfo is None:
        raise OverrideError(key, "needs a time zone or offset")
    return parsed


def _name(data: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise OverrideError(key, "must name a user")
    return value


def decode(kind: Any, data: Mapping[str, Any], users: Container[str]) -> Override:
    """An override from its JSON form; OverrideError naming the field if it cannot be."""
    if kind not in KINDS:
        raise OverrideError("kind", f"must be one of {', '.join(KINDS)}")
    times = {key: _time(data, key) for key in _TIMES[kind]}
    override: Override
    if kind == "take":
        override = Take(_name(data, "user") or "", times["start"], times["end"],
                        _name(data, "covering", required=False))
    elif kind == "add":
        override = Add(_name(data, "user") or "", times["start"], times["end"])
    else:
        override = Swap(_name(data, "first") or "", times["first_start"], times["first_end"],
                        _name(data, "second") or "", times["second_start"],
                        times["second_end"])
    for field, user in zip(_NAMES[kind], (getattr(override, n) for n in _NAMES[kind]),
                           strict=True):
        if user is not None and user not in users:
            raise OverrideError(field, f"unknown user {user!r}")
    return override


def encode(override: Override) -> dict[str, Any]:
    """The JSON form of an override (without its kind)."""
    data: dict[str, Any] = {}
    for key in _NAMES[override.kind]:
        data[key] = getattr(override, key)
    for key in _TIMES[override.kind]:
        data[key] = getattr(override, key).isoformat()
    return data
