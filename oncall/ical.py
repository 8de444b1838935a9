"""iCalendar (RFC 5545) feeds of on-call shifts: one per schedule, and one per user.

Built with the `icalendar` library. Each shift is one VEVENT in UTC; its UID is made of the
schedule, the user and the start, so a feed rebuilt over the same window gives the same UIDs
and calendar clients update events instead of duplicating them. Shifts are cut at the edges of
the window asked for, so callers should anchor windows to whole days. Nothing here reads a
clock: `generated_at` becomes each event's DTSTAMP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from icalendar import Calendar, Event

from pagerd.oncall.directory import OnCall
from pagerd.oncall.overrides import Override
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.timeline import Shift

PRODID = "-//pagerd//on-call//EN"


def schedule_calendar(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    *,
    generated_at: datetime,
    overrides: Sequence[Override] = (),
) -> bytes:
    """The feed of everyone's shifts of `schedule` within [start, end)."""
    title = f"On call: {schedule.name}"
    calendar = Calendar.new(name=title, prodid=PRODID, uid=_uid(schedule.name))
    for shift in schedule.shifts(start, end, overrides):
        summary = f"On call: {shift.user} ({schedule.name})"
        calendar.add_component(_event(schedule.name, shift, summary, generated_at))
    return bytes(calendar.to_ical())


def user_calendar(
    oncall: OnCall,
    user: str,
    start: datetime,
    end: datetime,
    *,
    generated_at: datetime,
    overrides: Mapping[str, Sequence[Override]] | None = None,
) -> bytes:
    """The feed of `user`'s shifts in every schedule within [start, end)."""
    calendar = Calendar.new(name=f"On call: {user}", prodid=PRODID, uid=_uid(f"user/{user}"))
    for name, schedule in sorted(oncall.schedules.items()):
        changes = (overrides or {}).get(name, ())
        for shift in schedule.shifts(start, end, changes):
            if shift.user == user:
                summary = f"On call for {name}"
                calendar.add_component(_event(name, shift, summary, generated_at))
    return bytes(calendar.to_ical())


def _event(schedule: str, shift: Shift, summary: str, generated_at: datetime) -> Event:
    start = shift.start.astimezone(UTC)
    return Event.new(
        summary=summary,
        start=start,
        end=shift.end.astimezone(UTC),
        stamp=generated_at.astimezone(UTC),
        uid=_uid(f"{schedule}/{shift.user}/{start:%Y%m%dT%H%M%SZ}"),
    )


def _uid(key: str) -> str:
    return f"{key}@pagerd"
