"""The on-call directory: every user, team, schedule and policy of a config, by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pagerd.errors import ConfigError
from pagerd.oncall.policy import EscalationPolicy
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.users import Team, User


@dataclass(frozen=True)
class OnCall:
    """Users, teams, schedules and escalation policies, each keyed by its name.

    A config that parses into one has every reference resolved and no loop of hand-overs.
    `warnings` are problems worth reporting that do not refuse the config (coverage gaps);
    they are `ConfigError`s only to carry a file, a line and a reason.
    """

    users: Mapping[str, User] = field(default_factory=dict)
    teams: Mapping[str, Team] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    policies: Mapping[str, EscalationPolicy] = field(default_factory=dict)
    warnings: tuple[ConfigError, ...] = ()
