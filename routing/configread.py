"""Typed reads of one positioned YAML mapping, collecting errors instead of stopping.

Alertmanager decodes its config strictly: unknown keys are refused and a value of the wrong
shape is an error. `Fields` does the same for one mapping of pagerd's config and records each
problem at the line of its key or item, so that a config is refused with every problem
named at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pagerd.durations import parse_duration
from pagerd.errors import ConfigError, refuse_unknown
from pagerd.yamlsource import Position, position

_SHAPES = {dict: "a mapping", list: "a list"}


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as the text Go's YAML decoder would give a string field, or None for
    a mapping or list. (`receiver: 123` names the receiver "123", as in Alertmanager.)"""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def shape(value: Any) -> str:
    """How an error names the kind of a YAML value."""
    for kind, name in _SHAPES.items():
        if isinstance(value, kind):
            return name
    return f"{type(value).__name__} {value!r}"


class Fields:
    """One mapping read key by key; problems go to `errors` at the key's or item's line."""

    def __init__(self, node: dict[str, Any], known: Iterable[str], errors: list[ConfigError]):
        self.node = node
        self.errors = errors
        refuse_unknown(node, known, errors)

    def error(self, reason: str, key: str | None = None) -> None:
        """Record a problem at `key`'s line, or at the mapping's own line."""
        self.errors.append(ConfigError(position(self.node, key), reason))

    def item_error(self, items: Any, index: int, reason: str) -> None:
        """Record a problem at item `index` of the list `items`."""
        self.errors.append(ConfigError(position(items, index), reason))

    def at(self, key: str | None = None) -> Position:
        """The position of `key`, or of the mapping."""
        return position(self.node, key)

    def given(self, key: str) -> bool:
        """Whether `key` is present with a value (a YAML null counts as absent, as in Go)."""
        return self.node.get(key) is not None

    def string(self, key: str) -> str | None:
        """The text of `key`, or None if absent or not a scalar (an error)."""
        value = self.node.get(key)
        if value is None:
            return None
        text = scalar_text(value)
        if text is None:
            self.error(f"{key}: expected a string, got {shape(value)}", key)
        return text

    def boolean(self, key: str) -> bool | None:
        """The boolean `key`, or None if absent or not a boolean (an error)."""
        value = self.node.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.error(f"{key}: expected true or false, got {shape(value)}", key)
        return None

    def duration(self, key: str) -> float | None:
        """Seconds in the duration `key` (`30s`, `5m`, `1h30m`, `0`), or None."""
        text = self.string(key)
        if text is None:
            return None
        try:
            return parse_duration(text)
        except ValueError:
            self.error(f"{key}: not a valid duration string: {text!r}", key)
            return None

    def sequence(self, key: str) -> list[Any] | None:
        """The list `key`, or None if absent or not a list (an error)."""
        value = self.node.get(key)
        if value is None or isinstance(value, list):
            return value
        self.error(f"{key}: expected a list, got {shape(value)}", key)
        return None

    def mapping(self, key: str) -> dict[str, Any] | None:
        """The mapping `key`, or None if absent or not a mapping (an error)."""
        value = self.node.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.error(f"{key}: expected a mapping, got {shape(value)}", key)
        return None

    def strings(self, key: str) -> list[tuple[Position, str]] | None:
        """The list of texts `key`, each with its position; None if absent."""
        items = self.sequence(key)
        if items is None:
            return None
        result = []
        for index, item in enumerate(items):
            text = scalar_text(item)
            if text is None:
                self.item_error(items, index, f"{key}: expected a string, got {shape(item)}")
            else:
                result.append((position(items, index), text))
        return result
