"""Reading on-call config: the documented example, and bad configs refused at their lines."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pagerd.errors import ConfigErrors
from pagerd.oncall.config import parse_oncall
from pagerd.oncall.directory import OnCall
from pagerd.oncall.policy import Target, TargetKind
from pagerd.oncall.restrictions import DailyRestriction, WeeklyRestriction
from pagerd.oncall.users import ContactMethod, NotificationRule
from pagerd.yamlsource import load

DOC = Path(__file__).resolve().parent.parent / "docs" / "oncall.md"


def documented_example() -> str:
    """The first YAML block of docs/oncall.md, so the documentation cannot rot."""
    match = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match is not None
    return match[1]


def parse(text: str, now: datetime | None = None, gap_weeks: int = 4) -> OnCall:
    return parse_oncall(load(textwrap.dedent(text), "oncall.yml"), now=now, gap_weeks=gap_weeks)


def refusals(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    return [(e.position.line, e.reason) for e in caught.value.errors]


def test_the_documented_example() -> None:
    oncall = parse(documented_example())

    assert sorted(oncall.users) == ["alice", "bob", "carol", "dave"]
    alice = oncall.users["alice"]
    assert alice.time_zone == ZoneInfo("Europe/London")
    assert alice.notification_rules[-1] == NotificationRule(ContactMethod.VOICE, 300)
    assert oncall.teams["payments"].schedule == "payments-primary"

    weekly, business = oncall.schedules["payments-primary"].layers
    assert (weekly.start, weekly.handoff, str(weekly.shift_length)) == (
        date(2026, 1, 5),
        time(9),
        "1w",
    )
    assert business.time_zone == ZoneInfo("America/New_York")
    assert business.handoff == time(9)
    assert business.restrictions == (DailyRestriction(time(9), time(17), frozenset(range(5))),)

    policy = oncall.policies["payments"]
    assert (policy.repeat, policy.ack_timeout) == (2, timedelta(minutes=30))
    assert policy.fallback == Target(TargetKind.USER, "dave")
    assert [step.delay_minutes for step in policy.steps] == [10, 15, 15]
    assert policy.steps[2].handover == "engineering"

    # Monday 2 March 2026, 10:00 in New York: business hours, Bob's day.
    at = datetime(2026, 3, 2, 15, tzinfo=UTC)
    assert oncall.schedules["payments-primary"].on_call(at) == ["bob"]


def test_the_example_has_no_gaps() -> None:
    oncall = parse(documented_example(), now=datetime(2026, 3, 1, tzinfo=UTC))
    assert oncall.warnings == ()


def test_gaps_are_warned_about_not_refused() -> None:
    oncall = parse(
        """
        users: [{name: ann}]
        schedules:
          - name: office
            time_zone: Europe/London
            layers:
              - participants: [ann]
                shift_length: 1w
                start: 2026-01-05
                handoff: "00:00"
                restrictions: [{days: mon-fri, from: "09:00", to: "17:00"}]
        """,
        now=datetime(2026, 3, 2, tzinfo=UTC),
        gap_weeks=1,
    )
    (warning,) = oncall.warnings
    assert warning.position.line == 4
    assert "schedule 'office' has nobody on call for 5d8h of the next 1 weeks" in warning.reason
    assert "in 6 gap(s); the first from 2026-03-02 00:00 to 2026-03-02 09:00" in warning.reason


def test_restriction_forms() -> None:
    oncall = parse(
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 12h
                start: 2026-01-05T08:00
                restrictions:
                  - {from: "18:00", to: "08:00"}
                  - {days: [sat, sunday], from: "00:00", to: "24:00"}
                  - {days: fri-mon, from: "10:00", to: "11:00"}
                  - {from: "fri 17:00", to: "Monday 09:00"}
        """
    )
    (layer,) = oncall.schedules["s"].layers
    assert layer.restrictions == (
        DailyRestriction(time(18), time(8)),
        DailyRestriction(time(0), time(0), frozenset({5, 6})),
        DailyRestriction(time(10), time(11), frozenset({4, 5, 6, 0})),
        WeeklyRestriction(4, time(17), 0, time(9)),
    )


def test_an_empty_config_is_empty() -> None:
    oncall = parse("route: {receiver: default}\n")
    assert (oncall.users, oncall.schedules, oncall.policies) == ({}, {}, {})
    assert parse_oncall(None) == OnCall()


def test_only_positioned_yaml_is_read() -> None:
    with pytest.raises(TypeError, match="positioned YAML"):
        parse_oncall({"users": []})  # type: ignore[arg-type]


BAD = [
    (
        "unknown user in a layer",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants:
                  - ann
                  - ghost
                shift_length: 1d
                start: 2026-01-05T09:00
        """,
        9,
        "unknown user 'ghost'",
    ),
    (
        "zero-length shift",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 0d
                start: 2026-01-05T09:00
        """,
        8,
        "shift_length: a zero-length shift never hands over",
    ),
    (
        "invalid zone",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: Europe/Londn
            layers: [{participants: [ann], shift_length: 1d, start: 2026-01-05T09:00}]
        """,
        5,
        "time_zone: unknown time zone 'Europe/Londn'",
    ),
    (
        "invalid user zone",
        """
        users:
          - name: ann
            time_zone: Mars/Olympus_Mons
        """,
        4,
        "time_zone: unknown time zone 'Mars/Olympus_Mons'",
    ),
    (
        "unknown key",
        """
        users:
          - name: ann
            colour: blue
        """,
        4,
        "unknown field 'colour'",
    ),
    (
        "unknown key in a layer",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05T09:00
                handof: "09:00"
        """,
        10,
        "unknown field 'handof'",
    ),
    (
        "duplicate user",
        """
        users:
          - name: ann
          - name: bob
          - name: ann
        """,
        5,
        "duplicate user name 'ann' (first at oncall.yml:3)",
    ),
    (
        "duplicate schedule",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers: [{participants: [ann], shift_length: 1d, start: 2026-01-05T09:00}]
          - name: s
            time_zone: UTC
            layers: [{participants: [ann], shift_length: 1d, start: 2026-01-05T09:00}]
        """,
        7,
        "duplicate schedule name 's'",
    ),
    (
        "duplicate layer",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - {name: a, participants: [ann], shift_length: 1d, start: 2026-01-05T09:00}
              - {name: a, participants: [ann], shift_length: 1d, start: 2026-01-05T09:00}
        """,
        8,
        "duplicate layer name 'a'",
    ),
    (
        "bare number as clock time",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05
                handoff: 9
        """,
        10,
        "handoff: write clock times as '09:00' (YAML read the number 9)",
    ),
    (
        "missing handoff",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05
        """,
        9,
        "missing field 'handoff'",
    ),
    (
        "handoff disagrees with start",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05T09:00
                handoff: "10:00"
        """,
        10,
        "handoff: 10:00 disagrees with the time of start (09:00)",
    ),
    (
        "start with an offset",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05T09:00:00+01:00
        """,
        9,
        "start: is local time in the layer's zone; drop the offset",
    ),
    (
        "bad restriction day",
        """
        users: [{name: ann}]
        schedules:
          - name: s
            time_zone: UTC
            layers:
              - participants: [ann]
                shift_length: 1d
                start: 2026-01-05T09:00
                restrictions:
                  - {days: [mon, funday], from: "09:00", to: "17:00"}
        """,
        11,
        "days: 'funday' is not a day of the week",
    ),
    (
        "unknown team member",
        """
        users: [{name: ann}]
        teams:
          - name: t
            members:
              - ann
              - zed
        """,
        7,
        "unknown user 'zed'",
    ),
    (
        "unknown team schedule",
        """
        teams:
          - name: t
            schedule: nope
        """,
        4,
        "schedule: unknown schedule 'nope'",
    ),
    (
        "unknown schedule target",
        """
        escalation_policies:
          - name: p
            steps:
              - delay: 5m
                targets:
                  - {schedule: missing}
        """,
        7,
        "unknown schedule 'missing'",
    ),
    (
        "team without a schedule as a target",
        """
        teams: [{name: t}]
        escalation_policies:
          - name: p
            steps:
              - delay: 5m
                targets: [{team: t}]
        """,
        7,
        "team 't' has no schedule to page",
    ),
    (
        "a target naming two things",
        """
        users: [{name: ann}]
        escalation_policies:
          - name: p
            steps:
              - delay: 5m
                targets:
                  - {user: ann, team: t}
        """,
        8,
        "a target is one of {user: NAME}",
    ),
    (
        "a policy as fallback",
        """
        users: [{name: ann}]
        escalation_policies:
          - name: p
            fallback: {policy: p}
            steps: [{delay: 5m, targets: [{user: ann}]}]
        """,
        5,
        "a fallback is a user, a schedule or a team, not a policy",
    ),
    (
        "a step delay under a minute",
        """
        users: [{name: ann}]
        escalation_policies:
          - name: p
            steps:
              - targets: [{user: ann}]
                delay: 30s
        """,
        7,
        "delay: must be a whole number of minutes, at least 1m",
    ),
    (
        "a hand-over loop",
        """
        users: [{name: ann}]
        escalation_policies:
          - name: a
            steps:
              - {delay: 5m, targets: [{policy: b}]}
          - name: b
            steps:
              - {delay: 5m, targets: [{user: ann}]}
              - {delay: 5m, targets: [{policy: c}]}
          - name: c
            steps:
              - {delay: 5m, targets: [{policy: a}]}
        """,
        13,
        "hand-over loop: a -> b -> c -> a",
    ),
    (
        "a policy handing over to itself",
        """
        escalation_policies:
          - name: a
            steps:
              - {delay: 5m, targets: [{policy: a}]}
        """,
        5,
        "hand-over loop: a -> a",
    ),
    (
        "a rule without its contact",
        """
        users:
          - name: ann
            contacts: {email: ann@example.com}
            notification_rules:
              - {method: sms, after: 0m}
        """,
        6,
        "method: sms needs contacts.sms",
    ),
    (
        "a phone number that is not E.164",
        """
        users:
          - name: ann
            contacts: {sms: "07700 900123"}
        """,
        4,
        "sms: **********23 is not an E.164 number",
    ),
    (
        "a schedule with no layers",
        """
        schedules:
          - name: s
            time_zone: UTC
            layers: []
        """,
        5,
        "a schedule needs a layer",
    ),
    (
        "a section that is not a list",
        """
        users:
          ann: {time_zone: UTC}
        """,
        2,
        "users: must be a list of users",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"), [row[1:] for row in BAD], ids=[row[0] for row in BAD]
)
def test_bad_config_is_refused_at_its_line(text: str, line: int, reason: str) -> None:
    found = refusals(text)
    assert any(at == line and reason in said for at, said in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = refusals(
        """
        users:
          - name: ann
            colour: blue
          - name: ann
        teams:
          - name: t
            members: [zed]
        """
    )
    assert [line for line, _ in found] == [4, 5, 8]
