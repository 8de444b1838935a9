"""Severity levels and the table that maps source values onto them.

Levels are declared in config, most severe first (SEV1 before SEV4). A source value
(Prometheus `severity=critical`, Azure `Sev0`) is looked up case-insensitively in the
mapping; an unknown or missing value takes the configured default and is counted, so a
typo in an alert rule shows up in metrics instead of silently paging at the wrong level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pagerd.durations import parse_duration
from pagerd.errors import ConfigError, refuse_unknown
from pagerd.yamlsource import position

DEFAULT_LEVELS: list[dict[str, Any]] = [
    {"name": "SEV1", "description": "Critical customer impact: a service is down or unusable.",
     "ack_target": "5m", "resolve_target": "1h"},
    {"name": "SEV2", "description": "Major impact: a key feature is degraded for many customers.",
     "ack_target": "15m", "resolve_target": "4h"},
    {"name": "SEV3", "description": "Minor impact: degraded for few customers, or at risk.",
     "ack_target": "1h", "resolve_target": "1d"},
    {"name": "SEV4", "description": "No customer impact yet: informational or a warning sign.",
     "ack_target": "4h", "resolve_target": "3d"},
]

DEFAULT_MAPPING = {
    "critical": "SEV1", "error": "SEV2", "warning": "SEV3", "info": "SEV4",
    "sev0": "SEV1", "sev1": "SEV2", "sev2": "SEV3", "sev3": "SEV4", "sev4": "SEV4",
}


@dataclass(frozen=True, slots=True)
class SeverityLevel:
    """A declared level with its response targets (seconds)."""

    name: str
    rank: int
    description: str
    ack_target: float
    resolve_target: float
    # The policy for incidents of this level when neither route nor owner names one.
    escalation_policy: str | None = None
    mitigate_target: float | None = None
    # How often customers should hear from us while an incident of this level is open.
    update_every: float | None = None
    # Whether a communications manager is engaged, and a status page update expected.
    comms_manager: bool = False
    status_page: bool = False


@dataclass(frozen=True)
class Severities:
    """The declared levels, the source label to read, its mapping and the default."""

    levels: tuple[SeverityLevel, ...]
    default: str
    label: str = "severity"
    mapping: Mapping[str, str] = field(default_factory=dict)
    # The levels by name, for lookups once per routed alert (the first of equal names).
    _by_name: dict[str, SeverityLevel] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        for level in reversed(self.levels):
            self._by_name[level.name] = level

    def rank(self, name: str) -> int:
        """The rank of a level (0 is the most severe); unknown names rank last."""
        level = self._by_name.get(name)
        return level.rank if level is not None else len(self.levels)

    def level(self, name: str) -> SeverityLevel | None:
        """The declared level called `name`."""
        return self._by_name.get(name)

    def names(self) -> set[str]:
        """Every declared level name."""
        return {level.name for level in self.levels}

    def classify(self, labels: Mapping[str, str]) -> tuple[str, bool]:
        """The level for an alert's labels, and whether the source value was known."""
        value = labels.get(self.label, "")
        level = self.mapping.get(value.lower())
        if level is None:
            return self.default, False
        return level, True


def parse_severities(
    node: Any, errors: list[ConfigError], policies: set[str] | None = None
) -> Severities:
    """Read the `severity:` section; with none, the built-in SEV1-SEV4 levels."""
    node = node if node is not None else {}
    if not isinstance(node, dict):
        errors.append(ConfigError(position(node), "severity must be a mapping"))
        node = {}
    refuse_unknown(node, {"levels", "default", "label", "mapping"}, errors)
    levels = _parse_levels(node.get("levels", DEFAULT_LEVELS), node, errors, policies or set())
    names = {level.name for level in levels}

    default = node.get("default", "SEV3" if "SEV3" in names else levels[-1].name if levels else "")
    if default not in names:
        errors.append(ConfigError(position(node, "default"), f"unknown severity {default!r}"))
    # Without a mapping of its own, a config gets the default one for the levels it has.
    mapping_node = node.get("mapping", {
        source: level for source, level in DEFAULT_MAPPING.items() if level in names})
    mapping: dict[str, str] = {}
    if not isinstance(mapping_node, dict):
        errors.append(ConfigError(position(node, "mapping"), "mapping must be a mapping"))
    else:
        for source, level in mapping_node.items():
            if level not in names:
                errors.append(ConfigError(
                    position(mapping_node, source), f"unknown severity {level!r} for {source!r}"
                ))
            mapping[str(source).lower()] = level
    label = node.get("label", "severity")
    return Severities(tuple(levels), str(default), str(label), mapping)


def _parse_levels(
    node: Any, parent: Any, errors: list[ConfigError], policies: set[str]
) -> list[SeverityLevel]:
    if not isinstance(node, list) or not node:
        errors.append(ConfigError(position(parent, "levels"), "levels must be a non-empty list"))
        return []
    levels: list[SeverityLevel] = []
    for index, item in enumerate(node):
        where = position(node, index)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            errors.append(ConfigError(where, "a level needs a name"))
            continue
        refuse_unknown(item, {"name", "description", "ack_target", "resolve_target",
                              "mitigate_target", "update_every", "comms_manager",
                              "status_page", "escalation_policy"}, errors)
        policy = item.get("escalation_policy")
        if policy is not None and policy not in policies:
            errors.append(ConfigError(position(item, "escalation_policy"),
                                      f"unknown escalation policy {policy!r}"))
        if any(level.name == item["name"] for level in levels):
            errors.append(ConfigError(where, f"duplicate severity {item['name']!r}"))
            continue
        targets = {}
        for key, fallback in (("ack_target", "1h"), ("resolve_target", "1d")):
            try:
                targets[key] = parse_duration(item.get(key, fallback))
            except ValueError as exc:
                errors.append(ConfigError(position(item, key), str(exc)))
                targets[key] = 0.0
        optional = {}
        for key in ("mitigate_target", "update_every"):
            try:
                optional[key] = parse_duration(item[key]) if key in item else None
            except ValueError as exc:
                errors.append(ConfigError(position(item, key), str(exc)))
        levels.append(SeverityLevel(
            item["name"], len(levels), str(item.get("description", "")),
            targets["ack_target"], targets["resolve_target"], policy,
            optional.get("mitigate_target"), optional.get("update_every"),
            bool(item.get("comms_manager", False)), bool(item.get("status_page", False)),
        ))
    return levels

