"""The store at rest: after a quiet spell the writer hands back what it grew under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from pagerd.store import memory, sqlite, writer
from pagerd.store.sqlite import SQLiteStore, connect
from pagerd.store.sqlite_rows import audit
from pagerd.store.writer import GroupCommitWriter

REST = 0.1


@pytest.fixture(autouse=True)
def quick_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "REST_AFTER", REST)


class Rests:
    """Counts the writer's rests, on the thread they run on."""

    def __init__(self) -> None:
        self.count = 0
        self.threads: set[str] = set()
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.threads.add(threading.current_thread().name)
        self.event.set()


@pytest.fixture
def table(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "rest.db")
    conn.execute("CREATE TABLE t (x INTEGER)")
    yield conn
    conn.close()


def insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES (1)")


def look(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


@contextlib.asynccontextmanager
async def rested(table: sqlite3.Connection, reopen: Callable[[], sqlite3.Connection]
                 ) -> AsyncIterator[GroupCommitWriter]:
    """A writer that reopens its connection at rest, once it has written and rested."""
    rests = Rests()
    group = GroupCommitWriter(table, on_rest=rests, reopen=reopen)
    group.start()
    try:
        await group.submit(insert)
        await asyncio.to_thread(rests.event.wait, 20 * REST)
        assert rests.count == 1
        yield group
    finally:
        group.close()


async def test_a_quiet_spell_after_a_change_rests_once(table: sqlite3.Connection) -> None:
    rests = Rests()
    group = GroupCommitWriter(table, on_rest=rests)
    group.start()
    try:
        await asyncio.sleep(3 * REST)
        assert rests.count == 0, "nothing written yet: nothing to give back"

        await group.submit(insert)
        assert await asyncio.to_thread(rests.event.wait, 20 * REST)
        await asyncio.sleep(3 * REST)

        assert rests.count == 1
        assert rests.threads == {"pagerd-writer"}
    finally:
        group.close()


async def test_writes_that_change_nothing_neither_rest_nor_put_a_rest_off(
    table: sqlite3.Connection,
) -> None:
    # The daemon's own polls (a claim that finds no due timer) write nothing.
    rests = Rests()
    group = GroupCommitWriter(table, on_rest=rests)
    group.start()
    try:
        for _ in range(8):
            assert await group.submit(look) == 0
            await asyncio.sleep(REST / 2)
        assert rests.count == 0

        await group.submit(insert)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not rests.event.is_set():
            assert await group.submit(look) == 1
            await asyncio.sleep(REST / 5)
            assert loop.time() - started < 10 * REST, "polls put the rest off"
        assert rests.count == 1
    finally:
        group.close()


async def test_at_rest_a_writer_that_can_reopen_goes_on_with_a_fresh_connection(
    tmp_path: Path, table: sqlite3.Connection,
) -> None:
    # A fresh connection holds none of the old one's page cache or prepared statements.
    opened: list[sqlite3.Connection] = []

    def reopen() -> sqlite3.Connection:
        opened.append(connect(tmp_path / "rest.db"))
        return opened[-1]

    async with rested(table, reopen) as group:
        assert len(opened) == 1
        with pytest.raises(sqlite3.ProgrammingError):
            table.execute("SELECT 1")  # the old one is closed
        await group.submit(insert)
        assert await group.submit(look) == 2
        assert await group.submit(lambda conn: conn is opened[0])


@pytest.mark.parametrize("error", [sqlite3.OperationalError("unable to open database file"),
                                   RuntimeError("anything else")])
async def test_a_writer_that_cannot_reopen_goes_on_with_its_connection(
    table: sqlite3.Connection, error: Exception,
) -> None:
    def reopen() -> sqlite3.Connection:
        raise error

    async with rested(table, reopen) as group:
        assert await group.submit(lambda conn: conn is table)
        assert await group.submit(look) == 1


async def test_a_failing_rest_does_not_stop_the_writer(table: sqlite3.Connection) -> None:
    def broken() -> None:
        raise RuntimeError("no")

    group = GroupCommitWriter(table, on_rest=broken)
    group.start()
    try:
        await group.submit(insert)
        await asyncio.sleep(3 * REST)

        await group.submit(insert)
        assert await group.submit(look) == 2
    finally:
        group.close()


async def test_the_store_at_rest_opens_its_reader_afresh_on_the_readers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims = Rests()
    monkeypatch.setattr(sqlite, "trim_heap", trims)
    store = SQLiteStore(tmp_path / "pagerd.db")
    await store.open()
    try:
        assert store._writer is not None
        reader = store._reader
        await store._writer.submit(lambda conn: audit(conn, 0.0, "test", "probe", {}))
        await asyncio.to_thread(trims.event.wait, 20 * REST)

        assert trims.count == 1
        assert {name.split("_")[0] for name in trims.threads} == {"pagerd-reader"}
        assert store._reader is not reader
        assert await store.next_due() is None, "the store reads on after the rest"
        await store._writer.submit(lambda conn: audit(conn, 1.0, "test", "probe", {}))
    finally:
        await store.close()


def test_the_heap_is_trimmed_where_libc_can() -> None:
    try:
        glibc = bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        glibc = False
    assert memory.trim_heap() is glibc
