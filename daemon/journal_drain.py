"""Ingesting what intake processes journalled: in order, exactly once, soon after the 2xx.

Each pass reads every journal past its cursor, routes the entries as the daemon's own
intake would, and stores them with the journals' new cursors in one transaction; then the
journals forget what the store now holds. A crash between the two leaves entries the
cursor already covers: they are forgotten, not ingested again, at the next pass.

Order across journals: a sender that waits for one request's 2xx before sending the next
(Alertmanager does, per group) may have them land in two processes' journals. A pass takes
only entries received before it began, and ingests them by time of receipt: an entry
committed before another was received is then always read in the same pass or an earlier
one, and ingested first, so "firing, then resolved" never ends up firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from pagerd.daemon.intake import Intake
from pagerd.daemon.intake_gate import parse_payload
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.responses import decode_json
from pagerd.receivers.errors import PayloadError
from pagerd.store.base import IngestBatch, Store
from pagerd.store.journal import JournalEntry, JournalReader, journal_files

log = structlog.get_logger("pagerd.journal")

# Alerts read from one journal per pass: one transaction's worth, a few hundred ms at most.
PASS_ALERTS = 5000
# How long a pass waits for a poke before looking anyway (a lost poke costs this much).
IDLE_POLL = 1.0
# An entry stamped this far after the pass began was stamped before the clock was stepped
# back; waiting for the clock to catch up would hold it for as long as the step.
_CLOCK_STEP = 5.0


class JournalDrain:
    """Reads the intake journals in `directory` into the store."""

    def __init__(self, directory: Path, store: Store, metrics: Metrics,
                 intake: Callable[[], Intake], changed: Callable[[], None]) -> None:
        self.directory = directory
        self.store = store
        self.metrics = metrics
        self._intake = intake  # the current one: a reload swaps its router
        self._changed = changed
        self._paths: set[Path] = set()
        self._readers: dict[str, JournalReader] = {}  # by source, the cursor's key
        self._cursors: dict[str, int] = {}
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """An intake process committed something."""
        self._poked.set()

    async def run(self) -> None:
        """Drain whenever poked (or every IDLE_POLL), until cancelled."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poked.wait(), IDLE_POLL)
            self._poked.clear()
            try:
                while await self.drain_once():
                    pass
            except Exception as exc:
                # The store's trouble (it is closing, or the disk): the entries stay in the
                # journals, and the next pass takes them.
                log.warning("journal.drain_failed", error=str(exc))

    async def drain_once(self) -> int:
        """One pass; returns how many entries it ingested."""
        began = time.time()
        read: list[tuple[str, JournalEntry]] = []
        for reader in await self._journals():
            cursor = self._cursors[reader.source]
            entries = await asyncio.to_thread(reader.read_after, cursor, PASS_ALERTS)
            for entry in entries:
                if began <= entry.received_at < began + _CLOCK_STEP:
                    break  # this and the later ones wait for the next pass
                read.append((reader.source, entry))
        if not read:
            return 0

        read.sort(key=lambda pair: pair[1].received_at)
        cursors = dict(self._cursors)
        for source, entry in read:
            cursors[source] = max(cursors[source], entry.id)
        batches = [batch for _, entry in read if (batch := self._batch(entry)) is not None]
        results = await self.store.ingest_journaled(batches, cursors, time.time())

        intake = self._intake()
        for batch, result in zip(batches, results, strict=True):
            intake.record(result, batch.integration)
        if any(r.opened or r.resolved or r.outcomes.keys() - {"duplicate"} for r in results):
            self._changed()
        self._cursors = cursors
        await self._forget({source for source, _ in read})
        self.metrics.journal_ingested.inc(len(read))
        return len(read)

    def _batch(self, entry: JournalEntry) -> IngestBatch | None:
        intake = self._intake()
        try:
            body = decode_json(entry.body)
            alerts, partial = parse_payload(self.metrics, entry.kind, body, entry.integration)
        except PayloadError as exc:
            # The intake process accepted it, so it parsed there; a pagerd upgraded in between
            # may read it differently. Kept in the log, counted, not retried forever.
            self.metrics.invalid_payloads.labels(entry.integration, "journal").inc()
            log.error("journal.entry_refused", integration=entry.integration, entry=entry.id,
                      field=exc.field, reason=exc.reason)
            return None
        return intake.prepare(alerts, entry.integration, partial)

    async def _journals(self) -> list[JournalReader]:
        for path in journal_files(self.directory):
            if path not in self._paths:
                self._paths.add(path)
                reader = JournalReader(path)
                self._readers[reader.source] = reader
                self._cursors[reader.source] = await self.store.journal_cursor(reader.source)
        return list(self._readers.values())

    async def _forget(self, sources: set[str]) -> None:
        for source in sources:
            try:
                await asyncio.to_thread(self._readers[source].forget_through,
                                        self._cursors[source])
            except Exception as exc:
                # Forgetting is tidying: the cursor already keeps these from a second ingest.
                log.warning("journal.forget_failed", journal=source, error=str(exc))

    async def drain_all(self, deadline: float) -> None:
        """At shutdown: ingest what the journals hold, for up to `deadline` seconds."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if not await self.drain_once():
                return

    def close(self) -> None:
        """Close the journals."""
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        self._paths.clear()
