"""Table tests of rotations: handoffs on every DST transition of a year, restrictions, lengths."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pagerd.oncall.restrictions import DailyRestriction, Restriction, WeeklyRestriction
from pagerd.oncall.rotation import Layer, ShiftLength, ShiftUnit
from pagerd.oncall.timeline import Shift
from pagerd.oncall.wallclock import local, resolve

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham"]
MINUTE = timedelta(minutes=1)
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def transitions(zone: ZoneInfo, year: int = 2026) -> list[datetime]:
    """Each instant of `year` at which `zone` changes offset, found by bisection to the minute."""
    found, at = [], datetime(year, 1, 1, tzinfo=UTC)
    while at.year == year:
        low, high = at, at + timedelta(hours=1)
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            while high - low > MINUTE:
                middle = low + (high - low) // MINUTE // 2 * MINUTE
                same = middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            found.append(high)
        at += timedelta(hours=1)
    return found


def every_transition() -> list[tuple[str, datetime]]:
    return [(name, at) for name in ZONES for at in transitions(ZoneInfo(name))]


def change(zone: ZoneInfo, at: datetime) -> timedelta:
    """How far the clocks move at transition `at` (positive in spring)."""
    after, before = at.astimezone(zone).utcoffset(), (at - MINUTE).astimezone(zone).utcoffset()
    assert after is not None and before is not None
    return after - before


def daily(zone: ZoneInfo, handoff: time, start: date, people: int = 3) -> Layer:
    names = tuple(f"p{i}" for i in range(people))
    return Layer("daily", names, ShiftLength(1, ShiftUnit.DAYS), handoff, start, zone)


def test_there_are_transitions_to_test() -> None:
    # Two a year in each zone: if tzdata changes that, this table needs a look.
    assert [len(transitions(ZoneInfo(z))) for z in ZONES] == [2, 2, 2, 2]
    assert transitions(ZoneInfo("Asia/Kolkata")) == []


@pytest.mark.parametrize(("name", "at"), every_transition())
def test_daily_handoffs_keep_local_time_and_absorb_the_change(name: str, at: datetime) -> None:
    zone = ZoneInfo(name)
    # Three hours before the change, well outside its gap or fold.
    handoff = local(at - timedelta(hours=3), zone)
    layer = daily(zone, handoff.time(), handoff.date() - timedelta(days=10))

    probes = [resolve(handoff + timedelta(days=d, hours=1), zone) for d in (-1, 0, 1)]
    around = [layer.rotation_shift_at(probe) for probe in probes]
    shifts = [s for s in around if s is not None]

    assert [local(s.start, zone).time() for s in shifts] == [handoff.time()] * 3
    durations = [s.end - s.start for s in shifts]
    assert durations == [timedelta(days=1), timedelta(days=1) - change(zone, at), timedelta(days=1)]


@pytest.mark.parametrize(("name", "at"), every_transition())
def test_a_handoff_in_the_gap_or_fold(name: str, at: datetime) -> None:
    zone = ZoneInfo(name)
    jump = change(zone, at)
    before, after = local(at - MINUTE, zone) + MINUTE, local(at, zone)
    # The middle of the readings that happen never (gap) or twice (fold).
    middle = min(before, after) + abs(jump) / 2
    layer = daily(zone, middle.time(), middle.date() - timedelta(days=7))

    handoff = resolve(middle, zone)
    shift = layer.rotation_shift_at(handoff)

    assert shift is not None and shift.start == handoff
    if jump > timedelta(0):
        # Spring forward: the handoff happens when the clocks jump.
        assert handoff == at
    else:
        # Fall back: the first of the two instants that read `middle`.
        assert handoff == at - abs(jump) / 2
        assert local(handoff + abs(jump), zone) == middle
    # The next day's handoff is back at the written time.
    assert local(shift.end, zone) == middle + timedelta(days=1)


@pytest.mark.parametrize(("name", "at"), every_transition())
def test_twelve_hour_shifts_stay_at_eight_and_eight(name: str, at: datetime) -> None:
    zone = ZoneInfo(name)
    start = local(at, zone).date() - timedelta(days=3)
    layer = Layer("halves", ("day", "night"), ShiftLength.parse("12h"), time(8), start, zone)

    shifts = layer.shifts(at - timedelta(days=2), at + timedelta(days=2))

    # Day shifts start at 08:00 and night shifts at 20:00, on transition days too.
    starts: dict[str, set[time]] = {s.user: set() for s in shifts[1:]}
    for shift in shifts[1:]:
        starts[shift.user].add(local(shift.start, zone).time())
    assert starts == {"day": {time(8)}, "night": {time(20)}}


def test_lord_howe_moves_half_an_hour() -> None:
    layer = daily(LORD_HOWE, time(9), date(2026, 1, 1))
    spring = layer.rotation_shift_at(datetime(2026, 10, 3, 12, tzinfo=LORD_HOWE))
    autumn = layer.rotation_shift_at(datetime(2026, 4, 4, 12, tzinfo=LORD_HOWE))
    assert spring is not None and spring.end - spring.start == timedelta(hours=23, minutes=30)
    assert autumn is not None and autumn.end - autumn.start == timedelta(hours=24, minutes=30)


def test_kolkata_days_are_always_24_hours() -> None:
    layer = daily(ZoneInfo("Asia/Kolkata"), time(9, 30), date(2026, 1, 1))
    shifts = layer.shifts(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert {s.end - s.start for s in shifts[1:-1]} == {timedelta(days=1)}


def test_a_weekly_rotation_in_order() -> None:
    layer = Layer(
        "primary",
        ("alice", "bob", "carol"),
        ShiftLength.parse("1w"),
        time(9),
        date(2026, 1, 5),
        LONDON,
    )
    table = [
        (datetime(2026, 1, 5, 8, 59, tzinfo=LONDON), None),
        (datetime(2026, 1, 5, 9, 0, tzinfo=LONDON), "alice"),
        (datetime(2026, 1, 12, 8, 59, tzinfo=LONDON), "alice"),
        (datetime(2026, 1, 12, 9, 0, tzinfo=LONDON), "bob"),
        (datetime(2026, 1, 19, 9, 0, tzinfo=LONDON), "carol"),
        (datetime(2026, 1, 26, 9, 0, tzinfo=LONDON), "alice"),
        # Across the spring change on 29 March: still 09:00 local.
        (datetime(2026, 3, 30, 8, 59, tzinfo=LONDON), "carol"),
        (datetime(2026, 3, 30, 9, 0, tzinfo=LONDON), "alice"),
    ]
    for at, expected in table:
        shift = layer.shift_at(at)
        assert (shift.user if shift else None) == expected, at


def test_business_hours_and_nights_and_weekends() -> None:
    business = DailyRestriction(time(9), time(17), frozenset(range(5)))
    nights = DailyRestriction(time(18), time(8))
    weekend = WeeklyRestriction(4, time(17), 0, time(9))
    start = date(2026, 1, 5)
    length = ShiftLength.parse("1d")
    rows: list[tuple[str, Restriction]] = [
        ("business", business),
        ("nights", nights),
        ("weekend", weekend),
    ]
    layers = {
        name: Layer(name, ("ann",), length, time(0), start, NEW_YORK, (restriction,))
        for name, restriction in rows
    }
    table = [
        # Monday 12 January 2026.
        (datetime(2026, 1, 12, 7, 59, tzinfo=NEW_YORK), {"weekend", "nights"}),
        (datetime(2026, 1, 12, 8, 59, tzinfo=NEW_YORK), {"weekend"}),
        (datetime(2026, 1, 12, 9, 0, tzinfo=NEW_YORK), {"business"}),
        (datetime(2026, 1, 12, 16, 59, tzinfo=NEW_YORK), {"business"}),
        (datetime(2026, 1, 12, 17, 0, tzinfo=NEW_YORK), set()),
        (datetime(2026, 1, 12, 18, 0, tzinfo=NEW_YORK), {"nights"}),
        # Friday evening to Monday morning.
        (datetime(2026, 1, 16, 17, 0, tzinfo=NEW_YORK), {"weekend"}),
        (datetime(2026, 1, 17, 12, 0, tzinfo=NEW_YORK), {"weekend"}),
        # Tuesday 13 January.
        (datetime(2026, 1, 13, 7, 59, tzinfo=NEW_YORK), {"nights"}),
        (datetime(2026, 1, 13, 8, 0, tzinfo=NEW_YORK), set()),
    ]
    for at, expected in table:
        assert {name for name, layer in layers.items() if layer.shift_at(at)} == expected, at


def test_a_restricted_shift_is_cut_to_its_window() -> None:
    business = DailyRestriction(time(9), time(17), frozenset(range(5)))
    layer = Layer(
        "b",
        ("ann", "bob"),
        ShiftLength.parse("1w"),
        time(0),
        date(2026, 1, 5),
        NEW_YORK,
        (business,),
    )
    shift = layer.shift_at(datetime(2026, 1, 7, 12, tzinfo=NEW_YORK))
    assert shift == Shift(
        "ann",
        datetime(2026, 1, 7, 9, tzinfo=NEW_YORK).astimezone(UTC),
        datetime(2026, 1, 7, 17, tzinfo=NEW_YORK).astimezone(UTC),
    )
    assert (
        len(layer.shifts(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))) == 10
    )


def test_whole_day_windows_join_across_midnight() -> None:
    weekend_days = DailyRestriction(time(0), time(0), frozenset({5, 6}))
    layer = Layer(
        "w", ("ann",), ShiftLength.parse("1w"), time(0), date(2026, 1, 5), LONDON, (weekend_days,)
    )
    shift = layer.shift_at(datetime(2026, 1, 10, 12, tzinfo=LONDON))
    assert shift is not None
    assert shift.end - shift.start == timedelta(days=2)


@pytest.mark.parametrize(
    ("text", "count", "unit"),
    [("12h", 12, ShiftUnit.HOURS), ("3d", 3, ShiftUnit.DAYS), ("1w", 1, ShiftUnit.WEEKS)],
)
def test_shift_lengths(text: str, count: int, unit: ShiftUnit) -> None:
    assert ShiftLength.parse(text) == ShiftLength(count, unit)
    assert str(ShiftLength.parse(text)) == text


@pytest.mark.parametrize("text", ["0d", "0h", "1d12h", "12", "h", "1.5d", "-1d", "1m"])
def test_bad_shift_lengths(text: str) -> None:
    with pytest.raises(ValueError):
        ShiftLength.parse(text)


def test_naive_instants_are_refused() -> None:
    layer = daily(LONDON, time(9), date(2026, 1, 1))
    with pytest.raises(ValueError, match="no time zone"):
        layer.shift_at(datetime(2026, 1, 2))
