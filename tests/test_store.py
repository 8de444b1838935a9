"""The SQLite store: upsert by fingerprint, incident lifecycle, timelines and timers."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pagerd.models import Alert, AlertStatus
from pagerd.store.base import IngestBatch, IngestItem, RouteTarget
from pagerd.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


def alert(name: str = "Down", status: str = "firing", starts: int = 0, **labels: str) -> Alert:
    labels = {"alertname": name, **labels}
    return Alert(
        fingerprint=f"{abs(hash(tuple(sorted(labels.items())))):016x}"[:16],
        status=AlertStatus(status), labels=labels, annotations={"summary": f"{name} is down"},
        starts_at=datetime.fromtimestamp(T0 + starts, UTC), integration="test",
    )


def target(key: str = "route:{}", severity: str = "SEV3", rank: int = 2,
           opens: bool = True) -> RouteTarget:
    return RouteTarget(key=key, route_id="route", receiver="hook", group_labels={},
                       severity=severity, severity_rank=rank, owner="platform",
                       escalation_policy=None, opens_incident=opens, group_wait=0,
                       group_interval=300, notify=True)


def batch(*items: tuple[Alert, list[RouteTarget]], partial: bool = False) -> IngestBatch:
    return IngestBatch([IngestItem(a, t) for a, t in items], "test", partial)


class TestIncidentLifecycle:
    """Alerts open, join, resolve and re-open incidents exactly once."""

    async def test_first_alert_opens_incident_and_schedules_notification(
        self, store: SQLiteStore
    ) -> None:
        result = await store.ingest(batch((alert(), [target()])), T0)
        assert result.outcomes == {"new": 1}
        assert len(result.opened) == 1
        incident = await store.incident(result.opened[0])
        assert incident is not None
        assert incident["state"] == "triggered"
        assert [e["kind"] for e in incident["timeline"]] == ["incident.opened", "alert.firing"]
        timers = await store.claim_due(T0, 10, 60)
        assert [(t.kind, t.target) for t in timers] == [("notify", "hook")]

    async def test_resent_alert_changes_nothing(self, store: SQLiteStore) -> None:
        a = alert()
        first = await store.ingest(batch((a, [target()])), T0)
        again = await store.ingest(batch((a, [target()])), T0 + 30)
        assert again.outcomes == {"duplicate": 1}
        assert again.opened == [] and again.resolved == []
        incident = await store.incident(first.opened[0])
        assert incident is not None and len(incident["timeline"]) == 2

    async def test_resolution_resolves_incident_when_all_alerts_resolve(
        self, store: SQLiteStore
    ) -> None:
        a, b = alert(instance="a"), alert(instance="b")
        opened = await store.ingest(batch((a, [target()]), (b, [target()])), T0)
        assert len(opened.opened) == 1  # both in one group
        ra = alert(status="resolved", instance="a")
        partial = await store.ingest(batch((ra, [target()])), T0 + 60)
        assert partial.outcomes == {"resolved": 1} and partial.resolved == []
        rb = alert(status="resolved", instance="b")
        done = await store.ingest(batch((rb, [target()])), T0 + 120)
        assert done.resolved == opened.opened
        incident = await store.incident(opened.opened[0])
        assert incident is not None and incident["state"] == "resolved"

    async def test_refire_with_new_start_opens_new_incident(self, store: SQLiteStore) -> None:
        first = await store.ingest(batch((alert(), [target()])), T0)
        await store.ingest(batch((alert(status="resolved"), [target()])), T0 + 60)
        again = await store.ingest(batch((alert(starts=600), [target()])), T0 + 600)
        assert again.outcomes == {"updated": 1}
        assert again.opened and again.opened != first.opened

    async def test_more_severe_alert_raises_incident(self, store: SQLiteStore) -> None:
        opened = await store.ingest(batch((alert(instance="a"), [target()])), T0)
        await store.ingest(
            batch((alert(instance="b"), [target(severity="SEV1", rank=0)])), T0 + 1)
        incident = await store.incident(opened.opened[0])
        assert incident is not None and incident["severity"] == "SEV1"
        assert "incident.severity" in [e["kind"] for e in incident["timeline"]]

    async def test_null_receiver_keeps_alert_without_incident(self, store: SQLiteStore) -> None:
        result = await store.ingest(batch((alert(), [target(opens=False)])), T0)
        assert result.outcomes == {"new": 1} and result.opened == []
        assert await store.incidents() == []

    async def test_continue_opens_one_incident_per_route(self, store: SQLiteStore) -> None:
        result = await store.ingest(batch((alert(), [target("r1:{}"), target("r2:{}")])), T0)
        assert len(result.opened) == 2

    async def test_partial_group_keeps_incident_open(self, store: SQLiteStore) -> None:
        opened = await store.ingest(batch((alert(instance="a"), [target()]), partial=True), T0)
        # Alertmanager cut other alerts of the group (truncatedAlerts > 0): the one pagerd
        # knows resolving does not resolve the group.
        held = await store.ingest(
            batch((alert(status="resolved", instance="a"), [target()]), partial=True), T0 + 60)
        assert held.resolved == []
        incident = await store.incident(opened.opened[0])
        assert incident is not None and incident["state"] == "triggered"

    async def test_person_acknowledges_and_resolves(self, store: SQLiteStore) -> None:
        opened = await store.ingest(batch((alert(), [target()])), T0)
        incident_id = opened.opened[0]
        assert await store.set_state(incident_id, "acknowledged", "api:alice", T0 + 5)
        assert not await store.set_state(incident_id, "acknowledged", "api:bob", T0 + 6)
        assert await store.set_state(incident_id, "resolved", "api:alice", T0 + 9)
        incident = await store.incident(incident_id)
        assert incident is not None
        assert (incident["acknowledged_by"], incident["resolved_by"]) == ("api:alice",) * 2


class TestTimers:
    """A due timer is claimed once, finished or re-armed, and survives restarts."""

    async def test_claimed_once(self, store: SQLiteStore) -> None:
        await store.ingest(batch((alert(), [target()])), T0)
        first, second = await asyncio.gather(
            store.claim_due(T0, 10, 60), store.claim_due(T0, 10, 60))
        assert len(first) + len(second) == 1

    async def test_finish_rearms_for_repeat(self, store: SQLiteStore) -> None:
        await store.ingest(batch((alert(), [target()])), T0)
        (timer,) = await store.claim_due(T0, 10, 60)
        await store.finish_timer(timer, T0 + 1, kind="notification.sent", entry={}, digest="d",
                                 next_due=T0 + 3600, dirty_due=T0 + 301)
        assert await store.claim_due(T0 + 3599, 10, 60) == []
        (again,) = await store.claim_due(T0 + 3600, 10, 60)
        assert again.generation == timer.generation + 1 and again.last_digest == "d"

    async def test_change_during_send_marks_dirty(self, store: SQLiteStore) -> None:
        await store.ingest(batch((alert(instance="a"), [target()])), T0)
        (timer,) = await store.claim_due(T0, 10, 60)
        await store.ingest(batch((alert(instance="b"), [target()])), T0 + 1)
        await store.finish_timer(timer, T0 + 2, kind="notification.sent", entry={}, digest="d",
                                 next_due=T0 + 3600, dirty_due=T0 + 302)
        (again,) = await store.claim_due(T0 + 302, 10, 60)
        assert again.id == timer.id

    async def test_retry_releases_claim(self, store: SQLiteStore) -> None:
        await store.ingest(batch((alert(), [target()])), T0)
        (timer,) = await store.claim_due(T0, 10, 60)
        await store.retry_timer(timer, T0 + 1, T0 + 10, {"reason": "timeout"})
        (again,) = await store.claim_due(T0 + 10, 10, 60)
        assert again.attempts == 2

    async def test_claim_voided_by_restart(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "pagerd.db")
        await store.open()
        await store.ingest(batch((alert(), [target()])), T0)
        assert len(await store.claim_due(T0, 10, 600)) == 1
        await store.close()  # as if the process died with the send in flight

        reopened = SQLiteStore(tmp_path / "pagerd.db")
        await reopened.open()
        (timer,) = await reopened.claim_due(T0 + 1, 10, 600)
        assert timer.attempts == 2
        await reopened.close()


async def test_concurrent_ingests_share_commits(store: SQLiteStore) -> None:
    """Many concurrent batches all land; each answered only after its commit."""
    batches = [batch((alert(instance=str(i)), [target(key=f"k{i}")])) for i in range(300)]
    results = await asyncio.gather(*(store.ingest(b, T0) for b in batches))
    assert sum(len(r.opened) for r in results) == 300
    assert len(await store.incidents(limit=1000)) == 300


async def test_failing_operation_does_not_take_others_down(store: SQLiteStore) -> None:
    """One bad write in a group commit fails alone; the others commit."""
    good = [store.ingest(batch((alert(instance=str(i)), [target(key=f"k{i}")])), T0)
            for i in range(5)]

    def broken(_: object) -> None:
        raise ValueError("a bug in one operation")

    assert store._writer is not None
    bad = store._writer.submit(broken)
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], ValueError)
    assert all(len(r.opened) == 1 for r in results[:-1])  # type: ignore[union-attr]
    assert len(await store.incidents()) == 5


async def test_the_targets_watcher_reads_only_incidents_that_may_be_due(
    store: SQLiteStore,
) -> None:
    """Old enough, or of a level that wants a comms manager; with the marks already made."""
    old = await store.ingest(batch((alert("Old"), [target("old", "SEV3")])), T0)
    await store.ingest(batch((alert("New"), [target("new", "SEV3")])), T0 + 600)
    talk = await store.ingest(batch((alert("Talk"), [target("talk", "SEV1", 0)])), T0 + 600)
    await store.mark_target(old.opened[0], "ack", "warning", T0 + 300, {})

    watched = await store.watched_incidents(T0 + 300, ["SEV1"])

    assert [(i["id"], i["marked"]) for i in watched] == [
        (old.opened[0], {"ack:warning"}), (talk.opened[0], set())]
    assert await store.watched_incidents(T0 + 300, []) == watched[:1]
    # At the very instant a warning falls due, as the watcher's check counts it.
    assert [i["id"] for i in await store.watched_incidents(T0, [])] == [old.opened[0]]


async def queued_together(store: SQLiteStore, *calls: Any) -> list[Any]:
    """Run store calls so that they wait for one commit: the writer is held busy while
    they queue, then let go."""
    started, held = threading.Event(), threading.Event()

    def hold(_: object) -> None:
        started.set()
        held.wait(5)

    assert store._writer is not None
    busy = store._writer.submit(hold)
    await asyncio.to_thread(started.wait, 5)
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0)  # each call runs up to its submit, then waits for the commit
    assert store._writer.pending == len(calls)
    held.set()
    await busy
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_requests_queued_for_one_commit_are_applied_in_one_call_each_with_its_result(
    store: SQLiteStore,
) -> None:
    """Merged, they are applied in order: the repeat of an alert is a duplicate, and each
    request's result speaks for its own alerts."""
    first, repeat, other = await queued_together(
        store,
        store.ingest(batch((alert(instance="a"), [target("k")])), T0),
        store.ingest(batch((alert(instance="a"), [target("k")])), T0),
        store.ingest(batch((alert(instance="b"), [target("k")]),
                           (alert(instance="c"), [target("j")])), T0 + 0.2),
    )

    assert (first.outcomes, repeat.outcomes, other.outcomes) == (
        {"new": 1}, {"duplicate": 1}, {"new": 2})
    assert (len(first.opened), repeat.opened, len(other.opened)) == (1, [], 1)
    incidents = await store.incidents()
    assert sorted(len(i["alerts"]) for i in incidents) == [1, 2]


async def test_a_bad_request_merged_with_others_fails_alone(store: SQLiteStore) -> None:
    """Its merged call fails, so each request is applied again on its own."""
    unstorable = alert(instance="bad")
    unstorable.labels["team"] = object()  # type: ignore[assignment]
    results = await queued_together(
        store,
        store.ingest(batch((alert(instance="a"), [target("a")])), T0),
        store.ingest(batch((unstorable, [target("bad")])), T0),
        store.ingest(batch((alert(instance="b"), [target("b")])), T0),
    )

    assert isinstance(results[1], TypeError)
    assert [len(r.opened) for r in (results[0], results[2])] == [1, 1]
    assert len(await store.incidents()) == 2


async def test_memberships_of_many_incidents_are_read_in_one_batch(store: SQLiteStore) -> None:
    """A batch whose alerts join several open incidents learns, for each pair, whether the
    alert is a member already: a member that fires again is an update, a newcomer fires,
    and an alert that is a member of one incident is still new to another."""
    a, b = alert(instance="a"), alert(instance="b")
    await store.ingest(batch((a, [target("k")]), (b, [target("j")])), T0)
    again_a = alert(instance="a", starts=5)  # a new start: not a duplicate
    c = alert(instance="c")
    result = await store.ingest(batch((again_a, [target("k"), target("j")]),
                                      (c, [target("k")])), T0 + 10)

    assert result.outcomes == {"updated": 1, "new": 1}
    kinds = {}
    for incident in await store.incidents():
        full = await store.incident(incident["id"])
        assert full is not None
        kinds[incident["id"]] = [(e["kind"], e["fingerprint"])
                                 for e in full["timeline"] if e["kind"].startswith("alert.")]
    assert sorted(kinds.values()) == sorted([
        [("alert.firing", a.fingerprint), ("alert.updated", a.fingerprint),
         ("alert.firing", c.fingerprint)],
        [("alert.firing", b.fingerprint), ("alert.firing", a.fingerprint)],
    ])


async def test_memberships_past_one_statement_and_repeated_in_a_batch(
        store: SQLiteStore) -> None:
    """300 members (more than one statement's worth of pairs), one of them twice in the
    batch: each is known as a member, so each fires again as an update."""
    members = [alert(instance=str(n)) for n in range(300)]
    await store.ingest(batch(*((a, [target("k")]) for a in members)), T0)
    again = [alert(instance=str(n), starts=5) for n in range(300)]
    result = await store.ingest(batch(*((a, [target("k")]) for a in [*again, again[0]])),
                                T0 + 10)

    assert result.outcomes == {"updated": 300, "duplicate": 1}
    (incident,) = await store.incidents()
    full = await store.incident(incident["id"])
    assert full is not None
    kinds = [e["kind"] for e in full["timeline"] if e["kind"].startswith("alert.")]
    assert (kinds.count("alert.firing"), kinds.count("alert.updated")) == (300, 300)


async def test_open_incidents_with_an_alert_are_found_without_a_fingerprint_index(
    store: SQLiteStore,
) -> None:
    """Memberships have no index by fingerprint: the open incidents are searched instead."""
    down, other = alert(instance="a"), alert(instance="b")
    first = await store.ingest(batch((down, [target("k"), target("j")])), T0)
    await store.ingest(batch((other, [target("m")])), T0)
    await store.ingest(batch((alert(instance="a", status="resolved"), [target("j")])), T0 + 1)

    assert await store.open_incidents_with(down.fingerprint) == first.opened[:1]
    assert await store.open_incidents_with("0123456789abcdef") == []


def test_multi_row_statements_come_in_power_of_two_runs(tmp_path: Path) -> None:
    """Every batch size maps to a few SQL texts, which the statement cache can keep."""
    import sqlite3

    from pagerd.store.sqlite_rows import execute_values

    conn = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT)")
    run_lengths: set[int] = set()
    conn.set_trace_callback(
        lambda sql: run_lengths.add(sql.split(" VALUES ")[1].count("(")))
    total = 0
    for size in range(1, 260):
        rows = [(total + n, "x") for n in range(size)]
        found = execute_values(conn, "INSERT INTO t (n, v)", rows, "RETURNING n")
        assert [n for (n,) in found] == [n for n, _ in rows]
        total += size

    assert conn.execute("SELECT count(*) FROM t").fetchone() == (total,)
    assert run_lengths == {1, 2, 4, 8, 16, 32, 64, 128, 256}
