"""The routing tree: which routes take an alert, what they inherit, and the group keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerd.routing import tree as tree_module
from pagerd.routing.config import Routing, parse_routing
from pagerd.routing.matchers import Matcher, MatchType
from pagerd.routing.tree import INACTIVE, Route, RoutingTree
from pagerd.yamlsource import load

RECEIVERS = {"default", "db-pager", "db-chat", "web", "audit", "frontend", "oncall"}
OWNERS = {"platform", "dba", "web-team"}
SEVERITIES = {"SEV1", "SEV2", "SEV3", "SEV4"}
POLICIES = {"default", "db-escalation"}

TREE = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  owner: platform
  severity: SEV3
  routes:
    # Every alert is also copied to the audit log, then routing goes on.
    - matchers: ['audit="true"']
      receiver: audit
      continue: true
      group_by: ['...']
    - matchers: ['team="db"']
      receiver: db-chat
      owner: dba
      escalation_policy: db-escalation
      group_by: [alertname, cluster]
      routes:
        - matchers: ['severity=~"critical|page"']
          receiver: db-pager
          severity: SEV1
          group_wait: 0s
          repeat_interval: 1h
          auto_resolve_after: 2h
          routes:
            - match: {env: staging}
              severity: SEV2
              auto_resolve_after: 0s
        - match_re: {service: 'mysql|postgres'}
          continue: true
          group_by: []
        - matchers: ['service!~"mysql|postgres"', 'service!=""']
          receiver: db-pager
    - matchers: ['team=~"web|frontend"', 'env!="dev"']
      receiver: web
      owner: web-team
      group_interval: 10m
      routes:
        - matchers: ['"app.kubernetes.io/name"="shop"']
          receiver: frontend
"""


def routing(text: str = TREE) -> Routing:
    """The routing of `text`, against the names this module defines."""
    doc = load(text, "pagerd.yml")
    return parse_routing(
        doc, receivers=RECEIVERS, owners=OWNERS, severities=SEVERITIES, policies=POLICIES
    )


DB = '{}/{team="db"}/1'
DB_CRIT = DB + '/{severity=~"critical|page"}/0'
WEB = '{}/{env!="dev",team=~"web|frontend"}/2'

# labels -> the ids of the routes that take the alert, in order
MATCH_TABLE = [
    ({}, ["{}"]),
    ({"alertname": "Up"}, ["{}"]),
    ({"team": "db"}, [DB]),
    ({"team": "db", "severity": "critical"}, [DB_CRIT]),
    ({"team": "db", "severity": "page", "env": "staging"}, [DB_CRIT + '/{env="staging"}/0']),
    (
        {"team": "db", "severity": "warning", "service": "mysql"},
        [DB + '/{service=~"mysql|postgres"}/1'],
    ),
    # continue: the regex route matches and routing goes on to its next sibling, which
    # does not match, so the regex route is the only one.
    ({"team": "db", "service": "postgres"}, [DB + '/{service=~"mysql|postgres"}/1']),
    ({"team": "db", "service": "redis"}, [DB + '/{service!="",service!~"mysql|postgres"}/2']),
    ({"team": "db", "severity": "critical", "audit": "true"}, ['{}/{audit="true"}/0', DB_CRIT]),
    ({"audit": "true"}, ['{}/{audit="true"}/0']),  # a continue route alone is the answer
    ({"audit": "false", "team": "web"}, [WEB]),
    ({"team": "web", "env": "dev"}, ["{}"]),
    (
        {"team": "frontend", "app.kubernetes.io/name": "shop"},
        [WEB + '/{app.kubernetes.io/name="shop"}/0'],
    ),
    ({"team": "DB"}, ["{}"]),  # matching is case-sensitive
]


@pytest.mark.parametrize(("labels", "expected"), MATCH_TABLE)
def test_match(labels: dict[str, str], expected: list[str]) -> None:
    """Depth first, first matching child wins, `continue` lets the next siblings try."""
    assert [route.id for route in routing().tree.match(labels)] == expected


# route id -> (receiver, owner, severity, escalation policy, group_by)
INHERIT_TABLE = [
    ("{}", ("default", "platform", "SEV3", None, ("alertname",))),
    ('{}/{audit="true"}/0', ("audit", "platform", "SEV3", None, None)),
    (DB, ("db-chat", "dba", "SEV3", "db-escalation", ("alertname", "cluster"))),
    (DB_CRIT, ("db-pager", "dba", "SEV1", "db-escalation", ("alertname", "cluster"))),
    (
        DB_CRIT + '/{env="staging"}/0',
        ("db-pager", "dba", "SEV2", "db-escalation", ("alertname", "cluster")),
    ),
    (DB + '/{service=~"mysql|postgres"}/1', ("db-chat", "dba", "SEV3", "db-escalation", ())),
    (WEB, ("web", "web-team", "SEV3", None, ("alertname",))),
]


@pytest.mark.parametrize(("route_id", "expected"), INHERIT_TABLE)
def test_inheritance(route_id: str, expected: tuple[object, ...]) -> None:
    """Receiver, owner, severity, escalation policy and group_by pass down unless set."""
    route = routing().tree.get(route_id)
    assert route is not None
    assert (
        route.receiver,
        route.owner,
        route.severity,
        route.escalation_policy,
        route.group_by,
    ) == expected


@pytest.mark.parametrize(
    ("route_id", "timers"),
    [
        ("{}", (30.0, 300.0, 14400.0, None)),
        (DB_CRIT, (0.0, 300.0, 3600.0, 7200.0)),
        (DB_CRIT + '/{env="staging"}/0', (0.0, 300.0, 3600.0, None)),  # 0s turns it off
        (WEB, (30.0, 600.0, 14400.0, None)),
    ],
)
def test_timers_inherit(route_id: str, timers: tuple[float | None, ...]) -> None:
    """group_wait, group_interval, repeat_interval and auto_resolve_after, in seconds."""
    route = routing().tree.get(route_id)
    assert route is not None
    got = (route.group_wait, route.group_interval, route.repeat_interval)
    assert (*got, route.auto_resolve_after) == timers


def test_pagerd_defaults() -> None:
    """A bare root route: pagerd's timer defaults, one group per route, no extras."""
    root = routing("route: {receiver: default}\n").tree.root
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (0.0, 300.0, 14400.0)
    assert root.group_by == ()
    assert (root.severity, root.owner, root.escalation_policy, root.auto_resolve_after) == (
        None,
        None,
        None,
        None,
    )


# (labels, route id, group key)
GROUP_TABLE = [
    ({"alertname": "Up", "instance": "a"}, "{}", '{}:{alertname="Up"}'),
    ({"instance": "a"}, "{}", "{}:{}"),
    ({"alertname": "", "instance": "a"}, "{}", "{}:{}"),  # empty is absent
    (
        {"team": "db", "cluster": "eu", "alertname": "Lag", "pod": "x"},
        DB,
        DB + ':{alertname="Lag", cluster="eu"}',
    ),
    (
        {"audit": "true", "b": 'say "hi"', "a": "1"},
        '{}/{audit="true"}/0',
        '{}/{audit="true"}/0:{a="1", audit="true", b="say \\"hi\\""}',
    ),
    (
        {"team": "db", "service": "mysql", "alertname": "Lag"},
        DB + '/{service=~"mysql|postgres"}/1',
        DB + '/{service=~"mysql|postgres"}/1:{}',
    ),
]


@pytest.mark.parametrize(("labels", "route_id", "key"), GROUP_TABLE)
def test_group_key(labels: dict[str, str], route_id: str, key: str) -> None:
    """Route id, a colon, and the group_by labels (all for `...`) as Prometheus spells them."""
    tree = routing().tree
    route = tree.get(route_id)
    assert route is not None
    assert tree.group_key(route, labels) == key


def test_ids_are_stable_across_reloads() -> None:
    """The same config gives the same ids; routes are all reachable by id."""
    first = [route.id for route in routing().tree.routes()]
    second = [route.id for route in routing().tree.routes()]
    assert first == second
    assert len(set(first)) == len(first) == 9
    assert all(isinstance(routing().tree.get(route_id), Route) for route_id in first)


def test_siblings_with_equal_matchers_get_distinct_ids() -> None:
    """Alertmanager's key is the same for both; the id tells them apart by index."""
    tree = routing(
        """
route:
  receiver: default
  routes:
    - {matchers: [a=b], receiver: web, continue: true}
    - {matchers: [a=b], receiver: audit}
"""
    ).tree
    routes = tree.match({"a": "b"})
    assert [route.id for route in routes] == ['{}/{a="b"}/0', '{}/{a="b"}/1']
    assert [route.key for route in routes] == ['{}/{a="b"}', '{}/{a="b"}']
    assert [route.receiver for route in routes] == ["web", "audit"]


MUTED_TREE = """
route:
  receiver: default
  routes:
    - matchers: [team=db]
      mute_time_intervals: [weekends, nights]
      routes:
        - matchers: [severity=critical]
    - matchers: [team=web]
      active_time_intervals: [business-hours]
      mute_time_intervals: [lunch]
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}]
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}, {start_time: "00:00", end_time: "06:00"}]
  - name: business-hours
    time_intervals:
      - weekdays: ["monday:friday"]
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: America/New_York
mute_time_intervals:
  - name: lunch
    time_intervals:
      - times: [{start_time: "12:00", end_time: "13:00"}]
        location: America/New_York
"""


@pytest.mark.parametrize(
    ("labels", "at", "reason"),
    [
        ({"team": "db"}, datetime(2024, 6, 3, 12, 0, tzinfo=UTC), None),  # a Monday
        ({"team": "db"}, datetime(2024, 6, 1, 12, 0, tzinfo=UTC), "weekends"),
        ({"team": "db"}, datetime(2024, 6, 3, 23, 0, tzinfo=UTC), "nights"),
        ({"team": "db"}, datetime(2024, 6, 3, 5, 59, tzinfo=UTC), "nights"),
        ({"team": "db"}, datetime(2024, 6, 3, 6, 0, tzinfo=UTC), None),
        # Mute intervals are not inherited: the child route is not muted.
        ({"team": "db", "severity": "critical"}, datetime(2024, 6, 1, 12, tzinfo=UTC), None),
        # 14:00 UTC is 10:00 in New York (EDT): active.
        ({"team": "web"}, datetime(2024, 6, 3, 14, 0, tzinfo=UTC), None),
        # 12:30 UTC is 08:30 in New York: before business hours.
        ({"team": "web"}, datetime(2024, 6, 3, 12, 30, tzinfo=UTC), INACTIVE),
        ({"team": "web"}, datetime(2024, 6, 3, 16, 30, tzinfo=UTC), "lunch"),
        ({"team": "web"}, datetime(2024, 6, 1, 16, 30, tzinfo=UTC), INACTIVE),  # Saturday
        ({}, datetime(2024, 6, 1, 12, 0, tzinfo=UTC), None),
    ],
)
def test_is_muted(labels: dict[str, str], at: datetime, reason: str | None) -> None:
    """Active intervals first (outside all: inactive), then the first mute interval."""
    tree = routing(MUTED_TREE).tree
    (route,) = tree.match(labels)
    assert tree.is_muted(route, at) == reason


def reference_match(route: Route, labels: dict[str, str]) -> list[Route]:
    """Alertmanager's Route.Match written plainly: every matcher, every child, in order."""
    if not all(matcher.matches(labels) for matcher in route.matchers):
        return []
    found: list[Route] = []
    for child in route.routes:
        taken = reference_match(child, labels)
        found.extend(taken)
        if taken and not child.continue_:
            break
    return found or [route]


_MATCHERS = st.builds(
    Matcher,
    name=st.sampled_from(["team", "env", "sev"]),
    op=st.sampled_from(list(MatchType)),
    value=st.sampled_from(["", "a", "b", "a|b", "a.*"]),
)
_LABELS = st.dictionaries(
    st.sampled_from(["team", "env", "sev"]), st.sampled_from(["", "a", "b", "ab"])
)


def _routes(*widths: tuple[int, int]) -> st.SearchStrategy[Route]:
    """Routes with (min, max) widths[0] children, each with widths[1] children, and so on."""
    children: st.SearchStrategy[list[Route]] = st.just([])
    if widths:
        (least, most), *deeper = widths
        children = st.lists(_routes(*deeper), min_size=least, max_size=most)
    return st.builds(
        lambda matchers, cont, kids: Route(
            id="",
            key="",
            receiver="r",
            matchers=tuple(matchers),
            continue_=cont,
            routes=tuple(kids),
        ),
        st.lists(_MATCHERS, max_size=3),
        st.booleans(),
        children,
    )


# The root has enough children to be indexed; theirs mostly do not.
@given(root=_routes((8, 10), (0, 2)), labels=st.lists(_LABELS, min_size=1, max_size=8))
def test_indexed_match_is_alertmanagers(root: Route, labels: list[dict[str, str]]) -> None:
    """Looking children up by label (for routes with many) never changes the answer."""
    for label_set in labels:
        assert root.match(label_set) == reference_match(root, label_set)


@given(root=_routes((8, 10), (0, 2)), labels=st.lists(_LABELS, min_size=1, max_size=8),
       instances=st.lists(st.sampled_from(["i1", "i2", ""]), min_size=8, max_size=8))
def test_remembered_match_is_alertmanagers(root: Route, labels: list[dict[str, str]],
                                           instances: list[str]) -> None:
    """The tree remembers routes by the values of the labels its matchers test: a label
    none tests (instance) shares the answer, a tested one (or its absence) does not."""
    tree = RoutingTree(root)
    label_sets = [{**label_set, "instance": instance}
                  for label_set, instance in zip(labels * 2, instances * 2, strict=False)]
    for label_set in label_sets + label_sets[::-1]:
        assert tree.match(label_set) == reference_match(root, label_set)


def test_the_match_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """It starts over past _MATCHES_MAX keys and never keeps long label values."""
    monkeypatch.setattr(tree_module, "_MATCHES_MAX", 3)
    tree = routing().tree
    for team in ["a", "b", "c", "d", "e"]:
        tree.match({"team": team})
        assert len(tree._matches) <= 3
    tree._matches.clear()
    long = {"team": "x" * 600}
    assert tree.match(long) == reference_match(tree.root, long)
    assert tree._matches == {}
