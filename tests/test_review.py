"""Post-incident review drafts: targets met or missed, people, impact, timeline, Markdown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pagerd.models import Alert, AlertStatus
from pagerd.review import SECTIONS_TO_WRITE, Targets, epoch, render_markdown, review
from pagerd.store.base import IngestBatch, IngestItem, RouteTarget
from pagerd.store.sqlite import SQLiteStore

T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC
M = 60.0
SEVERITIES = {
    "SEV1": Targets(ack=5 * M, mitigate=30 * M, resolve=60 * M),
    "SEV3": Targets(ack=60 * M, resolve=86400),
}


def incident(**changes: Any) -> dict[str, Any]:
    """An incident shaped as the store reads it: epoch floats, ISO alert times."""
    base: dict[str, Any] = {
        "id": 42, "key": "k", "route_id": "payments", "receiver": "hook",
        "group_labels": {"alertname": "CheckoutErrors"}, "state": "triggered",
        "severity": "SEV1", "owner": "payments", "escalation_policy": None,
        "title": "Checkout errors", "opened_at": T0, "acknowledged_at": None,
        "acknowledged_by": None, "resolved_at": None, "resolved_by": None, "updated_at": T0,
        "alerts": [{
            "fingerprint": "0123456789abcdef", "status": "firing", "severity": "SEV1",
            "labels": {"alertname": "CheckoutErrors", "service": "checkout"},
            "annotations": {"summary": "5% of checkouts fail"},
            "starts_at": "2024-05-01T09:58:00+00:00", "ends_at": None,
            "generator_url": "", "integration": "alertmanager",
        }],
        "timeline": [
            {"at": T0, "kind": "incident.opened", "actor": "alertmanager", "route": "payments"},
        ],
    }
    base.update(changes)
    return base


def acked(minutes: float, by: str = "alice") -> dict[str, Any]:
    return {"state": "acknowledged", "acknowledged_at": T0 + minutes * M, "acknowledged_by": by}


def resolved(minutes: float, by: str = "alertmanager") -> dict[str, Any]:
    return {"state": "resolved", "resolved_at": T0 + minutes * M, "resolved_by": by}


# (name, incident fields, now in minutes, {step: (seconds, outcome)})
RESPONSE_CASES: list[tuple[str, dict[str, Any], float, dict[str, tuple[float | None, str]]]] = [
    ("acked and resolved in time, no mitigation recorded", acked(4) | resolved(50), 120,
     {"acknowledge": (240, "met"), "mitigate": (None, "missed"), "resolve": (3000, "met")}),
    ("resolved within the mitigation target", acked(4) | resolved(25), 120,
     {"acknowledge": (240, "met"), "mitigate": (None, "met"), "resolve": (1500, "met")}),
    ("acked exactly at the target", acked(5) | resolved(70), 120,
     {"acknowledge": (300, "met"), "mitigate": (None, "missed"), "resolve": (4200, "missed")}),
    ("acked late", acked(6), 20,
     {"acknowledge": (360, "missed"), "mitigate": (None, "pending"),
      "resolve": (None, "pending")}),
    ("open, nobody yet, within targets", {}, 3,
     {"acknowledge": (None, "pending"), "mitigate": (None, "pending"),
      "resolve": (None, "pending")}),
    ("open, ack deadline passed", {}, 10,
     {"acknowledge": (None, "missed"), "mitigate": (None, "pending"),
      "resolve": (None, "pending")}),
    ("open past every target", acked(2), 90,
     {"acknowledge": (120, "met"), "mitigate": (None, "missed"),
      "resolve": (None, "missed")}),
    ("source resolved before the ack deadline", resolved(2), 60,
     {"acknowledge": (None, "skipped"), "mitigate": (None, "met"), "resolve": (120, "met")}),
    ("source resolved after the ack deadline, never acked", resolved(30), 60,
     {"acknowledge": (None, "missed"), "mitigate": (None, "met"),
      "resolve": (1800, "met")}),
    ("mitigated on the timeline", acked(3) | resolved(80) | {"timeline": [
        {"at": T0 + 20 * M, "kind": "incident.mitigated", "actor": "alice", "by": "person"},
    ]}, 120,
     {"acknowledge": (180, "met"), "mitigate": (1200, "met"), "resolve": (4800, "missed")}),
    ("mitigated_at field wins over the timeline", acked(3) | {
        "mitigated_at": T0 + 40 * M, "mitigated_by": "bob", "timeline": [
            {"at": T0 + 20 * M, "kind": "incident.mitigated", "actor": "alice"}]}, 45,
     {"acknowledge": (180, "met"), "mitigate": (2400, "missed"),
      "resolve": (None, "pending")}),
    ("unknown severity has no targets", {"severity": "SEV9"} | acked(90) | resolved(100), 120,
     {"acknowledge": (5400, "no_target"), "resolve": (6000, "no_target")}),
    ("no mitigation target and none done: no mitigate row",
     {"severity": "SEV3"} | acked(30) | resolved(60), 120,
     {"acknowledge": (1800, "met"), "resolve": (3600, "met")}),
]


@pytest.mark.parametrize(("fields", "now", "expected"), [case[1:] for case in RESPONSE_CASES],
                         ids=[case[0] for case in RESPONSE_CASES])
def test_response_steps_against_targets(
    fields: dict[str, Any], now: float, expected: dict[str, tuple[float | None, str]]
) -> None:
    draft = review(incident(**fields), severities=SEVERITIES, now=T0 + now * M)
    got = {row["step"]: (row["seconds"], row["outcome"]) for row in draft["response"]}
    assert got == expected


def test_mitigation_judged_at_resolve_says_so() -> None:
    draft = review(incident(**acked(1) | resolved(20)), severities=SEVERITIES, now=T0 + 3600)
    mitigate = next(row for row in draft["response"] if row["step"] == "mitigate")
    assert mitigate["implied_by"] == "resolve" and mitigate["at"] is None


def test_step_rows_name_who_and_when() -> None:
    draft = review(incident(**acked(4, "alice") | resolved(50, "bob")), severities=SEVERITIES,
                   now=T0 + 3600)
    ack = draft["response"][0]
    assert (ack["at"], ack["by"], ack["target_seconds"]) == ("2024-05-01T10:04:00Z", "alice", 300)
    assert draft["response"][-1]["by"] == "bob"


# (name, incident fields, expected impact)
IMPACT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("from the first alert to resolution", resolved(50),
     {"start": "2024-05-01T09:58:00Z", "start_from": "first alert started",
      "end": "2024-05-01T10:50:00Z", "end_from": "resolved", "duration_seconds": 52 * M,
      "ongoing": False}),
    ("ends at mitigation", resolved(50) | {"mitigated_at": T0 + 10 * M},
     {"start": "2024-05-01T09:58:00Z", "start_from": "first alert started",
      "end": "2024-05-01T10:10:00Z", "end_from": "mitigated", "duration_seconds": 12 * M,
      "ongoing": False}),
    ("ongoing", {},
     {"start": "2024-05-01T09:58:00Z", "start_from": "first alert started", "end": None,
      "end_from": None, "duration_seconds": None, "ongoing": True}),
    ("no alert start: from the opening", {"alerts": []} | resolved(5),
     {"start": "2024-05-01T10:00:00Z", "start_from": "opened", "end": "2024-05-01T10:05:00Z",
      "end_from": "resolved", "duration_seconds": 5 * M, "ongoing": False}),
]


@pytest.mark.parametrize(("fields", "expected"), [case[1:] for case in IMPACT_CASES],
                         ids=[case[0] for case in IMPACT_CASES])
def test_impact_window(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    draft = review(incident(**fields), severities=SEVERITIES, now=T0 + 7200)
    assert draft["impact"] == expected


def busy_timeline() -> list[dict[str, Any]]:
    at = lambda minutes: T0 + minutes * M  # noqa: E731
    return [
        {"at": at(0), "kind": "incident.opened", "actor": "alertmanager"},
        {"at": at(0), "kind": "alert.firing", "actor": "alertmanager", "fingerprint": "f1"},
        {"at": at(0.5), "kind": "notification.sent", "actor": "pagerd", "receiver": "slack"},
        {"at": at(1), "kind": "page.sent", "actor": "pagerd", "user": "alice", "method": "sms"},
        {"at": at(3), "kind": "page.sent", "actor": "pagerd", "user": "alice",
         "method": "voice"},
        {"at": at(4), "kind": "incident.acknowledged", "actor": "alice", "by": "person",
         "note": ""},
        {"at": at(6), "kind": "page.sent", "actor": "pagerd", "user": "bob", "method": "sms"},
        {"at": at(7), "kind": "incident.note", "actor": "bob", "text": "rolling back | v2"},
        {"at": at(8), "kind": "incident.severity", "actor": "carol", "by": "person",
         "from": "SEV2", "to": "SEV1"},
        {"at": at(9), "kind": "incident.severity", "actor": "alertmanager", "from": "SEV3",
         "to": "SEV2", "reason": "more severe alert joined"},
        {"at": at(30), "kind": "notification.sent", "actor": "pagerd", "receiver": "slack"},
        {"at": at(50), "kind": "incident.resolved", "actor": "alertmanager", "by": "source"},
    ]


def test_who_was_paged_and_who_responded() -> None:
    draft = review(incident(**acked(4) | resolved(50), timeline=busy_timeline()),
                   severities=SEVERITIES, now=T0 + 7200)
    people = draft["people"]
    assert people["paged"] == [
        {"user": "alice", "first_at": "2024-05-01T10:01:00Z", "pages": 2,
         "via": ["sms", "voice"]},
        {"user": "bob", "first_at": "2024-05-01T10:06:00Z", "pages": 1, "via": ["sms"]},
    ]
    assert people["notified"] == [
        {"receiver": "slack", "first_at": "2024-05-01T10:00:30Z", "count": 2},
    ]
    # The source's resolve and severity raise are not people responding.
    assert [(r["actor"], r["actions"]) for r in people["responders"]] == [
        ("alice", ["incident.acknowledged"]),
        ("bob", ["incident.note"]),
        ("carol", ["incident.severity"]),
    ]
    assert [(c["to"], c["by_person"]) for c in draft["severity_changes"]] == [
        ("SEV1", True), ("SEV2", False),
    ]


def test_the_whole_timeline_is_kept_in_order() -> None:
    timeline = busy_timeline()
    draft = review(incident(timeline=timeline), severities=SEVERITIES, now=T0 + 7200)
    assert [e["kind"] for e in draft["timeline"]] == [e["kind"] for e in timeline]
    note = draft["timeline"][7]
    assert note["offset_seconds"] == 7 * M
    assert note["details"] == {"text": "rolling back | v2"}
    json.dumps(draft)  # JSON-ready for `--format json`


def test_markdown_has_the_facts_and_empty_sections() -> None:
    fields = acked(4) | resolved(50) | {"timeline": busy_timeline(),
                                         "title": "Checkout <script>x</script> | errors"}
    text = render_markdown(review(incident(**fields), severities=SEVERITIES, now=T0 + 7200))
    assert text.startswith("# Post-incident review: #42 Checkout &lt;script&gt;")
    assert "<script>" not in text
    assert "| acknowledge | 2024-05-01 10:04:00 UTC | alice | 4m | 5m | met |" in text
    assert "| alice | 2024-05-01 10:01:00 UTC | 2 | sms, voice |" in text
    assert "rolling back \\| v2" in text
    assert "- Start: 2024-05-01 09:58:00 UTC (first alert started)" in text
    assert "- Duration: 52m" in text
    assert "| 2024-05-01 10:50:00 UTC | +50m | incident.resolved | alertmanager |" in text
    # The sections for people come last and hold nothing but a prompt.
    tail = text.split("## Timeline", 1)[1]
    sections = tail.split("\n## ")[1:]
    assert [s.split("\n", 1)[0] for s in sections] == list(SECTIONS_TO_WRITE)
    for section in sections:
        assert section.split("\n", 1)[1].strip() == "<!-- To be written by the people involved. -->"


def test_markdown_of_a_quiet_open_incident() -> None:
    text = render_markdown(review(incident(), severities=SEVERITIES, now=T0 + 60))
    assert "Nobody was paged." in text and "Nobody responded on the record." in text
    assert "- End: ongoing" in text


@pytest.mark.parametrize(("value", "expected"), [
    (T0, T0),
    (int(T0), T0),
    (datetime(2024, 5, 1, 10, tzinfo=UTC), T0),
    (datetime(2024, 5, 1, 10), T0),
    ("2024-05-01T10:00:00Z", T0),
    ("2024-05-01T12:00:00+02:00", T0),
    ("not a time", None),
    (None, None),
    (True, None),
])
def test_epoch(value: Any, expected: float | None) -> None:
    assert epoch(value) == expected


async def test_reviews_an_incident_read_from_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "pagerd.db")
    await store.open()
    try:
        alert = Alert(
            fingerprint="00000000000000aa", status=AlertStatus.FIRING,
            labels={"alertname": "Down", "severity": "critical"},
            annotations={"summary": "api is down"},
            starts_at=datetime.fromtimestamp(T0 - 120, UTC), integration="alertmanager",
        )
        target = RouteTarget(
            key="k", route_id="api", receiver="hook", group_labels={}, severity="SEV1",
            severity_rank=0, owner="platform", escalation_policy=None, opens_incident=True,
            group_wait=0, group_interval=300, notify=True,
        )
        result = await store.ingest(IngestBatch([IngestItem(alert, [target])], "am"), T0)
        incident_id = result.opened[0]
        await store.append_timeline(incident_id, T0 + 60, "page.sent", "pagerd",
                                    {"user": "alice", "method": "sms"})
        await store.set_state(incident_id, "acknowledged", "alice", T0 + 240)
        await store.set_state(incident_id, "resolved", "alice", T0 + 1800, note="fixed")
        stored = await store.incident(incident_id)
    finally:
        await store.close()
    assert stored is not None
    draft = review(stored, severities=SEVERITIES, now=T0 + 3600)
    assert [(r["step"], r["seconds"], r["outcome"]) for r in draft["response"]] == [
        ("acknowledge", 240, "met"), ("mitigate", None, "met"), ("resolve", 1800, "met"),
    ]
    assert draft["impact"]["start"] == "2024-05-01T09:58:00Z"
    assert [p["user"] for p in draft["people"]["paged"]] == ["alice"]
    assert [r["actor"] for r in draft["people"]["responders"]] == ["alice"]
    assert "| resolve |" in render_markdown(draft)
