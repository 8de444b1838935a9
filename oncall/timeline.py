"""Shifts, and the arithmetic of half-open instant intervals that timelines are built from.

Every interval is half-open, [start, end): at the instant of a handoff the incoming person is
on call and the outgoing one is not, so no instant ever has two people from one layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Shift:
    """A stretch [start, end) during which `user` is on call; instants are aware (UTC)."""

    user: str
    start: datetime
    end: datetime

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.start <= at < self.end


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """The sorted, disjoint union of `intervals`; touching ones are joined and empty dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def clip(shifts: Iterable[Shift], allowed: list[Interval]) -> list[Shift]:
    """The parts of sorted, disjoint `shifts` that lie inside sorted, disjoint `allowed`."""
    result: list[Shift] = []
    i = 0
    for shift in shifts:
        # Windows that end before this shift can matter to no later shift either.
        while i < len(allowed) and allowed[i][1] <= shift.start:
            i += 1
        j = i
        while j < len(allowed) and allowed[j][0] < shift.end:
            start, end = max(shift.start, allowed[j][0]), min(shift.end, allowed[j][1])
            if start < end:
                result.append(Shift(shift.user, start, end))
            j += 1
    return result


def gaps(shifts: Iterable[Shift], start: datetime, end: datetime) -> list[Interval]:
    """The stretches of [start, end) that no shift covers."""
    result: list[Interval] = []
    cursor = start
    for covered_start, covered_end in union((s.start, s.end) for s in shifts):
        if covered_start > cursor:
            result.append((cursor, min(covered_start, end)))
        cursor = max(cursor, covered_end)
        if cursor >= end:
            break
    if cursor < end:
        result.append((cursor, end))
    return [g for g in result if g[0] < g[1]]
