"""The ingest transaction: alerts upserted by fingerprint, incidents opened, updated or
resolved, timelines appended and notifications scheduled, on one SQLite connection.

It runs inside the group-commit writer's transaction, so everything here is atomic. Its
statements are per batch, not per alert (alerts read and upserted in one statement each,
memberships and timeline entries likewise), with the outcome of each alert worked out in
order in Python, exactly as alert-by-alert statements would have left it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pagerd.models import Alert, AlertStatus, IncidentState
from pagerd.store import sqlite_escalation
from pagerd.store.base import IngestBatch, IngestItem, IngestResult, RouteTarget
from pagerd.store.sqlite_rows import (
    TIMELINE_INSERT,
    append,
    dumps,
    execute_in,
    execute_values,
)


def _iso(value: datetime | None) -> str | None:
    return _spell(value, value.utcoffset()) if value is not None else None


@lru_cache(maxsize=4096)
def _spell(value: datetime, offset: timedelta | None) -> str:
    # Remembered: a storm's alerts share a few start times, and spelling one costs more
    # than looking it up (three times per alert). The offset is part of the key because
    # equal instants in other zones are equal datetimes, spelled differently.
    return value.isoformat()


_ALERT_INSERT = (
    "INSERT INTO alerts (fingerprint, integration, status, labels, annotations, starts_at,"
    " ends_at, generator_url, stateless, suppressed, source, received_at, updated_at)"
)
_ALERT_UPSERT = (
    "ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status,"
    " labels = excluded.labels, annotations = excluded.annotations,"
    " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
    " generator_url = excluded.generator_url, source = excluded.source,"
    " suppressed = excluded.suppressed,"
    " updated_at = excluded.updated_at"
)
# The memberships of (incident id, fingerprint) pairs, each looked up by primary key: the
# pairs are the outer loop (CROSS JOIN keeps it so), never a scan of the memberships.
_MEMBERS_SELECT = "SELECT m.incident_id, m.fingerprint, m.status FROM ("
_MEMBERS_JOIN = (
    ") AS asked CROSS JOIN incident_alerts AS m"
    " ON m.incident_id = asked.column1 AND m.fingerprint = asked.column2"
)
_MEMBER_INSERT = "INSERT INTO incident_alerts (incident_id, fingerprint, status, severity)"
_MEMBER_UPSERT = (
    "ON CONFLICT (incident_id, fingerprint) DO UPDATE SET"
    " status = excluded.status, severity = excluded.severity"
)


@dataclass
class _Batch:
    """What one batch learns as it goes: open incidents by key, and the per-incident work
    done once at the end rather than once per alert (a storm's alerts share incidents).

    Timeline entries and memberships are buffered and written in one statement each at the
    end (in order, so timeline ids keep the order of events): nothing in between reads
    them back.
    """

    now: float
    # The result of the request whose alert is being applied (a call may apply several
    # requests' batches, queued together, in order).
    result: IngestResult = field(default_factory=IngestResult)
    # key -> [incident id, severity rank, pinned, state, severity] of its open incident
    open: dict[str, list[Any]] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    changes: dict[tuple[int, str], float] = field(default_factory=dict)
    # (incident id, fingerprint) -> membership status, as the batch has left it
    members: dict[tuple[int, str], str] = field(default_factory=dict)
    # incidents whose memberships of this batch's alerts are all in `members`
    loaded: set[int] = field(default_factory=set)
    member_rows: dict[tuple[int, str], tuple[int, str, str, str]] = field(default_factory=dict)
    timeline: list[tuple[int, float, str, str, str]] = field(default_factory=list)
    # keys read and found to have no open incident
    absent: set[str] = field(default_factory=set)
    # incidents whose auto-resolve timer this batch has (re)armed already
    armed: set[int] = field(default_factory=set)

    def member(self, incident_id: int, alert: Alert, target: RouteTarget) -> None:
        key = (incident_id, alert.fingerprint)
        self.members[key] = alert.status.value
        self.member_rows[key] = (incident_id, alert.fingerprint, alert.status.value,
                                 target.severity)

    def append(self, incident_id: int, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.timeline.append((incident_id, self.now, kind, actor, dumps(data)))

    def write_buffered(self, conn: sqlite3.Connection) -> None:
        """Write the buffered memberships and timeline entries."""
        execute_values(conn, _MEMBER_INSERT, list(self.member_rows.values()), _MEMBER_UPSERT)
        execute_values(conn, TIMELINE_INSERT, self.timeline)
        self.member_rows.clear()
        self.timeline.clear()

    def flush(self, conn: sqlite3.Connection) -> None:
        now = self.now
        self.write_buffered(conn)
        execute_in(conn, "UPDATE incidents SET updated_at = ? WHERE id", list(self.touched),
                   params=(now,))
        # One statement per run of equal group_interval, in order (new timers keep their
        # order of ids).
        rows: list[tuple[str, int, str, float, float]] = []
        interval = 0.0
        for (incident_id, receiver), group_interval in self.changes.items():
            if rows and group_interval != interval:
                execute_values(conn, _SCHEDULE_INSERT, rows, _SCHEDULE_UPSERT, (interval,))
                rows = []
            interval = group_interval
            rows.append(("notify", incident_id, receiver, now, now))
        execute_values(conn, _SCHEDULE_INSERT, rows, _SCHEDULE_UPSERT, (interval,))


# One alert of a call: the item, the result of the request it came in, and whether that
# request's group was truncated at its source.
_Tagged = tuple[IngestItem, IngestResult, bool]


def apply_ingests(
    conn: sqlite3.Connection, batches: list[IngestBatch], now: float
) -> list[IngestResult]:
    """Apply several requests' batches as one, in order, each with its own result.

    Requests queued for the same commit share these statements: a few per call rather than
    a few per request, which is what one alert per request costs otherwise.
    """
    work = _Batch(now)
    results = [IngestResult() for _ in batches]
    tagged = [(item, result, batch.partial)
              for batch, result in zip(batches, results, strict=True) for item in batch.items]
    live = _upsert_alerts(conn, tagged, now)
    resolving = any(
        item.alert.status is not AlertStatus.FIRING and any(t.opens_incident for t in item.targets)
        for item, _, _ in live
    )
    if resolving:
        _apply_in_order(conn, live, work)
    else:
        _apply_firing(conn, live, work)
    work.flush(conn)
    return results


def _apply_in_order(conn: sqlite3.Connection, live: list[_Tagged], work: _Batch) -> None:
    """Incidents for a batch with resolutions: alert by alert, since a resolution may close
    an incident that a later alert of the batch then opens anew."""
    now = work.now
    for item, result, partial in live:
        work.result = result
        for target in item.targets:
            if not target.opens_incident:
                continue
            if item.alert.status is AlertStatus.FIRING:
                _join_incident(conn, item.alert, target, work)
            else:
                # A resolution may close the incident: forget what the batch knew of it.
                work.open.pop(target.key, None)
                work.write_buffered(conn)
                _leave_incident(conn, item.alert, target, now, result, partial)
                # It wrote memberships itself: read them from the database again.
                work.members.clear()
                work.loaded.clear()


def _apply_firing(conn: sqlite3.Connection, live: list[_Tagged], work: _Batch) -> None:
    """Incidents for a batch of firing alerts: the open incidents and the memberships they
    already have are read in one query each, then every alert joins in order."""
    joins = [(item.alert, target, result) for item, result, _ in live
             for target in item.targets if target.opens_incident]
    if not joins:
        return
    keys = list(dict.fromkeys(target.key for _, target, _ in joins))
    for key, *row in execute_in(
        conn, "SELECT key, id, severity_rank, severity_pinned, state, severity FROM incidents"
        " WHERE key", keys, "AND state != 'resolved'",
    ):
        work.open[key] = row
    work.absent.update(key for key in keys if key not in work.open)
    asked = list(dict.fromkeys(
        (work.open[target.key][0], alert.fingerprint)
        for alert, target, _ in joins if target.key in work.open))
    # One statement for every incident's memberships, not one per incident: alerts of one
    # per request land in as many incidents as they are.
    for incident_id, fingerprint, status in execute_values(
            conn, _MEMBERS_SELECT, asked, _MEMBERS_JOIN):
        work.members[(incident_id, fingerprint)] = status
    work.loaded.update(row[0] for row in work.open.values())
    for alert, target, result in joins:
        work.result = result
        _join_incident(conn, alert, target, work)


def _upsert_alerts(conn: sqlite3.Connection, items: list[_Tagged], now: float) -> list[_Tagged]:
    """Upsert the alerts by fingerprint; the items that were not duplicates."""
    fingerprints = list(dict.fromkeys(item.alert.fingerprint for item, _, _ in items))
    stored: dict[str, tuple[Any, ...]] = {
        row[0]: row[1:] for row in execute_in(
            conn, "SELECT fingerprint, status, starts_at, labels, annotations, suppressed"
            " FROM alerts WHERE fingerprint", fingerprints,
        )
    }
    live: list[_Tagged] = []
    rows: list[tuple[Any, ...]] = []
    for tagged in items:
        item, result, _ = tagged
        alert = item.alert
        status = alert.status.value
        labels = dumps(alert.labels)
        annotations = dumps(alert.annotations)
        starts_at = _iso(alert.starts_at)
        row = stored.get(alert.fingerprint)
        if row == (status, starts_at, labels, annotations, 0) or (
            # Still silenced: nothing to do until the silence ends.
            row is not None and row[4] and item.suppressed and row[0] == status
        ):
            result.count("duplicate")
            continue
        stored[alert.fingerprint] = (status, starts_at, labels, annotations, int(item.suppressed))
        rows.append((
            alert.fingerprint, alert.integration, status, labels, annotations,
            starts_at, _iso(alert.ends_at), alert.generator_url, int(alert.stateless),
            int(item.suppressed), dumps(alert.source), now, now,
        ))
        if row is None:
            outcome = "new"
        elif alert.status is AlertStatus.RESOLVED and row[0] == AlertStatus.FIRING.value:
            outcome = "resolved"
        else:
            outcome = "updated"
        result.count(outcome)
        live.append(tagged)
    execute_values(conn, _ALERT_INSERT, rows, _ALERT_UPSERT)
    return live


def _join_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, work: _Batch
) -> int:
    now = work.now
    known = work.open.get(target.key)
    if known is None:
        row = None if target.key in work.absent else conn.execute(
            "SELECT id, severity_rank, severity_pinned, state, severity FROM incidents"
            " WHERE key = ? AND state != 'resolved'",
            (target.key,),
        ).fetchone()
        if row is None:
            incident_id = _open_incident(conn, alert, target, work)
            work.open[target.key] = [incident_id, target.severity_rank,
                                     int(target.details is not None), "triggered",
                                     target.severity]
            return incident_id
        known = work.open[target.key] = list(row)

    incident_id, rank, pinned, state, severity = known
    member = work.members.get((incident_id, alert.fingerprint))
    if member is None and incident_id not in work.loaded:
        row = conn.execute(
            "SELECT status FROM incident_alerts WHERE incident_id = ? AND fingerprint = ?",
            (incident_id, alert.fingerprint),
        ).fetchone()
        member = row[0] if row else None
    work.member(incident_id, alert, target)
    kind = "alert.updated" if member == "firing" else "alert.firing"
    work.append(incident_id, kind, alert.integration, _alert_entry(alert, target))
    if kind == "alert.firing" and state == "acknowledged":
        sqlite_escalation.inform_acknowledger(conn, incident_id, alert.fingerprint, now)

    if target.severity_rank < rank and not pinned:
        conn.execute(
            "UPDATE incidents SET severity = ?, severity_rank = ? WHERE id = ?",
            (target.severity, target.severity_rank, incident_id),
        )
        work.append(incident_id, "incident.severity", alert.integration, {
            "from": severity, "to": target.severity, "reason": "more severe alert joined"})
        known[1] = target.severity_rank
        known[4] = target.severity
    work.touched.add(incident_id)
    if target.notify:
        work.changes[(incident_id, target.receiver)] = target.group_interval
    _arm_auto_resolve(conn, incident_id, target, work)
    return int(incident_id)


def _arm_auto_resolve(
    conn: sqlite3.Connection, incident_id: int, target: RouteTarget, work: _Batch
) -> None:
    """(Re)start the quiet period after which a stateless incident resolves itself.

    Once per incident and batch: every alert of the batch would arm it at the same time.
    """
    if target.auto_resolve_after is None or incident_id in work.armed:
        return
    work.armed.add(incident_id)
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
        " VALUES ('auto_resolve', ?, '', ?, ?) ON CONFLICT (kind, incident_id, target)"
        " DO UPDATE SET due_at = excluded.due_at",
        (incident_id, work.now + target.auto_resolve_after, work.now),
    )


def _open_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, work: _Batch
) -> int:
    now = work.now
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
    # A new incident has no members but those this batch gives it.
    work.loaded.add(incident_id)
    work.member(incident_id, alert, target)
    work.append(incident_id, "incident.opened", alert.integration, {
        "route": target.route_id, "receiver": target.receiver, "severity": target.severity,
        "owner": target.owner, "group_labels": target.group_labels,
    })
    work.append(incident_id, "alert.firing", alert.integration, _alert_entry(alert, target))
    if target.notify:
        conn.execute(
            "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
            " VALUES ('notify', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (incident_id, target.receiver, now + target.group_wait, now),
        )
    _arm_auto_resolve(conn, incident_id, target, work)
    if target.escalation_policy:
        # Paging waits for no one but group_wait (0 s by default).
        sqlite_escalation.start(conn, incident_id, target.escalation_policy,
                                now + target.group_wait, now)
    work.result.opened.append(incident_id)
    return incident_id


def _leave_incident(
    conn: sqlite3.Connection, alert: Alert, target: RouteTarget, now: float,
    result: IngestResult, partial: bool,
) -> None:
    rows = conn.execute(
        "SELECT i.id FROM incidents AS i JOIN incident_alerts AS m ON m.incident_id = i.id"
        " AND m.fingerprint = ? WHERE i.key = ? AND i.state != 'resolved'",
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


def _upsert_member(
    conn: sqlite3.Connection, incident_id: int, alert: Alert, target: RouteTarget
) -> None:
    conn.execute(
        f"{_MEMBER_INSERT} VALUES (?, ?, ?, ?) {_MEMBER_UPSERT}",
        (incident_id, alert.fingerprint, alert.status.value, target.severity),
    )


def _alert_entry(alert: Alert, target: RouteTarget) -> dict[str, Any]:
    return {"fingerprint": alert.fingerprint, "severity": target.severity,
            "starts_at": _iso(alert.starts_at)}


_SCHEDULE_INSERT = "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
_SCHEDULE_UPSERT = (
    "ON CONFLICT (kind, incident_id, target) DO UPDATE SET"
    " dirty = CASE WHEN claimed_until IS NOT NULL THEN 1 ELSE dirty END,"
    " due_at = CASE WHEN claimed_until IS NOT NULL OR last_sent_at IS NULL THEN due_at"
    " ELSE MIN(due_at, MAX(excluded.due_at, last_sent_at + ?)) END"
)


def schedule_change(
    conn: sqlite3.Connection, incident_id: int, receiver: str, now: float, group_interval: float
) -> None:
    """Bring a receiver's notification forward after a change, honouring group_interval.

    A timer in flight is marked dirty instead, so the change goes out after it finishes;
    a first notification still waiting out group_wait keeps its time.
    """
    conn.execute(
        f"{_SCHEDULE_INSERT} VALUES ('notify', ?, ?, ?, ?) {_SCHEDULE_UPSERT}",
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
