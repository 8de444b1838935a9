"""The embedded SQLite store: WAL, synchronous=FULL, group commit, one writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import structlog

from pagerd.store import sqlite_escalation, sqlite_ingest, sqlite_paging, sqlite_practice
from pagerd.store.base import (
    EscalationStepRecord,
    IngestBatch,
    IngestResult,
    PageOrder,
    Store,
    StoreUnavailable,
    Timer,
)
from pagerd.store.memory import trim_heap
from pagerd.store.migrations import migrate
from pagerd.store.sqlite_ingest import resolve_incident, touch_timers
from pagerd.store.sqlite_rows import append, audit, dumps
from pagerd.store.writer import GroupCommitWriter, Mergeable

T = TypeVar("T")

log = structlog.get_logger("pagerd.store")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with pagerd's durability settings."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a COMMIT is on disk before anyone is told it is; a 2xx promises that.
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteStore(Store):
    """The default store: one file in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: GroupCommitWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pagerd-reader")

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        migrate(conn)
        # This daemon owns the file: a claim left by a crash was its own, and is void.
        conn.execute("UPDATE timers SET claimed_until = NULL WHERE claimed_until IS NOT NULL")
        self._writer = GroupCommitWriter(conn, on_rest=self._rest,
                                         reopen=lambda: connect(self.path))
        self._writer.start()
        self._reader = connect(self.path)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        self._reads.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _rest(self) -> None:
        """On the writer's thread, once it is at rest: the reader is opened afresh too (its
        caches go with the old one), and malloc's free pages go back to the system."""
        # On the reader's own thread, so that it never runs beside a read. Once the store
        # closes, the executor refuses: the reads are over, and nothing is left to give back.
        with contextlib.suppress(RuntimeError):
            self._reads.submit(self._rest_reader)

    def _rest_reader(self) -> None:
        # Nobody awaits this job, so nothing may escape it unlogged.
        try:
            old = self._reader
            if old is not None:
                self._reader = connect(self.path)
                old.close()
        except Exception as exc:
            log.warning("store.reader_rest_failed", error=str(exc))
        trim_heap()

    @property
    def pending_writes(self) -> int:
        """Writes queued for the next group commit."""
        return self._writer.pending if self._writer else 0

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        return await self._writer.submit(op)

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._reads, self._on_reader, op)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store read failed: {exc}") from exc

    def _on_reader(self, op: Callable[[sqlite3.Connection], T]) -> T:
        # The reader of the moment, on the reader's thread: a rest may have replaced the one
        # there was when the read was queued.
        reader = self._reader
        if reader is None:
            raise StoreUnavailable("store is not open")
        return op(reader)

    async def ingest(self, batch: IngestBatch, now: float) -> IngestResult:
        result: IngestResult = await self._write(Mergeable(_apply_ingests, (batch, now)))
        return result

    async def ingest_journaled(self, batches: list[IngestBatch], cursors: dict[str, int],
                               now: float) -> list[IngestResult]:
        def op(conn: sqlite3.Connection) -> list[IngestResult]:
            results = sqlite_ingest.apply_ingests(conn, batches, now) if batches else []
            conn.executemany(
                "INSERT INTO intake_cursors (source, last_id) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id",
                list(cursors.items()))
            return results

        return await self._write(op)

    async def journal_cursor(self, source: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT last_id FROM intake_cursors WHERE source = ?",
                               (source,)).fetchone()
            return int(row[0]) if row else 0

        return await self._read(op)

    async def claim_due(self, now: float, limit: int, lease: float) -> list[Timer]:
        return await self._write(lambda conn: _claim(conn, now, limit, lease))

    async def finish_timer(
        self, timer: Timer, now: float, *, kind: str | None, entry: dict[str, Any],
        digest: str | None, next_due: float | None, dirty_due: float | None,
    ) -> None:
        await self._write(
            lambda conn: _finish(conn, timer, now, kind, entry, digest, next_due, dirty_due)
        )

    async def retry_timer(
        self, timer: Timer, now: float, due: float, entry: dict[str, Any],
        kind: str = "notification.retry",
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            append(conn, timer.incident_id, now, kind, "pagerd", entry)
            conn.execute(
                "UPDATE timers SET claimed_until = NULL, due_at = ? WHERE id = ?",
                (due, timer.id),
            )

        await self._write(op)

    async def auto_resolve(self, timer: Timer, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
            result = IngestResult()
            resolve_incident(conn, timer.incident_id, "pagerd:auto_resolve_after", now, result)
            # Their source never will: the stateless alerts end here too.
            conn.execute(
                "UPDATE alerts SET status = 'resolved', updated_at = ? WHERE stateless = 1"
                " AND fingerprint IN (SELECT fingerprint FROM incident_alerts"
                " WHERE incident_id = ?)",
                (now, timer.incident_id),
            )
            return bool(result.resolved)

        return await self._write(op)

    async def append_timeline(
        self, incident_id: int, now: float, kind: str, actor: str, data: dict[str, Any]
    ) -> None:
        await self._write(lambda conn: append(conn, incident_id, now, kind, actor, data))

    async def set_state(
        self, incident_id: int, state: str, actor: str, now: float, note: str = "",
        ack_timeout: float | None = None, via: str = "api",
    ) -> bool:
        return await self._write(
            lambda conn: _set_state(conn, incident_id, state, actor, now, note, ack_timeout,
                                    via)
        )

    async def fire_escalation(
        self, timer: Timer, now: float, record: EscalationStepRecord
    ) -> bool:
        return await self._write(lambda conn: sqlite_escalation.fire(conn, timer, now, record))

    async def fire_escalations(
        self, steps: list[tuple[Timer, EscalationStepRecord]], now: float
    ) -> list[bool]:
        return await self._write(
            lambda conn: [sqlite_escalation.fire(conn, timer, now, record)
                          for timer, record in steps])

    async def next_due(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT MIN(due_at) FROM timers WHERE claimed_until IS NULL").fetchone()
            return float(row[0]) if row and row[0] is not None else None

        return await self._read(op)

    async def retrigger(self, timer: Timer, now: float) -> bool:
        return await self._write(lambda conn: sqlite_escalation.retrigger(conn, timer, now))

    async def finish_page(
        self, timer: Timer, now: float, kind: str, entry: dict[str, Any],
        failover: PageOrder | None = None, sent: dict[str, Any] | None = None,
        incidents: tuple[int, ...] = (),
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            sqlite_escalation.finish_page(conn, timer, now, kind, entry, failover)
            for incident_id in incidents:
                if incident_id != timer.incident_id:
                    append(conn, incident_id, now, kind, "pagerd", entry | {"bundle": True})
            if sent is not None:
                sqlite_paging.log_page(conn, sent, now)

        await self._write(op)

    async def incident(
        self, incident_id: int, *, timeline: bool = True
    ) -> dict[str, Any] | None:
        return await self._read(lambda conn: read_incident(conn, incident_id, timeline))

    async def incidents(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        return await self._read(lambda conn: read_incidents(conn, open_only, limit))

    async def open_counts(self) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT severity, COUNT(*) FROM incidents WHERE state != 'resolved'"
                " GROUP BY severity"
            ).fetchall()
            return {severity: count for severity, count in rows}

        return await self._read(op)

    async def add_override(
        self, schedule: str, kind: str, data: dict[str, Any], actor: str, reason: str,
        now: float,
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO overrides (schedule, kind, data, reason, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (schedule, kind, dumps(data), reason, actor, now),
            )
            override_id = int(cursor.lastrowid or 0)
            audit(conn, now, actor, "override.add", {"id": override_id, "schedule": schedule,
                                                     "kind": kind, "reason": reason, **data})
            return override_id

        return await self._write(op)

    async def remove_override(self, override_id: int, actor: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE overrides SET removed_by = ?, removed_at = ? WHERE id = ?"
                " AND removed_at IS NULL",
                (actor, now, override_id),
            ).rowcount
            if changed:
                audit(conn, now, actor, "override.remove", {"id": override_id})
            return bool(changed)

        return await self._write(op)

    async def overrides(self, schedule: str | None = None) -> list[dict[str, Any]]:
        return await self._read(lambda conn: read_overrides(conn, schedule))

    async def claim_pages(self, user: str, method: str, now: float, *,
                          exclude: int) -> list[Timer]:
        return await self._write(lambda c: [
            _timer(row) for row in c.execute(
                "UPDATE timers SET claimed_until = ?, attempts = attempts + 1"
                " WHERE kind = 'page' AND id != ? AND due_at <= ? AND claimed_until IS NULL"
                " AND json_extract(payload, '$.user') = ?"
                " AND json_extract(payload, '$.method') = ?"
                f" RETURNING {_TIMER_COLUMNS}",
                (now + 120.0, exclude, now, user, method)).fetchall()
        ])

    async def schedule_pages(self, incident_id: int, orders: list[PageOrder],
                             now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for order in orders:
                sqlite_escalation.schedule_page(conn, incident_id, order, now)

        await self._write(op)

    async def paged_for(self, incident_id: int) -> list[tuple[str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT DISTINCT user, method FROM page_log, json_each(page_log.incidents)"
                " WHERE json_each.value = ? ORDER BY user, method", (incident_id,),
            ).fetchall()
            return [(user, method) for user, method in rows]

        return await self._read(op)

    async def assign_reply_code(self, phone: str, incident_id: int, now: float) -> int:
        return await self._write(lambda c: sqlite_paging.assign_code(c, phone, incident_id, now))

    async def incident_for_code(self, phone: str, code: int, now: float) -> int | None:
        return await self._read(lambda c: sqlite_paging.incident_for_code(c, phone, code, now))

    async def last_page(self, *, user: str | None = None, method: str | None = None,
                        address: str | None = None) -> dict[str, Any] | None:
        return await self._read(
            lambda c: sqlite_paging.last_page(c, user=user, method=method, address=address))

    async def page_by_provider(self, provider_id: str) -> dict[str, Any] | None:
        return await self._read(lambda c: sqlite_paging.page_by_provider(c, provider_id))

    async def set_page_status(self, provider_id: str, status: str) -> bool:
        return await self._write(lambda c: sqlite_paging.set_page_status(c, provider_id, status))

    async def set_opt_out(self, phone: str, out: bool, now: float) -> None:
        await self._write(lambda c: sqlite_paging.set_opt_out(c, phone, out, now))

    async def opted_out(self) -> set[str]:
        return await self._read(sqlite_paging.opted_out)

    async def spend_link(self, nonce: str, expires_at: float, now: float) -> bool:
        return await self._write(lambda c: sqlite_paging.spend_link(c, nonce, expires_at, now))

    async def allow_help(self, phone: str, now: float, limit: int, window: float) -> bool:
        return await self._write(
            lambda c: sqlite_paging.allow_help(c, phone, now, limit, window))

    async def escalate_now(self, incident_id: int, actor: str, now: float) -> bool:
        return await self._write(
            lambda c: sqlite_escalation.escalate_now(c, incident_id, actor, now))

    async def assign(self, incident_id: int, role: str, user: str, actor: str,
                     now: float) -> bool:
        return await self._write(
            lambda c: sqlite_practice.assign(c, incident_id, role, user, actor, now))

    async def set_severity(self, incident_id: int, severity: str, rank: int, actor: str,
                           now: float, reason: str) -> bool:
        return await self._write(lambda c: sqlite_practice.set_severity(
            c, incident_id, severity, rank, actor, now, reason))

    async def add_change(self, component: str | None, summary: str, source: str, at: float,
                         data: dict[str, Any]) -> int:
        return await self._write(
            lambda c: sqlite_practice.add_change(c, component, summary, source, at, data))

    async def recent_changes(self, component: str | None, since: float,
                             until: float) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: sqlite_practice.recent_changes(c, component, since, until))

    async def add_action(self, incident_id: int, owner: str, due: float, text: str,
                         actor: str, now: float) -> int:
        return await self._write(lambda c: sqlite_practice.add_action(
            c, incident_id, owner, due, text, actor, now))

    async def close_action(self, action_id: int, actor: str, now: float) -> bool:
        return await self._write(
            lambda c: sqlite_practice.close_action(c, action_id, actor, now))

    async def actions(self, incident_id: int | None = None,
                      open_only: bool = False) -> list[dict[str, Any]]:
        return await self._read(lambda c: sqlite_practice.actions(c, incident_id, open_only))

    async def watched_incidents(self, opened_before: float, comms_severities: Sequence[str]
                                ) -> list[dict[str, Any]]:
        return await self._read(lambda conn: sqlite_practice.watched_incidents(
            conn, opened_before, comms_severities))

    async def mark_target(self, incident_id: int, target: str, stage: str, now: float,
                          entry: dict[str, Any]) -> bool:
        return await self._write(lambda c: sqlite_practice.mark_target(
            c, incident_id, target, stage, now, entry))

    async def set_status_page_id(self, incident_id: int, page_id: str, actor: str,
                                 now: float, entry: dict[str, Any]) -> None:
        await self._write(lambda c: sqlite_practice.set_status_page_id(
            c, incident_id, page_id, actor, now, entry))

    async def handoff_noticed(self, schedule: str, user: str, start: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "SELECT 1 FROM handoffs WHERE schedule = ? AND user = ? AND start = ?",
                (schedule, user, start)).fetchone() is not None

        return await self._read(op)

    async def record_handoff(self, schedule: str, user: str, start: float,
                             now: float) -> None:
        await self._write(lambda c: c.execute(
            "INSERT INTO handoffs (schedule, user, start, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING", (schedule, user, start, now)))

    async def alert_labels(self, fingerprint: str) -> dict[str, str] | None:
        def op(conn: sqlite3.Connection) -> dict[str, str] | None:
            row = conn.execute("SELECT labels FROM alerts WHERE fingerprint = ?",
                               (fingerprint,)).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(op)

    async def open_incidents_with(self, fingerprint: str) -> list[int]:
        def op(conn: sqlite3.Connection) -> list[int]:
            # Each open incident's membership by primary key: memberships have no index by
            # fingerprint alone (it cost every ingested alert more than this costs a rare
            # acknowledgement by dedup key).
            rows = conn.execute(
                "SELECT i.id FROM incidents AS i WHERE i.state != 'resolved' AND EXISTS"
                " (SELECT 1 FROM incident_alerts AS m WHERE m.incident_id = i.id"
                " AND m.fingerprint = ?)", (fingerprint,)).fetchall()
            return [int(row[0]) for row in rows]

        return await self._read(op)

    async def count_timers(self, kind: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM timers WHERE kind = ?",
                                    (kind,)).fetchone()[0])

        return await self._read(op)

    async def firing_alerts(self) -> list[tuple[str, dict[str, str]]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, dict[str, str]]]:
            rows = conn.execute(
                "SELECT fingerprint, labels FROM alerts WHERE status = 'firing'"
            ).fetchall()
            return [(fp, orjson.loads(labels)) for fp, labels in rows]

        return await self._read(op)


# Requests merged into one ingest call get the latest of their times, so requests further
# apart than this (a test's fake clock, say) are applied in calls of their own.
_MERGE_WITHIN = 1.0


def _apply_ingests(conn: sqlite3.Connection, args: list[tuple[IngestBatch, float]]
                   ) -> list[IngestResult]:
    """Intake requests queued for one commit, applied by runs of close times, in order."""
    results: list[IngestResult] = []
    start = 0
    for end in range(1, len(args) + 1):
        if end == len(args) or abs(args[end][1] - args[start][1]) > _MERGE_WITHIN:
            run = args[start:end]
            results += sqlite_ingest.apply_ingests(
                conn, [batch for batch, _ in run], max(now for _, now in run))
            start = end
    return results


_TIMER_COLUMNS = ("id, kind, incident_id, target, attempts, generation, last_sent_at,"
                  " last_digest, due_at, payload")


def _timer(row: tuple[Any, ...]) -> Timer:
    return Timer(id=row[0], kind=row[1], incident_id=row[2], target=row[3], attempts=row[4],
                 generation=row[5], last_sent_at=row[6], last_digest=row[7], due_at=row[8],
                 payload=orjson.loads(row[9]))


def _claim(conn: sqlite3.Connection, now: float, limit: int, lease: float) -> list[Timer]:
    rows = conn.execute(
        "UPDATE timers SET claimed_until = ?, attempts = attempts + 1 WHERE id IN"
        " (SELECT id FROM timers WHERE due_at <= ?"
        "  AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY due_at LIMIT ?)"
        f" RETURNING {_TIMER_COLUMNS}",
        (now + lease, now, now, limit),
    ).fetchall()
    timers = [_timer(row) for row in rows]
    for timer in timers:
        if timer.kind != "notify":
            continue
        # The in-flight record: written before the send leaves, so a crash shows on the
        # timeline and can repeat only this one send.
        append(conn, timer.incident_id, now, "notification.sending", "pagerd",
               {"receiver": timer.target, "attempt": timer.attempts,
                "generation": timer.generation})
    return timers


def _finish(
    conn: sqlite3.Connection, timer: Timer, now: float, kind: str | None,
    entry: dict[str, Any], digest: str | None, next_due: float | None,
    dirty_due: float | None,
) -> None:
    if kind is not None:
        append(conn, timer.incident_id, now, kind, "pagerd", entry)
    row = conn.execute("SELECT dirty FROM timers WHERE id = ?", (timer.id,)).fetchone()
    sent_at = now if digest is not None else timer.last_sent_at
    digest = digest if digest is not None else timer.last_digest
    if row is not None and row[0] and dirty_due is not None:
        next_due = dirty_due
    if next_due is None:
        conn.execute("DELETE FROM timers WHERE id = ?", (timer.id,))
        return
    conn.execute(
        "UPDATE timers SET claimed_until = NULL, dirty = 0, attempts = 0,"
        " generation = generation + 1, last_sent_at = ?, last_digest = ?, due_at = ?"
        " WHERE id = ?",
        (sent_at, digest, next_due, timer.id),
    )


def _set_state(
    conn: sqlite3.Connection, incident_id: int, state: str, actor: str, now: float, note: str,
    ack_timeout: float | None, via: str,
) -> bool:
    if state == "acknowledged":
        changed = conn.execute(
            "UPDATE incidents SET state = 'acknowledged', acknowledged_at = ?,"
            " acknowledged_by = ?, updated_at = ? WHERE id = ? AND state = 'triggered'",
            (now, actor, now, incident_id),
        ).rowcount
        if changed:
            sqlite_practice.take_lead(conn, incident_id, actor, now)
    elif state == "mitigated":
        if not sqlite_practice.mitigate(conn, incident_id, actor, now, note, via):
            return False
        sqlite_escalation.after_person(conn, incident_id, state, now, None)
        touch_timers(conn, incident_id, now)
        return True
    elif state == "resolved":
        changed = conn.execute(
            "UPDATE incidents SET state = 'resolved', resolved_at = ?, resolved_by = ?,"
            " updated_at = ? WHERE id = ? AND state != 'resolved'",
            (now, actor, now, incident_id),
        ).rowcount
    else:
        raise ValueError(f"unknown state {state!r}")
    if not changed:
        return False
    append(conn, incident_id, now, f"incident.{state}", actor,
           {"by": "person", "via": via, "note": note})
    sqlite_escalation.after_person(conn, incident_id, state, now, ack_timeout)
    touch_timers(conn, incident_id, now)
    return True


_INCIDENT_COLUMNS = (
    "id, key, route_id, receiver, group_labels, state, severity, owner, escalation_policy,"
    " title, opened_at, acknowledged_at, acknowledged_by, mitigated_at, mitigated_by,"
    " resolved_at, resolved_by, updated_at, lead, comms, details, status_page_id"
)


def _incident_row(
    conn: sqlite3.Connection, row: tuple[Any, ...], with_timeline: bool = True
) -> dict[str, Any]:
    names = [name.strip() for name in _INCIDENT_COLUMNS.split(",")]
    incident = dict(zip(names, row, strict=True))
    incident["group_labels"] = orjson.loads(incident["group_labels"])
    incident["details"] = orjson.loads(incident["details"])
    alerts = conn.execute(
        "SELECT a.fingerprint, m.status, m.severity, a.labels, a.annotations, a.starts_at,"
        " a.ends_at, a.generator_url, a.integration FROM incident_alerts AS m"
        " JOIN alerts AS a ON a.fingerprint = m.fingerprint WHERE m.incident_id = ?"
        " ORDER BY a.received_at",
        (incident["id"],),
    ).fetchall()
    incident["alerts"] = [
        {"fingerprint": fp, "status": status, "severity": severity,
         "labels": orjson.loads(labels), "annotations": orjson.loads(annotations),
         "starts_at": starts_at, "ends_at": ends_at, "generator_url": url,
         "integration": integration}
        for fp, status, severity, labels, annotations, starts_at, ends_at, url, integration
        in alerts
    ]
    if not with_timeline:
        return incident
    timeline = conn.execute(
        "SELECT at, kind, actor, data FROM timeline WHERE incident_id = ? ORDER BY id",
        (incident["id"],),
    ).fetchall()
    incident["timeline"] = [
        {"at": at, "kind": kind, "actor": actor, **orjson.loads(data)}
        for at, kind, actor, data in timeline
    ]
    return incident


def read_overrides(conn: sqlite3.Connection, schedule: str | None) -> list[dict[str, Any]]:
    """Overrides in force, oldest first."""
    where = "removed_at IS NULL" + (" AND schedule = ?" if schedule else "")
    rows = conn.execute(
        "SELECT id, schedule, kind, data, reason, created_by, created_at FROM overrides"
        f" WHERE {where} ORDER BY id", (schedule,) if schedule else (),
    ).fetchall()
    return [
        {"id": id_, "schedule": sched, "kind": kind, "data": orjson.loads(data),
         "reason": reason, "created_by": by, "created_at": at}
        for id_, sched, kind, data, reason, by, at in rows
    ]


def read_incident(
    conn: sqlite3.Connection, incident_id: int, timeline: bool = True
) -> dict[str, Any] | None:
    """One incident with its alerts and timeline, or None."""
    row = conn.execute(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
    ).fetchone()
    return _incident_row(conn, row, timeline) if row else None


def read_incidents(conn: sqlite3.Connection, open_only: bool, limit: int) -> list[dict[str, Any]]:
    """Incidents, newest first."""
    where = "WHERE state != 'resolved'" if open_only else ""
    rows = conn.execute(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_incident_row(conn, row) for row in rows]


__all__ = ["SQLiteStore", "connect", "dumps", "read_incident", "read_incidents"]
