"""Reading matchers from config: the `matchers:` list and the deprecated `match:`/`match_re:`.

Routes and inhibition rules spell matchers the same three ways (inhibition rules with a
`source_` or `target_` prefix); all of them end up as one list of `Matcher`s, in
Alertmanager's order, which route ids are built from.
"""

from __future__ import annotations

from typing import Any

from pagerd.errors import ConfigError
from pagerd.routing.configread import Fields, scalar_text, shape
from pagerd.routing.matcher_parse import parse_matchers
from pagerd.routing.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    is_legacy_label_name,
    sort_matchers,
)
from pagerd.yamlsource import position


def read_matchers(fields: Fields, prefix: str = "") -> tuple[Matcher, ...]:
    """The matchers of `{prefix}match`, `{prefix}match_re` and `{prefix}matchers`."""
    found = _read_match(fields, f"{prefix}match", MatchType.EQUAL)
    found += _read_match(fields, f"{prefix}match_re", MatchType.REGEX)
    for at, text in fields.strings(f"{prefix}matchers") or []:
        try:
            found.extend(parse_matchers(text))
        except MatcherError as exc:
            fields.errors.append(ConfigError(at, f"invalid matcher {text!r}: {exc}"))
    return sort_matchers(found)


def has_matchers(fields: Fields, prefix: str = "") -> str | None:
    """The first of the matcher keys that is given and not empty, if any."""
    for key in (f"{prefix}match", f"{prefix}match_re", f"{prefix}matchers"):
        if fields.node.get(key):
            return key
    return None


def _read_match(fields: Fields, key: str, op: MatchType) -> list[Matcher]:
    """The matchers of a `match:` (equality) or `match_re:` (regex) mapping."""
    table = fields.mapping(key)
    found: list[Matcher] = []
    for name, value in (table or {}).items():
        reason = _check_match(name, value, op)
        if reason is None:
            try:
                found.append(Matcher(name, op, scalar_text(value) or ""))
            except MatcherError as exc:
                reason = f"{key}: {name}: {exc}"
        if reason is not None:
            fields.errors.append(ConfigError(position(table, name), reason))
    return found


def _check_match(name: str, value: Any, op: MatchType) -> str | None:
    """Why one `match:`/`match_re:` entry is refused, or None."""
    if not is_legacy_label_name(name):
        return f"invalid label name {name!r}"
    if value is None:
        # An empty `match:` value is the empty string; an empty regex is a mistake.
        return f"invalid regexp value for {name!r}" if op is MatchType.REGEX else None
    if scalar_text(value) is None:
        return f"{name}: expected a string, got {shape(value)}"
    return None
