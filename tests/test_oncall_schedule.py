"""Table tests of schedules: layer precedence, each kind of override, gaps and "until when"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pagerd.oncall.overrides import Add, Override, OverrideError, Swap, Take
from pagerd.oncall.restrictions import DailyRestriction
from pagerd.oncall.rotation import Layer, ShiftLength
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.timeline import Shift

ZONE = ZoneInfo("Europe/London")


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """An instant in January 2026, London time (which is UTC then)."""
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


# Daily at 09:00 from Monday 5 January: ann, bob, cyd, ann, ...; weekdays 12:00-14:00 dee
# covers lunch on top.
BASE = Layer(
    "base", ("ann", "bob", "cyd"), ShiftLength.parse("1d"), time(9), date(2026, 1, 5), ZONE
)
LUNCH = Layer(
    "lunch",
    ("dee",),
    ShiftLength.parse("1w"),
    time(0),
    date(2026, 1, 5),
    ZONE,
    (DailyRestriction(time(12), time(14), frozenset(range(5))),),
)
SCHEDULE = Schedule("primary", ZONE, (BASE, LUNCH))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at(5, 8, 59), []),  # before the first shift
        (at(5, 9), ["ann"]),
        (at(5, 12), ["dee"]),  # the top layer wins where it has someone
        (at(5, 14), ["ann"]),
        (at(6, 9), ["bob"]),
        (at(10, 12), ["cyd"]),  # Saturday: no lunch layer
    ],
)
def test_layers(instant: datetime, expected: list[str]) -> None:
    assert SCHEDULE.on_call(instant) == expected


OVERRIDE_TABLE = [
    # (name, overrides, instant, expected)
    ("take everything", [Take("eve", at(5, 10), at(5, 13))], at(5, 12), ["eve"]),
    ("take ends", [Take("eve", at(5, 10), at(5, 13))], at(5, 13), ["dee"]),
    ("take fills a gap", [Take("eve", at(5, 0), at(5, 9))], at(5, 8), ["eve"]),
    ("take covering", [Take("eve", at(5), at(7), covering="bob")], at(6, 10), ["eve"]),
    ("take covering others", [Take("eve", at(5), at(7), covering="bob")], at(5, 10), ["ann"]),
    ("later take wins", [Take("eve", at(5), at(6)), Take("fay", at(5), at(6))], at(5), ["fay"]),
    (
        "swap first half",
        [Swap("ann", at(5, 9), at(6, 9), "bob", at(6, 9), at(7, 9))],
        at(5, 10),
        ["bob"],
    ),
    (
        "swap second half",
        [Swap("ann", at(5, 9), at(6, 9), "bob", at(6, 9), at(7, 9))],
        at(6, 10),
        ["ann"],
    ),
    (
        "swap over overlapping ranges exchanges, not undoes",
        [Swap("ann", at(5), at(8), "bob", at(5), at(8))],
        at(6, 10),
        ["ann"],
    ),
    ("add joins", [Add("eve", at(5, 0), at(6))], at(5, 10), ["ann", "eve"]),
    ("add in a gap", [Add("eve", at(4, 0), at(5))], at(4, 10), ["eve"]),
    ("add once", [Add("ann", at(5, 0), at(6))], at(5, 10), ["ann"]),
    (
        "add beside a take",
        [Add("eve", at(5, 0), at(6)), Take("fay", at(5, 0), at(6))],
        at(5, 10),
        ["fay", "eve"],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "instant", "expected"),
    [row[1:] for row in OVERRIDE_TABLE],
    ids=[row[0] for row in OVERRIDE_TABLE],
)
def test_overrides(overrides: list[Override], instant: datetime, expected: list[str]) -> None:
    assert SCHEDULE.on_call(instant, overrides) == expected


def test_the_timeline_merges_and_cuts() -> None:
    timeline = SCHEDULE.shifts(at(5, 0), at(6, 12))
    assert timeline == [
        Shift("ann", at(5, 9), at(5, 12)),
        Shift("dee", at(5, 12), at(5, 14)),
        Shift("ann", at(5, 14), at(6, 9)),
        Shift("bob", at(6, 9), at(6, 12)),
    ]


def test_a_person_on_call_across_handoffs_has_one_stretch() -> None:
    alone = Schedule("alone", ZONE, (replace(BASE, participants=("x",)),))
    assert alone.shifts(at(6), at(9)) == [Shift("x", at(6), at(9))]


def test_added_people_overlap_the_timeline() -> None:
    timeline = SCHEDULE.shifts(at(6, 9), at(6, 11), [Add("eve", at(6, 10), at(6, 11))])
    assert timeline == [Shift("bob", at(6, 9), at(6, 11)), Shift("eve", at(6, 10), at(6, 11))]


def test_coverage_gaps() -> None:
    assert SCHEDULE.coverage_gaps(at(4), at(5, 12)) == [(at(4), at(5, 9))]
    with_take = [Take("eve", at(4, 0), at(5, 0))]
    assert SCHEDULE.coverage_gaps(at(4), at(5, 12), with_take) == [(at(5, 0), at(5, 9))]


def test_until_when() -> None:
    assert SCHEDULE.current_shifts(at(6, 15)) == [Shift("bob", at(6, 14), at(7, 9))]
    assert SCHEDULE.current_shifts(at(4)) == []


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Take("eve", at(6), at(5)), "end"),
        (lambda: Take("eve", at(5), at(5)), "end"),
        (lambda: Take("eve", datetime(2026, 1, 5), at(6)), "start"),
        (lambda: Take("", at(5), at(6)), "user"),
        (lambda: Take("eve", at(5), at(6), covering="eve"), "covering"),
        (lambda: Swap("ann", at(5), at(6), "ann", at(6), at(7)), "second"),
        (lambda: Swap("ann", at(5), at(6), "bob", at(7), at(6)), "second_end"),
        (lambda: Add("eve", at(6), at(6) - timedelta(seconds=1)), "end"),
    ],
)
def test_bad_overrides_name_the_field(make: Callable[[], object], field: str) -> None:
    with pytest.raises(OverrideError) as caught:
        make()
    assert caught.value.field == field
