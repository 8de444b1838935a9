"""YAML loading that remembers where each key and item came from.

Config errors must name the file and line of the offending key or item, so the loader
builds plain dicts and lists that also carry their source positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml


class SourceDict(dict[str, Any]):
    """A mapping from YAML that knows its own line and the line of each key."""

    file: str = "<string>"
    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line of `key` in this mapping, or of the mapping itself if it has no such key."""
        return self.key_lines.get(key, self.line)


class SourceList(list[Any]):
    """A sequence from YAML that knows its own line and the line of each item."""

    file: str = "<string>"
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        """The line of item `index`, or of the list itself."""
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


@dataclass(frozen=True)
class Position:
    """A place in a config file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def position(container: Any, key: str | int | None = None) -> Position:
    """The position of `key` within `container`, or of `container` itself."""
    file = getattr(container, "file", "<string>")
    if isinstance(container, SourceDict) and isinstance(key, str):
        return Position(file, container.line_of(key))
    if isinstance(container, SourceList) and isinstance(key, int):
        return Position(file, container.line_of(key))
    return Position(file, getattr(container, "line", 0))


class _Loader(yaml.SafeLoader):
    """A safe loader that records positions; `file` is set per load."""

    file = "<string>"


# YAML 1.1 reads an unquoted `17:00` as the base-60 number 1020; Alertmanager's YAML
# decoder, and every reader of a config, sees the time "17:00". Drop the base-60 forms.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"""^(?:[-+]?0b[0-1_]+
                  |[-+]?0[0-7_]+
                  |[-+]?(?:0|[1-9][0-9_]*)
                  |[-+]?0x[0-9a-fA-F_]+)$""", re.X),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> SourceDict:
    loader.flatten_mapping(node)
    result = SourceDict()
    result.file = loader.file
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            # Config keys are names; a number or a list as a key is a mistake worth a line.
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key!r} is not a string", key_node.start_mark
            )
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> SourceList:
    result = SourceList(loader.construct_object(child, deep=True) for child in node.value)
    result.file = loader.file
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class YAMLSourceError(Exception):
    """The text is not valid YAML; carries the position of the problem."""

    def __init__(self, pos: Position, reason: str) -> None:
        super().__init__(f"{pos}: {reason}")
        self.position = pos
        self.reason = reason


def load(text: str, file: str = "<string>") -> Any:
    """Parse YAML `text`, returning SourceDict/SourceList trees positioned in `file`."""
    loader_class = type("_FileLoader", (_Loader,), {"file": file})
    try:
        return yaml.load(text, Loader=loader_class)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YAMLSourceError(Position(file, line), exc.problem or str(exc)) from exc
