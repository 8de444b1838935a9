"""Ingesting what intake processes journalled: in order, exactly once, soon after the 2xx.

Each pass reads every journal past its cursor, routes the entries as the daemon's own
intake would, and stores them with the journals' new cursors in one transaction; then the
journals forget what the store now holds. A crash between the two leaves entries the
cursor already covers: they are forgotten, not ingested again, at the next pass.

Order across journals: a sender that waits for one request's 2xx before sending the next
(Alertmanager does, per group) may have them land in two processes' journals. A pass takes
only entries received before it began, and none received after the latest entry it read of
a journal it could not read to the end (what it left there was committed after that one
was received); it ingests each journal in its own order (receipt times never go backwards
within one), merged by time of receipt. An entry
committed before another was received is then always read in the same pass or an earlier
one, and ingested first, so "firing, then resolved" never ends up firing. (Receipt times are
wall-clock: a clock stepped back between two such requests can still swap them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from pagerd.daemon.intake import Intake
from pagerd.daemon.intake_gate import parse_payload
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.responses import decode_json
from pagerd.receivers.errors import PayloadError
from pagerd.store.base import IngestBatch, IngestResult, Store, StoreUnavailable
from pagerd.store.journal import JournalEntry, JournalReader, journal_files

log = structlog.get_logger("pagerd.journal")

# Alerts read from one journal per pass: one transaction's worth, a few hundred ms at most.
PASS_ALERTS = 5000
# How long a pass waits for a poke before looking anyway (a lost poke costs this much).
IDLE_POLL = 1.0
# While passes follow one another, journals forget what is ingested at most this often (s).
FORGET_EVERY = 0.05
# An entry stamped this far after the journals were read was stamped before the clock was
# stepped back; waiting for the clock to catch up would hold it for as long as the step.
_CLOCK_STEP = 5.0


class JournalDrain:
    """Reads the intake journals in `directory` into the store."""

    def __init__(self, directory: Path, store: Store, metrics: Metrics,
                 intake: Callable[[], Intake], changed: Callable[[], None],
                 before_ingest: Callable[[], None] = lambda: None) -> None:
        self.directory = directory
        self.store = store
        self.metrics = metrics
        self._intake = intake  # the current one: a reload swaps its router
        self._changed = changed
        self._before_ingest = before_ingest  # called just before a pass queues its ingest
        self._paths: set[Path] = set()
        self._readers: dict[str, JournalReader] = {}  # by source, the cursor's key
        self._cursors: dict[str, int] = {}
        self._forgotten: dict[str, int] = {}  # the cursor each journal was last tidied to
        self._forgot_at = -FORGET_EVERY  # monotonic time of the last forget
        self._poked = asyncio.Event()
        self._stopping = False
        self._one_pass = asyncio.Lock()
        # Parsing again counts nothing: the intake process counted what it saw.
        self._uncounted = Metrics()

    def poke(self) -> None:
        """An intake process committed something."""
        self._poked.set()

    async def run(self) -> None:
        """Drain whenever poked (or every IDLE_POLL), until `stop`."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), IDLE_POLL)
            self._poked.clear()
            try:
                while not self._stopping and await self.drain_once():
                    pass
            except Exception as exc:
                # The store's trouble (it is closing, or the disk): the entries stay in the
                # journals, and the next pass takes them.
                log.warning("journal.drain_failed", error=str(exc))

    def stop(self) -> None:
        """End `run` after the pass under way: a pass is never cut between its commit and
        the cursors it moved (cutting it there would ingest its entries again)."""
        self._stopping = True
        self._poked.set()

    async def drain_once(self) -> int:
        """One pass; returns how many entries it ingested."""
        async with self._one_pass:  # passes share the cursors: one at a time
            return await self._pass()

    async def _pass(self) -> int:
        horizon = time.time()  # the pass takes only what was received before it began
        runs: list[list[tuple[str, JournalEntry]]] = []
        readers = await self._journals()
        after = [self._cursors[reader.source] for reader in readers]
        # Every journal in one trip to a thread: at a few alerts a pass, a trip per journal
        # was a good part of an alert's way from the 2xx to its notification.
        for reader, (entries, more) in zip(
                readers, await asyncio.to_thread(_read_all, readers, after), strict=True):
            if more and entries:
                # What this journal holds beyond was committed after every entry read from
                # it was received: nothing received later may go before those.
                horizon = min(horizon, max(entry.received_at for entry in entries))
            runs.append([(reader.source, entry) for entry in entries])
        read_done = time.time()
        read = list(heapq.merge(*(_ready(run, horizon, read_done) for run in runs),
                                key=lambda pair: pair[1].received_at))
        if not read:
            await self._forget()  # journals opened with entries behind their cursor
            return 0

        cursors = dict(self._cursors)
        for source, entry in read:
            cursors[source] = max(cursors[source], entry.id)
        items = [(source, entry, self._batch(entry)) for source, entry in read]
        applied = await self._ingest(items, cursors)
        self._cursors = cursors

        # Counted and logged per integration and pass, not per request: a pass of one-alert
        # requests holds a thousand of them.
        by_integration: dict[str, IngestResult] = {}
        for batch, result in applied:
            by_integration.setdefault(batch.integration, IngestResult()).add(result)
        intake = self._intake()
        for integration, result in by_integration.items():
            intake.record(result, integration)
        if any(r.opened or r.resolved or r.outcomes.keys() - {"duplicate"}
               for _, r in applied):
            self._changed()
        await self._forget(throttled=True)
        self.metrics.journal_ingested.inc(len(read))
        return len(read)

    async def _ingest(self, items: list[tuple[str, JournalEntry, IngestBatch | None]],
                      cursors: dict[str, int]) -> list[tuple[IngestBatch, IngestResult]]:
        """The pass's batches stored with the cursors, in one transaction; if that fails
        for anything but the store, entry by entry, each with its own cursor, so the one
        at fault is set aside and the others go in exactly once."""
        batches = [batch for _, _, batch in items if batch is not None]
        self._before_ingest()  # no await between it and the ingest's queuing: see its use
        try:
            results = await self.store.ingest_journaled(batches, cursors, time.time())
            return list(zip(batches, results, strict=True))
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.warning("journal.pass_failed", error=str(exc), entries=len(items))
        applied = []
        for source, entry, batch in items:
            cursor = {source: entry.id}
            try:
                if batch is not None:
                    (result,) = await self.store.ingest_journaled([batch], cursor,
                                                                  time.time())
                    applied.append((batch, result))
                else:
                    await self.store.ingest_journaled([], cursor, time.time())
            except StoreUnavailable:
                raise  # what went in has its cursor moved, here as in the store
            except Exception as exc:
                self.metrics.invalid_payloads.labels(entry.integration, "journal").inc()
                log.error("journal.entry_failed", integration=entry.integration,
                          entry=entry.id, error=str(exc))
                await self.store.ingest_journaled([], cursor, time.time())
            self._cursors[source] = entry.id
        return applied

    def _batch(self, entry: JournalEntry) -> IngestBatch | None:
        try:
            body = decode_json(entry.body)
            # Counted once already, by the intake process that accepted it.
            alerts, partial = parse_payload(self._uncounted, entry.kind, body,
                                            entry.integration)
            return self._intake().prepare(alerts, entry.integration, partial)
        except PayloadError as exc:
            # The intake process accepted it, so it parsed there; a pagerd upgraded in between
            # may read it differently. Kept in the log, counted, not retried forever.
            self.metrics.invalid_payloads.labels(entry.integration, "journal").inc()
            log.error("journal.entry_refused", integration=entry.integration, entry=entry.id,
                      field=exc.field, reason=exc.reason)
        except Exception as exc:  # routing's trouble with this one entry, not the others'
            self.metrics.invalid_payloads.labels(entry.integration, "journal").inc()
            log.error("journal.entry_failed", integration=entry.integration, entry=entry.id,
                      error=str(exc))
        return None

    async def _journals(self) -> list[JournalReader]:
        for path in journal_files(self.directory):
            if path in self._paths:
                continue
            try:
                reader = await asyncio.to_thread(JournalReader, path)
            except Exception as exc:  # locked, say: tried again next pass
                log.warning("journal.open_failed", journal=str(path), error=str(exc))
                continue
            try:
                cursor = await self.store.journal_cursor(reader.source)
            except Exception:
                # The pass fails on the store's trouble as any other does; the journal
                # is opened afresh by the next one, so this connection must not leak.
                reader.close()
                raise
            self._paths.add(path)
            self._readers[reader.source] = reader
            self._cursors[reader.source] = cursor
        return list(self._readers.values())

    async def _forget(self, throttled: bool = False) -> None:
        # Every journal whose cursor moved since its last forget (or that is new: a crash
        # may have left entries behind its cursor). An intake process counts what is left
        # as its backlog, so a forget that failed is tried again on the next pass.
        # Forgetting takes a journal's write lock, which its intake process's appends then
        # wait for: while passes follow one another it is done at most every FORGET_EVERY,
        # and a pass that finds nothing always does it, so an idle daemon leaves no backlog.
        now = time.monotonic()
        if throttled and now - self._forgot_at < FORGET_EVERY:
            return
        self._forgot_at = now
        due = {source: cursor for source, cursor in self._cursors.items()
               if self._forgotten.get(source) != cursor and source in self._readers}
        if due:
            readers = [(self._readers[source], cursor) for source, cursor in due.items()]
            self._forgotten.update(await asyncio.to_thread(_forget_all, readers))

    async def drain_all(self, deadline: float) -> None:
        """At shutdown, once `run` has ended: ingest what the journals hold, for up to
        `deadline` seconds (what is left waits for the next start)."""
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


def _read_all(readers: list[JournalReader], cursors: list[int]
              ) -> list[tuple[list[JournalEntry], bool]]:
    """Each journal's entries past its cursor (see `JournalReader.read_after`); none from
    one that cannot be read, since one unreadable journal must not hold up the others."""
    reads: list[tuple[list[JournalEntry], bool]] = []
    for reader, cursor in zip(readers, cursors, strict=True):
        try:
            reads.append(reader.read_after(cursor, PASS_ALERTS))
        except Exception as exc:
            log.error("journal.read_failed", journal=reader.source, error=str(exc))
            reads.append(([], False))
    return reads


def _forget_all(readers: list[tuple[JournalReader, int]]) -> dict[str, int]:
    """Each journal forgets through its cursor; the cursors of those that did."""
    forgotten = {}
    for reader, cursor in readers:
        try:
            reader.forget_through(cursor)
            forgotten[reader.source] = cursor
        except Exception as exc:
            # Forgetting is tidying: the cursor already keeps these from a second ingest.
            log.warning("journal.forget_failed", journal=reader.source, error=str(exc))
    return forgotten


def _ready(run: list[tuple[str, JournalEntry]], horizon: float, now: float
           ) -> list[tuple[str, JournalEntry]]:
    """The entries of one journal's run that this pass may take: those received up to the
    horizon, in the journal's order, up to the first that is not."""
    ready = []
    for pair in run:
        received = pair[1].received_at
        if horizon < received < now + _CLOCK_STEP:
            break
        ready.append(pair)
    return ready
