"""Reading the routing part of pagerd's config: `route`, `inhibit_rules`, `time_intervals`.

The keys and their meaning are Alertmanager's, and so is what is refused (a root route
without a receiver or with matchers, an undefined receiver or time interval, a bad
`group_by`, a zero `group_interval`, an unknown key...). pagerd adds `severity`, `owner`,
`escalation_policy` and `auto_resolve_after` to routes, inherited like `receiver`, and
checks each against what the rest of the config defines. Every problem is reported, each
at its file and line, in one `ConfigErrors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field, replace
from typing import Any

from pagerd.errors import ConfigError, ConfigErrors
from pagerd.routing.configread import Fields, shape
from pagerd.routing.inhibit import Inhibitor, InhibitRule
from pagerd.routing.matcher_config import has_matchers, read_matchers
from pagerd.routing.matchers import format_matchers, is_valid_label_name
from pagerd.routing.timeinterval_config import parse_time_intervals
from pagerd.routing.timeintervals import TimeInterval
from pagerd.routing.tree import Route, RoutingTree
from pagerd.yamlsource import position

ROUTE_KEYS = (
    "receiver",
    "group_by",
    "match",
    "match_re",
    "matchers",
    "mute_time_intervals",
    "active_time_intervals",
    "continue",
    "routes",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "severity",
    "owner",
    "escalation_policy",
    "auto_resolve_after",
)
INHIBIT_KEYS = (
    "name",
    "source_match",
    "source_match_re",
    "source_matchers",
    "target_match",
    "target_match_re",
    "target_matchers",
    "equal",
)
# Route options a child takes from its parent unless it sets them.
_INHERITED_NAMES = ("owner", "severity", "escalation_policy")


@dataclass(frozen=True, eq=False)
class Routing:
    """The routing part of a config: the tree, the inhibition rules, the time intervals."""

    tree: RoutingTree
    inhibit_rules: tuple[InhibitRule, ...]
    time_intervals: Mapping[str, TimeInterval]

    def inhibitor(self) -> Inhibitor:
        """A new, empty inhibitor for these rules; feed it the firing alerts."""
        return Inhibitor(self.inhibit_rules)


@dataclass
class _Names:
    """What the rest of the config defines, which routes may refer to."""

    receivers: Set[str]
    owners: Set[str]
    severities: Set[str]
    policies: Set[str] | None
    intervals: Set[str] = field(default_factory=set)


def parse_routing(
    doc: Mapping[str, Any],
    *,
    receivers: Set[str],
    owners: Set[str],
    severities: Set[str],
    policies: Set[str] | None = None,
) -> Routing:
    """The routing of config document `doc`; ConfigErrors naming every problem if refused.

    `receivers`, `owners`, `severities` and (unless None) `policies` are the names a route
    may use; the caller takes them from the other parts of the config.
    """
    if not isinstance(doc, Mapping):
        raise ConfigErrors([ConfigError(position(doc), "config: expected a mapping")])
    errors: list[ConfigError] = []
    intervals = _parse_intervals(doc, errors)
    names = _Names(receivers, owners, severities, policies, set(intervals))
    root = _parse_root(doc, names, errors)
    rules = _parse_inhibit_rules(doc, errors)
    if errors or root is None:
        raise ConfigErrors(errors)
    return Routing(RoutingTree(root, intervals), rules, intervals)


def _parse_intervals(doc: Mapping[str, Any], errors: list[ConfigError]) -> dict[str, TimeInterval]:
    # Alertmanager reads the deprecated list first, so a clash is reported on the new one.
    seen: set[str] = set()
    intervals: dict[str, TimeInterval] = {}
    for key, legacy in (("mute_time_intervals", True), ("time_intervals", False)):
        items = _top_list(doc, key, errors)
        for interval in parse_time_intervals(items, errors, legacy=legacy, seen=seen):
            intervals[interval.name] = interval
    return intervals


def _top_list(doc: Mapping[str, Any], key: str, errors: list[ConfigError]) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(
            ConfigError(position(doc, key), f"{key}: expected a list, got {shape(value)}")
        )
        return []
    return value


# --- Routes ----------------------------------------------------------------------------


def _parse_root(doc: Mapping[str, Any], names: _Names, errors: list[ConfigError]) -> Route | None:
    node = doc.get("route")
    if not isinstance(node, dict):
        reason = "no route provided in config" if node is None else "route: expected a mapping"
        errors.append(ConfigError(position(doc, "route" if "route" in doc else None), reason))
        return None
    fields = Fields(node, ROUTE_KEYS, errors)
    if not fields.node.get("receiver"):
        fields.error("root route must specify a default receiver")
    matcher_key = has_matchers(fields)
    if matcher_key:
        fields.error("root route must not have any matchers", matcher_key)
    for key, what in (("mute_time_intervals", "mute"), ("active_time_intervals", "active")):
        if fields.node.get(key):
            fields.error(f"root route must not have any {what} time intervals", key)
    if fields.node.get("continue") is True:
        fields.error("cannot have continue in root route", "continue")
    root = Route(id="", key="", receiver="")
    return _parse_route(fields, root, None, names)


def _parse_route(fields: Fields, parent: Route, index: int | None, names: _Names) -> Route:
    """The route read by `fields`, under `parent` (a blank route for the root) at `index`."""
    matchers = read_matchers(fields)
    spelled = format_matchers(matchers)
    if index is None:
        route_id, key = spelled, spelled
    else:
        route_id, key = f"{parent.id}/{spelled}/{index}", f"{parent.key}/{spelled}"
    route = replace(
        parent,
        id=route_id,
        key=key,
        matchers=matchers,
        continue_=bool(fields.boolean("continue")),
        mute_time_intervals=_interval_names(fields, "mute_time_intervals", names),
        active_time_intervals=_interval_names(fields, "active_time_intervals", names),
        routes=(),
        position=fields.at(),
        **_own_options(fields, names),
    )
    children = tuple(_parse_children(fields, route, names))
    return replace(route, routes=children)


def _parse_children(fields: Fields, route: Route, names: _Names) -> list[Route]:
    items = fields.sequence("routes") or []
    children = []
    for index, node in enumerate(items):
        if not isinstance(node, dict):
            fields.item_error(items, index, f"route: expected a mapping, got {shape(node)}")
            continue
        child_fields = Fields(node, ROUTE_KEYS, fields.errors)
        children.append(_parse_route(child_fields, route, index, names))
    return children


def _own_options(fields: Fields, names: _Names) -> dict[str, Any]:
    """The inherited options this route sets itself, checked; those it leaves out are absent."""
    options: dict[str, Any] = {}
    receiver = fields.string("receiver")
    if receiver:
        if receiver not in names.receivers:
            fields.error(f"undefined receiver {receiver!r} used in route", "receiver")
        options["receiver"] = receiver
    options.update(_group_by(fields))
    options.update(_timers(fields))
    for key in _INHERITED_NAMES:
        value = fields.string(key)
        if value:
            _check_name(fields, key, value, names)
            options[key] = value
    auto_resolve = fields.duration("auto_resolve_after")
    if auto_resolve is not None:
        # 0 turns off an auto-resolve that the parent route set.
        options["auto_resolve_after"] = auto_resolve or None
    return options


def _group_by(fields: Fields) -> dict[str, tuple[str, ...] | None]:
    """`{"group_by": labels}` if the route sets `group_by`, else `{}`. None stands for
    `...` (all labels); `group_by: []` puts all alerts of the route in one group."""
    items = fields.strings("group_by")
    if items is None:
        return {}
    labels: list[str] = []
    wildcard = False
    for at, label in items:
        if label == "...":
            wildcard = True
        elif not is_valid_label_name(label):
            fields.errors.append(ConfigError(at, f"invalid label name {label!r} in group_by list"))
        elif label in labels:
            fields.errors.append(ConfigError(at, f"duplicated label {label!r} in group_by"))
        else:
            labels.append(label)
    if wildcard and labels:
        reason = "cannot have wildcard group_by (`...`) and other labels at the same time"
        fields.error(reason, "group_by")
    return {"group_by": None if wildcard else tuple(labels)}


def _timers(fields: Fields) -> dict[str, float]:
    timers = {}
    for key in ("group_wait", "group_interval", "repeat_interval"):
        seconds = fields.duration(key)
        if seconds is None:
            continue
        if seconds == 0 and key != "group_wait":
            fields.error(f"{key} cannot be zero", key)
        timers[key] = seconds
    return timers


def _interval_names(fields: Fields, key: str, names: _Names) -> tuple[str, ...]:
    found = []
    for at, name in fields.strings(key) or []:
        if name not in names.intervals:
            fields.errors.append(ConfigError(at, f"undefined time interval {name!r} used in route"))
        found.append(name)
    return tuple(found)


def _check_name(fields: Fields, key: str, value: str, names: _Names) -> None:
    """Refuse an owner, severity or escalation policy the config does not define."""
    known = {"owner": names.owners, "severity": names.severities}.get(key, names.policies)
    if known is None or value in known:
        return
    reason = f"unknown {key.replace('_', ' ')} {value!r}"
    close = [name for name in known if name.lower() == value.lower()]
    if close:
        reason += f" (did you mean {close[0]!r}?)"
    elif known:
        reason += f"; defined: {', '.join(sorted(known))}"
    fields.error(reason, key)


# --- Inhibition rules -------------------------------------------------------------------


def _parse_inhibit_rules(
    doc: Mapping[str, Any], errors: list[ConfigError]
) -> tuple[InhibitRule, ...]:
    items = _top_list(doc, "inhibit_rules", errors)
    rules = []
    for index, node in enumerate(items):
        if not isinstance(node, dict):
            reason = f"inhibit rule: expected a mapping, got {shape(node)}"
            errors.append(ConfigError(position(items, index), reason))
            continue
        fields = Fields(node, INHIBIT_KEYS, errors)
        equal: list[str] = []
        for at, label in fields.strings("equal") or []:
            if not is_valid_label_name(label):
                errors.append(ConfigError(at, f"invalid label name {label!r} in equal list"))
            elif label not in equal:
                equal.append(label)
        rules.append(
            InhibitRule(
                source_matchers=read_matchers(fields, "source_"),
                target_matchers=read_matchers(fields, "target_"),
                equal=tuple(equal),
                name=fields.string("name") or "",
            )
        )
    return tuple(rules)
