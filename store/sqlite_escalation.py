"""Escalation in SQLite: steps, pages, acknowledgement timeouts, as single transactions."""

from __future__ import annotations

import sqlite3
from typing import Any

from pagerd.store.base import EscalationStepRecord, PageOrder, Timer
from pagerd.store.sqlite_rows import append, dumps

# Timers that belong to an escalation and stop when a person acts.
ESCALATION_KINDS = ("escalate", "page", "ack_timeout")


def start(conn: sqlite3.Connection, incident_id: int, policy: str, due: float,
          now: float) -> None:
    """Arm the first step of `policy` for an incident."""
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at, payload)"
        " VALUES ('escalate', ?, '', ?, ?, ?) ON CONFLICT (kind, incident_id, target)"
        " DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload,"
        " claimed_until = NULL",
        (incident_id, due, now, dumps({"policy": policy, "step": 0, "round": 0})),
    )


def stop(conn: sqlite3.Connection, incident_id: int, *, keep_info: bool = False) -> int:
    """Drop every pending step and page of an incident; returns how many."""
    kinds = ", ".join(f"'{kind}'" for kind in ESCALATION_KINDS)
    info = " AND json_extract(payload, '$.info') IS NOT 1" if keep_info else ""
    return conn.execute(
        f"DELETE FROM timers WHERE incident_id = ? AND kind IN ({kinds}){info}", (incident_id,)
    ).rowcount


def schedule_page(conn: sqlite3.Connection, incident_id: int, order: PageOrder,
                  now: float) -> None:
    """Arm one page; firing the same step twice (after a crash) schedules it once."""
    conn.execute(
        "INSERT INTO timers (kind, incident_id, target, due_at, created_at, payload)"
        " VALUES ('page', ?, ?, ?, ?, ?) ON CONFLICT (kind, incident_id, target) DO NOTHING",
        (incident_id, order.target, now + order.delay, now, dumps(order.payload())),
    )


def fire(conn: sqlite3.Connection, timer: Timer, now: float,
         record: EscalationStepRecord) -> bool:
    """See Store.fire_escalation."""
    state = _state(conn, timer.incident_id)
    if state != "triggered":
        conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
        return False
    for order in record.pages:
        schedule_page(conn, timer.incident_id, order, now)
    kind = "escalation.exhausted" if record.next_payload is None else "escalation.step"
    append(conn, timer.incident_id, now, kind, "pagerd", record.entry)
    if record.next_payload is None or record.next_due is None:
        conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
        return True
    conn.execute(
        "UPDATE timers SET due_at = ?, payload = ?, claimed_until = NULL, attempts = 0,"
        " generation = generation + 1 WHERE id = ?",
        (record.next_due, dumps(record.next_payload), timer.id),
    )
    return True


def retrigger(conn: sqlite3.Connection, timer: Timer, now: float) -> bool:
    """See Store.retrigger."""
    conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
    row = conn.execute(
        "SELECT escalation_policy FROM incidents WHERE id = ? AND state = 'acknowledged'",
        (timer.incident_id,),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE incidents SET state = 'triggered', acknowledged_at = NULL,"
        " acknowledged_by = NULL, updated_at = ? WHERE id = ?",
        (now, timer.incident_id),
    )
    append(conn, timer.incident_id, now, "incident.retriggered", "pagerd",
           {"reason": "ack_timeout"})
    if row[0]:
        start(conn, timer.incident_id, row[0], now, now)
    return True


def finish_page(conn: sqlite3.Connection, timer: Timer, now: float, kind: str,
                entry: dict[str, Any], failover: PageOrder | None) -> None:
    """See Store.finish_page."""
    append(conn, timer.incident_id, now, kind, "pagerd", entry)
    conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
    if failover is not None:
        schedule_page(conn, timer.incident_id, failover, now)


def after_person(conn: sqlite3.Connection, incident_id: int, state: str, now: float,
                 ack_timeout: float | None) -> None:
    """A person acknowledged or resolved: escalation stops at once; an acknowledgement
    may expire."""
    stopped = stop(conn, incident_id)
    if stopped:
        append(conn, incident_id, now, "escalation.stopped", "pagerd",
               {"by": state, "pending": stopped})
    if state == "acknowledged" and ack_timeout:
        conn.execute(
            "INSERT INTO timers (kind, incident_id, target, due_at, created_at)"
            " VALUES ('ack_timeout', ?, '', ?, ?) ON CONFLICT DO NOTHING",
            (incident_id, now + ack_timeout, now),
        )


def inform_acknowledger(conn: sqlite3.Connection, incident_id: int, fingerprint: str,
                        now: float) -> None:
    """A new alert joined an acknowledged incident: tell whoever acknowledged it, once,
    without escalating."""
    row = conn.execute(
        "SELECT acknowledged_by FROM incidents WHERE id = ?", (incident_id,)
    ).fetchone()
    user = (row[0] or "").partition(":")[2] if row else ""
    if not user:
        return
    order = PageOrder(user=user, method="", delay=0.0, step=f"info:{fingerprint}", info=True)
    schedule_page(conn, incident_id, order, now)


def _state(conn: sqlite3.Connection, incident_id: int) -> str | None:
    row = conn.execute("SELECT state FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    return row[0] if row else None


def escalate_now(conn: sqlite3.Connection, incident_id: int, actor: str, now: float) -> bool:
    """Bring the next step of a running escalation forward to now."""
    changed = conn.execute(
        "UPDATE timers SET due_at = ? WHERE incident_id = ? AND kind = 'escalate'"
        " AND claimed_until IS NULL",
        (now, incident_id),
    ).rowcount
    if changed:
        append(conn, incident_id, now, "escalation.requested", actor, {"by": "person"})
    return bool(changed)
