"""Config errors that name the file, line and reason."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pagerd.yamlsource import Position, position


class ConfigError(Exception):
    """One problem in a config file, at a position."""

    def __init__(self, pos: Position, reason: str) -> None:
        super().__init__(f"{pos}: {reason}")
        self.position = pos
        self.reason = reason


class ConfigErrors(Exception):
    """Every problem found in a config; a config with any of them is refused whole."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.position.file, e.position.line))
        super().__init__("\n".join(str(e) for e in self.errors))


def refuse_unknown(node: dict[str, Any], known: Iterable[str], errors: list[ConfigError]) -> None:
    """Add an error for each key of `node` that is not `known`: a typo must not pass."""
    allowed = set(known)
    for key in node:
        if key not in allowed:
            errors.append(ConfigError(position(node, key), f"unknown field {key!r}"))
