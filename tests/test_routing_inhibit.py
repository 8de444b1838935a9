"""Inhibition: source and target sides, `equal`, two-sided rules and the source index."""

from __future__ import annotations

import pytest

from pagerd.fingerprint import fingerprint
from pagerd.routing.config import parse_routing
from pagerd.routing.inhibit import Inhibitor, InhibitRule
from pagerd.routing.matchers import Matcher
from pagerd.yamlsource import load

RULES = """
route: {receiver: r}
inhibit_rules:
  # A critical alert silences the warnings of the same alertname and cluster.
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [alertname, cluster]
  # A cluster down silences everything else of that cluster (deprecated spelling).
  - source_match: {alertname: ClusterDown}
    target_match_re: {alertname: '.+'}
    equal: [cluster]
  # Either of two alerts silences the other, but never itself.
  - source_matchers: ['mirror=~"a|b"']
    target_matchers: ['mirror=~"a|b"']
    equal: [pair]
"""

CRIT_EU = {"alertname": "Lag", "severity": "critical", "cluster": "eu"}
DOWN_EU = {"alertname": "ClusterDown", "cluster": "eu"}
MIRROR_A = {"mirror": "a", "pair": "1"}


def inhibitor(*firing: dict[str, str]) -> Inhibitor:
    """An inhibitor for RULES that has seen the `firing` alerts."""
    routing = parse_routing(load(RULES, "r.yml"), receivers={"r"}, owners=set(), severities=set())
    result = Inhibitor(routing.inhibit_rules)
    for labels in firing:
        result.observe(fingerprint(labels), labels, firing=True)
    return result


# (firing alerts, checked alert, inhibited)
TABLE = [
    ([CRIT_EU], {"alertname": "Lag", "severity": "warning", "cluster": "eu"}, True),
    ([CRIT_EU], {"alertname": "Lag", "severity": "warning", "cluster": "us"}, False),
    ([CRIT_EU], {"alertname": "Other", "severity": "warning", "cluster": "eu"}, False),
    ([CRIT_EU], {"alertname": "Lag", "severity": "info", "cluster": "eu"}, False),
    ([CRIT_EU], CRIT_EU, False),  # the source itself is not a target
    ([], {"alertname": "Lag", "severity": "warning", "cluster": "eu"}, False),
    # equal: a label both lack is equal (missing is empty)...
    (
        [{"alertname": "Lag", "severity": "critical"}],
        {"alertname": "Lag", "severity": "warning"},
        True,
    ),
    # ...and so is one that is empty on one side and missing on the other...
    (
        [{"alertname": "Lag", "severity": "critical", "cluster": ""}],
        {"alertname": "Lag", "severity": "warning"},
        True,
    ),
    # ...but not one that only the source has.
    (
        [{"alertname": "Lag", "severity": "critical", "cluster": "eu"}],
        {"alertname": "Lag", "severity": "warning"},
        False,
    ),
    ([DOWN_EU], {"alertname": "Lag", "severity": "critical", "cluster": "eu"}, True),
    ([DOWN_EU], {"alertname": "Lag", "cluster": "us"}, False),
    # ClusterDown matches both sides of its rule: it does not inhibit itself...
    ([DOWN_EU], DOWN_EU, False),
    # ...nor another ClusterDown of that cluster, which matches both sides too.
    ([DOWN_EU], {**DOWN_EU, "replica": "2"}, False),
    ([MIRROR_A], {"mirror": "b", "pair": "1"}, False),
    ([MIRROR_A], MIRROR_A, False),
    ([MIRROR_A], {"mirror": "c", "pair": "1"}, False),
]


@pytest.mark.parametrize(("firing", "labels", "expected"), TABLE)
def test_is_inhibited(firing: list[dict[str, str]], labels: dict[str, str], expected: bool) -> None:
    """Alertmanager's rule: a firing source, equal labels, and no two-sided self-match."""
    assert inhibitor(*firing).is_inhibited(fingerprint(labels), labels) is expected


def test_one_sided_source_inhibits_a_two_sided_target() -> None:
    """A target that matches both sides is still inhibited by a source that matches only
    the source side."""
    rule = InhibitRule(
        source_matchers=(Matcher("severity", "=~", "critical|page"),),
        target_matchers=(Matcher("severity", "=~", "critical|warning"),),
    )
    both_sides = {"alertname": "A", "severity": "critical"}
    source_only = {"alertname": "B", "severity": "page"}
    inhib = Inhibitor([rule])
    inhib.observe("a", both_sides, firing=True)
    assert not inhib.is_inhibited("a", both_sides)
    inhib.observe("b", source_only, firing=True)
    assert inhib.inhibited_by("a", both_sides) == "b"


def test_resolve_and_relabel_update_the_index() -> None:
    """A resolved source stops inhibiting; a source whose labels change moves."""
    inhib = inhibitor()
    warning = {"alertname": "Lag", "severity": "warning", "cluster": "eu"}
    inhib.observe("crit", CRIT_EU, firing=True)
    assert inhib.inhibited_by("warn", warning) == "crit"
    inhib.observe("crit", {**CRIT_EU, "cluster": "us"}, firing=True)
    assert not inhib.is_inhibited("warn", warning)
    inhib.observe("crit", CRIT_EU, firing=True)
    assert inhib.is_inhibited("warn", warning)
    inhib.observe("crit", CRIT_EU, firing=False)
    assert not inhib.is_inhibited("warn", warning)
    assert len(inhib) == 0


def test_only_sources_are_kept() -> None:
    """Alerts that match no rule's source side are not indexed."""
    inhib = inhibitor({"alertname": "Lag", "severity": "warning"}, CRIT_EU, DOWN_EU)
    assert len(inhib) == 2


def test_same_fingerprint_never_inhibits_itself() -> None:
    """Even when its labels changed in between, an alert is never its own inhibitor."""
    rule = InhibitRule((Matcher("s", "=", "crit"),), (Matcher("kind", "=", "t"),))
    inhib = Inhibitor([rule])
    inhib.observe("azure-1", {"s": "crit"}, firing=True)
    assert not inhib.is_inhibited("azure-1", {"s": "crit", "kind": "t"})
    assert inhib.is_inhibited("azure-2", {"kind": "t"})


def test_no_rules_is_free() -> None:
    """Without rules nothing is stored and nothing is inhibited."""
    inhib = Inhibitor([])
    inhib.observe("a", CRIT_EU, firing=True)
    assert len(inhib) == 0
    assert not inhib.is_inhibited("b", {"severity": "warning"})
