"""A rotation: one layer of a schedule, handing on call from person to person in turn.

Shifts are counted in the local wall clock of the layer's zone, whatever their unit: the k-th
handoff is the reading `start + handoff + k * shift_length` (days and weeks are calendar days,
hours are clock hours), turned into an instant by `wallclock.resolve`. So a 1-day or 24-hour
shift hands over at the same local time every day, and a shift that contains a DST change is
shorter or longer by that change; 12-hour shifts stay at 08:00 and 20:00 all year. A handoff
reading inside a spring-forward gap happens when the clocks jump; one inside a fall-back fold
happens at its first occurrence.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from pagerd.oncall.restrictions import Restriction
from pagerd.oncall.timeline import Interval, Shift, clip, union
from pagerd.oncall.wallclock import local, resolve


class ShiftUnit(enum.StrEnum):
    """The unit a shift length is counted in."""

    HOURS = "h"
    DAYS = "d"
    WEEKS = "w"


_UNIT_DELTAS = {
    ShiftUnit.HOURS: timedelta(hours=1),
    ShiftUnit.DAYS: timedelta(days=1),
    ShiftUnit.WEEKS: timedelta(weeks=1),
}
_LENGTH = re.compile(r"^(\d+)([hdw])$")


@dataclass(frozen=True)
class ShiftLength:
    """How long each shift of a rotation lasts: `count` hours, days or weeks of wall clock."""

    count: int
    unit: ShiftUnit

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a zero-length shift never hands over; shifts last at least 1h")

    @classmethod
    def parse(cls, text: str) -> ShiftLength:
        """Read `12h`, `3d` or `1w`; ValueError for anything else, including `0d`."""
        match = _LENGTH.match(text)
        if match is None:
            raise ValueError(f"shift length {text!r} is not a count and one unit: 12h, 3d or 1w")
        return cls(int(match[1]), ShiftUnit(match[2]))

    @property
    def wall(self) -> timedelta:
        """The length as a step of the wall clock."""
        return self.count * _UNIT_DELTAS[self.unit]

    def __str__(self) -> str:
        return f"{self.count}{self.unit.value}"


@dataclass(frozen=True)
class Layer:
    """A rotation of `participants`, in order, one shift each, starting on `start`.

    The first shift begins on `start` at `handoff` (local time in `time_zone`) and belongs to
    the first participant; before it the layer has nobody. With `restrictions`, the layer has
    its person only inside their windows (their union), and nobody outside them.
    """

    name: str
    participants: tuple[str, ...]
    shift_length: ShiftLength
    handoff: time
    start: date
    time_zone: ZoneInfo
    restrictions: tuple[Restriction, ...] = ()

    def __post_init__(self) -> None:
        if not self.participants:
            raise ValueError(f"layer {self.name!r} has no participants")

    @cached_property
    def anchor(self) -> datetime:
        """The wall-clock reading of the first handoff."""
        return datetime.combine(self.start, self.handoff)

    @cached_property
    def _step(self) -> timedelta:
        return self.shift_length.wall

    @cached_property
    def begins(self) -> datetime:
        """The instant (UTC) the layer's first shift begins."""
        return resolve(self.anchor, self.time_zone)

    def handoff_at(self, index: int) -> datetime:
        """The instant (UTC) shift number `index` begins; shift 0 begins the layer."""
        return resolve(self.anchor + index * self._step, self.time_zone)

    def rotation_shift_at(self, at: datetime) -> Shift | None:
        """The whole rotation shift holding instant `at`, ignoring restrictions."""
        _require_aware(at)
        if at < self.begins:
            return None
        index = self._index(at)
        return self._shift(index, self.handoff_at(index))

    def shift_at(self, at: datetime) -> Shift | None:
        """Who this layer has on call at `at`, and the stretch they have it, or None.

        The stretch is the rotation shift cut to the restriction window holding `at`.
        """
        whole = self.rotation_shift_at(at)
        if whole is None or not self.restrictions:
            return whole
        for piece in clip([whole], self.allowed(whole.start, whole.end)):
            if at in piece:
                return piece
        return None

    def shifts(self, start: datetime, end: datetime) -> list[Shift]:
        """This layer's on-call stretches within [start, end), in order, cut at the edges."""
        _require_aware(start)
        _require_aware(end)
        first = max(start, self.begins)
        if first >= end:
            return []
        result = []
        index = self._index(first)
        begins = self.handoff_at(index)
        while begins < end:
            ends = self.handoff_at(index + 1)
            if begins < ends:
                user = self.participants[index % len(self.participants)]
                result.append(Shift(user, max(begins, start), min(ends, end)))
            index, begins = index + 1, ends
        if self.restrictions:
            result = clip(result, self.allowed(start, end))
        return result

    def allowed(self, start: datetime, end: datetime) -> list[Interval]:
        """The restriction windows, as sorted disjoint instants, that overlap [start, end)."""
        first = local(start, self.time_zone).date()
        last = local(end, self.time_zone).date()
        return union(
            (resolve(begin, self.time_zone), resolve(finish, self.time_zone))
            for restriction in self.restrictions
            for begin, finish in restriction.windows(first - restriction.lookback, last)
        )

    def _shift(self, index: int, begins: datetime) -> Shift:
        user = self.participants[index % len(self.participants)]
        return Shift(user, begins, self.handoff_at(index + 1))

    def _index(self, at: datetime) -> int:
        """The number of the shift holding `at` (at or after the layer begins)."""
        # Readings estimate it; the checks correct the estimate near a gap or fold, where an
        # instant's reading and its shift's readings can disagree by the size of the change.
        index = (local(at, self.time_zone) - self.anchor) // self._step
        while self.handoff_at(index + 1) <= at:
            index += 1
        while index > 0 and self.handoff_at(index) > at:
            index -= 1
        return index


Rotation = Layer


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"instant {at.isoformat()} has no time zone")
