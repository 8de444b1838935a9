"""Response statistics over a period: MTTA, MTTR, pages per person and out-of-hours pages.

Incidents count in the period they were opened in; pages count in the period they were sent
in, whichever incident they belong to. Time to acknowledge and time to resolve run from the
opening: MTTA is their mean over the acknowledged incidents, MTTR over the resolved ones (an
incident its source resolved before anyone acknowledged it counts in MTTR only). Medians
stand beside the means, because one long incident moves a mean a lot.

A page is out of hours when it reaches a person outside their working hours: theirs if
`person_hours` names them, else `business_hours`. Public holidays are not known here.
Every count is also given per severity and per owner, each as the incident has it now.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pagerd.review import epoch, iso, paged_user

NO_OWNER = "(no owner)"


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Working hours in one time zone: `days` (Monday is 0) from `start` until `end`."""

    tz: str = "UTC"
    days: frozenset[int] = frozenset(range(5))
    start: time = time(9)
    end: time = time(17)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r}") from None
        if not self.start < self.end:
            raise ValueError("working hours must start before they end, within a day")
        if not self.days <= frozenset(range(7)):
            raise ValueError("days are numbered 0 (Monday) to 6 (Sunday)")

    def contains(self, at: float) -> bool:
        """Whether an epoch time falls within these hours, on the local wall clock."""
        local = datetime.fromtimestamp(at, ZoneInfo(self.tz))
        return local.weekday() in self.days and self.start <= local.time() < self.end


@dataclass
class _Tally:
    """Counts and durations for one slice of the report (all, a severity, an owner)."""

    incidents: int = 0
    open: int = 0
    pages: int = 0
    out_of_hours_pages: int = 0
    to_ack: list[float] = field(default_factory=list)
    to_resolve: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "acknowledged": len(self.to_ack),
            "resolved": len(self.to_resolve),
            "open": self.open,
            "mtta_seconds": _mean(self.to_ack),
            "median_tta_seconds": _median(self.to_ack),
            "mttr_seconds": _mean(self.to_resolve),
            "median_ttr_seconds": _median(self.to_resolve),
            "pages": self.pages,
            "out_of_hours_pages": self.out_of_hours_pages,
        }


@dataclass
class _Person:
    pages: int = 0
    out_of_hours_pages: int = 0
    incidents_paged: set[Any] = field(default_factory=set)
    acknowledged: int = 0

    def summary(self) -> dict[str, Any]:
        return {"pages": self.pages, "out_of_hours_pages": self.out_of_hours_pages,
                "incidents_paged": len(self.incidents_paged), "acknowledged": self.acknowledged}


def report(
    incidents: Iterable[Mapping[str, Any]], *, since: float | datetime, now: float | datetime,
    business_hours: BusinessHours | None = None,
    person_hours: Mapping[str, BusinessHours] | None = None,
) -> dict[str, Any]:
    """The statistics of the period from `since` to `now`, as a JSON-ready dict.

    `incidents` are shaped as the store reads them, with their timelines: pass every
    incident opened in the period and those still paging in it.
    """
    start, end = epoch(since), epoch(now)
    if start is None or end is None or start > end:
        raise ValueError("since and now must be times, since not after now")
    default_hours = business_hours or BusinessHours()
    hours = person_hours or {}
    overall = _Tally()
    people: dict[str, _Person] = {}
    by_severity: dict[str, _Tally] = {}
    by_owner: dict[str, _Tally] = {}
    for incident in incidents:
        slices = (overall, by_severity.setdefault(str(incident.get("severity")), _Tally()),
                  by_owner.setdefault(incident.get("owner") or NO_OWNER, _Tally()))
        opened = epoch(incident.get("opened_at"))
        if opened is not None and start <= opened <= end:
            _count_incident(incident, opened, end, slices, people)
        for entry in incident.get("timeline") or ():
            user, at = paged_user(entry), epoch(entry.get("at"))
            if user is None or at is None or not start <= at <= end:
                continue
            out_of_hours = not hours.get(user, default_hours).contains(at)
            person = people.setdefault(user, _Person())
            person.pages += 1
            person.out_of_hours_pages += out_of_hours
            person.incidents_paged.add(incident.get("id"))
            for tally in slices:
                tally.pages += 1
                tally.out_of_hours_pages += out_of_hours
    return {
        "since": iso(start),
        "until": iso(end),
        "overall": overall.summary(),
        "by_severity": _summaries(by_severity),
        "by_owner": _summaries(by_owner),
        "by_person": {user: people[user].summary() for user in sorted(people)},
    }


def _count_incident(
    incident: Mapping[str, Any], opened: float, end: float, slices: tuple[_Tally, ...],
    people: dict[str, _Person],
) -> None:
    # What happened after `now` has not happened yet for a report of the past.
    acked = _until(epoch(incident.get("acknowledged_at")), end)
    resolved = _until(epoch(incident.get("resolved_at")), end)
    for tally in slices:
        tally.incidents += 1
        if acked is not None:
            tally.to_ack.append(acked - opened)
        if resolved is not None:
            tally.to_resolve.append(resolved - opened)
        else:
            tally.open += 1
    by = incident.get("acknowledged_by")
    if acked is not None and by:
        people.setdefault(str(by), _Person()).acknowledged += 1


def _until(at: float | None, end: float) -> float | None:
    return at if at is not None and at <= end else None


def _summaries(tallies: Mapping[str, _Tally]) -> dict[str, dict[str, Any]]:
    # A slice with nothing in the period (no incident opened, no page sent) is left out.
    return {name: tallies[name].summary() for name in sorted(tallies)
            if tallies[name].incidents or tallies[name].pages}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
