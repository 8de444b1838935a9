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
from pathlib import Path

from pagerd.store.memory import trim_heap
from pagerd.store.sqlite import connect
from pagerd.store.writer import GroupCommitWriter, Mergeable

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
    body BLOB NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted request: its integration's kind and name, and the body as received."""

    id: int
    kind: str
    integration: str
    alerts: int
    received_at: float
    body: bytes


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
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn


def _append_many(conn: sqlite3.Connection,
                 rows: list[tuple[str, str, int, float, bytes]]) -> list[None]:
    conn.executemany(
        "INSERT INTO entries (kind, integration, alerts, received_at, body)"
        " VALUES (?, ?, ?, ?, ?)", rows)
    return [None] * len(rows)


class JournalWriter:
    """The intake process's side: appends, durably, with one fsync per batch of requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = GroupCommitWriter(open_journal(path), on_rest=trim_heap)
        self._reader = connect(path)
        # Receipt times never go backwards within a journal, even if the clock does: the
        # daemon's horizon for a journal it reads in part is the latest of them.
        self._last_received = self._reader.execute(
            "SELECT coalesce(max(received_at), 0) FROM entries").fetchone()[0]
        self._writer.start()

    async def append(self, kind: str, integration: str, alerts: int, received_at: float,
                     body: bytes) -> None:
        """Returns once the entry is on disk; StoreUnavailable if it cannot be."""
        received_at = self._last_received = max(received_at, self._last_received)
        row = (kind, integration, alerts, received_at, body)
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
            "SELECT id, kind, integration, alerts, received_at, body FROM entries"
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

