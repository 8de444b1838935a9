"""The escalation state machine: which step fires, whom it pages, and what comes next.

An escalation's position is (policy, step, round). Firing a position pages its step's
targets (or the policy's fallback when they resolve to nobody) and names the next position
and how long to wait for it. After the last step the policy starts over `repeat` more
times; then one last position, the fallback, fires, and the escalation ends. A step that
hands over to another policy continues with that policy's second step, its first having
been paged together with this one.

Pure: no clock and no I/O; the caller stores the result atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pagerd.oncall.directory import OnCall
from pagerd.oncall.overrides import Override
from pagerd.oncall.policy import EscalationPolicy
from pagerd.oncall.targets import resolve_fallback, resolve_targets

# The step index of the fallback position that ends an exhausted policy.
FALLBACK = -1


@dataclass(frozen=True, slots=True)
class Position:
    """Where an escalation stands: a step of a pass through a policy."""

    policy: str
    step: int = 0
    round: int = 0

    def to_json(self) -> dict[str, Any]:
        """The form kept in a timer's payload."""
        return {"policy": self.policy, "step": self.step, "round": self.round}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Position:
        """The inverse of `to_json`."""
        return cls(str(data["policy"]), int(data.get("step", 0)), int(data.get("round", 0)))


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What firing one position does."""

    position: Position
    users: tuple[str, ...]
    # The users came from the fallback: the step had nobody, or the policy is exhausted.
    fallback: bool
    # The next position and the seconds to wait for it; None when the escalation ends.
    next: Position | None
    delay: float
    # The policy could not be found (removed by a reload): only the fallback is possible.
    missing_policy: bool = False


def plan_step(
    oncall: OnCall, position: Position, at: datetime,
    overrides: Mapping[str, Sequence[Override]] | None = None,
) -> StepPlan:
    """Fire `position` at instant `at`."""
    overrides = overrides or {}
    policy = oncall.policies.get(position.policy)
    if policy is None:
        return StepPlan(position, (), True, None, 0.0, missing_policy=True)
    if position.step == FALLBACK or position.step >= len(policy.steps):
        users = resolve_fallback(policy, at, oncall, overrides)
        return StepPlan(position, tuple(users), True, None, 0.0)

    step = policy.steps[position.step]
    users = resolve_targets(step, at, oncall, overrides)
    fallback = False
    if not users:
        users = resolve_fallback(policy, at, oncall, overrides)
        fallback = True

    if step.handover is not None and step.handover in oncall.policies:
        successor = oncall.policies[step.handover]
        # Its first step was paged with this one; carry on from its second.
        return StepPlan(position, tuple(users), fallback,
                        advance(successor, Position(successor.name, 0, 0)),
                        successor.steps[0].delay_minutes * 60.0)
    return StepPlan(position, tuple(users), fallback, advance(policy, position),
                    step.delay_minutes * 60.0)


def advance(policy: EscalationPolicy, position: Position) -> Position:
    """The position after `position`: the next step, the next round, or the fallback."""
    if position.step + 1 < len(policy.steps):
        return Position(policy.name, position.step + 1, position.round)
    if position.round < policy.repeat:
        return Position(policy.name, 0, position.round + 1)
    return Position(policy.name, FALLBACK, position.round)
