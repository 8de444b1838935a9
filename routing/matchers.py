"""Label matchers: `name op value` tests on an alert's labels, as Alertmanager has them.

A matcher is one of `=`, `!=`, `=~`, `!~`. Regular expressions are RE2 (the syntax and
linear-time guarantee of Go's regexp package) and anchored at both ends, so `=~"db"`
matches the value `db` and not `mydb`. A label the alert does not have has the empty value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pagerd.routing.gostrings import GO_SPACE, go_quote
from pagerd.routing.regex import Regex, RegexError

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

# A matcher compiled to a function of an alert's labels.
LabelTest = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True)
class Matcher:
    """A test of one label: `name`, operator `op` and `value` (a regex for `=~`/`!~`).

    `op` may be given as text (`"=~"`); it is always a `MatchType` afterwards.
    """

    name: str
    op: str
    value: str
    _regex: Regex | None = field(init=False, repr=False, compare=False, default=None)
    _test: LabelTest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            op = MatchType(self.op)
        except ValueError:
            raise MatcherError(f"unknown match operator {self.op!r}") from None
        object.__setattr__(self, "op", op)
        if op in (MatchType.REGEX, MatchType.NOT_REGEX):
            try:
                object.__setattr__(self, "_regex", Regex(self.value))
            except RegexError as exc:
                raise MatcherError(str(exc)) from None
        object.__setattr__(self, "_test", self._make_test())

    def _make_test(self) -> LabelTest:
        """This matcher as one closure over a label set: routing calls it for every route
        an alert passes, so the operator is decided here, once."""
        name, value, regex = self.name, self.value, self._regex
        if regex is None:
            if self.op is MatchType.EQUAL:
                return lambda labels: labels.get(name, "") == value
            return lambda labels: labels.get(name, "") != value
        literals, matches = regex.literals, regex.matches
        if self.op is MatchType.REGEX:
            if literals is not None:
                return lambda labels: labels.get(name, "") in literals
            return lambda labels: matches(labels.get(name, ""))
        if literals is not None:
            return lambda labels: labels.get(name, "") not in literals
        return lambda labels: not matches(labels.get(name, ""))

    @property
    def test(self) -> LabelTest:
        """This matcher as a function of a label set (the fast form of `matches`)."""
        return self._test

    def matches_value(self, value: str) -> bool:
        """Whether a label value (empty for a missing label) passes this matcher."""
        op = self.op
        if op is MatchType.EQUAL:
            return value == self.value
        if op is MatchType.NOT_EQUAL:
            return value != self.value
        found = self._regex is not None and self._regex.matches(value)
        return found if op is MatchType.REGEX else not found

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with `labels` passes this matcher."""
        return self._test(labels)

    def sort_key(self) -> tuple[str, str, int]:
        """Alertmanager's matcher order: by name, then value, then operator."""
        return (self.name, self.value, _TYPE_ORDER[MatchType(self.op)])

    def __str__(self) -> str:
        # Alertmanager's spelling: this text ends up in route ids and group keys.
        if any(char in _RESERVED for char in self.name):
            return f"{go_quote(self.name)}{self.op}{go_quote(self.value)}"
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def cost(self) -> int:
        """How expensive a test is: 0 for (in)equality, 1 for a set of literals, 2 for a
        regex."""
        if self._regex is None:
            return 0
        return 1 if self._regex.literals is not None else 2


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether `labels` pass every matcher (true for no matchers)."""
    return all(matcher.matches(labels) for matcher in matchers)


def passes(tests: Iterable[LabelTest], labels: Mapping[str, str]) -> bool:
    """Whether `labels` pass every test (see `cheapest_first`)."""
    # A plain loop: all() over a generator costs twice as much on this hot path.
    for test in tests:  # noqa: SIM110
        if not test(labels):
            return False
    return True


def cheapest_first(matchers: Iterable[Matcher]) -> tuple[LabelTest, ...]:
    """The tests of `matchers` in the order to run them: all must pass, so the cheap ones
    go first."""
    return tuple(matcher.test for matcher in sorted(matchers, key=Matcher.cost))


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
