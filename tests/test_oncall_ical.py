"""iCal feeds: parse what pagerd writes back with `icalendar` and compare with the timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from icalendar import Calendar

from pagerd.oncall.directory import OnCall
from pagerd.oncall.ical import schedule_calendar, user_calendar
from pagerd.oncall.overrides import Take
from pagerd.oncall.rotation import Layer, ShiftLength
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.users import User

NEW_YORK = ZoneInfo("America/New_York")
LAYER = Layer("l", ("ann", "bob"), ShiftLength.parse("1d"), time(9), date(2026, 3, 1), NEW_YORK)
SCHEDULE = Schedule("primary", NEW_YORK, (LAYER,))
START, END = datetime(2026, 3, 7, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
STAMP = datetime(2026, 3, 1, tzinfo=UTC)


def events(feed: bytes) -> list[tuple[str, datetime, datetime, str]]:
    calendar = Calendar.from_ical(feed)
    return [
        (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"), str(e["UID"]))
        for e in calendar.walk("VEVENT")
    ]


def test_the_schedule_feed_is_the_timeline() -> None:
    feed = schedule_calendar(SCHEDULE, START, END, generated_at=STAMP)

    found = events(feed)

    timeline = SCHEDULE.shifts(START, END)
    assert [(s, e) for _, s, e, _ in found] == [(x.start, x.end) for x in timeline]
    assert [summary for summary, *_ in found] == [f"On call: {x.user} (primary)" for x in timeline]
    # The shift across the spring change (8 March) is an hour short, at 09:00 local each end.
    across = [(s, e) for _, s, e, _ in found if e - s < END - START][1]
    assert across[0].astimezone(NEW_YORK).hour == across[1].astimezone(NEW_YORK).hour == 9
    assert b"PRODID:-//pagerd//on-call//EN" in feed


def test_uids_are_stable_and_the_feed_reads_no_clock() -> None:
    first = schedule_calendar(SCHEDULE, START, END, generated_at=STAMP)
    again = schedule_calendar(SCHEDULE, START, END, generated_at=STAMP)
    assert first == again
    uids = [uid for *_, uid in events(first)]
    assert len(set(uids)) == len(uids)


def test_a_user_feed_has_their_shifts_with_overrides() -> None:
    oncall = OnCall(users={"ann": User("ann"), "bob": User("bob")}, schedules={"primary": SCHEDULE})
    cover = Take("ann", datetime(2026, 3, 9, 20, tzinfo=UTC), END)
    feed = user_calendar(
        oncall, "ann", START, END, generated_at=STAMP, overrides={"primary": [cover]}
    )

    found = events(feed)

    expected = [s for s in SCHEDULE.shifts(START, END, [cover]) if s.user == "ann"]
    assert [(s, e) for _, s, e, _ in found] == [(x.start, x.end) for x in expected]
    assert {summary for summary, *_ in found} == {"On call for primary"}
    assert found[-1][2] == END
