"""Hypothesis: any JSON, and every fixture mutated, gives an AzureParse or a PayloadError.

Never another exception (which the HTTP layer would answer with a 500), and never the parser
fallback either: a payload that only survives through the "parser_error" safety net counts
as a failure here, so the net cannot hide a bug from these tests.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_azure_fixtures import AZURE, CASES, load

from pagerd.receivers.azure import AzureParse, parse_azure
from pagerd.receivers.errors import PayloadError

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")

SCHEMA_IDS = [
    "azureMonitorCommonAlertSchema",
    "AzureMonitorMetricAlert",
    "Microsoft.Insights/activityLogs",
    "Microsoft.Insights/LogAlert",
    "AIP Budget Notification",
]

# Values json.loads can produce (NaN and infinities included: Python's decoder accepts them).
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)

FIXTURE_BODIES = [load(case[0]) for case in CASES]


def check(payload: object) -> None:
    """Parse `payload` and check every invariant of the result."""
    try:
        parsed = parse_azure(payload)
    except PayloadError as error:
        assert 400 <= error.status < 500
        assert isinstance(error.field, str) and error.field
        return
    assert isinstance(parsed, AzureParse)
    assert parsed.notes.get("reason") != "parser_error"
    assert parsed.alerts
    for alert in parsed.alerts:
        assert FINGERPRINT.match(alert.fingerprint)
        for name, value in alert.labels.items():
            assert LABEL_NAME.match(name), name
            assert isinstance(value, str) and value
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.annotations.items())
        for stamp in (alert.starts_at, alert.ends_at):
            assert stamp is None or stamp.tzinfo is not None
    # Deterministic: a retried delivery is the same alert.
    assert parse_azure(copy.deepcopy(payload)) == parsed


@given(json_values)
def test_any_json(payload: Any) -> None:
    check(payload)


@given(st.sampled_from(SCHEMA_IDS), json_values, json_values)
def test_schema_with_any_data(schema: str, data: Any, extra: Any) -> None:
    """A known schemaId with arbitrary contents."""
    check({"schemaId": schema, "data": data, "context": extra})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (object keys and array indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutate(body: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "stringify":
        parent[last] = json.dumps(parent[last])
    else:  # "wrap": an object where a scalar was, or the reverse
        parent[last] = [parent[last]]
    return body


@given(st.data())
def test_mutated_fixture(data: st.DataObject) -> None:
    """A public sample with a few fields deleted, retyped or replaced by any JSON."""
    body = copy.deepcopy(data.draw(st.sampled_from(FIXTURE_BODIES)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(body)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["delete", "replace", "stringify", "wrap"]))
        value = data.draw(json_values) if action == "replace" else None
        body = _mutate(body, path, action, value)
    check(body)


@given(st.data())
def test_fixture_with_odd_strings(data: st.DataObject) -> None:
    """Every string field of a sample replaced by arbitrary text (times, ids, enums)."""
    body = copy.deepcopy(data.draw(st.sampled_from(FIXTURE_BODIES)))
    strings = [p for p in _paths(body) if isinstance(_get(body, p), str)]
    for path in data.draw(st.lists(st.sampled_from(strings), max_size=4)) if strings else []:
        body = _mutate(body, path, "replace", data.draw(st.text(max_size=30)))
    check(body)


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


def test_fixtures_are_loaded() -> None:
    """The mutation tests have every sample to start from."""
    assert len(FIXTURE_BODIES) == len(list(AZURE.glob("*/*.json")))
