"""Wall-clock time: turning a local clock reading in a zone into one instant, and back.

Every boundary of a schedule (a handoff, the edge of a restriction window) is written as a
local wall-clock time, and every one of them becomes an instant through `resolve`, so a single
rule decides what a clock reading means on the two days a year when it is ambiguous:

- a reading inside a spring-forward gap (02:30 when clocks jump from 02:00 to 03:00) never
  happens; it means the first instant after the gap, the moment the clocks jump;
- a reading inside a fall-back fold (01:30 when clocks go from 02:00 back to 01:00) happens
  twice; it means the first occurrence (PEP 495 `fold=0`).

Both rules keep `resolve` monotonic (a later reading is never an earlier instant), which is
what lets a rotation find its shift by arithmetic on readings. Instants are returned in UTC:
arithmetic between two datetimes of one `ZoneInfo` is wall-clock arithmetic in Python, a
classic source of off-by-an-hour bugs, so nothing here computes in local zones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


def local(at: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock reading in `zone` at the aware instant `at`."""
    return at.astimezone(zone).replace(tzinfo=None)


# Schedules ask for the same readings again and again (each day's handoff and window edges);
# a bounded cache makes repeated questions about the same weeks cheap. Zone rules are fixed
# for the life of a `ZoneInfo` object, so a cached answer cannot go stale.
@lru_cache(maxsize=1 << 14)
def resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) of the naive wall-clock reading `wall` in `zone`, by the rules above."""
    reading = wall.replace(tzinfo=zone, fold=0)
    first = reading.astimezone(UTC)
    # `first` is `wall` less the offset zoneinfo chose; unless that offset is not the one in
    # force at `first`, which happens only in a gap, `first` reads as `wall`.
    if first.astimezone(zone).utcoffset() == reading.utcoffset():
        return first
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clocks jump over the gap that swallowed `wall`.

    In a gap, PEP 495 maps fold=0 and fold=1 with the offsets before and after the jump, which
    puts one candidate before the jump and one after it. The jump is the first instant between
    them whose reading is not earlier than `wall`; transitions fall on whole seconds, so a
    bisection over seconds finds it exactly. Gaps are a few a year, so the cost does not matter.
    """
    a = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(a, b), max(a, b)
    lo, hi = 0, int((high - low).total_seconds())
    while lo < hi:
        mid = (lo + hi) // 2
        if local(low + timedelta(seconds=mid), zone) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return low + timedelta(seconds=lo)
