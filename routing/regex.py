"""Anchored RE2 regexes, as Alertmanager's regex matchers use them, fast in the common cases.

Alertmanager compiles `=~` values with Go's regexp as `^(?:value)$`. RE2 has the same syntax
and the same linear-time guarantee, so a hostile label value cannot make routing backtrack.

Every alert is tested against the regexes of many routes, so the test is made cheap: a
pattern that is only literal alternatives (`critical|page`, the usual case) is a set
look-up, and other patterns go straight to the RE2 matcher, skipping the Python wrapper's
match-object machinery (ten times the cost of the match itself).
"""

from __future__ import annotations

import re
from typing import Any

import re2

# Options for every pattern; RE2 would otherwise print each syntax error of a config to
# stderr on top of the error pagerd reports.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True

# Alternatives made only of characters that are literal in every regex position.
_LITERAL = r"[A-Za-z0-9_\-:/@ ]*"
_LITERALS = re.compile(rf"{_LITERAL}(?:\|{_LITERAL})*")

# The wrapper's compiled RE2 object and anchor constant, when this version has them.
_ANCHOR_BOTH = getattr(getattr(re2, "_Anchor", None), "ANCHOR_BOTH", None)


class RegexError(ValueError):
    """A pattern Go's regexp would refuse; the message says why."""


class Regex:
    """A pattern compiled for full-value matching (`^(?:pattern)$`)."""

    __slots__ = ("_compiled", "_literals", "_low", "pattern")

    def __init__(self, pattern: str) -> None:
        _refuse_any_byte(pattern)
        try:
            compiled = re2.compile(f"^(?:{pattern})$", _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise RegexError(f"error parsing regexp: {reason}") from exc
        self.pattern = pattern
        self._compiled = compiled
        self._literals = frozenset(pattern.split("|")) if _LITERALS.fullmatch(pattern) else None
        low = getattr(compiled, "_regexp", None)
        self._low: Any = low if _ANCHOR_BOTH is not None and hasattr(low, "Match") else None

    def matches(self, value: str) -> bool:
        """Whether the whole of `value` matches the pattern."""
        if self._literals is not None:
            return value in self._literals
        if self._low is not None:
            # A lone surrogate (possible in decoded JSON) goes through as bytes that are
            # not UTF-8, which RE2 matches as Go matches invalid UTF-8, instead of raising.
            data = value.encode("utf-8", "surrogatepass")
            return bool(self._low.Match(_ANCHOR_BOTH, data, 0, len(data))[0][0] >= 0)
        return self._compiled.search(value.encode("utf-8", "replace").decode()) is not None

    @property
    def literals(self) -> frozenset[str] | None:
        """The values the pattern matches when it is only literal alternatives, else None."""
        return self._literals


def _refuse_any_byte(pattern: str) -> None:
    """Refuse `\\C`, which RE2 accepts and Go's regexp does not; Go is the reference here."""
    i = 0
    while i < len(pattern) - 1:
        if pattern[i] == "\\":
            if pattern[i + 1] == "C":
                raise RegexError("error parsing regexp: invalid escape sequence: `\\C`")
            i += 2
        else:
            i += 1
