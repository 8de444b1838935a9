"""The intake journal: request bodies an intake process has accepted, not yet ingested.

An intake process (see daemon/intake_workers.py) answers a 2xx once the body is committed
here (WAL, synchronous=FULL, group commit), before the daemon has routed it. The daemon
reads each journal in order, ingests what it reads together with its place in that journal
(one transaction in the main store, so a crash can neither skip nor repeat an entry), then
forgets the entries it has ingested. One file per intake process: each has one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pagerd.models import Alert, AlertStatus
from pagerd.store.sqlite import connect
from pagerd.store.writer import GroupCommitWriter, Mergeable

# What an entry's body holds. RAW: the request body as received, parsed again by the daemon.
# ALERTS: the alerts the intake process parsed from it (`encode_alerts`), which the daemon
# reads back for a quarter of the CPU that parsing takes. A pagerd older than ALERTS reads
# every body as RAW: drain the journals before going back to one.
RAW = 0
ALERTS = 1

# AUTOINCREMENT: ids never repeat, even after every entry is forgotten; the daemon's cursor
# (the last id it ingested) depends on that. The identity names this file in that cursor, so
# a journal deleted and made anew starts from a cursor of its own.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (id TEXT NOT NULL);
INSERT INTO identity SELECT hex(randomblob(8)) WHERE NOT EXISTS (SELECT 1 FROM identity);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    integration TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    form INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted request: its integration's kind and name, and its body in `form`."""

    id: int
    kind: str
    integration: str
    alerts: int
    received_at: float
    body: bytes
    form: int = RAW


_STATUSES = {status.value: status for status in AlertStatus}


def encode_alerts(alerts: list[Alert], partial: bool) -> bytes:
    """An ALERTS body: the parsed alerts of one request, and whether its source left some
    of their group out. The integration is the entry's. orjson.JSONEncodeError for alerts
    nested deeper than it encodes (a source kept whole): journal the body as RAW then."""
    return orjson.dumps([partial, [
        [alert.fingerprint, alert.status.value, alert.labels, alert.annotations,
         _iso(alert.starts_at), _iso(alert.ends_at), alert.generator_url, alert.stateless,
         alert.source]
        for alert in alerts]])


def _iso(value: datetime | None) -> str | None:
    # isoformat, not orjson's own spelling of a datetime: that drops an offset's seconds.
    return value.isoformat() if value is not None else None


def decode_alerts(body: bytes, integration: str) -> tuple[list[Alert], bool]:
    """The alerts of an ALERTS body, as the intake process parsed them, and `partial`;
    ValueError for a body that is not one."""
    try:
        partial, rows = orjson.loads(body)
        return [_alert(row, integration) for row in rows], bool(partial)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not an encoded list of alerts: {exc}") from None


def _alert(row: list[Any], integration: str) -> Alert:
    fingerprint, status, labels, annotations, starts, ends, url, stateless, source = row
    return Alert(fingerprint, _STATUSES[status], labels, annotations,
                 datetime.fromisoformat(starts) if starts else None,
                 datetime.fromisoformat(ends) if ends else None,
                 url, integration, stateless, source)


def journal_files(directory: Path) -> list[Path]:
    """Every journal in `directory`, including those of processes no longer configured."""
    return sorted(directory.glob("journal-*.db"))


def open_journal(path: Path) -> sqlite3.Connection:
    """A connection to the journal at `path`, created if new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
        if "form" not in columns:  # a journal left by a pagerd older than ALERTS
            conn.execute("ALTER TABLE entries ADD COLUMN form INTEGER NOT NULL DEFAULT 0")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


def _append_many(conn: sqlite3.Connection,
                 rows: list[tuple[str, str, int, float, bytes, int]]) -> list[None]:
    conn.executemany(
        "INSERT INTO entries (kind, integration, alerts, received_at, body, form)"
        " VALUES (?, ?, ?, ?, ?, ?)", rows)
    return [None] * len(rows)


class JournalWriter:
    """The intake process's side: appends, durably, with one fsync per batch of requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = GroupCommitWriter(open_journal(path))
        self._reader = connect(path)
        # Receipt times never go backwards within a journal, even if the clock does: the
        # daemon's horizon for a journal it reads in part is the latest of them.
        self._last_received = self._reader.execute(
            "SELECT coalesce(max(received_at), 0) FROM entries").fetchone()[0]
        self._writer.start()

    async def append(self, kind: str, integration: str, alerts: int, received_at: float,
                     body: bytes, form: int = RAW) -> None:
        """Returns once the entry is on disk; StoreUnavailable if it cannot be."""
        received_at = self._last_received = max(received_at, self._last_received)
        row = (kind, integration, alerts, received_at, body, form)
        await self._writer.submit(Mergeable(_append_many, row))

    def backlog(self) -> int:
        """Alerts appended and not yet ingested (forgotten) by the daemon."""
        row = self._reader.execute("SELECT coalesce(sum(alerts), 0) FROM entries").fetchone()
        return int(row[0])

    async def close(self) -> None:
        """Commit what is queued, then close."""
        await asyncio.to_thread(self._writer.close)
        self._reader.close()


class JournalReader:
    """The daemon's side of one journal: reads in order, forgets what is ingested."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = open_journal(path)
        # Forgetting need not reach the disk at once: an entry forgotten and then found
        # again after a crash is behind the cursor, and forgotten again.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        identity = self._conn.execute("SELECT id FROM identity").fetchone()[0]
        # The cursor's key: the file's name for people, its identity for the cursor.
        self.source = f"{path.stem}/{identity}"

    def read_after(self, last_id: int, max_alerts: int) -> tuple[list[JournalEntry], bool]:
        """Entries after `last_id`, in order, holding about `max_alerts` alerts at most, and
        whether more follow them."""
        # Stepped through, not fetched whole: bodies are large, and the count varies.
        rows = self._conn.execute(
            "SELECT id, kind, integration, alerts, received_at, body, form FROM entries"
            " WHERE id > ? ORDER BY id", (last_id,))
        entries: list[JournalEntry] = []
        total = 0
        for row in rows:
            if entries and total + row[3] > max_alerts:
                rows.close()
                return entries, True
            entries.append(JournalEntry(*row))
            total += row[3]
        return entries, False

    def forget_through(self, last_id: int) -> None:
        """Drop the entries up to `last_id`: the main store holds them now."""
        self._conn.execute("DELETE FROM entries WHERE id <= ?", (last_id,))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

