"""Intake processes and their journals: a 2xx from one means journalled, and the daemon
ingests every journalled request once, in order of receipt, whatever happens in between.

The journal and drain tests run a daemon in this event loop and write journals as an
intake process would; the HTTP tests run `pagerd run` with real intake processes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from pagerd.daemon import intake_process, journal_drain
from pagerd.daemon.core import Daemon
from pagerd.daemon.intake_counters import (
    CounterMerge,
    counters_file,
    counters_text,
    write_counters,
)
from pagerd.daemon.intake_process import (
    IntakeProcess,
    ProcessOptions,
    intake_server,
    shared_socket,
)
from pagerd.daemon.intake_workers import IntakeWorkers
from pagerd.daemon.metrics import Metrics
from pagerd.errors import ConfigErrors
from pagerd.settings import default_config_text, load_settings
from pagerd.store import sqlite_ingest
from pagerd.store.base import StoreUnavailable
from pagerd.store.journal import JournalReader, JournalWriter

from helpers import (
    ADMIN,
    TOKEN,
    am_alert,
    am_payload,
    config_text,
    free_port,
    post_alert,
    running_daemon,
)
from procs import intake_pids, pagerd_process, running, until


def journal(daemon: Daemon, index: int) -> JournalWriter:
    """Intake process `index`'s journal in the daemon's state dir, as that process opens it."""
    return JournalWriter(daemon.state.path / "intake" / f"journal-{index}.db")


async def append(writer: JournalWriter, body: object, received_at: float | None = None,
                 alerts: int = 1) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    await writer.append("alertmanager", "alertmanager", alerts,
                        time.time() if received_at is None else received_at, raw)


async def firing_then_resolved(first: JournalWriter, second: JournalWriter, firing_at: float,
                               resolved_at: float) -> None:
    """Alert Disk/x firing in `first`, then resolved in `second`, stamped as given."""
    await append(first, am_payload(am_alert(alertname="Disk", instance="x")), firing_at)
    await append(second, am_payload(am_alert("resolved", alertname="Disk", instance="x"),
                                    status="resolved"), resolved_at)


def alerts_in(daemon: Daemon) -> dict[str, str]:
    """The store's alerts: instance label -> status."""
    conn = sqlite3.connect(daemon.state.database)
    try:
        return {orjson.loads(labels)["instance"]: status for labels, status in conn.execute(
            "SELECT labels, status FROM alerts")}
    finally:
        conn.close()


def alert_entries(daemon: Daemon) -> int:
    """Timeline entries that ingesting alerts writes (not the notifier's)."""
    conn = sqlite3.connect(daemon.state.database)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM timeline WHERE kind LIKE 'alert%'").fetchone()[0])
    finally:
        conn.close()


async def test_journal_ids_never_repeat_and_a_new_file_is_a_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal-0.db"
    writer = JournalWriter(path)
    for _ in range(2):
        await writer.append("alertmanager", "am", 1, time.time(), b"{}")
    reader = JournalReader(path)
    assert [e.id for e in reader.read_after(0, 100)[0]] == [1, 2]
    reader.forget_through(2)
    await writer.append("alertmanager", "am", 1, time.time(), b"{}")
    # The cursor says "2 done": a new entry must not take id 1 or 2 again.
    assert [e.id for e in reader.read_after(0, 100)[0]] == [3]
    first = reader.source
    reader.close()
    await writer.close()

    path.unlink()
    again = JournalReader(path)
    assert again.source != first and again.source.startswith("journal-0/")
    again.close()


async def test_read_after_holds_about_max_alerts_but_at_least_one_entry(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal-0.db")
    for alerts in (3, 3, 3):
        await writer.append("alertmanager", "am", alerts, time.time(), b"{}")
    reader = JournalReader(tmp_path / "journal-0.db")
    entries, more = reader.read_after(0, 7)
    assert ([e.id for e in entries], more) == ([1, 2], True)
    assert [e.id for e in reader.read_after(0, 1)[0]] == [1]
    assert reader.read_after(0, 9)[1] is False
    assert await asyncio.to_thread(writer.backlog) == 9
    reader.forget_through(2)
    assert await asyncio.to_thread(writer.backlog) == 3
    reader.close()
    await writer.close()


async def test_drain_ingests_across_journals_in_order_of_receipt(tmp_path: Path) -> None:
    """Firing was answered before resolved was sent, but landed in the later journal."""
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        first, second = journal(daemon, 0), journal(daemon, 1)
        now = time.time()
        await firing_then_resolved(second, first, now - 2, now - 1)
        await append(first, am_payload(am_alert(alertname="Disk", instance="b")), now - 1)

        assert await daemon.journal_drain.drain_once() == 3
        assert alerts_in(daemon) == {"x": "resolved", "b": "firing"}
        assert await daemon.journal_drain.drain_once() == 0
        received = daemon.metrics.journal_ingested._value.get()
        assert received == 3
        await first.close()
        await second.close()


async def test_passes_in_a_row_forget_at_most_every_so_often_and_an_empty_one_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forgetting takes the journal's write lock from its intake process: back-to-back passes
    leave it for a while, and the pass that finds nothing leaves no backlog behind."""
    monkeypatch.setattr(journal_drain, "FORGET_EVERY", 60.0)
    # The daemon's own drain loop takes no pass meanwhile: an empty one would forget.
    monkeypatch.setattr(journal_drain, "IDLE_POLL", 3600.0)
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        for instance in ("a", "b"):
            await append(writer, am_payload(am_alert(alertname="Disk", instance=instance)),
                         time.time() - 1)
            assert await daemon.journal_drain.drain_once() == 1
        assert await asyncio.to_thread(writer.backlog) == 1  # the second pass came too soon

        assert await daemon.journal_drain.drain_once() == 0
        assert await asyncio.to_thread(writer.backlog) == 0
        assert alerts_in(daemon) == {"a": "firing", "b": "firing"}
        await writer.close()


async def test_a_journal_read_in_part_holds_back_what_came_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The busy journal is read only in part: the other's later resolution must wait."""
    monkeypatch.setattr(journal_drain, "PASS_ALERTS", 2)
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        busy, other = journal(daemon, 0), journal(daemon, 1)
        now = time.time()
        for n in range(3):
            await append(busy, am_payload(am_alert(alertname="Load", instance=f"l{n}")),
                         now - 10 + n)
        await firing_then_resolved(busy, other, now - 5, now - 4)
        await daemon.journal_drain.drain_all(10)
        assert alerts_in(daemon)["x"] == "resolved"
        await busy.close()
        await other.close()


async def test_one_journal_keeps_its_order_across_a_clock_step_back(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        now = time.time()
        await firing_then_resolved(writer, writer, now - 1, now - 1.5)
        await daemon.journal_drain.drain_all(10)
        assert alerts_in(daemon)["x"] == "resolved"
        await writer.close()


async def test_receipt_times_out_of_order_in_a_journal_read_in_part_do_not_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Times stepped back inside one journal (as a clock step would leave them, had the
    writer not kept them in order): every pass still takes something."""
    monkeypatch.setattr(journal_drain, "PASS_ALERTS", 2)
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        await writer.close()
        now = time.time()
        conn = sqlite3.connect(writer.path)
        for n, received in enumerate([now - 3, now - 4, now - 2, now - 1, now - 0.5]):
            body = orjson.dumps(am_payload(am_alert(alertname="Disk", instance=f"i{n}")))
            conn.execute("INSERT INTO entries (kind, integration, alerts, received_at, body)"
                         " VALUES ('alertmanager', 'alertmanager', 1, ?, ?)", (received, body))
        conn.commit()
        conn.close()
        for _ in range(5):
            await daemon.journal_drain.drain_once()
        assert len(alerts_in(daemon)) == 5


async def test_an_entry_the_store_refuses_is_set_aside_and_the_rest_go_in_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = sqlite_ingest.apply_ingests

    def refusing(conn: Any, batches: Any, now: float) -> Any:
        if any(item.alert.labels.get("instance") == "bad"
               for batch in batches for item in batch.items):
            raise ValueError("a bug this entry trips")
        return real(conn, batches, now)

    monkeypatch.setattr(sqlite_ingest, "apply_ingests", refusing)
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        for instance in ("a", "bad", "b"):
            await append(writer, am_payload(am_alert(alertname="Disk", instance=instance)),
                         time.time() - 1)
        assert await daemon.journal_drain.drain_once() == 3
        assert alerts_in(daemon) == {"a": "firing", "b": "firing"}
        assert daemon.metrics.invalid_payloads.labels("alertmanager", "journal")._value.get() == 1
        assert await daemon.journal_drain.drain_once() == 0
        assert alert_entries(daemon) == 2
        await writer.close()


async def test_shutdown_during_a_pass_ingests_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping while a pass waits for its commit: the pass ends, then the last drain reads
    from where it left the cursors."""
    real = sqlite_ingest.apply_ingests

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqlite_ingest, "apply_ingests", slow)
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        writer = journal(daemon, 0)
        await append(writer, am_payload(am_alert(alertname="Disk", instance="x")),
                     time.time() - 1)
        assert daemon.journal_drain is not None
        daemon.journal_drain.poke()
        await asyncio.sleep(0.2)  # the pass waits for its commit now
        await daemon._stop_intake_processes(3.0)
        daemon.journal_drain = None
        assert alert_entries(daemon) == 1
        await writer.close()


async def test_a_failed_cursor_read_is_tried_again(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        await append(writer, am_payload(am_alert(alertname="Disk", instance="x")),
                     time.time() - 1)
        real = daemon.store.journal_cursor
        calls: list[str] = []

        async def flaky(source: str) -> int:
            calls.append(source)
            if len(calls) == 1:
                raise StoreUnavailable("store read failed: disk I/O error")
            return await real(source)

        monkeypatch_store = daemon.store
        monkeypatch_store.journal_cursor = flaky  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable):
            await daemon.journal_drain.drain_once()
        assert await daemon.journal_drain.drain_once() == 1
        assert alerts_in(daemon) == {"x": "firing"}
        await writer.close()


async def test_entry_received_after_the_pass_began_waits_for_the_next(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        await append(writer, am_payload(am_alert(alertname="Disk", instance="a")), time.time())
        # Stamped as if by a process whose request arrived while this pass reads.
        await append(writer, am_payload(am_alert(alertname="Disk", instance="b")),
                     time.time() + 0.5)
        await append(writer, am_payload(am_alert(alertname="Disk", instance="c")), time.time())

        assert await daemon.journal_drain.drain_once() == 1
        assert alerts_in(daemon) == {"a": "firing"}
        await asyncio.sleep(0.6)
        assert await daemon.journal_drain.drain_once() == 2
        assert alerts_in(daemon) == {"a": "firing", "b": "firing", "c": "firing"}
        await writer.close()


async def test_entries_the_cursor_covers_are_never_ingested_again(tmp_path: Path) -> None:
    """A crash after the ingest committed and before the journal forgot: no second ingest."""
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        body = am_payload(am_alert(alertname="Disk", instance="a"))
        await append(writer, body, time.time() - 1)
        assert await daemon.journal_drain.drain_once() == 1
        entries = alert_entries(daemon)
        assert entries >= 1

        # Put the forgotten entry back, as if the DELETE had never committed.
        conn = sqlite3.connect(writer.path)
        conn.execute("INSERT INTO entries (id, kind, integration, alerts, received_at, body)"
                     " VALUES (1, 'alertmanager', 'alertmanager', 1, ?, ?)",
                     (time.time() - 1, orjson.dumps(body)))
        conn.commit()
        conn.close()
        assert await daemon.journal_drain.drain_once() == 0
        assert alert_entries(daemon) == entries
        await writer.close()


async def test_daemon_start_ingests_journals_left_by_an_earlier_run(tmp_path: Path) -> None:
    text = config_text("http://127.0.0.1:9/hook")
    writer = JournalWriter(tmp_path / "state" / "intake" / "journal-3.db")
    await append(writer, am_payload(am_alert(alertname="Disk", instance="left")), time.time())
    await writer.close()

    async with running_daemon(tmp_path, text) as (daemon, _, _):
        async def ingested() -> None:
            assert alerts_in(daemon) == {"left": "firing"}

        await until(ingested, within=5)


async def test_an_entry_that_no_longer_parses_is_counted_and_skipped(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, _, _):
        assert daemon.journal_drain is not None
        writer = journal(daemon, 0)
        await append(writer, b"{not json", time.time() - 1)
        await append(writer, am_payload(am_alert(alertname="Disk", instance="a")),
                     time.time() - 1)
        assert await daemon.journal_drain.drain_once() == 2
        assert alerts_in(daemon) == {"a": "firing"}
        refused = daemon.metrics.invalid_payloads.labels("alertmanager", "journal")
        assert refused._value.get() == 1
        await writer.close()


def test_counters_of_intake_processes_add_up_in_the_daemon(tmp_path: Path) -> None:
    """Growth is added once; a process that restarted counts from zero again."""
    process, daemon = Metrics(), Metrics()
    merge = CounterMerge(tmp_path, daemon)
    path = counters_file(tmp_path, 0)
    refused = process.auth_failures.labels("alertmanager")
    refused.inc(3)
    write_counters(counters_text(process, "run-1"), path)
    merge.merge()
    merge.merge()
    assert daemon.auth_failures.labels("alertmanager")._value.get() == 3

    refused.inc(1)
    write_counters(counters_text(process, "run-1"), path)  # its last count, as it exits
    merge.merge()  # the daemon looks when a process exits
    restarted = Metrics()
    restarted.auth_failures.labels("alertmanager").inc(7)  # past the old count already
    write_counters(counters_text(restarted, "run-2"), path)
    merge.merge()
    assert daemon.auth_failures.labels("alertmanager")._value.get() == 4 + 7

    merge.forget_old()
    assert not path.exists()


@pytest.mark.parametrize(("server", "reason"), [
    ("intake_processes: -1", "intake_processes: must be an integer from 0 to 64"),
    ("intake_processes: two", "intake_processes: must be an integer from 0 to 64"),
    ("intake_backlog: 0", "intake_backlog: must be a positive integer"),
    ("intake_processes: 2\n  intake_listen: 127.0.0.1:9797",
     "intake_listen: must differ from listen"),
    ("intake_processes: 2\n  intake_listen: nowhere", "intake_listen: must be HOST:PORT"),
])
def test_bad_intake_settings_are_refused_with_their_line(server: str, reason: str) -> None:
    text = default_config_text().replace("server:\n", f"server:\n  {server}\n", 1)
    with pytest.raises(ConfigErrors) as refused:
        load_settings("pagerd.yml", text)
    messages = [f"{e.position.line}: {e.reason}" for e in refused.value.errors]
    key = reason.split(":")[0]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.strip().startswith(key))
    assert f"{line}: {reason.split(': ', 1)[1]}" in " ".join(messages), messages


def test_intake_listen_left_out_is_the_daemons_to_work_out() -> None:
    """The port after the one the daemon serves on: see test_intake_reload for the daemon's
    side."""
    text = default_config_text().replace("server:\n", "server:\n  intake_processes: 2\n", 1)
    intake = load_settings("pagerd.yml", text).intake
    assert (intake.processes, intake.listen, intake.derived) == (2, "", True)


@pytest.mark.slow
async def test_intake_processes_over_http(tmp_path: Path) -> None:
    """Real intake processes: refusals as the daemon's, a 2xx becomes an incident, a killed
    process comes back, a reload reaches them, and none outlives the daemon."""
    port, intake_port = free_port(), free_port()
    config = tmp_path / "pagerd.yml"
    text = config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", f"server:\n  intake_processes: 2\n  intake_listen: 127.0.0.1:{intake_port}\n")
    config.write_text(text)
    state = tmp_path / "state"
    daemon = pagerd_process(config, state, port, tmp_path / "pagerd.log")
    url = f"http://127.0.0.1:{intake_port}/api/v1/alertmanager"
    api = f"http://127.0.0.1:{port}"
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with running(daemon), aiohttp.ClientSession() as session:
        assert len(intake_pids(state)) == 2

        async def post(body: object, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
            async with session.post(url, json=body, headers=headers) as response:
                return response.status, await response.json()

        assert await post(am_payload(am_alert(alertname="Disk", instance="a")), good) == (
            200, {"status": "success", "alerts": 1})
        status, error = await post({"version": "4", "alerts": "no"}, good)
        assert status == 400 and error["field"] == "alerts"
        status, error = await post(am_payload(), {"Authorization": "Bearer wrong"})
        assert status == 401 and error["field"] == "Authorization"
        async with session.post(url, data=b"{}", headers=good) as response:
            assert response.status == 415

        async def refusals_counted() -> None:
            async with session.get(f"{api}/metrics") as response:
                text = await response.text()
            assert 'pagerd_invalid_payloads_total{field="alerts",integration="alertmanager"} 1.0' \
                in text
            assert 'pagerd_auth_failures_total{endpoint="alertmanager"} 1.0' in text

        await until(refusals_counted, within=5)

        async def incident_open() -> None:
            async with session.get(f"{api}/api/v1/incidents",
                                   headers={"Authorization": f"Bearer {ADMIN}"}) as response:
                incidents = await response.json()
            assert [i["group_labels"] for i in incidents] == [{"alertname": "Disk"}], incidents

        await until(incident_open, within=5)

        # A crashed intake process is started again; intake goes on.
        victim = intake_pids(state)[0]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> None:
            pids = intake_pids(state)
            assert len(pids) == 2 and victim not in pids, pids

        await until(replaced, within=10)
        async with session.get(f"{api}/metrics") as response:
            assert "pagerd_intake_process_exits_total 1.0" in await response.text()
        await asyncio.sleep(0.5)  # the new process listens
        for n in range(10):  # new connections, spread over both processes
            async with aiohttp.ClientSession() as fresh, fresh.post(
                    url, json=am_payload(am_alert(alertname="Disk", instance=f"n{n}")),
                    headers=good) as response:
                assert response.status == 200, await response.text()

        # A reload reaches the intake processes: the old token stops working.
        config.write_text(text.replace(TOKEN, "a-new-token"))
        os.kill(daemon.pid, signal.SIGHUP)

        async def new_token_taken() -> None:
            for _ in range(4):
                async with aiohttp.ClientSession() as fresh, fresh.post(
                        url, json=am_payload(), headers=good) as response:
                    assert response.status == 401

        await until(new_token_taken, within=10)

    assert daemon.stopped_with == 0, daemon.failure("SIGTERM did not exit 0")

    async def none_left() -> None:
        assert intake_pids(state) == []

    await until(none_left, within=5)
    conn = sqlite3.connect(state / "pagerd.db")
    stored = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    conn.close()
    assert stored == 11


AZURE = """
  azure:
    type: azure
    token: az-token-for-tests
"""


async def test_intake_port_speaks_http_as_the_daemon_does(tmp_path: Path) -> None:
    """An intake process's HTTP server and routes, in this loop on loopback: what it
    journals and what it refuses, with the daemon's statuses and JSON errors."""
    text = config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", "server:\n  max_body_bytes: 2000\n").replace(
        "integrations:\n", "integrations:" + AZURE)
    good = {"Authorization": f"Bearer {TOKEN}"}
    async with serving_intake(tmp_path, text) as (process, base), \
            aiohttp.ClientSession() as session:
        async with session.get(f"{base}/-/ready") as response:
            assert response.status == 503  # not accepting yet
        process.accepting = True
        async with session.get(f"{base}/-/ready") as response:
            assert (response.status, await response.text()) == (200, "OK\n")

        body = am_payload(am_alert(alertname="Disk", instance="a"))
        async with session.post(f"{base}/api/v1/alertmanager", json=body,
                                headers=good) as response:
            assert (response.status, await response.json()) == (
                200, {"status": "success", "alerts": 1})
        # Chunked, and the token as basic auth, as Alertmanager's http_config sends it.
        chunks = [orjson.dumps(body)[:10], orjson.dumps(body)[10:]]

        async def chunked() -> Any:
            for chunk in chunks:
                yield chunk

        basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
        async with session.post(f"{base}/api/v1/alertmanager", data=chunked(), headers={
                "Content-Type": "application/json", "Authorization": f"Basic {basic}"},
                ) as response:
            assert response.status == 200, await response.text()

        async def refused(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.request(method, base + path, **kwargs) as response:
                assert response.content_type == "application/json"
                return response.status, (await response.json()).get("field")

        big = {**body, "commonAnnotations": {"x": "y" * 3000}}
        assert await refused("POST", "/api/v1/alertmanager", json=big, headers=good) == (
            413, "body")

        async def big_chunked() -> Any:
            for _ in range(3):
                yield b" " * 1000

        assert await refused("POST", "/api/v1/alertmanager", data=big_chunked(),
                             headers={**good, "Content-Type": "application/json"}) == (
            413, "body")
        assert await refused("POST", "/api/v1/alertmanager", data=b"{}",
                             headers=good) == (415, "Content-Type")
        assert await refused("POST", "/api/v1/alertmanager", data=b"{",
                             headers={**good, "Content-Type": "application/json"}) == (
            400, "body")
        assert await refused("POST", "/api/v1/alertmanager", json=body) == (
            401, "Authorization")
        assert await refused("POST", "/api/v1/alertmanager/nosuch", json=body,
                             headers=good) == (404, "integration")
        assert await refused("GET", "/api/v1/alertmanager", headers=good) == (405, "method")
        assert await refused("POST", "/api/v2/alerts", json=body, headers=good) == (
            404, "path")
        # Azure action groups can carry the token only in the URL.
        assert await refused("POST", "/api/v1/azure?token=wrong", json={}) == (
            401, "Authorization")
        async with session.post(f"{base}/api/v1/azure?token=az-token-for-tests",
                                json={"schemaId": "nonsense"}) as response:
            assert response.status == 200, await response.text()

        process.accepting = False
        status, _ = await refused("POST", "/api/v1/alertmanager", json=body, headers=good)
        assert status == 503

        # Past the server's connection limit: a 503 to retry, counted by reason.
        turned_away = intake_server(process).turned_away()
        assert (turned_away.status, dict(turned_away.headers)) == (503, {"Retry-After": "5"})
        assert process.metrics.unavailable.labels("connections")._value.get() == 1

    reader = JournalReader(tmp_path / "intake" / "journal-0.db")
    try:
        entries, _ = reader.read_after(0, 100)
    finally:
        reader.close()
    assert [(entry.kind, entry.integration) for entry in entries] == [
        ("alertmanager", "alertmanager")] * 2 + [("azure", "azure")]


@contextlib.asynccontextmanager
async def serving_intake(tmp_path: Path, text: str) -> AsyncIterator[tuple[IntakeProcess, str]]:
    """An intake process's server and routes on `text`, in this loop, on a loopback port."""
    copy = tmp_path / "config.json"
    copy.write_text(orjson.dumps({"file": str(tmp_path / "pagerd.yml"), "text": text}).decode())
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    process = IntakeProcess(ProcessOptions(copy, tmp_path, 0, write_end, "127.0.0.1:0"))
    process.load_config()
    port = free_port()
    server = intake_server(process)
    await server.start(shared_socket("127.0.0.1", port))
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop_accepting()
        await server.stop(1)
        await process.journal.close()
        os.close(read_end)
        os.close(write_end)


async def test_over_the_backlog_a_request_waits_for_room_then_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held while the daemon is behind, answered as soon as it catches up; refused with a
    503 and Retry-After only if it does not within the wait."""
    monkeypatch.setattr(intake_process, "_ROOM_WAIT", 0.5)
    text = config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", "server:\n  intake_backlog: 2\n")
    good = {"Authorization": f"Bearer {TOKEN}"}
    body = am_payload(am_alert(alertname="Disk", instance="a"))
    async with serving_intake(tmp_path, text) as (process, base):
        process.accepting = True
        stop = asyncio.Event()
        watching = asyncio.create_task(process.watch(stop))
        reader = JournalReader(process.journal.path)
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(2):
                    async with session.post(f"{base}/api/v1/alertmanager", json=body,
                                            headers=good) as response:
                        assert response.status == 200

                # The daemon ingests nothing: refused once the wait is over.
                started = time.monotonic()
                async with session.post(f"{base}/api/v1/alertmanager", json=body,
                                        headers=good) as response:
                    assert response.status == 503
                    assert response.headers["Retry-After"]
                    assert (await response.json())["error"]
                assert time.monotonic() - started >= 0.4

                # The daemon catches up while the request waits: it goes in.
                posting = asyncio.create_task(session.post(
                    f"{base}/api/v1/alertmanager", json=body, headers=good))
                await asyncio.sleep(0.2)
                assert not posting.done()
                reader.forget_through(2)
                response = await posting
                assert response.status == 200
                response.release()
            assert await asyncio.to_thread(process.journal.backlog) == 1
        finally:
            stop.set()
            await watching
            reader.close()


async def test_requests_waiting_for_room_go_in_one_after_another_and_leave_at_shutdown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for one request lets one in: it counts in the backlog before the next waiter
    looks. Those still waiting when intake stops are answered 503 at once, counted as a
    shutdown."""
    monkeypatch.setattr(intake_process, "_ROOM_WAIT", 30)
    text = config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", "server:\n  intake_backlog: 2\n")
    good = {"Authorization": f"Bearer {TOKEN}"}
    body = am_payload(am_alert(alertname="Disk", instance="a"))
    async with serving_intake(tmp_path, text) as (process, base):
        process.accepting = True
        for _ in range(3):
            await process.journal.append("alertmanager", "am", 1, time.time(), b"{}")
        await process.read_backlog()
        stop = asyncio.Event()
        watching = asyncio.create_task(process.watch(stop))
        reader = JournalReader(process.journal.path)
        try:
            async with aiohttp.ClientSession() as session:
                async def post() -> tuple[int, str]:
                    async with session.post(f"{base}/api/v1/alertmanager", json=body,
                                            headers=good) as response:
                        return response.status, response.headers.get("Retry-After", "")

                posts = [asyncio.create_task(post()) for _ in range(3)]
                async def all_waiting() -> None:
                    assert process._waiting == 3

                await until(all_waiting)
                reader.forget_through(2)  # backlog 1: room for one request of one alert
                done, _ = await asyncio.wait(posts, timeout=5,
                                             return_when=asyncio.FIRST_COMPLETED)
                await asyncio.sleep(0.3)  # several reads of the backlog later
                assert [task.result() for task in done] == [(200, "")]
                assert sum(task.done() for task in posts) == 1

                started = time.monotonic()
                process.stop_accepting()
                results = await asyncio.gather(*(task for task in posts if task not in done))
                assert time.monotonic() - started < 1
                assert [status for status, _ in results] == [503, 503]
                assert all(retry for _, retry in results)
        finally:
            stop.set()
            await watching
            reader.close()
    assert process.metrics.unavailable.labels("shutting down")._value.get() == 2
    assert process.metrics.unavailable.labels("backlog")._value.get() == 0


async def test_a_reload_sent_while_intake_processes_start_is_taken_not_fatal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str],
) -> None:
    """SIGHUP kills a process that has no handler for it yet; one sent while intake
    processes import waits for their handlers instead, and is taken; and the daemon's own
    thread, which blocks SIGHUP while it starts each, is left with it unblocked. (Run from
    the repository root, as pytest is, the processes also show that the source tree's
    `pagerd/` folder does not shadow the installed package.)"""
    listen = f"127.0.0.1:{free_port()}"
    text = config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", f"server:\n  intake_processes: 2\n  intake_listen: {listen}\n")
    metrics = Metrics()
    workers = IntakeWorkers(2, listen, lambda: ("pagerd.yml", text), tmp_path / "state",
                            metrics, poke=lambda: None)
    starting = asyncio.create_task(workers.start())

    async def spawned() -> None:
        assert len(workers._processes) == 2

    await until(spawned, within=10)
    workers.reload()  # the processes have only just been forked: they are still importing
    try:
        await starting
        await asyncio.sleep(0.5)  # a pending reload is taken as soon as the handler is in

        assert [p.returncode for p in workers._processes.values()] == [None, None]
        assert metrics.intake_process_exits._value.get() == 0
        assert capfd.readouterr().err.count("intake_process.reloaded") == 2
        assert signal.SIGHUP not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        await workers.stop(10)


async def test_a_reload_changes_the_number_and_port_of_intake_processes(tmp_path: Path) -> None:
    """The old processes stop (what they accepted is ingested), the new ones serve the new
    port; with none configured, the daemon's own port serves intake as ever."""
    port, first_port, second_port = free_port(), free_port(), free_port()
    base = config_text("http://127.0.0.1:9/hook")

    def with_intake(processes: int, listen: int) -> str:
        return base.replace("server:\n", f"server:\n  intake_processes: {processes}\n"
                                         f"  intake_listen: 127.0.0.1:{listen}\n")

    config = tmp_path / "pagerd.yml"
    config.write_text(with_intake(1, first_port))
    state = tmp_path / "state"
    daemon = pagerd_process(config, state, port, tmp_path / "pagerd.log")

    async with running(daemon):
        first = intake_pids(state)
        assert len(first) == 1
        assert await post_alert(first_port, "a") == 200

        config.write_text(with_intake(2, second_port))
        os.kill(daemon.pid, signal.SIGHUP)

        async def replaced() -> None:
            pids = intake_pids(state)
            assert len(pids) == 2 and not set(pids) & set(first), pids
            assert await post_alert(second_port, "b") == 200

        await until(replaced, within=15)
        assert await post_alert(first_port, "c") is None

        config.write_text(with_intake(0, second_port))
        os.kill(daemon.pid, signal.SIGHUP)

        async def none_left() -> None:
            assert intake_pids(state) == []

        await until(none_left, within=15)
        assert await post_alert(port, "d") == 200

    assert daemon.stopped_with == 0, daemon.failure("SIGTERM did not exit 0")
    conn = sqlite3.connect(state / "pagerd.db")
    stored = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    conn.close()
    assert stored == 3
