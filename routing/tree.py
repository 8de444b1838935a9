"""The routing tree: which routes an alert takes, how it is grouped, and when a route is muted.

Matching is Alertmanager's: depth first, left to right. A route that matches hands the alert
to its first matching child and stops there, unless that child has `continue`, in which case
the next children are tried too; a matching route none of whose children match is itself the
result. Every route has its options already merged with its parent's (see `Route`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from pagerd.routing.gostrings import go_label_set
from pagerd.routing.matchers import Matcher, matches_all
from pagerd.routing.timeintervals import TimeInterval

from pagerd.yamlsource import Position

# pagerd's defaults for the root route. Alertmanager waits 30s before a group's first
# notification; an on-call pager should not, so pagerd's group_wait is 0.
DEFAULT_GROUP_WAIT = 0.0
DEFAULT_GROUP_INTERVAL = 5 * 60.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0

# The reason `is_muted` gives for a route outside all of its active time intervals.
INACTIVE = "inactive"


@dataclass(frozen=True, eq=False)
class Route:
    """A node of the routing tree, with the options that apply to alerts it takes.

    `receiver`, `group_by`, the three intervals, `severity`, `owner`,
    `escalation_policy` and `auto_resolve_after` are inherited from the parent unless set;
    `matchers`, `continue_`, the time interval names and `routes` are the node's own.
    `group_by` None means `...`: group by all labels.

    `id` is Alertmanager's route id, such as `{}/{team="db"}/0`: the matchers of each route
    from the root and each one's index among its siblings. It is unique in a tree and the
    same across reloads of the same config. `key` is the id without indexes, which is what
    Alertmanager puts in its group keys. Routes compare by identity.
    """

    id: str
    key: str
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] | None = ()
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    continue_: bool = False
    severity: str | None = None
    owner: str | None = None
    escalation_policy: str | None = None
    auto_resolve_after: float | None = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    position: Position | None = None

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes under (and including) this one that take an alert with `labels`."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterator[Route]:
        """This route and all below it, depth first, parents before children."""
        yield self
        for child in self.routes:
            yield from child.walk()


class RoutingTree:
    """A root route and the time intervals its routes refer to."""

    def __init__(
        self, root: Route, time_intervals: Mapping[str, TimeInterval] | None = None
    ) -> None:
        self.root = root
        self.time_intervals = dict(time_intervals or {})
        self._by_id = {route.id: route for route in root.walk()}

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Every route that takes an alert with `labels`, in order; at least the root."""
        return self.root.match(labels)

    def routes(self) -> Iterator[Route]:
        """All routes, depth first, parents before children."""
        return self.root.walk()

    def get(self, route_id: str) -> Route | None:
        """The route with id `route_id`, if this tree has it."""
        return self._by_id.get(route_id)

    def group_labels(self, route: Route, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels of an alert that pick its group on `route`: its `group_by` labels,
        or all of them for `...`. Empty values are left out: an empty label is absent."""
        if route.group_by is None:
            return {name: value for name, value in labels.items() if value != ""}
        return {name: labels[name] for name in route.group_by if labels.get(name, "") != ""}

    def group_key(self, route: Route, labels: Mapping[str, str]) -> str:
        """The key of an alert's group on `route`: the route id, a colon and the group
        labels spelled as Prometheus spells a label set, e.g. `{}/{team="db"}/0:{a="1"}`."""
        return f"{route.id}:{go_label_set(self.group_labels(route, labels))}"

    def is_muted(self, route: Route, at: datetime) -> str | None:
        """Why `route` sends no notifications at `at` (timezone-aware), or None if it does.

        The reason is `INACTIVE` when the route has active time intervals and `at` is in
        none of them, else the name of the first mute time interval containing `at`.
        """
        if route.active_time_intervals and not any(
            self.time_intervals[name].contains(at) for name in route.active_time_intervals
        ):
            return INACTIVE
        for name in route.mute_time_intervals:
            if self.time_intervals[name].contains(at):
                return name
        return None
