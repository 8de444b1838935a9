"""Overrides: runtime changes to a schedule that win over its layers.

Three kinds, as people ask for them:

- take: someone covers a time range, either the whole range (whoever the layers have, even
  nobody) or only where a named person would be on call ("I'll take Alice's Tuesday");
- swap: two people exchange shifts: each covers the other's range where the other is on call;
- add: a person is on call beside the rotation for a range (a shadow, or an extra pair of hands).

Takes and swaps replace the one person the layers give, in the order given (a later override
wins over an earlier one); adds then join them. Ranges are half-open and aware.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from pagerd.oncall.timeline import Interval


class OverrideError(ValueError):
    """An override that cannot be: names the field at fault, for an API's 4xx answer."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_range(start: datetime, end: datetime, prefix: str = "") -> None:
    for name, value in ((f"{prefix}start", start), (f"{prefix}end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise OverrideError(name, "needs a time zone or offset")
    if end <= start:
        raise OverrideError(f"{prefix}end", "must be after start")


def _check_user(field: str, user: str) -> None:
    if not user:
        raise OverrideError(field, "must name a user")


@dataclass(frozen=True)
class Take:
    """`user` is on call in [start, end), everywhere or only where `covering` would be."""

    kind: ClassVar[str] = "take"
    user: str
    start: datetime
    end: datetime
    covering: str | None = None

    def __post_init__(self) -> None:
        _check_user("user", self.user)
        _check_range(self.start, self.end)
        if self.covering == self.user:
            raise OverrideError("covering", "a user cannot cover their own shift")

    @property
    def spans(self) -> tuple[Interval, ...]:
        """The ranges this override can change."""
        return ((self.start, self.end),)

    def apply(self, at: datetime, person: str | None) -> str | None:
        """Who is on call at `at` once this override is applied to `person`."""
        if self.start <= at < self.end and self.covering in (None, person):
            return self.user
        return person


@dataclass(frozen=True)
class Swap:
    """`first` and `second` exchange shifts.

    Where `first` would be on call in [first_start, first_end), `second` is, and where
    `second` would be in [second_start, second_end), `first` is.
    """

    kind: ClassVar[str] = "swap"
    first: str
    first_start: datetime
    first_end: datetime
    second: str
    second_start: datetime
    second_end: datetime

    def __post_init__(self) -> None:
        _check_user("first", self.first)
        _check_user("second", self.second)
        if self.first == self.second:
            raise OverrideError("second", "a swap needs two different users")
        _check_range(self.first_start, self.first_end, "first_")
        _check_range(self.second_start, self.second_end, "second_")

    @property
    def spans(self) -> tuple[Interval, ...]:
        """The ranges this override can change."""
        return ((self.first_start, self.first_end), (self.second_start, self.second_end))

    def apply(self, at: datetime, person: str | None) -> str | None:
        """Who is on call at `at` once this override is applied to `person`."""
        # Both halves look at the person before the swap, so overlapping ranges exchange the
        # two people instead of handing the shift back.
        if person == self.first and self.first_start <= at < self.first_end:
            return self.second
        if person == self.second and self.second_start <= at < self.second_end:
            return self.first
        return person


@dataclass(frozen=True)
class Add:
    """`user` is on call beside whoever else is, in [start, end)."""

    kind: ClassVar[str] = "add"
    user: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _check_user("user", self.user)
        _check_range(self.start, self.end)

    @property
    def spans(self) -> tuple[Interval, ...]:
        """The ranges this override can change."""
        return ((self.start, self.end),)


Override = Take | Swap | Add


def apply_overrides(person: str | None, at: datetime, overrides: Iterable[Override]) -> list[str]:
    """Everyone on call at `at`, given the layers' `person` and the schedule's overrides."""
    added = []
    for override in overrides:
        if isinstance(override, Add):
            if override.start <= at < override.end:
                added.append(override.user)
        else:
            person = override.apply(at, person)
    people = [] if person is None else [person]
    return people + [user for user in dict.fromkeys(added) if user not in people]


def users_of(override: Override) -> tuple[str, ...]:
    """Every user an override names, for checking them against the known users."""
    if isinstance(override, Swap):
        return (override.first, override.second)
    if isinstance(override, Take) and override.covering is not None:
        return (override.user, override.covering)
    return (override.user,)
