"""A reader that walks positioned YAML and collects every problem, each with its file:line.

A config is refused whole, with all its problems listed at once, so reading never stops at the
first one: a reader records the error and hands back a default, and the caller checks
`failed_since` before building a model object from what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pagerd.errors import ConfigError, refuse_unknown
from pagerd.yamlsource import Position, SourceDict, SourceList, position

T = TypeVar("T")


class Reader:
    """Reads fields of positioned mappings, recording a `ConfigError` for each bad one."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def error(self, container: Any, key: str | int | None, reason: str) -> None:
        """Record `reason` at the position of `key` in `container`."""
        self.errors.append(ConfigError(position(container, key), reason))

    def error_at(self, pos: Position, reason: str) -> None:
        """Record `reason` at `pos`."""
        self.errors.append(ConfigError(pos, reason))

    def mark(self) -> int:
        """A mark to pass to `failed_since`."""
        return len(self.errors)

    def failed_since(self, mark: int) -> bool:
        """Whether any error was recorded since `mark`."""
        return len(self.errors) > mark

    def need(self, node: SourceDict, key: str, convert: Callable[[Any], T]) -> T | None:
        """The converted value of a required field, or None (and an error) if bad or absent."""
        if key not in node:
            self.error(node, None, f"missing field {key!r}")
            return None
        return self._convert(node, key, convert)

    def get(self, node: SourceDict, key: str, convert: Callable[[Any], T], default: T) -> T:
        """The converted value of an optional field; `default` if absent or bad."""
        if key not in node:
            return default
        value = self._convert(node, key, convert)
        return default if value is None else value

    def known(self, node: SourceDict, keys: Iterable[str]) -> None:
        """Refuse every key of `node` not in `keys`: a typo must not pass silently."""
        refuse_unknown(node, keys, self.errors)

    def mappings(self, node: Any, key: str, what: str) -> Iterator[tuple[SourceList, int]]:
        """The (list, index) of each item of list field `key` that is a mapping."""
        if not isinstance(node, SourceDict) or key not in node or node[key] is None:
            return
        items = node[key]
        if not isinstance(items, SourceList):
            self.error(node, key, f"{key}: must be a list of {what}s")
            return
        for index, item in enumerate(items):
            if isinstance(item, SourceDict):
                yield items, index
            else:
                self.error(items, index, f"each {what} is a mapping of fields")

    def _convert(self, node: SourceDict, key: str, convert: Callable[[Any], T]) -> T | None:
        try:
            return convert(node[key])
        except ValueError as exc:
            self.error(node, key, f"{key}: {exc}")
            return None
