"""Group commit: one writer thread runs every queued operation in one transaction.

Concurrent requests each wait for their own write to be durable; batching them under one
COMMIT lets them share one fsync, so throughput grows with concurrency instead of being
capped by the disk's sync rate. If one operation of a batch fails, the batch is rolled back
and each operation run again in a transaction of its own, so the failure stays with its
caller and the others still commit.

Like operations queued side by side (`Mergeable`, say many intake requests of one alert
each) run as one call, so they share statements as well as the fsync.

Once it has had nothing to write for `REST_AFTER` seconds, the writer gives back what its
connection grew under load: SQLite keeps up to `cache_size` of pages and every prepared
statement (the multi-row ones are large) for a connection's life, so the connection is
opened afresh if the owner says how, else its page cache is shrunk. Then the owner is
told, to do the same with what it holds: a daemon that sits for hours holding its open
alerts should not also hold the high-water mark of the last burst.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from pagerd.store.base import StoreUnavailable

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

# A rest costs about 0.2 ms (two connections opened, their first statements prepared again),
# so resting after any second of quiet costs nothing that counts; waiting longer would only
# hold the memory longer.
REST_AFTER = 1.0

log = structlog.get_logger("pagerd.store")


class Mergeable:
    """An operation that may run in one call with like operations queued beside it.

    `run_many(conn, args)` applies every arg in order, as if one at a time, and returns
    their results in order. Alone (the retry after a failed batch), it runs with its own
    arg only.
    """

    __slots__ = ("arg", "run_many")

    def __init__(self, run_many: Callable[[sqlite3.Connection, list[Any]], list[Any]],
                 arg: Any) -> None:
        self.run_many = run_many
        self.arg = arg

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.run_many(conn, [self.arg])[0]


def _runs(batch: list[tuple[Operation, asyncio.Future[Any]]]
          ) -> list[list[tuple[Operation, asyncio.Future[Any]]]]:
    """The batch in order, neighbouring operations of one `run_many` grouped."""
    runs: list[list[tuple[Operation, asyncio.Future[Any]]]] = []
    for one in batch:
        op, last = one[0], runs[-1][0][0] if runs else None
        if (isinstance(op, Mergeable) and isinstance(last, Mergeable)
                and op.run_many == last.run_many):
            runs[-1].append(one)
        else:
            runs.append([one])
    return runs


class _OperationFailed(Exception):
    """An operation raised something other than a database error (its cause)."""


class GroupCommitWriter:
    """Runs write operations on one connection in a dedicated thread, in batches."""

    def __init__(self, conn: sqlite3.Connection, max_pending: int = 20000,
                 on_rest: Callable[[], object] | None = None,
                 reopen: Callable[[], sqlite3.Connection] | None = None) -> None:
        self._conn = conn
        self._reopen = reopen
        self._max_pending = max_pending
        self._on_rest = on_rest
        self._pending: deque[tuple[Operation, asyncio.Future[Any]]] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
        self._wake_due = False
        self._thread = threading.Thread(target=self._run, name="pagerd-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    @property
    def pending(self) -> int:
        """Operations waiting for the next commit."""
        return len(self._pending)

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `op`; the returned future resolves once its transaction has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._wakeup:
            if self._closing:
                raise StoreUnavailable("store is closing")
            if len(self._pending) >= self._max_pending:
                raise StoreUnavailable("store is overloaded")
            self._pending.append((op, future))
            # The thread is woken once per turn of the event loop, not once per operation:
            # what one turn submits shares a commit, and the wake-up is paid once.
            if not self._wake_due:
                self._wake_due = True
                asyncio.get_running_loop().call_soon(self._wake)
        return future

    def _wake(self) -> None:
        with self._wakeup:
            self._wake_due = False
            self._wakeup.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            # The writer may have opened the connection it ends with: it closes it.
            self._conn.close()

    def _serve(self) -> None:
        # Rest is measured from the last commit that changed a row: the daemon's own polls
        # (a claim of due timers that finds none) keep the writer awake, not busy.
        changed_at = time.monotonic()
        rested = True
        while True:
            with self._wakeup:
                if not self._pending and not self._closing:
                    timeout = None if rested else changed_at + REST_AFTER - time.monotonic()
                    self._wakeup.wait_for(lambda: self._pending or self._closing, timeout)
                if not self._pending and self._closing:
                    return
                batch = list(self._pending)
                self._pending.clear()
            if batch:
                changes = self._conn.total_changes
                self._commit(batch)
                if self._conn.total_changes != changes:
                    changed_at, rested = time.monotonic(), False
            if not rested and not self._closing and time.monotonic() - changed_at >= REST_AFTER:
                self._rest()
                rested = True

    def _rest(self) -> None:
        # Giving memory back is a nicety: no failure of it may stop the writer.
        try:
            if self._reopen is None:
                self._conn.execute("PRAGMA shrink_memory")
            else:
                # The new one first: if it cannot be had, the writer goes on with the old.
                fresh = self._reopen()
                self._conn.close()
                self._conn = fresh
        except Exception as exc:
            log.warning("store.writer_rest_failed", error=str(exc))
        if self._on_rest is not None:
            try:
                self._on_rest()
            except Exception as exc:
                log.warning("store.rest_failed", error=str(exc))

    def _commit(self, batch: list[tuple[Operation, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = self._transaction(batch)
        except _OperationFailed:
            # One operation failed, so none of the batch is committed. Run each alone, so
            # the failure stays with its own caller. Operations are pure functions of the
            # database, so running them again is safe.
            outcomes = [out for one in batch for out in self._alone(one)]
        except sqlite3.Error as exc:
            outcomes = self._failed(batch, exc)
        self._deliver(outcomes)

    def _transaction(self, batch: list[tuple[Operation, asyncio.Future[Any]]]
                     ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for run in _runs(batch):
                try:
                    outcomes.extend(zip([future for _, future in run], _apply(self._conn, run),
                                        [None] * len(run), strict=True))
                except sqlite3.OperationalError:
                    raise  # the database's trouble (I/O, full disk): the batch's, not one's
                except Exception as exc:
                    raise _OperationFailed from exc
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return outcomes

    def _alone(self, one: tuple[Operation, asyncio.Future[Any]]
               ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        try:
            return self._transaction([one])
        except _OperationFailed as exc:
            return [(one[1], None, exc.__cause__)]
        except sqlite3.Error as exc:
            return self._failed([one], exc)

    @staticmethod
    def _failed(batch: list[tuple[Operation, asyncio.Future[Any]]], exc: sqlite3.Error
                ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        # The transaction is lost: nobody may be told their write is durable.
        log.error("store.commit_failed", error=str(exc), operations=len(batch))
        failure = StoreUnavailable(f"store write failed: {exc}")
        return [(future, None, failure) for _, future in batch]

    @staticmethod
    def _deliver(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
        for loop, items in by_loop.items():
            # One hop back to the event loop per batch, not per operation.
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:
                # The loop has closed: nobody is waiting, and the writes are committed.
                log.debug("store.loop_closed", operations=len(items))


def _apply(conn: sqlite3.Connection, run: list[tuple[Operation, asyncio.Future[Any]]]
           ) -> list[Any]:
    first = run[0][0]
    if len(run) == 1 or not isinstance(first, Mergeable):
        return [first(conn)]
    results = first.run_many(conn, [op.arg for op, _ in run if isinstance(op, Mergeable)])
    if len(results) != len(run):
        raise ValueError(f"{len(run)} operations merged gave {len(results)} results")
    return results


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
