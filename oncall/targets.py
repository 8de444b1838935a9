"""Turning escalation targets into the people to page at an instant.

A user is themself; a schedule is whoever it has on call (overrides included); a team is its
schedule's on-call; a policy hand-over is whoever that policy's first step pages. Names are
assumed known, as `parse_oncall` guarantees; an unknown one resolves to nobody, which the
engine treats like any empty step (the fallback is paged and the event recorded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pagerd.oncall.directory import OnCall
from pagerd.oncall.overrides import Override
from pagerd.oncall.policy import EscalationPolicy, EscalationStep, Target, TargetKind

Overrides = Mapping[str, Sequence[Override]]
_NONE: Overrides = {}


def resolve_target(
    target: Target, at: datetime, oncall: OnCall, overrides: Overrides = _NONE
) -> list[str]:
    """The users `target` stands for at `at`; `overrides` are keyed by schedule name."""
    return _resolve(target, at, oncall, overrides, seen=set())


def resolve_targets(
    step: EscalationStep, at: datetime, oncall: OnCall, overrides: Overrides = _NONE
) -> list[str]:
    """Every user a step pages when it fires at `at`, each once, in the order of its targets."""
    return _unique(_resolve(t, at, oncall, overrides, seen=set()) for t in step.targets)


def resolve_fallback(
    policy: EscalationPolicy, at: datetime, oncall: OnCall, overrides: Overrides = _NONE
) -> list[str]:
    """The users a policy's fallback pages at `at`; none when it has no fallback."""
    if policy.fallback is None:
        return []
    return resolve_target(policy.fallback, at, oncall, overrides)


def _resolve(
    target: Target, at: datetime, oncall: OnCall, overrides: Overrides, seen: set[str]
) -> list[str]:
    if target.kind is TargetKind.USER:
        return [target.name] if target.name in oncall.users else []
    if target.kind is TargetKind.SCHEDULE:
        schedule = oncall.schedules.get(target.name)
        if schedule is None:
            return []
        return schedule.on_call(at, overrides.get(target.name, ()))
    if target.kind is TargetKind.TEAM:
        team = oncall.teams.get(target.name)
        if team is None or team.schedule is None:
            return []
        return _resolve(Target(TargetKind.SCHEDULE, team.schedule), at, oncall, overrides, seen)
    # A hand-over: config refuses loops, but a directory built by hand may have one, and a
    # loop must end in nobody (and so the fallback), not in a recursion error.
    policy = oncall.policies.get(target.name)
    if policy is None or target.name in seen:
        return []
    seen.add(target.name)
    first = policy.steps[0]
    return _unique(_resolve(t, at, oncall, overrides, seen) for t in first.targets)


def _unique(groups: Iterable[list[str]]) -> list[str]:
    return list(dict.fromkeys(user for group in groups for user in group))
