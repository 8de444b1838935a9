"""Escalation policies: turning step targets into users at an instant, hand-overs, fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pagerd.oncall.directory import OnCall
from pagerd.oncall.overrides import Take
from pagerd.oncall.policy import EscalationPolicy, EscalationStep, Target, TargetKind
from pagerd.oncall.rotation import Layer, ShiftLength
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.targets import resolve_fallback, resolve_target, resolve_targets
from pagerd.oncall.users import ContactMethod, Contacts, NotificationRule, Team, User

UTC_ZONE = ZoneInfo("UTC")
MONDAY = datetime(2026, 1, 5, 12, tzinfo=UTC)


def step(*targets: Target, delay: int = 5) -> EscalationStep:
    return EscalationStep(targets, delay)


def directory() -> OnCall:
    layer = Layer("l", ("ann", "bob"), ShiftLength.parse("1d"), time(9), date(2026, 1, 5), UTC_ZONE)
    schedules = {"primary": Schedule("primary", UTC_ZONE, (layer,))}
    users = {name: User(name) for name in ("ann", "bob", "cyd", "dee")}
    teams = {"core": Team("core", ("ann", "bob"), "primary"), "loose": Team("loose", ("cyd",))}
    policies = {
        "frontline": EscalationPolicy(
            "frontline",
            (
                step(Target(TargetKind.SCHEDULE, "primary")),
                step(Target(TargetKind.TEAM, "core"), Target(TargetKind.USER, "cyd")),
                step(Target(TargetKind.POLICY, "engineering")),
            ),
            fallback=Target(TargetKind.USER, "dee"),
        ),
        "engineering": EscalationPolicy(
            "engineering", (step(Target(TargetKind.USER, "cyd"), Target(TargetKind.USER, "dee")),)
        ),
    }
    return OnCall(users, teams, schedules, policies)


def test_each_kind_of_target() -> None:
    oncall = directory()
    frontline = oncall.policies["frontline"]
    assert resolve_targets(frontline.steps[0], MONDAY, oncall) == ["ann"]
    assert resolve_targets(frontline.steps[1], MONDAY, oncall) == ["ann", "cyd"]
    assert resolve_targets(frontline.steps[1], MONDAY + timedelta(days=1), oncall) == [
        "bob",
        "cyd",
    ]
    # A hand-over pages the other policy's first step; the engine then follows that policy.
    assert resolve_targets(frontline.steps[2], MONDAY, oncall) == ["cyd", "dee"]
    assert frontline.steps[2].handover == "engineering"
    assert frontline.handovers == ("engineering",)


def test_overrides_are_per_schedule() -> None:
    oncall = directory()
    cover = {"primary": [Take("dee", MONDAY, MONDAY + timedelta(hours=1))]}
    first = oncall.policies["frontline"].steps[0]
    assert resolve_targets(first, MONDAY, oncall, cover) == ["dee"]
    assert resolve_targets(first, MONDAY, oncall, {"other": cover["primary"]}) == ["ann"]


def test_nobody_before_the_schedule_starts_and_the_fallback() -> None:
    oncall = directory()
    frontline = oncall.policies["frontline"]
    before = datetime(2026, 1, 1, tzinfo=UTC)
    assert resolve_targets(frontline.steps[0], before, oncall) == []
    assert resolve_fallback(frontline, before, oncall) == ["dee"]
    assert resolve_fallback(oncall.policies["engineering"], before, oncall) == []


def test_a_team_without_schedule_and_unknown_names_resolve_to_nobody() -> None:
    oncall = directory()
    assert resolve_target(Target(TargetKind.TEAM, "loose"), MONDAY, oncall) == []
    assert resolve_target(Target(TargetKind.USER, "ghost"), MONDAY, oncall) == []
    assert resolve_target(Target(TargetKind.SCHEDULE, "ghost"), MONDAY, oncall) == []


def test_a_hand_built_loop_ends_in_nobody() -> None:
    loop = {
        "a": EscalationPolicy("a", (step(Target(TargetKind.POLICY, "b")),)),
        "b": EscalationPolicy("b", (step(Target(TargetKind.POLICY, "a")),)),
    }
    oncall = OnCall(policies=loop)
    assert resolve_targets(loop["a"].steps[0], MONDAY, oncall) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: EscalationStep((), 5),
        lambda: EscalationStep((Target(TargetKind.USER, "a"),), 0),
        lambda: EscalationStep((Target(TargetKind.POLICY, "a"), Target(TargetKind.POLICY, "b")), 5),
        lambda: EscalationPolicy("p", ()),
        lambda: EscalationPolicy("p", (step(Target(TargetKind.USER, "a")),), repeat=-1),
        lambda: EscalationPolicy(
            "p", (step(Target(TargetKind.USER, "a")),), ack_timeout=timedelta(0)
        ),
        lambda: EscalationPolicy(
            "p", (step(Target(TargetKind.USER, "a")),), fallback=Target(TargetKind.POLICY, "q")
        ),
        lambda: User("ann", notification_rules=(NotificationRule(ContactMethod.SMS),)),
        lambda: NotificationRule(ContactMethod.EMAIL, -1),
    ],
)
def test_invalid_models_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_phone_numbers_stay_out_of_reprs() -> None:
    contacts = Contacts(sms="+447700900123", voice="+447700900123", email="a@example.com")
    assert "900123" not in repr(contacts)
    assert contacts.address(ContactMethod.SMS) == "+447700900123"
