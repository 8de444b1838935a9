"""Incident practice in SQLite: the mitigated state, roles, notes, severity set by a person,
change events, remediation actions. Each function is one transaction's work."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from pagerd.store.sqlite_rows import append, dumps


def mitigate(conn: sqlite3.Connection, incident_id: int, actor: str, now: float,
             note: str, via: str = "api") -> bool:
    """Service restored, cause still open: escalation stops, the incident stays open."""
    changed = conn.execute(
        "UPDATE incidents SET state = 'mitigated', mitigated_at = ?, mitigated_by = ?,"
        " acknowledged_at = COALESCE(acknowledged_at, ?),"
        " acknowledged_by = COALESCE(acknowledged_by, ?), updated_at = ?"
        " WHERE id = ? AND state IN ('triggered', 'acknowledged')",
        (now, actor, now, actor, now, incident_id),
    ).rowcount
    if changed:
        append(conn, incident_id, now, "incident.mitigated", actor,
               {"by": "person", "via": via, "note": note})
    return bool(changed)


def take_lead(conn: sqlite3.Connection, incident_id: int, actor: str, now: float) -> None:
    """The first person to acknowledge leads, unless someone was assigned already."""
    if not actor.startswith("user:"):
        return
    changed = conn.execute(
        "UPDATE incidents SET lead = ? WHERE id = ? AND lead IS NULL", (actor, incident_id)
    ).rowcount
    if changed:
        append(conn, incident_id, now, "role.assigned", actor,
               {"role": "lead", "user": actor, "by": "person", "reason": "first to acknowledge"})


def assign(conn: sqlite3.Connection, incident_id: int, role: str, user: str, actor: str,
           now: float) -> bool:
    """Make `user` the incident's lead or communications manager."""
    column = {"lead": "lead", "comms": "comms"}[role]
    changed = conn.execute(
        f"UPDATE incidents SET {column} = ?, updated_at = ? WHERE id = ?",
        (user, now, incident_id),
    ).rowcount
    if changed:
        append(conn, incident_id, now, "role.assigned", actor,
               {"role": role, "user": user, "by": "person"})
    return bool(changed)


def set_severity(conn: sqlite3.Connection, incident_id: int, severity: str, rank: int,
                 actor: str, now: float, reason: str) -> bool:
    """A person sets the level; it no longer follows the alerts."""
    row = conn.execute("SELECT severity FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None or row[0] == severity:
        return False
    conn.execute(
        "UPDATE incidents SET severity = ?, severity_rank = ?, severity_pinned = 1,"
        " updated_at = ? WHERE id = ?",
        (severity, rank, now, incident_id),
    )
    append(conn, incident_id, now, "incident.severity", actor,
           {"from": row[0], "to": severity, "by": "person", "reason": reason})
    return True


def add_change(conn: sqlite3.Connection, component: str | None, summary: str, source: str,
               at: float, data: dict[str, Any]) -> int:
    """A deploy or other change to a component."""
    cursor = conn.execute(
        "INSERT INTO change_events (component, summary, source, at, data) VALUES (?, ?, ?, ?, ?)",
        (component, summary, source, at, dumps(data)),
    )
    return int(cursor.lastrowid or 0)


def recent_changes(conn: sqlite3.Connection, component: str | None, since: float,
                   until: float) -> list[dict[str, Any]]:
    """Changes to a component (or with none named) in a window, newest first."""
    rows = conn.execute(
        "SELECT id, component, summary, source, at, data FROM change_events"
        " WHERE (component = ? OR component IS NULL) AND at BETWEEN ? AND ?"
        " ORDER BY at DESC LIMIT 20",
        (component, since, until),
    ).fetchall()
    return [{"id": id_, "component": comp, "summary": summary, "source": source, "at": at,
             **orjson.loads(data)} for id_, comp, summary, source, at, data in rows]


def add_action(conn: sqlite3.Connection, incident_id: int, owner: str, due: float, text: str,
               actor: str, now: float) -> int:
    """A remediation action from the review; reminded when overdue."""
    cursor = conn.execute(
        "INSERT INTO actions (incident_id, owner, due, text, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (incident_id, owner, due, text, actor, now),
    )
    action_id = int(cursor.lastrowid or 0)
    append(conn, incident_id, now, "action.added", actor,
           {"action": action_id, "owner": owner, "due": due, "text": text})
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at, payload)"
        " VALUES ('action_due', ?, ?, ?, ?, ?)",
        (incident_id, str(action_id), due, now, dumps({"action": action_id})),
    )
    return action_id


def close_action(conn: sqlite3.Connection, action_id: int, actor: str, now: float) -> bool:
    """Close an action; its reminder goes."""
    row = conn.execute(
        "SELECT incident_id FROM actions WHERE id = ? AND state = 'open'", (action_id,)
    ).fetchone()
    if row is None:
        return False
    conn.execute("UPDATE actions SET state = 'closed', closed_by = ?, closed_at = ? WHERE id = ?",
                 (actor, now, action_id))
    conn.execute("DELETE FROM timers WHERE kind = 'action_due' AND target = ?", (str(action_id),))
    append(conn, row[0], now, "action.closed", actor, {"action": action_id})
    return True


def actions(conn: sqlite3.Connection, incident_id: int | None,
            open_only: bool) -> list[dict[str, Any]]:
    """Remediation actions, by due date."""
    where, args = [], []
    if incident_id is not None:
        where.append("incident_id = ?")
        args.append(incident_id)
    if open_only:
        where.append("state = 'open'")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        "SELECT id, incident_id, owner, due, text, state, created_by, created_at, closed_by,"
        f" closed_at FROM actions {clause} ORDER BY due", args,
    ).fetchall()
    names = ("id", "incident_id", "owner", "due", "text", "state", "created_by", "created_at",
             "closed_by", "closed_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def watched_incidents(conn: sqlite3.Connection, opened_before: float,
                      comms_severities: Sequence[str]) -> list[dict[str, Any]]:
    """See `Store.watched_incidents`: one query, light rows, whatever the number open."""
    marks = ", ".join("?" * len(comms_severities))
    rows = conn.execute(
        "SELECT i.id, i.severity, i.opened_at, i.acknowledged_at, i.mitigated_at, i.lead,"
        " i.comms, (SELECT group_concat(b.target || ':' || b.stage, ' ') FROM breaches AS b"
        " WHERE b.incident_id = i.id)"
        " FROM incidents AS i WHERE i.state != 'resolved' AND (i.opened_at <= ?"
        f" OR (i.comms IS NULL AND i.severity IN ({marks})))",
        (opened_before, *comms_severities),
    ).fetchall()
    return [
        {"id": row[0], "severity": row[1], "opened_at": row[2], "acknowledged_at": row[3],
         "mitigated_at": row[4], "resolved_at": None, "lead": row[5], "comms": row[6],
         "marked": set((row[7] or "").split())}
        for row in rows
    ]


def mark_target(conn: sqlite3.Connection, incident_id: int, target: str, stage: str,
                now: float, entry: dict[str, Any]) -> bool:
    """Record that an incident neared ("warning") or missed ("breached") a response target,
    once; False if it was recorded before."""
    inserted = conn.execute(
        "INSERT INTO breaches (incident_id, target, stage, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING", (incident_id, target, stage, now),
    ).rowcount
    if inserted:
        kind = "target.breached" if stage == "breached" else "target.warning"
        append(conn, incident_id, now, kind, "pagerd", {"target": target, **entry})
    return bool(inserted)


def set_status_page_id(conn: sqlite3.Connection, incident_id: int, page_id: str,
                       actor: str, now: float, entry: dict[str, Any]) -> None:
    """Remember the status page incident this incident was published as."""
    conn.execute("UPDATE incidents SET status_page_id = ? WHERE id = ?", (page_id, incident_id))
    append(conn, incident_id, now, "status.published", actor, entry)
