"""Escalation policies: who is paged first, who next, and what happens when nobody answers.

A policy is an ordered list of steps. When a step fires, its targets are paged; if nobody has
acknowledged after the step's delay, the next step fires. After the last step the policy starts
again from the first, `repeat` more times; when it is exhausted, or when a step resolves to
nobody, the `fallback` target is paged. A step may hand over to another policy (frontline to
engineering): the escalation then follows that policy from its first step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta


class TargetKind(enum.StrEnum):
    """What a step's target names."""

    USER = "user"
    SCHEDULE = "schedule"
    TEAM = "team"
    POLICY = "policy"


@dataclass(frozen=True)
class Target:
    """One thing a step pages: a user, a schedule's or team's on-call, or another policy."""

    kind: TargetKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name!r}"


@dataclass(frozen=True)
class EscalationStep:
    """Page `targets` at once, then wait `delay_minutes` for an acknowledgement."""

    targets: tuple[Target, ...]
    delay_minutes: int
    # Told to the incident's lead when the step fires, e.g. "open a case with the vendor".
    remind_lead: str | None = None

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("a step needs at least one target")
        if self.delay_minutes < 1:
            raise ValueError("a step waits at least a minute before the next")
        if sum(target.kind is TargetKind.POLICY for target in self.targets) > 1:
            raise ValueError("a step hands over to one policy at most")

    @property
    def handover(self) -> str | None:
        """The policy this step hands the escalation over to, if any."""
        for target in self.targets:
            if target.kind is TargetKind.POLICY:
                return target.name
        return None


@dataclass(frozen=True)
class EscalationPolicy:
    """Ordered steps, run `1 + repeat` times, then the fallback.

    `ack_timeout`: an acknowledged incident that is still unresolved after this long triggers
    again. `fallback`: paged when a step resolves to nobody or the policy is exhausted; it is
    a user, a schedule or a team, never another policy, so it always ends somewhere.
    """

    name: str
    steps: tuple[EscalationStep, ...]
    repeat: int = 0
    ack_timeout: timedelta | None = None
    fallback: Target | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"policy {self.name!r} has no steps")
        if self.repeat < 0:
            raise ValueError("repeat is a count of further passes, 0 or more")
        if self.ack_timeout is not None and self.ack_timeout <= timedelta(0):
            raise ValueError("an ack timeout must be longer than zero")
        if self.fallback is not None and self.fallback.kind is TargetKind.POLICY:
            raise ValueError("a fallback is a user, a schedule or a team")

    @property
    def handovers(self) -> tuple[str, ...]:
        """The policies this one can hand over to."""
        return tuple(step.handover for step in self.steps if step.handover is not None)
