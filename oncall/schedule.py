"""A schedule: layers of rotations stacked one on another, plus the overrides made at runtime.

Layers are listed bottom first: a later layer lies on top of the earlier ones and wins wherever
it has someone (a weekday business-hours layer over a round-the-clock one). Each layer gives at
most one person, so the layers give at most one; overrides then replace that person or add
people beside them (see `overrides`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from pagerd.oncall.overrides import Override, apply_overrides
from pagerd.oncall.rotation import Layer
from pagerd.oncall.timeline import Interval, Shift, gaps


@dataclass(frozen=True)
class Schedule:
    """Named layers, bottom first; `time_zone` is the zone people read the schedule in."""

    name: str
    time_zone: ZoneInfo
    layers: tuple[Layer, ...]

    def layer_on_call(self, at: datetime) -> str | None:
        """The person the top-most layer with someone has at `at`, before overrides."""
        for layer in reversed(self.layers):
            shift = layer.shift_at(at)
            if shift is not None:
                return shift.user
        return None

    def on_call(self, at: datetime, overrides: Sequence[Override] = ()) -> list[str]:
        """Everyone on call at instant `at`: the layers' person, overridden, then any added."""
        return apply_overrides(self.layer_on_call(at), at, overrides)

    def shifts(
        self, start: datetime, end: datetime, overrides: Sequence[Override] = ()
    ) -> list[Shift]:
        """The final timeline of [start, end): who is on call when, with overrides applied.

        A person's stretch runs unbroken across handoffs to themselves and across layers; the
        stretches are cut at `start` and `end` and sorted by start. Added people overlap the
        others.
        """
        by_layer = [layer.shifts(start, end) for layer in self.layers]
        points = {start, end}
        for shifts in by_layer:
            points.update(edge for shift in shifts for edge in (shift.start, shift.end))
        for override in overrides:
            points.update(e for span in override.spans for e in span if start < e < end)
        sweep = _OverrideSweep(overrides)
        cursors = [0] * len(by_layer)
        since: dict[str, datetime] = {}
        result: list[Shift] = []
        for begin, _ in pairwise(sorted(points)):
            person = _top_person(by_layer, cursors, begin)
            if overrides:
                people = apply_overrides(person, begin, sweep.active(begin))
            else:
                people = [] if person is None else [person]
            for user in [u for u in since if u not in people]:
                result.append(Shift(user, since.pop(user), begin))
            for user in people:
                since.setdefault(user, begin)
        result.extend(Shift(user, began, end) for user, began in since.items())
        return sorted(result, key=lambda shift: shift.start)

    def coverage_gaps(
        self, start: datetime, end: datetime, overrides: Sequence[Override] = ()
    ) -> list[Interval]:
        """The stretches of [start, end) in which nobody is on call."""
        return gaps(self.shifts(start, end, overrides), start, end)

    def current_shifts(
        self,
        at: datetime,
        overrides: Sequence[Override] = (),
        horizon: timedelta = timedelta(weeks=6),
    ) -> list[Shift]:
        """The stretches of whoever is on call at `at`, to say since when and until when.

        A stretch is looked for up to `horizon` either side of `at` and cut there.
        """
        timeline = self.shifts(at - horizon, at + horizon, overrides)
        return [shift for shift in timeline if at in shift]


def _top_person(by_layer: list[list[Shift]], cursors: list[int], at: datetime) -> str | None:
    """The top-most layer's person at `at`; `cursors` only move forward, as `at` does."""
    for index in reversed(range(len(by_layer))):
        shifts, cursor = by_layer[index], cursors[index]
        while cursor < len(shifts) and shifts[cursor].end <= at:
            cursor += 1
        cursors[index] = cursor
        if cursor < len(shifts) and shifts[cursor].start <= at:
            return shifts[cursor].user
    return None


class _OverrideSweep:
    """The overrides whose ranges hold an instant, for instants visited in increasing order."""

    def __init__(self, overrides: Iterable[Override]) -> None:
        self._overrides = list(overrides)
        self._pending = sorted(
            (start, end, order)
            for order, override in enumerate(self._overrides)
            for start, end in override.spans
        )
        self._next = 0
        self._live: list[tuple[datetime, int]] = []

    def active(self, at: datetime) -> list[Override]:
        """The overrides holding `at`, in their given order (a later one wins)."""
        while self._next < len(self._pending) and self._pending[self._next][0] <= at:
            _, end, order = self._pending[self._next]
            heapq.heappush(self._live, (end, order))
            self._next += 1
        while self._live and self._live[0][0] <= at:
            heapq.heappop(self._live)
        orders = sorted({order for _, order in self._live})
        return [self._overrides[order] for order in orders]
