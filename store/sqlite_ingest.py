"""The ingest transaction: alerts upserted by fingerprint, incidents opened, updated or
resolved, timelines appended and notifications scheduled, on one SQLite connection.

It runs inside the group-commit writer's transaction, so everything here is atomic.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from pagerd.models import Alert, AlertStatus, IncidentState
from pagerd.store import sqlite_escalation
from pagerd.store.base import IngestBatch, IngestResult, RouteTarget
from pagerd.store.sqlite_rows import append, dumps


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class _Batch:
    """What one batch learns as it goes: open incidents by key, and the per-incident work
    done once at the end rather than once per alert (a storm's alerts share incidents)."""

    result: IngestResult = field(default_factory=IngestResult)
    # key -> [incident id, severity rank, pinned, state] of the open incident with that key
    open: dict[str, list[Any]] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    changes: dict[tuple[int, str], float] = field(default_factory=dict)

    def flush(self, conn: sqlite3.Connection, now: float) -> None:
        for incident_id in self.touched:
            conn.execute("UPDATE incidents SET updated_at = ? WHERE id = ?", (now, incident_id))
        for (incident_id, receiver), group_interval in self.changes.items():
            schedule_change(conn, incident_id, receiver, now, group_interval)


def apply_ingest(conn: sqlite3.Connection, batch: IngestBatch, now: float) -> IngestResult:
    """Apply one intake batch; see the module docstring."""
    work = _Batch()
    for item in batch.items:
        outcome = _upsert_alert(conn, item.alert, item.suppressed, now)
        work.result.count(outcome)
        if outcome == "duplicate":
            continue
        for target in item.targets:
            if not target.opens_incident:
                continue
            if item.alert.status is AlertStatus.FIRING:
                _join_incident(conn, item.alert, target, now, work)
            else:
                # A resolution may close the incident: forget what the batch knew of it.
                work.open.pop(target.key, None)
                _leave_incident(conn, item.alert, target, now, work.result, batch.partial)
    work.flush(conn, now)
    return work.result


def _upsert_alert(conn: sqlite3.Connection, alert: Alert, suppressed: bool, now: float) -> str:
    labels = dumps(alert.labels)
    annotations = dumps(alert.annotations)
    starts_at = _iso(alert.starts_at)
    row = conn.execute(
        "SELECT status, starts_at, labels, annotations, suppressed FROM alerts"
        " WHERE fingerprint = ?",
        (alert.fingerprint,),
    ).fetchone()
    if row == (alert.status.value, starts_at, labels, annotations, 0):
        return "duplicate"
    if row is not None and row[4] and suppressed and row[0] == alert.status.value:
        # Still silenced: nothing to do until the silence ends.
        return "duplicate"
    conn.execute(
        "INSERT INTO alerts (fingerprint, integration, status, labels, annotations, starts_at,"
        " ends_at, generator_url, stateless, suppressed, source, received_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status,"
        " labels = excluded.labels, annotations = excluded.annotations,"
        " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
        " generator_url = excluded.generator_url, source = excluded.source,"
        " suppressed = excluded.suppressed,"
        " updated_at = excluded.updated_at",
        (
            alert.fingerprint, alert.integration, alert.status.value, labels, annotations,
            starts_at, _iso(alert.ends_at), alert.generator_url, int(alert.stateless),
            int(suppressed), dumps(alert.source), now, now,
        ),
    )
    if row is None:
        return "new"
    if alert.status is AlertStatus.RESOLVED:
        return "resolved" if row[0] == AlertStatus.FIRING.value else "updated"
    return "updated"


def _join_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, now: float, work: _Batch,
) -> int:
    known = work.open.get(target.key)
    if known is None:
        row = conn.execute(
            "SELECT id, severity_rank, severity_pinned, state FROM incidents"
            " WHERE key = ? AND state != 'resolved'",
            (target.key,),
        ).fetchone()
        if row is None:
            incident_id = _open_incident(conn, alert, target, now, work.result)
            work.open[target.key] = [incident_id, target.severity_rank,
                                     int(target.details is not None), "triggered"]
            return incident_id
        known = work.open[target.key] = list(row)

    incident_id, rank, pinned, state = known
    member = conn.execute(
        "SELECT status FROM incident_alerts WHERE incident_id = ? AND fingerprint = ?",
        (incident_id, alert.fingerprint),
    ).fetchone()
    _upsert_member(conn, incident_id, alert, target)
    kind = "alert.updated" if member == ("firing",) else "alert.firing"
    append(conn, incident_id, now, kind, alert.integration, _alert_entry(alert, target))
    if kind == "alert.firing" and state == "acknowledged":
        sqlite_escalation.inform_acknowledger(conn, incident_id, alert.fingerprint, now)

    if target.severity_rank < rank and not pinned:
        _raise_severity(conn, incident_id, target, now, alert.integration)
        known[1] = target.severity_rank
    work.touched.add(incident_id)
    if target.notify:
        work.changes[(incident_id, target.receiver)] = target.group_interval
    _arm_auto_resolve(conn, incident_id, target, now)
    return int(incident_id)


def _arm_auto_resolve(
    conn: sqlite3.Connection, incident_id: int, target: RouteTarget, now: float
) -> None:
    """(Re)start the quiet period after which a stateless incident resolves itself."""
    if target.auto_resolve_after is None:
        return
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
        " VALUES ('auto_resolve', ?, '', ?, ?) ON CONFLICT (kind, incident_id, target)"
        " DO UPDATE SET due_at = excluded.due_at",
        (incident_id, now + target.auto_resolve_after, now),
    )


def _open_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, now: float,
    result: IngestResult,
) -> int:
    title = alert.annotations.get("summary") or alert.labels.get("alertname", "")
    cursor = conn.execute(
        "INSERT INTO incidents (key, route_id, receiver, group_labels, state, severity,"
        " severity_rank, owner, escalation_policy, title, opened_at, updated_at, details,"
        " severity_pinned)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            target.key, target.route_id, target.receiver, dumps(target.group_labels),
            IncidentState.TRIGGERED.value, target.severity, target.severity_rank,
            target.owner, target.escalation_policy, title, now, now,
            dumps(target.details or {}), int(target.details is not None),
        ),
    )
    incident_id = int(cursor.lastrowid or 0)
    _upsert_member(conn, incident_id, alert, target)
    append(conn, incident_id, now, "incident.opened", alert.integration, {
        "route": target.route_id, "receiver": target.receiver, "severity": target.severity,
        "owner": target.owner, "group_labels": target.group_labels,
    })
    append(conn, incident_id, now, "alert.firing", alert.integration, _alert_entry(alert, target))
    if target.notify:
        conn.execute(
            "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
            " VALUES ('notify', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (incident_id, target.receiver, now + target.group_wait, now),
        )
    _arm_auto_resolve(conn, incident_id, target, now)
    if target.escalation_policy:
        # Paging waits for no one but group_wait (0 s by default).
        sqlite_escalation.start(conn, incident_id, target.escalation_policy,
                                now + target.group_wait, now)
    result.opened.append(incident_id)
    return incident_id


def _leave_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, now: float,
    result: IngestResult, partial: bool,
) -> None:
    rows = conn.execute(
        "SELECT i.id FROM incident_alerts AS m JOIN incidents AS i ON i.id = m.incident_id"
        " WHERE m.fingerprint = ? AND i.key = ? AND i.state != 'resolved'",
        (alert.fingerprint, target.key),
    ).fetchall()
    for (incident_id,) in rows:
        _upsert_member(conn, incident_id, alert, target)
        append(conn, incident_id, now, "alert.resolved", alert.integration,
               _alert_entry(alert, target))
        still_firing = conn.execute(
            "SELECT 1 FROM incident_alerts WHERE incident_id = ? AND status = 'firing' LIMIT 1",
            (incident_id,),
        ).fetchone()
        if still_firing is None and not partial:
            resolve_incident(conn, incident_id, alert.integration, now, result)
        elif target.notify:
            schedule_change(conn, incident_id, target.receiver, now, target.group_interval)


def resolve_incident(
    conn: sqlite3.Connection, incident_id: int, actor: str, now: float, result: IngestResult
) -> None:
    """Resolve an open incident and all its alerts' memberships; notify its receivers."""
    changed = conn.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = ?,"
        " updated_at = ? WHERE id = ? AND state != 'resolved'",
        (now, actor, now, incident_id),
    ).rowcount
    if not changed:
        return
    conn.execute(
        "UPDATE incident_alerts SET status = 'resolved' WHERE incident_id = ?", (incident_id,)
    )
    append(conn, incident_id, now, "incident.resolved", actor, {"by": "source"})
    stopped = sqlite_escalation.stop(conn, incident_id)
    if stopped:
        append(conn, incident_id, now, "escalation.stopped", "pagerd",
               {"by": "resolved", "pending": stopped})
    conn.execute("DELETE FROM timers WHERE incident_id = ? AND kind = 'auto_resolve'",
                 (incident_id,))
    touch_timers(conn, incident_id, now)
    result.resolved.append(incident_id)


def _raise_severity(
    conn: sqlite3.Connection, incident_id: int, target: RouteTarget, now: float, actor: str
) -> None:
    old = conn.execute("SELECT severity FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    conn.execute(
        "UPDATE incidents SET severity = ?, severity_rank = ? WHERE id = ?",
        (target.severity, target.severity_rank, incident_id),
    )
    append(conn, incident_id, now, "incident.severity", actor,
           {"from": old[0], "to": target.severity, "reason": "more severe alert joined"})


def _upsert_member(
    conn: sqlite3.Connection, incident_id: int, alert: Alert, target: RouteTarget
) -> None:
    conn.execute(
        "INSERT INTO incident_alerts (incident_id, fingerprint, status, severity)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (incident_id, fingerprint) DO UPDATE SET"
        " status = excluded.status, severity = excluded.severity",
        (incident_id, alert.fingerprint, alert.status.value, target.severity),
    )


def _alert_entry(alert: Alert, target: RouteTarget) -> dict[str, Any]:
    return {"fingerprint": alert.fingerprint, "severity": target.severity,
            "starts_at": _iso(alert.starts_at)}


def schedule_change(
    conn: sqlite3.Connection, incident_id: int, receiver: str, now: float, group_interval: float
) -> None:
    """Bring a receiver's notification forward after a change, honouring group_interval.

    A timer in flight is marked dirty instead, so the change goes out after it finishes;
    a first notification still waiting out group_wait keeps its time.
    """
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
        " VALUES ('notify', ?, ?, ?, ?) ON CONFLICT (kind, incident_id, target) DO UPDATE SET"
        " dirty = CASE WHEN claimed_until IS NOT NULL THEN 1 ELSE dirty END,"
        " due_at = CASE WHEN claimed_until IS NOT NULL OR last_sent_at IS NULL THEN due_at"
        " ELSE MIN(due_at, MAX(excluded.due_at, last_sent_at + ?)) END",
        (incident_id, receiver, now, now, group_interval),
    )


def touch_timers(conn: sqlite3.Connection, incident_id: int, now: float) -> None:
    """Make every receiver of an incident notify its new state now (or after its send)."""
    conn.execute(
        "UPDATE timers SET"
        " dirty = CASE WHEN claimed_until IS NOT NULL THEN 1 ELSE dirty END,"
        " due_at = CASE WHEN claimed_until IS NOT NULL THEN due_at ELSE MIN(due_at, ?) END"
        " WHERE incident_id = ? AND kind = 'notify'",
        (now, incident_id),
    )
