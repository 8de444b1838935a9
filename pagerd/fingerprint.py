"""Alert fingerprints computed exactly as Alertmanager computes them.

64-bit FNV-1a over the label names and values, sorted by name, each followed by a 0xff
byte; labels with empty values are dropped first (an empty label is an absent label).
"""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """The 16-hex-digit fingerprint of a label set."""
    h = _OFFSET
    for name in sorted(labels):
        value = labels[name]
        if value == "":
            continue
        for part in (name, value):
            for byte in part.encode():
                h = ((h ^ byte) * _PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _PRIME) & _MASK
    return f"{h:016x}"
