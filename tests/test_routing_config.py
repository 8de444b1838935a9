"""Routing config: what is accepted, and every refusal with its line and reason."""

from __future__ import annotations

import pytest

from pagerd.errors import ConfigErrors
from pagerd.routing.config import Routing, parse_routing
from pagerd.yamlsource import load

RECEIVERS = {"default", "db"}
OWNERS = {"platform"}
SEVERITIES = {"SEV1", "SEV2"}
POLICIES = {"standard"}


def parse(text: str) -> Routing:
    """The routing of `text` as file `c.yml`."""
    return parse_routing(
        load(text, "c.yml"),
        receivers=RECEIVERS,
        owners=OWNERS,
        severities=SEVERITIES,
        policies=POLICIES,
    )


# (config, line of the error, phrase of its reason). Line 1 is the first line of the text.
BAD = [
    ("receivers: []\n", 1, "no route provided in config"),
    ("route: default\n", 1, "route: expected a mapping"),
    ("route:\n  group_by: [a]\n", 2, "root route must specify a default receiver"),
    ("route:\n  receiver: ''\n", 2, "root route must specify a default receiver"),
    (
        "route:\n  receiver: default\n  matchers: [a=b]\n",
        3,
        "root route must not have any matchers",
    ),
    ("route:\n  receiver: default\n  match: {a: b}\n", 3, "root route must not have any matchers"),
    ("route:\n  receiver: default\n  match_re: {a: b}\n", 3, "must not have any matchers"),
    ("route:\n  receiver: default\n  continue: true\n", 3, "cannot have continue in root route"),
    (
        "route:\n  receiver: default\n  mute_time_intervals: [x]\ntime_intervals: [{name: x}]\n",
        3,
        "root route must not have any mute time intervals",
    ),
    (
        "route:\n  receiver: default\n  active_time_intervals: [x]\ntime_intervals: [{name: x}]\n",
        3,
        "root route must not have any active time intervals",
    ),
    ("route:\n  receiver: nobody\n", 2, "undefined receiver 'nobody' used in route"),
    (
        "route:\n  receiver: default\n  routes:\n    - routes:\n        - receiver: ghost\n",
        5,
        "undefined receiver 'ghost'",
    ),
    ("route:\n  receiver: default\n  colour: red\n", 3, "unknown field 'colour'"),
    ("route:\n  receiver: default\n  labels: {a: b}\n", 3, "unknown field 'labels'"),
    ("route:\n  receiver: default\n  routes:\n    - recevier: db\n", 4, "unknown field 'recevier'"),
    ("route:\n  receiver: default\n  routes: [5]\n", 3, "route: expected a mapping"),
    ("route:\n  receiver: default\n  routes: {a: b}\n", 3, "routes: expected a list"),
    ("route:\n  receiver: [default]\n", 2, "receiver: expected a string"),
    (
        "route:\n  receiver: default\n  routes:\n    - continue: 'yes'\n",
        4,
        "expected true or false",
    ),
    # group_by
    ("route:\n  receiver: default\n  group_by: [a, b, a]\n", 3, "duplicated label 'a' in group_by"),
    (
        "route:\n  receiver: default\n  group_by: ['...', a]\n",
        3,
        "cannot have wildcard group_by (`...`) and other labels at the same time",
    ),
    ("route:\n  receiver: default\n  group_by: ['']\n", 3, "invalid label name '' in group_by"),
    ("route:\n  receiver: default\n  group_by: alertname\n", 3, "group_by: expected a list"),
    (
        "route:\n  receiver: default\n  group_by:\n    - a\n    - [b]\n",
        5,
        "group_by: expected a string",
    ),
    # durations
    ("route:\n  receiver: default\n  group_interval: 0s\n", 3, "group_interval cannot be zero"),
    ("route:\n  receiver: default\n  repeat_interval: 0\n", 3, "repeat_interval cannot be zero"),
    ("route:\n  receiver: default\n  group_wait: 5 minutes\n", 3, "not a valid duration"),
    ("route:\n  receiver: default\n  routes:\n    - group_interval: -1m\n", 4, "not a valid dur"),
    ("route:\n  receiver: default\n  auto_resolve_after: soon\n", 3, "not a valid duration"),
    # matchers
    (
        "route:\n  receiver: default\n  routes:\n    - matchers:\n        - a=b\n"
        "        - 'c=~\"(\"'\n",
        6,
        "error parsing regexp",
    ),
    (
        "route:\n  receiver: default\n  routes:\n    - matchers: ['job=\"x']\n",
        4,
        "unescaped double quote",
    ),
    ("route:\n  receiver: default\n  routes:\n    - matchers: 'a=b'\n", 4, "expected a list"),
    (
        "route:\n  receiver: default\n  routes:\n    - match:\n        ok: x\n"
        "        bad-name: y\n",
        6,
        "invalid label name 'bad-name'",
    ),
    (
        "route:\n  receiver: default\n  routes:\n    - match_re:\n        a: '[z-a]'\n",
        5,
        "error parsing regexp",
    ),
    (
        "route:\n  receiver: default\n  routes:\n    - match_re:\n        invalid_label:\n",
        5,
        "invalid regexp value for 'invalid_label'",
    ),
    # time interval names
    (
        "route:\n  receiver: default\n  routes:\n    - mute_time_intervals:\n        - nights\n",
        5,
        "undefined time interval 'nights' used in route",
    ),
    (
        "route:\n  receiver: default\n  routes:\n    - active_time_intervals: [days]\n"
        "mute_time_intervals: [{name: nights}]\n",
        4,
        "undefined time interval 'days'",
    ),
    # pagerd's own route options
    (
        "route:\n  receiver: default\n  owner: nobody\n",
        3,
        "unknown owner 'nobody'; defined: platform",
    ),
    ("route:\n  receiver: default\n  severity: sev1\n", 3, "unknown severity 'sev1' (did you mean"),
    (
        "route:\n  receiver: default\n  severity: P1\n",
        3,
        "unknown severity 'P1'; defined: SEV1, SEV2",
    ),
    ("route:\n  receiver: default\n  escalation_policy: x\n", 3, "unknown escalation policy 'x'"),
    # time intervals
    ("route: {receiver: default}\ntime_intervals:\n  - time_intervals: []\n", 3, "missing name"),
    (
        "route: {receiver: default}\nmute_time_intervals:\n  - {name: a}\n"
        "time_intervals:\n  - {name: a}\n",
        5,
        "time interval 'a' is not unique",
    ),
    (
        "route: {receiver: default}\nmute_time_intervals:\n  - {name: a}\n  - {name: a}\n",
        4,
        "mute time interval 'a' is not unique",
    ),
    ("route: {receiver: default}\ntime_intervals: {a: b}\n", 2, "time_intervals: expected a list"),
    (
        "route: {receiver: default}\ntime_intervals:\n  - name: a\n    time_intervals:\n"
        "      - weekdays: [monday]\n        hours: [1]\n",
        6,
        "unknown field 'hours'",
    ),
]

PERIOD_BAD = [
    ("weekdays: [funday]", "funday is not a valid weekday"),
    ("weekdays: ['friday:monday']", "start day cannot be before end day"),
    ("weekdays: ['monday:tuesday:friday']", "invalid format"),
    ("days_of_month: ['0']", "0 is not a valid day of the month: out of range"),
    ("days_of_month: ['32']", "32 is not a valid day of the month"),
    ("days_of_month: ['-32:-1']", "-32 is not a valid day of the month"),
    ("days_of_month: ['-3:5']", "end day must be negative if start day is negative"),
    ("days_of_month: ['10:-20']", "end day -20 is always before start day 10"),
    ("days_of_month: [first]", "invalid number"),
    ("months: ['march:january']", "end month january is before start month march"),
    ("months: [13]", "13 is not a valid month: out of range"),
    ("months: [smarch]", "smarch is not a valid month"),
    ("years: ['2025:2024']", "end year 2024 is before start year 2025"),
    ("times: [{start_time: '17:00', end_time: '09:00'}]", "start time cannot be equal or greater"),
    ("times: [{start_time: '09:00', end_time: '09:00'}]", "start time cannot be equal or greater"),
    ("times: [{start_time: '09:00'}]", "both start and end times must be provided"),
    ("times: [{start_time: '9:00', end_time: '10:00'}]", "couldn't parse timestamp 9:00"),
    ("times: [{start_time: '09:00', end_time: '24:01'}]", "couldn't parse timestamp 24:01"),
    ("times: [{start: '09:00', end_time: '10:00'}]", "unknown field 'start'"),
    ("location: Mars/Olympus_Mons", "unknown time zone Mars/Olympus_Mons"),
    ("location: ../etc/passwd", "unknown time zone"),
]
for _period, _reason in PERIOD_BAD:
    BAD.append(
        (
            "route: {receiver: default}\ntime_intervals:\n  - name: x\n    time_intervals:\n"
            f"      - {_period}\n",
            5,
            _reason,
        )
    )

BAD += [
    # inhibition rules
    ("route: {receiver: default}\ninhibit_rules:\n  - source_matchers: ['a=~(']\n", 3, "regexp"),
    ("route: {receiver: default}\ninhibit_rules:\n  - target_match: {'a.b': c}\n", 3, "'a.b'"),
    (
        "route: {receiver: default}\ninhibit_rules:\n  - source_match_re:\n"
        "      invalid_source_label:\n",
        4,
        "invalid regexp value for 'invalid_source_label'",
    ),
    (
        "route: {receiver: default}\ninhibit_rules:\n  - equal: [a, '']\n",
        3,
        "invalid label name '' in equal list",
    ),
    ("route: {receiver: default}\ninhibit_rules:\n  - equals: [a]\n", 3, "unknown field 'equals'"),
    ("route: {receiver: default}\ninhibit_rules:\n  - 5\n", 3, "inhibit rule: expected a mapping"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD)
def test_refused(text: str, line: int, reason: str) -> None:
    """Each refusal names the file, the line of the offending key or item, and why."""
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    found = [(error.position.line, error.reason) for error in caught.value.errors]
    assert any(at == line and reason in why for at, why in found), found
    assert all(error.position.file == "c.yml" for error in caught.value.errors)


def test_every_problem_is_reported() -> None:
    """One ConfigErrors names all problems, in line order."""
    text = (
        "route:\n"
        "  receiver: nobody\n"
        "  group_interval: 0s\n"
        "  routes:\n"
        "    - owner: nobody\n"
        "      matchers: ['a=~(']\n"
        "inhibit_rules:\n"
        "  - equal: ['']\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        parse(text)
    assert [error.position.line for error in caught.value.errors] == [2, 3, 5, 6, 8]
    assert str(caught.value).startswith("c.yml:2: undefined receiver 'nobody'")


GOOD = [
    # Alertmanager accepts all of these.
    "route:\n  receiver: default\n  group_by: ['...']\n",
    "route:\n  receiver: default\n  matchers: []\n  continue: false\n",
    "route:\n  receiver: default\n  group_wait: 0\n  routes:\n    - receiver: ''\n",
    "route:\n  receiver: default\n  routes:\n    - match: {a: }\n      group_by: []\n",
    "route:\n  receiver: 'default'\n  routes:\n    - match_re: {service: '^(foo1|foo2|baz)$'}\n",
    "route:\n  receiver: default\n  routes:\n    - group_by: ['...', '...']\n",
    "route: {receiver: default}\ninhibit_rules:\n  - {}\n",
    "route: {receiver: default}\ntime_intervals:\n  - name: empty\n",
    "route: {receiver: default}\ntime_intervals:\n  - name: local\n"
    "    time_intervals: [{location: Local}, {location: ''}]\n",
]


@pytest.mark.parametrize("text", GOOD)
def test_accepted(text: str) -> None:
    """Configs at the edges that Alertmanager accepts."""
    assert parse(text).tree.root.receiver == "default"


def test_empty_document_is_refused() -> None:
    """An empty file loads as None: refused with a position, not a crash."""
    with pytest.raises(ConfigErrors, match="expected a mapping"):
        parse_routing(load("", "c.yml"), receivers=set(), owners=set(), severities=set())


def test_policies_unchecked_when_unknown() -> None:
    """With no set of policies given, any escalation policy name passes."""
    doc = load("route:\n  receiver: default\n  escalation_policy: anything\n", "c.yml")
    routing = parse_routing(doc, receivers=RECEIVERS, owners=OWNERS, severities=SEVERITIES)
    assert routing.tree.root.escalation_policy == "anything"


def test_group_by_override() -> None:
    """`group_by: []` replaces the parent's labels with none; `...` with all."""
    routing = parse(
        "route:\n  receiver: default\n  group_by: [alertname, cluster]\n  routes:\n"
        "    - {matchers: [a=b], group_by: []}\n    - {matchers: [a=c], group_by: ['...']}\n"
        "    - {matchers: [a=d]}\n"
    )
    assert [route.group_by for route in routing.tree.routes()] == [
        ("alertname", "cluster"),
        (),
        None,
        ("alertname", "cluster"),
    ]


def test_deprecated_and_new_matchers_merge() -> None:
    """`match`, `match_re` and `matchers` of one route all apply, in Alertmanager's order."""
    routing = parse(
        "route:\n  receiver: default\n  routes:\n"
        "    - match: {team: db}\n      match_re: {env: 'prod|staging'}\n"
        "      matchers: ['cluster!=\"eu\"']\n"
    )
    (child,) = routing.tree.root.routes
    assert child.id == '{}/{cluster!="eu",env=~"prod|staging",team="db"}/0'
    assert routing.tree.match({"team": "db", "env": "prod"}) == [child]
    assert routing.tree.match({"team": "db", "env": "prod", "cluster": "eu"}) == [routing.tree.root]
