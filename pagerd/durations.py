"""Durations written as Prometheus writes them: `30s`, `5m`, `1h30m`, `1d`, `1w`, `0`.

Units go from largest to smallest, each at most once, as Prometheus requires.
"""

from __future__ import annotations

import re

_UNITS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string; ValueError if it is not one."""
    if text == "0":
        return 0.0
    match = _DURATION.match(text) if isinstance(text, str) and text else None
    if match is None:
        raise ValueError(f"not a valid duration string: {text!r}")
    return float(sum(int(n) * size for n, size in zip(match.groups(), _UNITS.values(),
                                                     strict=True) if n))


def format_duration(seconds: float) -> str:
    """A compact duration string for `seconds` (whole seconds)."""
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, remaining = divmod(remaining, int(_UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
