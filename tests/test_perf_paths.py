"""Behaviour of the fast paths: batched ingest statements, routing lookups, quick sends.

Each test pins down what a fast path must keep from the plain one (order of timeline
entries, outcomes of alerts repeated within one batch, resolutions amid firing alerts),
never how fast it is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pagerd.models import Alert, AlertStatus
from pagerd.store.base import IngestBatch, IngestItem, RouteTarget
from pagerd.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


def alert(instance: str, status: str = "firing", summary: str = "down",
          stateless: bool = False) -> Alert:
    return Alert(
        fingerprint=f"{abs(hash(instance)):016x}"[:16], status=AlertStatus(status),
        labels={"alertname": "Down", "instance": instance}, annotations={"summary": summary},
        starts_at=datetime.fromtimestamp(T0, UTC), integration="test", stateless=stateless,
    )


def target(severity: str = "SEV3", rank: int = 2, key: str = "route:{}",
           auto_resolve_after: float | None = None) -> RouteTarget:
    return RouteTarget(key=key, route_id="route", receiver="hook", group_labels={},
                       severity=severity, severity_rank=rank, owner=None,
                       escalation_policy=None, opens_incident=True, group_wait=0,
                       group_interval=300, notify=True, auto_resolve_after=auto_resolve_after)


def batch(*items: tuple[Alert, RouteTarget]) -> IngestBatch:
    return IngestBatch([IngestItem(a, [t]) for a, t in items], "test")


async def kinds(store: SQLiteStore, incident_id: int) -> list[str]:
    incident = await store.incident(incident_id)
    assert incident is not None
    return [entry["kind"] for entry in incident["timeline"]]


async def test_a_large_batch_keeps_every_alert_and_the_order_of_its_timeline(
    store: SQLiteStore,
) -> None:
    # More alerts than one statement takes: the rows are split, the order is not.
    alerts = [alert(f"host-{i}") for i in range(1200)]
    result = await store.ingest(batch(*((a, target()) for a in alerts)), T0)
    assert result.outcomes == {"new": 1200} and len(result.opened) == 1
    incident = await store.incident(result.opened[0])
    assert incident is not None and len(incident["alerts"]) == 1200
    timeline = incident["timeline"]
    assert timeline[0]["kind"] == "incident.opened"
    assert [e["fingerprint"] for e in timeline[1:]] == [a.fingerprint for a in alerts]
    again = await store.ingest(batch(*((a, target()) for a in alerts)), T0 + 1)
    assert again.outcomes == {"duplicate": 1200}


async def test_an_alert_twice_in_one_batch_counts_as_sent_twice(store: SQLiteStore) -> None:
    first, changed = alert("a"), alert("a", summary="still down")
    result = await store.ingest(batch((first, target()), (first, target()),
                                      (changed, target())), T0)
    assert result.outcomes == {"new": 1, "duplicate": 1, "updated": 1}
    assert await kinds(store, result.opened[0]) == [
        "incident.opened", "alert.firing", "alert.updated"]


async def test_a_batch_joining_an_open_incident_knows_its_members(store: SQLiteStore) -> None:
    opened = await store.ingest(batch((alert("a"), target())), T0)
    result = await store.ingest(batch((alert("a", summary="worse"), target()),
                                      (alert("b"), target())), T0 + 1)
    assert result.outcomes == {"updated": 1, "new": 1} and result.opened == []
    assert await kinds(store, opened.opened[0]) == [
        "incident.opened", "alert.firing", "alert.updated", "alert.firing"]


async def test_severity_raised_within_a_batch_follows_the_alert_that_raised_it(
    store: SQLiteStore,
) -> None:
    result = await store.ingest(batch((alert("a"), target()),
                                      (alert("b"), target("SEV1", 0)),
                                      (alert("c"), target("SEV2", 1))), T0)
    incident = await store.incident(result.opened[0])
    assert incident is not None and incident["severity"] == "SEV1"
    assert [(e["kind"], e.get("to")) for e in incident["timeline"]] == [
        ("incident.opened", None), ("alert.firing", None), ("alert.firing", None),
        ("incident.severity", "SEV1"), ("alert.firing", None)]


async def test_a_resolution_amid_firing_alerts_closes_then_reopens(store: SQLiteStore) -> None:
    result = await store.ingest(batch((alert("a"), target()),
                                      (alert("a", "resolved"), target()),
                                      (alert("a", summary="back"), target())), T0)
    assert result.outcomes == {"new": 1, "resolved": 1, "updated": 1}
    assert len(result.opened) == 2 and result.resolved == result.opened[:1]
    assert await kinds(store, result.opened[0]) == [
        "incident.opened", "alert.firing", "alert.resolved", "incident.resolved"]
    assert await kinds(store, result.opened[1]) == ["incident.opened", "alert.firing"]


async def test_stateless_alerts_arm_one_auto_resolve_timer(store: SQLiteStore) -> None:
    arming = target(auto_resolve_after=600)
    await store.ingest(batch((alert("a", stateless=True), arming),
                             (alert("b", stateless=True), arming)), T0)
    assert await store.count_timers("auto_resolve") == 1
    due = await store.claim_due(T0 + 600, 10, 60)
    assert sorted(t.kind for t in due) == ["auto_resolve", "notify"]
