"""Warnings about a valid config: things that load but may not page as meant.

`pagerd check` prints them after the errors; they do not refuse the config.
"""

from __future__ import annotations

from datetime import datetime

from pagerd.errors import ConfigError
from pagerd.oncall.config import parse_oncall
from pagerd.settings import Settings
from pagerd.yamlsource import Position


def warnings(settings: Settings, now: datetime) -> list[ConfigError]:
    """Routes that open incidents but page nobody, and schedules with coverage gaps."""
    found = _silent_routes(settings)
    # The on-call sections were valid at load; this second read only adds the gaps.
    found.extend(parse_oncall(settings.raw, now=now).warnings)  # type: ignore[arg-type]
    return found


def _silent_routes(settings: Settings) -> list[ConfigError]:
    every_level_has_policy = all(
        level.escalation_policy for level in settings.severities.levels)
    found = []
    for route in settings.routing.tree.routes():
        receiver = settings.receivers.get(route.receiver)
        if receiver is None or not receiver.has_notifier:
            continue  # opens no incident unless a policy pages someone: nothing silent
        component = settings.components.get(route.owner or "")
        if route.escalation_policy or (component and component.escalation_policy):
            continue
        if every_level_has_policy:
            continue
        where = route.position or Position(settings.file, 0)
        found.append(ConfigError(where, (
            f"route {route.id} opens incidents (receiver {route.receiver!r} notifies) but "
            "resolves to no escalation policy: nobody is paged (set escalation_policy on the "
            "route, its owner component, or every severity level)")))
    return found
