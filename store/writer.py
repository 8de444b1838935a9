"""Group commit: one writer thread runs every queued operation in one transaction.

Concurrent requests each wait for their own write to be durable; batching them under one
COMMIT lets them share one fsync, so throughput grows with concurrency instead of being
capped by the disk's sync rate. Each operation runs inside its own SAVEPOINT, so one that
fails is rolled back alone and the others still commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from pagerd.store.base import StoreUnavailable

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

log = structlog.get_logger("pagerd.store")


class GroupCommitWriter:
    """Runs write operations on one connection in a dedicated thread, in batches."""

    def __init__(self, conn: sqlite3.Connection, max_pending: int = 20000) -> None:
        self._conn = conn
        self._max_pending = max_pending
        self._pending: deque[tuple[Operation, asyncio.Future[Any]]] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
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
            self._wakeup.notify()
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._closing:
                    self._wakeup.wait()
                if not self._pending and self._closing:
                    return
                batch = list(self._pending)
                self._pending.clear()
            self._commit(batch)

    def _commit(self, batch: list[tuple[Operation, asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                outcomes.append((future, *self._run_one(op)))
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The whole transaction is lost: nobody may be told their write is durable.
            log.error("store.commit_failed", error=str(exc), operations=len(batch))
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"store write failed: {exc}")
            outcomes = [(future, None, failure) for _, future in batch]
        self._deliver(outcomes)

    def _run_one(self, op: Operation) -> tuple[Any, BaseException | None]:
        self._conn.execute("SAVEPOINT op")
        try:
            result = op(self._conn)
        except sqlite3.OperationalError as exc:
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            return None, StoreUnavailable(f"store write failed: {exc}")
        except Exception as exc:
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            return None, exc
        self._conn.execute("RELEASE op")
        return result, None

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


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
