"""The routing tree: which routes an alert takes, how it is grouped, and when a route is muted.

Matching is Alertmanager's: depth first, left to right. A route that matches hands the alert
to its first matching child and stops there, unless that child has `continue`, in which case
the next children are tried too; a matching route none of whose children match is itself the
result. Every route has its options already merged with its parent's (see `Route`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pagerd.routing.gostrings import go_label_set
from pagerd.routing.matchers import LabelTest, Matcher, MatchType, cheapest_first, passes
from pagerd.routing.timeintervals import TimeInterval
from pagerd.yamlsource import Position

# pagerd's defaults for the root route. Alertmanager waits 30s before a group's first
# notification; an on-call pager should not, so pagerd's group_wait is 0.
DEFAULT_GROUP_WAIT = 0.0
DEFAULT_GROUP_INTERVAL = 5 * 60.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0

# The reason `is_muted` gives for a route outside all of its active time intervals.
INACTIVE = "inactive"

# Matches remembered per tree; past this many, the memo starts over, so a matcher on a label
# with ever-new values cannot grow it without bound. Label values longer than this together
# are matched afresh, not remembered: the memo holds no large text.
_MATCHES_MAX = 10_000
_KEY_MAX_CHARS = 512


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
    # The matchers as tests in the order to run them (see `cheapest_first`).
    _tests: tuple[LabelTest, ...] = field(init=False, repr=False, default=())
    # The children indexed by label, for a route with many (see `_Children`).
    _index: _Children | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tests", cheapest_first(self.matchers))
        if len(self.routes) >= _INDEX_MIN_CHILDREN:
            object.__setattr__(self, "_index", _Children(self.routes))

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes under (and including) this one that take an alert with `labels`."""
        if not passes(self._tests, labels):
            return []
        found: list[Route] = []
        children = self.routes if self._index is None else self._index.candidates(labels)
        for child in children:
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


# A route with at least this many children looks them up by label before testing them.
_INDEX_MIN_CHILDREN = 8


class _Children:
    """The children of a route, narrowed down by label before their matchers run.

    A child with an equality matcher (`team="db"`) can only take alerts with that value, so
    each child is filed under its first one; an alert is then tested only against the
    children filed under its own values and those with no equality matcher, still in
    config order. A root with a child per team tests one child, not all of them.
    """

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self.unfiled: list[int] = []
        self.filed: dict[str, dict[str, list[int]]] = {}
        for index, route in enumerate(routes):
            pin = next((m for m in route.matchers if m.op is MatchType.EQUAL), None)
            if pin is None:
                self.unfiled.append(index)
            else:
                self.filed.setdefault(pin.name, {}).setdefault(pin.value, []).append(index)

    def candidates(self, labels: Mapping[str, str]) -> list[Route]:
        """The children that may take an alert with `labels`, in config order."""
        indexes = list(self.unfiled)
        for name, by_value in self.filed.items():
            indexes.extend(by_value.get(labels.get(name, ""), ()))
        indexes.sort()
        return [self.routes[index] for index in indexes]


class RoutingTree:
    """A root route and the time intervals its routes refer to."""

    def __init__(
        self, root: Route, time_intervals: Mapping[str, TimeInterval] | None = None
    ) -> None:
        self.root = root
        self.time_intervals = dict(time_intervals or {})
        self._by_id = {route.id: route for route in root.walk()}
        # The labels any matcher tests: their values alone decide the routes an alert takes
        # (a missing label matches as an empty one), so the routes are remembered by them.
        # Routing labels (team, service, severity) take few values; instance and the like,
        # which make each alert new, are seldom among them.
        self._tested = tuple(sorted({matcher.name for route in root.walk()
                                     for matcher in route.matchers}))
        self._matches: dict[tuple[str, ...], tuple[Route, ...]] = {}

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Every route that takes an alert with `labels`, in order; at least the root."""
        key = tuple([labels.get(name, "") for name in self._tested])
        routes = self._matches.get(key)
        if routes is None:
            if sum(map(len, key)) > _KEY_MAX_CHARS:
                return self.root.match(labels)
            if len(self._matches) >= _MATCHES_MAX:
                self._matches.clear()
            routes = self._matches[key] = tuple(self.root.match(labels))
        return list(routes)

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
