"""The dispatcher's claim beside a write: timers a write makes due are claimed as it commits."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from test_store import T0, alert, batch, target

from pagerd.clock import FakeClock
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.store import writer
from pagerd.store.base import Timer
from pagerd.store.sqlite import SQLiteStore


class Handled:
    """A `notify` handler that finishes its timer, as the real one does after a send."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.timers: list[Timer] = []
        self.arrived = asyncio.Event()

    async def __call__(self, timer: Timer) -> None:
        self.timers.append(timer)
        await self.store.finish_timer(timer, T0, kind=None, entry={}, digest=None,
                                      next_due=None, dirty_due=None)
        self.arrived.set()


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many operations each of the writer's transactions ran."""
    sizes: list[int] = []
    real = writer.GroupCommitWriter._transaction

    def counted(self: writer.GroupCommitWriter, batch: list[Any]) -> Any:
        sizes.append(len(batch))
        return real(self, batch)

    monkeypatch.setattr(writer.GroupCommitWriter, "_transaction", counted)
    return sizes


async def test_the_timer_a_write_makes_due_is_claimed_in_its_transaction(
    store: SQLiteStore, transactions: list[int],
) -> None:
    handled = Handled(store)
    # Its claim loop never runs: only the claim beside the write can find the timer.
    dispatcher = Dispatcher(store, FakeClock(T0), {"notify": handled})

    dispatcher.claim_beside_next_write()
    await store.ingest(batch((alert(), [target()])), T0)
    await asyncio.wait_for(handled.arrived.wait(), 5)

    assert [(t.kind, t.attempts) for t in handled.timers] == [("notify", 1)]
    assert transactions[0] == 2  # the ingest and the claim, committed together
    await dispatcher.stop(0.1)


async def test_one_claim_serves_every_write_of_a_turn(
    store: SQLiteStore, transactions: list[int],
) -> None:
    handled = Handled(store)
    dispatcher = Dispatcher(store, FakeClock(T0), {"notify": handled})

    async def write(name: str) -> None:
        dispatcher.claim_beside_next_write()
        await store.ingest(batch((alert(name), [target(f"{name}:{{}}")])), T0)

    await asyncio.gather(write("a"), write("b"), write("c"))
    async with asyncio.timeout(5):
        while len(handled.timers) < 3:
            handled.arrived.clear()
            await handled.arrived.wait()

    assert sorted(t.incident_id for t in handled.timers) == [1, 2, 3]
    assert transactions[0] == 4  # three ingests merged into one call, and one claim
    await dispatcher.stop(0.1)


async def test_no_claim_beside_a_write_once_stopping(store: SQLiteStore) -> None:
    handled = Handled(store)
    dispatcher = Dispatcher(store, FakeClock(T0), {"notify": handled})
    await dispatcher.stop(0.1)

    dispatcher.claim_beside_next_write()
    await store.ingest(batch((alert(), [target()])), T0)
    await asyncio.sleep(0.1)

    assert handled.timers == []
    assert unclaimed(store) == 1  # left for the claim loop of the next start


def unclaimed(store: SQLiteStore) -> int:
    conn = sqlite3.connect(store.path)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM timers WHERE claimed_until IS NULL").fetchone()[0])
    finally:
        conn.close()


async def test_a_claim_beside_a_write_takes_no_more_than_the_free_slots(
    store: SQLiteStore,
) -> None:
    """What it claims starts at once: nothing waits, claimed, behind busy slots, where the
    claim loop could take it again once its lease ran out."""
    release, both = asyncio.Event(), asyncio.Event()
    started: list[int] = []

    async def notify(timer: Timer) -> None:
        started.append(timer.incident_id)
        if len(started) == 2:
            both.set()
        await release.wait()

    dispatcher = Dispatcher(store, FakeClock(T0), {"notify": notify}, concurrency=2)
    dispatcher.claim_beside_next_write()
    await store.ingest(batch(*((alert(n), [target(f"{n}:{{}}")]) for n in "abc")), T0)
    await asyncio.wait_for(both.wait(), 5)
    assert unclaimed(store) == 1

    dispatcher.claim_beside_next_write()  # every slot is busy: no claim
    await store.ingest(batch((alert("d"), [target("d:{}")])), T0)
    await asyncio.sleep(0.1)
    assert (len(started), unclaimed(store)) == (2, 2)
    release.set()
    await dispatcher.stop(1.0)
