"""Config errors that name the file, line and reason."""

from __future__ import annotations

from collections.abc import Iterable

from pagerd.yamlsource import Position


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
