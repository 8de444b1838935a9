"""Property tests of rotations and schedules against a deliberately simple reference model.

The reference shares no code with pagerd.oncall: it finds the instant of a wall-clock reading
by scanning minutes for the first instant that reads at least that late (which is the gap
rule, the fold rule and the plain case in one sentence), finds a shift by trying every nearby
shift number, and finds restriction windows by listing them day by day. Instants are drawn
over a year and, more densely, around every DST transition of that year in each zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pagerd.oncall.overrides import Add, Override, Swap, Take
from pagerd.oncall.restrictions import DailyRestriction, Restriction, WeeklyRestriction
from pagerd.oncall.rotation import Layer, ShiftLength, ShiftUnit
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.timeline import Shift

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
]
YEAR = 2026
MINUTE = timedelta(minutes=1)
UNIT = {ShiftUnit.HOURS: timedelta(hours=1), ShiftUnit.DAYS: timedelta(days=1)}
UNIT[ShiftUnit.WEEKS] = timedelta(weeks=1)


# The reference model.


def reading(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


@cache
def offsets(zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    """The least and greatest UTC offsets `zone` uses in the years around the test year."""
    start = datetime(YEAR - 1, 1, 1, tzinfo=UTC)
    steps = range(0, 3 * 366 * 24, 3)
    seen = {(start + timedelta(hours=h)).astimezone(zone).utcoffset() for h in steps}
    found = [o for o in seen if o is not None]
    return min(found), max(found)


@cache
def ref_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose reading in `zone` is at least `wall` (readings are minutes)."""
    least, greatest = offsets(zone)
    at = (wall - greatest).replace(tzinfo=UTC)
    while reading(at, zone) < wall:
        at += MINUTE
    assert at <= (wall - least).replace(tzinfo=UTC) + MINUTE
    return at


def offset(at: datetime, zone: ZoneInfo) -> timedelta | None:
    return at.astimezone(zone).utcoffset()


@cache
def transitions(zone: ZoneInfo) -> tuple[datetime, ...]:
    """Every instant of the test year at which `zone` changes its offset."""
    found = []
    at = datetime(YEAR, 1, 1, tzinfo=UTC)
    while at.year == YEAR:
        low, high = at, at + timedelta(hours=1)
        if offset(low, zone) != offset(high, zone):
            while high - low > MINUTE:
                middle = low + (high - low) // MINUTE // 2 * MINUTE
                if offset(middle, zone) == offset(low, zone):
                    low = middle
                else:
                    high = middle
            found.append(high)
        at += timedelta(hours=1)
    return tuple(found)


WallSpan = tuple[datetime, datetime]


def ref_windows(restriction: Restriction, first: date, last: date) -> list[WallSpan]:
    """Wall-clock windows of `restriction` that start from `first` to `last`."""
    windows: list[WallSpan] = []
    day = first
    while day <= last:
        if isinstance(restriction, DailyRestriction) and day.weekday() in restriction.days:
            begin = datetime.combine(day, restriction.start)
            end = datetime.combine(day, restriction.end)
            windows.append((begin, end if end > begin else end + timedelta(days=1)))
        if isinstance(restriction, WeeklyRestriction) and day.weekday() == restriction.start_day:
            begin = datetime.combine(day, restriction.start)
            days = (restriction.end_day - restriction.start_day) % 7
            end = datetime.combine(day + timedelta(days=days), restriction.end)
            windows.append((begin, end if end > begin else end + timedelta(days=7)))
        day += timedelta(days=1)
    return windows


def ref_allowed(layer: Layer, start: datetime, end: datetime) -> list[list[datetime]]:
    """Resolved, merged restriction windows around [start, end)."""
    zone = layer.time_zone
    first = reading(start, zone).date() - timedelta(days=9)
    last = reading(end, zone).date() + timedelta(days=1)
    spans = sorted(
        (ref_instant(b, zone), ref_instant(e, zone))
        for r in layer.restrictions
        for b, e in ref_windows(r, first, last)
    )
    merged: list[list[datetime]] = []
    for begin, end_ in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end_)
        elif begin < end_:
            merged.append([begin, end_])
    return merged


def ref_shift(layer: Layer, at: datetime) -> Shift | None:
    """The layer's shift at `at`, by trying every shift number that could hold it."""
    zone, step = layer.time_zone, layer.shift_length.count * UNIT[layer.shift_length.unit]
    anchor = datetime.combine(layer.start, layer.handoff)
    estimate = (at.replace(tzinfo=None) - anchor) // step
    spread = timedelta(hours=16) // step + 2
    best = None
    for number in range(max(0, estimate - spread), estimate + spread + 1):
        if ref_instant(anchor + number * step, zone) <= at:
            best = number
    if best is None:
        return None
    assert ref_instant(anchor + (estimate + spread + 1) * step, zone) > at
    begin = ref_instant(anchor + best * step, zone)
    end = ref_instant(anchor + (best + 1) * step, zone)
    user = layer.participants[best % len(layer.participants)]
    if not layer.restrictions:
        return Shift(user, begin, end)
    for low, high in ref_allowed(layer, begin, end):
        if low <= at < high:
            return Shift(user, max(begin, low), min(end, high))
    return None


def ref_on_call(schedule: Schedule, overrides: list[Override], at: datetime) -> list[str]:
    """Top layer wins; takes and swaps replace in order; adds join."""
    person = None
    for layer in schedule.layers:
        shift = ref_shift(layer, at)
        if shift is not None:
            person = shift.user
    added: list[str] = []
    for o in overrides:
        if isinstance(o, Take) and o.start <= at < o.end:
            if o.covering is None or o.covering == person:
                person = o.user
        elif isinstance(o, Swap):
            if person == o.first and o.first_start <= at < o.first_end:
                person = o.second
            elif person == o.second and o.second_start <= at < o.second_end:
                person = o.first
        elif isinstance(o, Add) and o.start <= at < o.end and o.user not in added:
            added.append(o.user)
    people = [person] if person else []
    return people + [u for u in added if u not in people]


# Strategies.

zones = st.sampled_from(ZONES).map(ZoneInfo)
PEOPLE = ("ann", "bob", "cyd", "dee", "eve")


def tricky_times(zone: ZoneInfo) -> list[time]:
    """Readings inside and at the edges of each gap and fold of the year."""
    result = []
    for at in transitions(zone):
        before, after = reading(at - MINUTE, zone) + MINUTE, reading(at, zone)
        low, high = min(before, after), max(before, after)
        result += [low.time(), high.time(), (low + (high - low) / 2).time()]
    return result or [time(2, 30)]


@st.composite
def clock_times(draw: st.DrawFn, zone: ZoneInfo) -> time:
    if draw(st.booleans()):
        return draw(st.sampled_from(tricky_times(zone)))
    return time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))


@st.composite
def restrictions(draw: st.DrawFn, zone: ZoneInfo) -> tuple[Restriction, ...]:
    result: list[Restriction] = []
    for _ in range(draw(st.integers(0, 2))):
        start, end = draw(clock_times(zone)), draw(clock_times(zone))
        if draw(st.booleans()):
            days = draw(st.frozensets(st.integers(0, 6), min_size=1))
            result.append(DailyRestriction(start, end, days))
        else:
            first, last = draw(st.integers(0, 6)), draw(st.integers(0, 6))
            result.append(WeeklyRestriction(first, start, last, end))
    return tuple(result)


@st.composite
def layers(draw: st.DrawFn, zone: ZoneInfo | None = None) -> Layer:
    """Layers in `zone`; half of them hand over on the day of one of its DST transitions."""
    zone = zone or draw(zones)
    unit = draw(st.sampled_from(list(ShiftUnit)))
    count = draw(st.integers(1, {"h": 36, "d": 4, "w": 2}[unit.value]))
    start = date(YEAR - 1, 10, 1) + timedelta(days=draw(st.integers(0, 300)))
    if len(transitions(zone)) > 0 and draw(st.booleans()):
        day = reading(draw(st.sampled_from(transitions(zone))), zone).date()
        if unit is ShiftUnit.HOURS:
            # Whole days of such shifts bring the handoff time back every day.
            count = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24]))
            start = day - timedelta(days=draw(st.integers(0, 60)))
        else:
            start = day - draw(st.integers(0, 20)) * ShiftLength(count, unit).wall
    return Layer(
        name="layer",
        participants=tuple(draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4))),
        shift_length=ShiftLength(count, unit),
        handoff=draw(clock_times(zone)),
        start=start,
        time_zone=zone,
        restrictions=draw(restrictions(zone)),
    )


@st.composite
def instants(draw: st.DrawFn, zone: ZoneInfo) -> datetime:
    """Minutes of the year, half of them within a day of one of the zone's transitions."""
    near = transitions(zone)
    if len(near) > 0 and draw(st.booleans()):
        center = draw(st.sampled_from(near))
        return center + draw(st.integers(-1440, 1440)) * MINUTE
    return datetime(YEAR, 1, 1, tzinfo=UTC) + draw(st.integers(0, 365 * 1440)) * MINUTE


def test_reference_knows_the_new_york_gap_and_fold() -> None:
    new_york = ZoneInfo("America/New_York")
    gap = ref_instant(datetime(YEAR, 3, 8, 2, 30), new_york)
    fold = ref_instant(datetime(YEAR, 11, 1, 1, 30), new_york)
    assert gap == datetime(YEAR, 3, 8, 7, 0, tzinfo=UTC)
    assert fold == datetime(YEAR, 11, 1, 5, 30, tzinfo=UTC)
    assert len(transitions(new_york)) == 2


# Properties of one layer.


@given(st.data())
def test_a_layer_has_the_expected_person_at_any_instant(data: st.DataObject) -> None:
    layer = data.draw(layers())
    at = data.draw(instants(layer.time_zone))

    shift = layer.shift_at(at)

    assert shift == ref_shift(layer, at)
    if shift is not None:
        assert shift.start <= at < shift.end


@given(st.data())
def test_a_layer_timeline_agrees_with_its_instants(data: st.DataObject) -> None:
    layer = data.draw(layers())
    start = data.draw(instants(layer.time_zone))
    end = start + timedelta(hours=data.draw(st.integers(1, 24 * 10)))

    timeline = layer.shifts(start, end)

    # Disjoint and ordered: never two people from one layer at one instant.
    assert all(a.end <= b.start for a, b in pairwise(timeline))
    for shift in timeline:
        assert start <= shift.start < shift.end <= end
        for at in (shift.start, shift.end - timedelta(microseconds=1)):
            expected = ref_shift(layer, at)
            assert expected is not None and expected.user == shift.user
    probe = data.draw(st.integers(0, int((end - start) / MINUTE) - 1)) * MINUTE + start
    holding = [s.user for s in timeline if s.start <= probe < s.end]
    expected = ref_shift(layer, probe)
    assert holding == ([] if expected is None else [expected.user])


@given(st.data())
def test_no_one_outside_the_restrictions(data: st.DataObject) -> None:
    layer = data.draw(layers())
    at = data.draw(instants(layer.time_zone))
    shift = layer.shift_at(at)
    if shift is None or not layer.restrictions:
        return
    windows = ref_allowed(layer, shift.start, shift.end)
    assert any(low <= shift.start and shift.end <= high for low, high in windows)


@given(st.data())
def test_handoffs_keep_their_local_time(data: st.DataObject) -> None:
    layer = data.draw(layers())
    zone = layer.time_zone
    target = datetime(YEAR, 1, 1)
    if len(transitions(zone)) > 0 and data.draw(st.booleans()):
        target = reading(data.draw(st.sampled_from(transitions(zone))), zone)
    near = (target - layer.anchor) // layer.shift_length.wall
    number = max(0, near + data.draw(st.integers(-3, 3)))

    at = layer.handoff_at(number)

    wall = datetime.combine(layer.start, layer.handoff) + number * layer.shift_length.wall
    if reading(at, zone) == wall:
        # In a fold, the first of the two instants that read `wall`.
        assert at == ref_instant(wall, zone)
    else:
        # Only a reading in a gap moves, and then to the instant the clocks jump.
        assert reading(at - MINUTE, zone) < wall < reading(at, zone)
        assert at in transitions(zone)


# Properties of schedules with overrides.


@st.composite
def overrides(draw: st.DrawFn, around: datetime) -> list[Override]:
    result: list[Override] = []
    for _ in range(draw(st.integers(0, 3))):
        start = around + draw(st.integers(-48, 48)) * timedelta(minutes=30)
        end = start + draw(st.integers(1, 96)) * timedelta(minutes=30)
        kind = draw(st.sampled_from(["take", "take-covering", "swap", "add"]))
        user = draw(st.sampled_from(PEOPLE))
        other = draw(st.sampled_from([p for p in PEOPLE if p != user]))
        if kind == "take":
            result.append(Take(user, start, end))
        elif kind == "take-covering":
            result.append(Take(user, start, end, covering=other))
        elif kind == "swap":
            later = start + draw(st.integers(-48, 48)) * timedelta(hours=1)
            result.append(Swap(user, start, end, other, later, later + (end - start)))
        else:
            result.append(Add(user, start, end))
    return result


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    zone = draw(zones)
    layer_zones = st.sampled_from([zone, ZoneInfo("UTC")])
    stack = draw(st.lists(layer_zones.flatmap(lambda z: layers(zone=z)), min_size=1, max_size=3))
    return Schedule("schedule", zone, tuple(stack))


@given(st.data())
def test_the_schedule_has_the_expected_people(data: st.DataObject) -> None:
    schedule = data.draw(schedules())
    at = data.draw(instants(schedule.time_zone))
    changes = data.draw(overrides(at))

    assert schedule.on_call(at, changes) == ref_on_call(schedule, changes, at)


@given(st.data())
def test_the_merged_timeline_agrees_with_on_call(data: st.DataObject) -> None:
    schedule = data.draw(schedules())
    start = data.draw(instants(schedule.time_zone))
    end = start + timedelta(hours=data.draw(st.integers(1, 24 * 7)))
    changes = data.draw(overrides(start))

    timeline = schedule.shifts(start, end, changes)
    edges = {start} | {e for s in timeline for e in (s.start, s.end) if e < end}
    probes = edges | {e - MINUTE for e in edges if e - MINUTE >= start}
    for at in sorted(probes):
        holding = sorted(s.user for s in timeline if s.start <= at < s.end)
        assert holding == sorted(schedule.on_call(at, changes)), at
    gaps = schedule.coverage_gaps(start, end, changes)
    for low, high in gaps:
        assert schedule.on_call(low, changes) == []
        assert schedule.on_call(high - timedelta(microseconds=1), changes) == []
