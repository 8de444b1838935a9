"""Durations written as Prometheus does: `30s`, `5m`, `1h30m`, `1d`, `1w`, `0s`."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"^((\d+)(ms|s|m|h|d|w|y))+$")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string; ValueError if it is not one."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f"not a valid duration string: {text!r}")
    if text == "0":
        return 0.0
    return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """A compact duration string for `seconds` (whole seconds)."""
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNITS[unit])
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
