"""Response statistics: MTTA, MTTR, pages per person and out of hours, per severity and owner."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest

from pagerd.report import NO_OWNER, BusinessHours, report

M = 60.0


def at(text: str) -> float:
    """An epoch time from `YYYY-MM-DD HH:MM` in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


SINCE, NOW = at("2024-05-01 00:00"), at("2024-05-31 00:00")


def incident(
    id: int, opened: str, *, ack: float | None = None, resolve: float | None = None,
    by: str | None = "alice", severity: str = "SEV1", owner: str | None = "payments",
    pages: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """An incident opened at `opened`, acked and resolved minutes later, with pages
    (user, time) on its timeline."""
    start = at(opened)
    return {
        "id": id, "severity": severity, "owner": owner, "opened_at": start,
        "acknowledged_at": start + ack * M if ack is not None else None,
        "acknowledged_by": by if ack is not None else None,
        "resolved_at": start + resolve * M if resolve is not None else None,
        "state": "resolved" if resolve is not None else "triggered",
        "timeline": [{"at": start, "kind": "incident.opened", "actor": "alertmanager"}] + [
            {"at": at(when), "kind": "page.sent", "actor": "pagerd", "user": user,
             "method": "sms"} for user, when in pages
        ],
    }


def test_mtta_and_mttr_with_medians() -> None:
    result = report([
        incident(1, "2024-05-02 10:00", ack=2, resolve=30),
        incident(2, "2024-05-03 10:00", ack=4, resolve=60),
        incident(3, "2024-05-04 10:00", ack=30, resolve=600),
        # Resolved by its source before anyone acknowledged it: MTTR only.
        incident(4, "2024-05-05 10:00", resolve=10),
        # Still open, acknowledged.
        incident(5, "2024-05-06 10:00", ack=6),
    ], since=SINCE, now=NOW)
    overall = result["overall"]
    assert (overall["incidents"], overall["acknowledged"], overall["resolved"],
            overall["open"]) == (5, 4, 4, 1)
    assert overall["mtta_seconds"] == pytest.approx((2 + 4 + 30 + 6) / 4 * M)
    assert overall["median_tta_seconds"] == 5 * M
    assert overall["mttr_seconds"] == pytest.approx((30 + 60 + 600 + 10) / 4 * M)
    assert overall["median_ttr_seconds"] == 45 * M
    assert (result["since"], result["until"]) == ("2024-05-01T00:00:00Z", "2024-05-31T00:00:00Z")


def test_an_empty_period_has_no_means() -> None:
    result = report([], since=SINCE, now=NOW)
    assert result["overall"]["mtta_seconds"] is None
    assert result["overall"]["incidents"] == 0
    assert result["by_person"] == {} and result["by_severity"] == {}


# (name, incident, expected overall counts (incidents, acknowledged, resolved, pages))
WINDOW_CASES: list[tuple[str, dict[str, Any], tuple[int, int, int, int]]] = [
    ("opened and paged inside", incident(1, "2024-05-10 10:00", ack=5, resolve=20,
                                         pages=(("alice", "2024-05-10 10:01"),)), (1, 1, 1, 1)),
    ("opened before the period, paged inside", incident(
        1, "2024-04-30 23:50", ack=30, pages=(("alice", "2024-05-01 00:05"),)), (0, 0, 0, 1)),
    ("opened inside, acknowledged after now", incident(1, "2024-05-30 23:50", ack=30),
     (1, 0, 0, 0)),
    ("opened after now", incident(1, "2024-05-31 00:10", ack=1), (0, 0, 0, 0)),
    ("paged after now", incident(1, "2024-05-30 23:55",
                                 pages=(("bob", "2024-05-31 00:01"),)), (1, 0, 0, 0)),
]


@pytest.mark.parametrize(("item", "expected"), [case[1:] for case in WINDOW_CASES],
                         ids=[case[0] for case in WINDOW_CASES])
def test_what_falls_in_the_period(item: dict[str, Any], expected: tuple[int, ...]) -> None:
    overall = report([item], since=SINCE, now=NOW)["overall"]
    assert (overall["incidents"], overall["acknowledged"], overall["resolved"],
            overall["pages"]) == expected


LONDON = BusinessHours(tz="Europe/London")
# (name, page time in UTC, out of hours for a London 09:00-17:00 Monday-Friday person)
HOURS_CASES = [
    ("Tuesday 08:59 BST", "2024-05-07 07:59", True),
    ("Tuesday 09:00 BST", "2024-05-07 08:00", False),
    ("Tuesday 16:59 BST", "2024-05-07 15:59", False),
    ("Tuesday 17:00 BST", "2024-05-07 16:00", True),
    ("Saturday noon", "2024-05-11 11:00", True),
    ("Friday 23:30 UTC is Saturday 00:30 BST", "2024-05-10 23:30", True),
    ("first Monday of BST, 09:30 local", "2024-04-01 08:30", False),
    ("last Friday of GMT, 09:30 local", "2024-03-29 09:30", False),
    ("last Friday of GMT, 08:30 UTC is before hours", "2024-03-29 08:30", True),
]


@pytest.mark.parametrize(("when", "out_of_hours"), [case[1:] for case in HOURS_CASES],
                         ids=[case[0] for case in HOURS_CASES])
def test_out_of_hours_on_the_local_wall_clock(when: str, out_of_hours: bool) -> None:
    assert LONDON.contains(at(when)) is not out_of_hours


def test_pages_per_person_with_their_own_hours() -> None:
    items = [
        incident(1, "2024-05-07 02:00", ack=3, resolve=40, by="alice",
                 pages=(("alice", "2024-05-07 02:00"), ("alice", "2024-05-07 02:02"),
                        ("bob", "2024-05-07 02:05"))),
        incident(2, "2024-05-07 14:00", ack=1, resolve=5, by="bob",
                 pages=(("bob", "2024-05-07 14:00"),)),
    ]
    new_york = BusinessHours(tz="America/New_York")
    result = report(items, since=SINCE, now=NOW, business_hours=LONDON,
                    person_hours={"bob": new_york})
    assert result["by_person"] == {
        "alice": {"pages": 2, "out_of_hours_pages": 2, "incidents_paged": 1, "acknowledged": 1},
        # 02:05 UTC is 22:05 in New York (out); 14:00 UTC is 10:00 there (in).
        "bob": {"pages": 2, "out_of_hours_pages": 1, "incidents_paged": 2, "acknowledged": 1},
    }
    assert (result["overall"]["pages"], result["overall"]["out_of_hours_pages"]) == (4, 3)


def test_per_severity_and_owner() -> None:
    items = [
        incident(1, "2024-05-02 10:00", ack=2, resolve=20, severity="SEV1", owner="payments",
                 pages=(("alice", "2024-05-02 10:00"),)),
        incident(2, "2024-05-03 10:00", ack=10, resolve=100, severity="SEV3", owner="payments"),
        incident(3, "2024-05-04 03:00", ack=4, severity="SEV1", owner=None,
                 pages=(("carol", "2024-05-04 03:00"),)),
        # Outside the period: no slice for it.
        incident(4, "2024-04-04 03:00", ack=4, severity="SEV4", owner="search"),
    ]
    result = report(items, since=SINCE, now=NOW)
    assert set(result["by_severity"]) == {"SEV1", "SEV3"}
    assert set(result["by_owner"]) == {"payments", NO_OWNER}
    sev1 = result["by_severity"]["SEV1"]
    assert (sev1["incidents"], sev1["mtta_seconds"], sev1["mttr_seconds"], sev1["open"]) == (
        2, 3 * M, 20 * M, 1
    )
    assert (sev1["pages"], sev1["out_of_hours_pages"]) == (2, 1)
    payments = result["by_owner"]["payments"]
    assert (payments["incidents"], payments["mtta_seconds"]) == (2, 6 * M)
    assert result["by_owner"][NO_OWNER]["pages"] == 1


def test_datetimes_are_accepted_for_the_period() -> None:
    result = report([incident(1, "2024-05-02 10:00", ack=2)],
                    since=datetime(2024, 5, 1, tzinfo=UTC), now=datetime(2024, 5, 31, tzinfo=UTC))
    assert result["overall"]["incidents"] == 1


@pytest.mark.parametrize("kwargs", [
    {"since": NOW, "now": SINCE},
    {"since": "yesterday", "now": NOW},
])
def test_a_bad_period_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="since"):
        report([], **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tz": "Mars/Olympus"}, "time zone"),
    ({"start": time(17), "end": time(9)}, "start before"),
    ({"days": frozenset({7})}, "Monday"),
])
def test_bad_business_hours_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessHours(**kwargs)
