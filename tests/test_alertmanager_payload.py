"""The Alertmanager webhook parser: public sample payloads and refusals naming the field."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerd.fingerprint import fingerprint
from pagerd.models import AlertStatus
from pagerd.receivers.alertmanager import parse_notification
from pagerd.receivers.errors import PayloadError

from conftest import FIXTURES

AM = FIXTURES / "alertmanager"


def load(name: str) -> Any:
    return json.loads((AM / name).read_text())


class TestFixtures:
    """Every public sample parses to the alerts it carries."""

    def test_single_firing_alert(self) -> None:
        notification = parse_notification(load("firing.alertmanager-bot.json"))
        (alert,) = notification.alerts
        assert alert.status is AlertStatus.FIRING
        assert alert.labels == {"alertname": "Fire", "severity": "critical"}
        assert alert.annotations == {"message": "Something is on fire"}
        assert alert.fingerprint == fingerprint(alert.labels)
        assert alert.starts_at is not None and alert.starts_at.utcoffset() is not None
        assert alert.source["group_key"] == '{}:{alertname="Fire"}'

    def test_three_alerts_then_resolved(self) -> None:
        firing = parse_notification(load("firing-3-alerts.alertmonitor.json"))
        resolved = parse_notification(load("resolved-3-alerts-handedited.alertmonitor.json"))
        assert len(firing.alerts) == 3
        assert {a.fingerprint for a in firing.alerts} == {a.fingerprint for a in resolved.alerts}
        assert all(a.status is AlertStatus.RESOLVED for a in resolved.alerts)
        assert not resolved.partial  # nothing was truncated


class TestFingerprint:
    """Alertmanager's FNV-1a fingerprint, checked against values Alertmanager computes."""

    @pytest.mark.parametrize(("labels", "expected"), [
        ({}, "cbf29ce484222325"),
        # The empty-valued label is dropped before hashing, as Alertmanager does.
        ({"alertname": "Fire", "severity": "critical"}, "88cbf0084cf27726"),
        ({"alertname": "Fire", "severity": "critical", "x": ""}, "88cbf0084cf27726"),
    ])
    def test_known_values(self, labels: dict[str, str], expected: str) -> None:
        assert fingerprint(labels) == expected

    def test_order_does_not_matter(self) -> None:
        assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})

    def test_given_fingerprint_is_kept(self) -> None:
        body = load("firing.alertmanager-bot.json")
        body["alerts"][0]["fingerprint"] = "0123456789abcdef"
        assert parse_notification(body).alerts[0].fingerprint == "0123456789abcdef"


def _base() -> dict[str, Any]:
    return load("firing.alertmanager-bot.json")


BAD = [
    ("not an object", lambda b: [1, 2], "body"),
    ("wrong version", lambda b: b | {"version": "3"}, "version"),
    ("bad group status", lambda b: b | {"status": "burning"}, "status"),
    ("negative truncation", lambda b: b | {"truncatedAlerts": -1}, "truncatedAlerts"),
    ("alerts not a list", lambda b: b | {"alerts": {}}, "alerts"),
    ("alert not an object", lambda b: b | {"alerts": ["x"]}, "alerts[0]"),
    ("missing labels", lambda b: b | {"alerts": [{"status": "firing"}]}, "alerts[0].labels"),
    ("label not a string",
     lambda b: b | {"alerts": [{"status": "firing", "labels": {"a": 1}}]}, "alerts[0].labels.a"),
    ("empty label set",
     lambda b: b | {"alerts": [{"status": "firing", "labels": {}}]}, "alerts[0].labels"),
    ("bad alert status",
     lambda b: b | {"alerts": [{"status": "on", "labels": {"a": "b"}}]}, "alerts[0].status"),
    ("bad startsAt", lambda b: b | {"alerts": [
        {"status": "firing", "labels": {"a": "b"}, "startsAt": "yesterday"}]},
     "alerts[0].startsAt"),
    ("naive startsAt", lambda b: b | {"alerts": [
        {"status": "firing", "labels": {"a": "b"}, "startsAt": "2024-01-01T00:00:00"}]},
     "alerts[0].startsAt"),
    ("bad fingerprint", lambda b: b | {"alerts": [
        {"status": "firing", "labels": {"a": "b"}, "fingerprint": "xyz"}]},
     "alerts[0].fingerprint"),
    ("groupLabels not strings", lambda b: b | {"groupLabels": {"a": None}}, "groupLabels.a"),
]


@pytest.mark.parametrize(("name", "mutate", "field"), BAD, ids=[b[0] for b in BAD])
def test_refusals_name_the_field(name: str, mutate: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(mutate(_base()))
    assert caught.value.field == field
    assert caught.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)


@given(key=st.sampled_from(["version", "status", "alerts", "groupKey", "truncatedAlerts",
                            "groupLabels", "externalURL"]), value=json_values)
def test_mutated_payload_is_parsed_or_refused(key: str, value: Any) -> None:
    """Any JSON value in any field gives a notification or a PayloadError, never a crash."""
    body = _base() | {key: value}
    with contextlib.suppress(PayloadError):
        parse_notification(body)


@given(alert=st.dictionaries(
    st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                     "fingerprint"]), json_values))
def test_mutated_alert_is_parsed_or_refused(alert: dict[str, Any]) -> None:
    with contextlib.suppress(PayloadError):
        parse_notification(_base() | {"alerts": [alert]})
