"""Label matchers: `name op value` tests on an alert's labels, as Alertmanager has them.

A matcher is one of `=`, `!=`, `=~`, `!~`. Regular expressions are RE2 (the syntax and
linear-time guarantee of Go's regexp package) and anchored at both ends, so `=~"db"`
matches the value `db` and not `mydb`. A label the alert does not have has the empty value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2
from pagerd.routing.gostrings import GO_SPACE, go_quote

# The options every matcher regex is compiled with; RE2 would otherwise print every
# syntax error of a config to stderr on top of the error we report.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.never_capture = True

# Characters that make Alertmanager quote a label name when it prints a matcher.
_RESERVED = frozenset("{}!=~,\\\"'`") | GO_SPACE
# The classic label name; Alertmanager checks `match:`/`match_re:` keys against it.
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MatcherError(ValueError):
    """A matcher that cannot be built or parsed; the message says why."""


class MatchType(enum.StrEnum):
    """A matcher's operator; the order of the members is Alertmanager's sort order."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


_TYPE_ORDER = {kind: index for index, kind in enumerate(MatchType)}


def compile_regex(pattern: str) -> Any:
    """`pattern` compiled as Alertmanager compiles it: RE2, anchored as `^(?:pattern)$`."""
    _refuse_any_byte(pattern)
    try:
        return re2.compile(f"^(?:{pattern})$", _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise MatcherError(f"error parsing regexp: {reason}") from exc


def _refuse_any_byte(pattern: str) -> None:
    """Refuse `\\C`, which RE2 accepts and Go's regexp does not; Go is the reference here."""
    i = 0
    while i < len(pattern) - 1:
        if pattern[i] == "\\":
            if pattern[i + 1] == "C":
                raise MatcherError("error parsing regexp: invalid escape sequence: `\\C`")
            i += 2
        else:
            i += 1


@dataclass(frozen=True)
class Matcher:
    """A test of one label: `name`, operator `op` and `value` (a regex for `=~`/`!~`).

    `op` may be given as text (`"=~"`); it is always a `MatchType` afterwards.
    """

    name: str
    op: str
    value: str
    _regex: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        try:
            op = MatchType(self.op)
        except ValueError:
            raise MatcherError(f"unknown match operator {self.op!r}") from None
        object.__setattr__(self, "op", op)
        if op in (MatchType.REGEX, MatchType.NOT_REGEX):
            object.__setattr__(self, "_regex", compile_regex(self.value))

    def matches_value(self, value: str) -> bool:
        """Whether a label value (empty for a missing label) passes this matcher."""
        op = self.op
        if op is MatchType.EQUAL:
            return value == self.value
        if op is MatchType.NOT_EQUAL:
            return value != self.value
        found = self._regex.search(value) is not None
        return found if op is MatchType.REGEX else not found

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with `labels` passes this matcher."""
        return self.matches_value(labels.get(self.name, ""))

    def sort_key(self) -> tuple[str, str, int]:
        """Alertmanager's matcher order: by name, then value, then operator."""
        return (self.name, self.value, _TYPE_ORDER[MatchType(self.op)])

    def __str__(self) -> str:
        # Alertmanager's spelling: this text ends up in route ids and group keys.
        if any(char in _RESERVED for char in self.name):
            return f"{go_quote(self.name)}{self.op}{go_quote(self.value)}"
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether `labels` pass every matcher (true for no matchers)."""
    return all(matcher.matches(labels) for matcher in matchers)


def sort_matchers(matchers: Iterable[Matcher]) -> tuple[Matcher, ...]:
    """`matchers` in Alertmanager's order, which route ids are built from."""
    return tuple(sorted(matchers, key=Matcher.sort_key))


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """Matchers as Alertmanager prints a list of them: `{a="b",c=~"d"}`."""
    return "{" + ",".join(str(matcher) for matcher in matchers) + "}"


def is_legacy_label_name(name: str) -> bool:
    """Whether `name` is a classic Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`)."""
    return _LEGACY_LABEL_NAME.fullmatch(name) is not None


def is_valid_label_name(name: str) -> bool:
    """Whether `name` is a label name in Alertmanager's default (UTF-8) mode: any non-empty
    text that is valid UTF-8."""
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
