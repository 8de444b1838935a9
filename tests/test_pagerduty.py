"""PagerDuty Events API v2 intake: every shared fixture, a table of refused events, and
hypothesis over mutated events (a PDEvent or a PDEventError, never anything else)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagerd.models import AlertStatus
from pagerd.receivers.errors import PayloadError
from pagerd.receivers.pagerduty import (
    ChangeEvent,
    Link,
    PDEvent,
    PDEventError,
    change_success_body,
    decode_body,
    fingerprint,
    parse_change_event,
    parse_event,
    success_body,
    to_alert,
)

from conftest import FIXTURES

PD = FIXTURES / "pagerduty"
KEY = "e93facc04764012d7bfb002500d5d1a6"
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load(name: str) -> Any:
    return json.loads((PD / name).read_text())


def trigger(**payload: Any) -> dict[str, Any]:
    """A minimal valid trigger; payload fields override the defaults."""
    body = {"summary": "disk full", "source": "db1", "severity": "error"}
    body.update(payload)
    return {"routing_key": KEY, "event_action": "trigger", "payload": body}


# The fixtures.

def test_trigger_fixture_maps_every_field() -> None:
    event = parse_event(load("events-v2-trigger.json"))
    assert (event.action, event.routing_key, event.dedup_key) == ("trigger", KEY, "srv01/mysql")
    assert not event.dedup_key_generated
    assert event.client == "Sample Monitoring Service"
    assert event.links == (Link("http://pagerduty.example.com", "An example link."),)
    assert event.images[0].alt == "An example link with an image"

    alert = to_alert(event, "pd-main")
    assert alert.status is AlertStatus.FIRING
    assert alert.labels == {
        "alertname": "disk", "severity": "critical", "source": "prod-datapipe03.example.com",
        "component": "mysql", "group": "prod-datapipe", "class": "disk",
    }
    assert alert.annotations["summary"] == "DISK at 99% on machine prod-datapipe03.example.com"
    assert json.loads(alert.annotations["custom_details"]) == {
        "free space": "1%", "ping time": "1500ms", "load avg": 0.75,
    }
    assert alert.starts_at is not None
    assert alert.starts_at.isoformat() == "2015-07-17T08:42:58.315000+00:00"
    assert alert.generator_url == "https://monitoring.service.com"
    assert alert.integration == "pd-main"
    assert alert.source["dedup_key"] == "srv01/mysql"
    assert KEY not in json.dumps(alert.source)
    expected = hashlib.sha256(b"pd-main\x00srv01/mysql").hexdigest()[:16]
    assert alert.fingerprint == expected


def test_acknowledge_fixture_names_the_trigger_alert() -> None:
    event = parse_event(load("events-v2-acknowledge.constructed.json"))
    assert (event.action, event.dedup_key, event.payload) == ("acknowledge", "srv01/mysql", None)
    assert event.fingerprint("pd-main") == fingerprint("pd-main", "srv01/mysql")
    with pytest.raises(ValueError, match="acknowledge"):
        to_alert(event, "pd-main")


def test_resolve_fixture_resolves_the_trigger_alert() -> None:
    triggered = to_alert(parse_event(load("events-v2-trigger.json")), "pd-main")
    alert = to_alert(parse_event(load("events-v2-resolve.constructed.json")), "pd-main")
    assert alert.status is AlertStatus.RESOLVED
    assert alert.fingerprint == triggered.fingerprint
    assert alert.labels == {}


def test_the_same_dedup_key_through_another_integration_is_another_alert() -> None:
    assert fingerprint("pd-main", "srv01/mysql") != fingerprint("pd-other", "srv01/mysql")


def test_success_body_is_the_documented_202_body() -> None:
    assert success_body("srv01/HTTP") == load("events-v2-response-202-success.json")


def test_unparseable_json_gets_the_documented_error_body() -> None:
    with pytest.raises(PDEventError) as caught:
        decode_body(b'{"routing_key": ')
    assert caught.value.status == 400
    assert caught.value.response_body() == load("events-v2-response-error.json")


def test_an_oversized_body_is_refused_before_decoding() -> None:
    with pytest.raises(PDEventError) as caught:
        decode_body(b" " * (512 * 1024 + 1))
    assert caught.value.response_body()["status"] == "invalid event"


def test_change_event_fixture() -> None:
    event = parse_change_event(load("change-events-v2-example.json"))
    assert event == ChangeEvent(
        routing_key="737ea619db564d41bd9824063e1f6b08",
        summary="Build Success: Increase snapshot create timeout to 30 seconds",
        source="prod-build-agent-i-0b148d1040d565540",
        timestamp=event.timestamp,
        custom_details={"build_state": "passed", "build_number": "220", "run_time": "1236s"},
        links=(Link("https://buildpipeline.com/pagerduty/deployment/builds/220",
                    "View in Build Pipeline"),),
    )
    assert event.timestamp is not None and event.timestamp.year == 2015
    assert change_success_body() == {"status": "success", "message": "Event processed"}


# Dedup keys.

def test_a_trigger_without_dedup_key_gets_one_and_returns_it() -> None:
    event = parse_event(trigger(), new_dedup_key=lambda: "generated-1")
    assert (event.dedup_key, event.dedup_key_generated) == ("generated-1", True)
    assert success_body(event.dedup_key)["dedup_key"] == "generated-1"


def test_generated_dedup_keys_are_unique_uuids() -> None:
    first, second = parse_event(trigger()), parse_event(trigger())
    assert first.dedup_key != second.dedup_key
    assert re.fullmatch(r"[0-9a-f]{32}", first.dedup_key)


def test_payload_of_a_resolve_is_ignored() -> None:
    body = {"routing_key": KEY, "event_action": "resolve", "dedup_key": "k",
            "payload": {"severity": "nonsense"}}
    assert parse_event(body).payload is None


def test_no_class_means_the_default_alertname() -> None:
    alert = to_alert(parse_event(trigger()), "pd")
    assert alert.labels == {"alertname": "PagerDutyEvent", "severity": "error", "source": "db1"}


def test_an_unreadable_timestamp_is_accepted_with_a_warning() -> None:
    event = parse_event(trigger(timestamp="yesterday"))
    assert event.payload is not None and event.payload.timestamp is None
    assert event.warnings and "timestamp" in event.warnings[0]


def test_a_timestamp_without_offset_is_utc() -> None:
    event = parse_event(trigger(timestamp="2024-05-01T10:00:00"))
    assert event.payload is not None and event.payload.timestamp is not None
    assert event.payload.timestamp.utcoffset() is not None


def test_custom_details_of_any_json_type_are_kept_as_text() -> None:
    alert = to_alert(parse_event(trigger(custom_details="free text")), "pd")
    assert alert.annotations["custom_details"] == '"free text"'
    big = to_alert(parse_event(trigger(custom_details={"n": 2**80})), "pd")
    assert json.loads(big.annotations["custom_details"]) == {"n": 2**80}


# Refused events: (name, change to a valid trigger, expected errors in order).

MISSING = object()


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        if value is MISSING:
            node.pop(last, None)
        else:
            node[last] = value
    return change


SEVERITY_CHOICES = ("'payload.severity' is invalid (must be one of the following: "
                    "'critical', 'warning', 'error' or 'info')")
BAD_EVENTS: list[tuple[str, Any, list[str]]] = [
    ("no routing key", _set("routing_key", MISSING), ["'routing_key' is missing or blank"]),
    ("blank routing key", _set("routing_key", "  "), ["'routing_key' is missing or blank"]),
    ("numeric routing key", _set("routing_key", 12),
     ["'routing_key' is invalid (must be a string)"]),
    ("short routing key", _set("routing_key", "abc"),
     ["Length of 'routing_key' is incorrect (should be 32 characters)"]),
    ("routing key with symbols", _set("routing_key", "e+23rschqsESqk9Q6_-g" + "x" * 12),
     ["'routing_key' cannot contain non-alphanumeric characters."]),
    ("short key with symbols", _set("routing_key", "e+23rschqsESqk9Q6_-g"),
     ["Length of 'routing_key' is incorrect (should be 32 characters)",
      "'routing_key' cannot contain non-alphanumeric characters."]),
    ("no event action", _set("event_action", MISSING), ["'event_action' is missing or blank"]),
    ("unknown event action", _set("event_action", "escalate"),
     ["'event_action' is invalid (must be one of the following: "
      "'trigger', 'acknowledge' or 'resolve')"]),
    ("v1 event type", _set("event_action", "TRIGGER"),
     ["'event_action' is invalid (must be one of the following: "
      "'trigger', 'acknowledge' or 'resolve')"]),
    ("no payload", _set("payload", MISSING), ["'payload' is missing or blank"]),
    ("payload a string", _set("payload", "disk full"),
     ["'payload' is invalid (must be an object)"]),
    ("no summary", _set("payload.summary", MISSING), ["'payload.summary' is missing or blank"]),
    ("blank summary", _set("payload.summary", ""), ["'payload.summary' is missing or blank"]),
    ("summary too long", _set("payload.summary", "x" * 1025),
     ["'payload.summary' is too long (maximum is 1024 characters)"]),
    ("summary a number", _set("payload.summary", 5),
     ["'payload.summary' is invalid (must be a string)"]),
    ("no source", _set("payload.source", MISSING), ["'payload.source' is missing or blank"]),
    ("no severity", _set("payload.severity", MISSING),
     ["'payload.severity' is missing or blank"]),
    ("severity upper case", _set("payload.severity", "CRITICAL"), [SEVERITY_CHOICES]),
    ("severity a list", _set("payload.severity", ["critical"]), [SEVERITY_CHOICES]),
    ("class a number", _set("payload.class", 3), ["'payload.class' is invalid (must be a string)"]),
    ("dedup key too long", _set("dedup_key", "k" * 256),
     ["'dedup_key' is too long (maximum is 255 characters)"]),
    ("dedup key a number", _set("dedup_key", 7), ["'dedup_key' is invalid (must be a string)"]),
    ("client a list", _set("client", ["x"]), ["'client' is invalid (must be a string)"]),
    ("links an object", _set("links", {"href": "x"}),
     ["'links' is invalid (must be an array of objects)"]),
    ("link without href", _set("links", [{"text": "t"}]), ["'links[0].href' is missing or blank"]),
    ("link a string", _set("links", ["https://x"]), ["'links[0]' is invalid (must be an object)"]),
    ("image without src", _set("images", [{"alt": "a"}]),
     ["'images[0].src' is missing or blank"]),
    ("everything missing", lambda body: body.clear(),
     ["'routing_key' is missing or blank", "'event_action' is missing or blank"]),
    ("payload with a summary only", _set("payload", {"summary": "s"}),
     ["'payload.source' is missing or blank", "'payload.severity' is missing or blank"]),
]


@pytest.mark.parametrize(("change", "errors"), [case[1:] for case in BAD_EVENTS],
                         ids=[case[0] for case in BAD_EVENTS])
def test_a_bad_event_gets_pagerdutys_error_body(change: Any, errors: list[str]) -> None:
    body = trigger()
    change(body)
    with pytest.raises(PDEventError) as caught:
        parse_event(body)
    assert caught.value.status == 400
    assert caught.value.response_body() == {
        "status": "invalid event", "message": "Event object is invalid", "errors": errors,
    }
    assert caught.value.reason == errors[0]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_follow_up_event_needs_a_dedup_key(action: str) -> None:
    with pytest.raises(PDEventError) as caught:
        parse_event({"routing_key": KEY, "event_action": action})
    assert caught.value.errors == ["'dedup_key' is missing or blank"]
    assert caught.value.field == "dedup_key"


@pytest.mark.parametrize("body", [[], "event", 3, None])
def test_a_body_that_is_not_an_object_is_unrecognized(body: Any) -> None:
    with pytest.raises(PDEventError) as caught:
        parse_event(body)
    assert caught.value.response_body()["status"] == "Unrecognized object"


@pytest.mark.parametrize(("change", "errors"), [
    (lambda b: b.pop("payload"), ["'payload' is missing or blank"]),
    (lambda b: b["payload"].pop("summary"), ["'payload.summary' is missing or blank"]),
    (lambda b: b["payload"].update(source=1), ["'payload.source' is invalid (must be a string)"]),
    (lambda b: b.update(routing_key="short"),
     ["Length of 'routing_key' is incorrect (should be 32 characters)"]),
    (lambda b: b.update(links=[{}]), ["'links[0].href' is missing or blank"]),
])
def test_a_bad_change_event(change: Any, errors: list[str]) -> None:
    body = load("change-events-v2-example.json")
    change(body)
    with pytest.raises(PDEventError) as caught:
        parse_change_event(body)
    assert caught.value.errors == errors


def test_a_change_event_needs_only_key_and_summary() -> None:
    event = parse_change_event({"routing_key": KEY, "payload": {"summary": "deployed v2"}})
    assert (event.summary, event.source, event.links) == ("deployed v2", "", ())


# Hypothesis: any JSON, and the fixtures mutated.

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20,
)
EVENT_FIXTURES = [
    load("events-v2-trigger.json"),
    load("events-v2-acknowledge.constructed.json"),
    load("events-v2-resolve.constructed.json"),
]
KEYS = ["routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links",
        "images", "payload.summary", "payload.source", "payload.severity", "payload.timestamp",
        "payload.component", "payload.group", "payload.class", "payload.custom_details"]
interesting = (json_values | st.sampled_from(["trigger", "acknowledge", "resolve", "critical",
                                              "info", KEY, "", " "]))


def check_event(body: Any) -> None:
    try:
        event = parse_event(body)
    except PayloadError as error:
        assert isinstance(error, PDEventError)
        reply = error.response_body()
        assert reply["status"] in ("invalid event", "Unrecognized object")
        assert reply["errors"] and all(isinstance(text, str) for text in reply["errors"])
        assert error.status == 400 and error.field
        return
    assert isinstance(event, PDEvent)
    assert event.dedup_key and len(event.dedup_key) <= 255
    if event.action == "acknowledge":
        return
    alert = to_alert(event, "pd")
    assert FINGERPRINT.match(alert.fingerprint)
    assert all(LABEL_NAME.match(name) and value for name, value in alert.labels.items())
    if alert.status is AlertStatus.FIRING:
        assert alert.labels["alertname"] and alert.labels["severity"]


@given(json_values)
def test_any_json_is_an_event_or_a_refusal(body: Any) -> None:
    check_event(body)


@given(st.sampled_from(EVENT_FIXTURES),
       st.lists(st.tuples(st.sampled_from(KEYS), st.booleans(), interesting), max_size=4))
def test_mutated_fixtures_are_an_event_or_a_refusal(
    base: dict[str, Any], mutations: list[tuple[str, bool, Any]]
) -> None:
    body = copy.deepcopy(base)
    for path, drop, value in mutations:
        parent, _, key = path.rpartition(".")
        node = body.get(parent) if parent else body
        if not isinstance(node, dict):
            continue
        if drop:
            node.pop(key, None)
        else:
            node[key] = value
    check_event(body)


@given(json_values)
def test_any_json_is_a_change_event_or_a_refusal(body: Any) -> None:
    try:
        event = parse_change_event(body)
    except PDEventError as error:
        assert error.errors
        return
    assert isinstance(event, ChangeEvent) and event.summary.strip()
