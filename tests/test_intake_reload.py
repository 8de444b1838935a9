"""Reloads that restart the intake processes, when they race a shutdown or cannot start:
no reload during a shutdown, no set stopped twice, no port left without a way back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from pagerd.daemon import intake_workers
from pagerd.daemon.app import build_app
from pagerd.daemon.core import Daemon, Options, StartupError, Stopping
from pagerd.daemon.intake_workers import IntakeWorkers
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.statedir import StateDir

from helpers import ADMIN, config_text, free_port, post_alert, serve_app
from procs import until

pytestmark = pytest.mark.slow


def with_intake(processes: int, listen: str | None = None, server_listen: str | None = None
                ) -> str:
    lines = [f"  intake_processes: {processes}\n"]
    if listen is not None:
        lines.append(f"  intake_listen: {listen}\n")
    if server_listen is not None:
        lines.append(f"  listen: {server_listen}\n")
    return config_text("http://127.0.0.1:9/hook").replace(
        "server:\n", "server:\n" + "".join(lines), 1)


async def started(tmp_path: Path, text: str) -> tuple[Daemon, Path]:
    config = tmp_path / "pagerd.yml"
    config.write_text(text)
    daemon = Daemon(Options(config=str(config)), StateDir(tmp_path / "state"))
    await daemon.start()
    return daemon, config


def next_free_pair() -> str:
    """HOST:PORT of a free port whose next port is free too."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return f"127.0.0.1:{port}"


# An intake process that never listens and ignores SIGTERM: stops must kill it.
_STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
             " print('in', flush=True); time.sleep(60)")


@contextlib.asynccontextmanager
async def stubborn_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[tuple[IntakeWorkers, asyncio.Task[None]]]:
    """A set of one stubborn process, starting; yields the set and its start."""
    async def spawn(self: IntakeWorkers, index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", _STUBBORN, stdout=asyncio.subprocess.PIPE)

    monkeypatch.setattr(IntakeWorkers, "_spawn", spawn)
    listen = f"127.0.0.1:{free_port()}"
    workers = IntakeWorkers(1, listen, lambda: ("pagerd.yml", with_intake(1, listen)),
                            tmp_path / "state", Metrics(), poke=lambda: None)
    starting = asyncio.create_task(workers.start())

    async def spawned() -> None:
        assert workers._processes

    await until(spawned)
    process = workers._processes[0]
    assert process.stdout is not None
    await process.stdout.readline()  # its SIGTERM handler is in
    try:
        yield workers, starting
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_stop_ends_a_start_and_a_second_stop_waits_for_the_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shutdown that comes while a reload's new set starts ends that start at once (no
    15 s wait, no false failure); a shutdown that comes while a reload stops the old set
    waits for that stop rather than closing its pipe twice."""
    async with stubborn_set(tmp_path, monkeypatch) as (workers, starting):
        first = asyncio.create_task(workers.stop(1.0))
        second = asyncio.create_task(workers.stop(5.0))
        await asyncio.wait_for(starting, 5)  # returned, did not raise
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert workers._processes[0].returncode == -signal.SIGKILL
        assert all(task.done() for task in workers._tasks)


async def test_a_second_stop_keeps_its_own_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shutdown (a short deadline) during a reload's stop (a long one) kills what is left
    when its own deadline passes."""
    async with stubborn_set(tmp_path, monkeypatch) as (workers, starting):
        first = asyncio.create_task(workers.stop(30.0))
        await asyncio.sleep(0)
        began = time.monotonic()
        await asyncio.wait_for(workers.stop(0.3), 10)
        assert time.monotonic() - began < 5
        assert workers._processes[0].returncode == -signal.SIGKILL
        await asyncio.wait_for(asyncio.gather(first, starting), 5)


async def test_a_cancelled_stop_still_stops_the_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload cancelled while it stops the old set (its HTTP request cut at shutdown)
    leaves no process running and no task spawning on a closed pipe."""
    async with stubborn_set(tmp_path, monkeypatch) as (workers, starting):
        stopping = asyncio.create_task(workers.stop(0.3))
        await asyncio.sleep(0.05)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping

        async def stopped() -> None:
            assert workers._processes[0].returncode == -signal.SIGKILL
            assert all(task.done() for task in workers._tasks)
            assert workers._read_fd == -1

        await until(stopped, within=5)
        await asyncio.wait_for(starting, 5)


async def test_a_reload_during_shutdown_is_not_taken(tmp_path: Path) -> None:
    """The shutdown stops the intake processes it sees; a SIGHUP or POST /-/reload that
    comes meanwhile is not taken (503 with Retry-After), and the shutdown ends in order."""
    daemon, config = await started(tmp_path, with_intake(1, f"127.0.0.1:{free_port()}"))
    assert daemon.intake_workers is not None
    process = daemon.intake_workers._processes[0]
    os.kill(process.pid, signal.SIGSTOP)  # keeps the shutdown waiting on it
    async with serve_app(build_app(daemon)) as base, aiohttp.ClientSession() as session:
        stopping = asyncio.create_task(daemon.stop(2.0))

        async def begun() -> None:
            assert daemon.stopping

        await until(begun)
        assert not stopping.done()  # the stopped intake process holds it for 0.6 s

        config.write_text(with_intake(2, f"127.0.0.1:{free_port()}"))
        with pytest.raises(Stopping):
            await daemon.reload()
        async with session.post(f"{base}/-/reload",
                                headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 503 and response.headers["Retry-After"]

        await asyncio.wait_for(stopping, 10)
    assert process.returncode == -signal.SIGKILL
    assert daemon.state._lock_fd is None  # stopped to the end: the state dir is free


async def test_a_set_that_cannot_listen_is_logged_and_started_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_workers, "_LISTEN_TIMEOUT", 1.0)
    daemon, config = await started(tmp_path, with_intake(1, f"127.0.0.1:{free_port()}"))
    taken = socket.socket()  # the new port, held by someone else (no SO_REUSEPORT)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        config.write_text(with_intake(1, f"127.0.0.1:{port}"))
        with capture_logs() as logs:
            await daemon.reload()  # taken: the config is in, the set keeps trying
        failed = [e for e in logs if e["event"] == "intake_processes.restart_failed"]
        assert failed and failed[0]["retry"] == "by the set", logs
        assert daemon.settings.intake.listen == f"127.0.0.1:{port}"

        taken.close()

        async def serving() -> None:
            assert await post_alert(port, "a") == 200

        await until(serving, within=15)
    finally:
        taken.close()
        await daemon.stop(2.0)


async def test_a_set_that_could_not_be_made_is_made_by_the_next_reload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure before any process starts (the config copy cannot be written: a full or
    read-only disk) leaves no set behind; the next reload, even of the same config, makes
    one."""
    daemon, config = await started(tmp_path, with_intake(1, f"127.0.0.1:{free_port()}"))
    port = free_port()
    real = IntakeWorkers._write_config

    def full_disk(self: IntakeWorkers) -> None:
        raise OSError(28, "No space left on device")

    try:
        config.write_text(with_intake(1, f"127.0.0.1:{port}"))
        monkeypatch.setattr(IntakeWorkers, "_write_config", full_disk)
        with capture_logs() as logs:
            await daemon.reload()
        failed = [e for e in logs if e["event"] == "intake_processes.restart_failed"]
        assert failed and failed[0]["retry"] == "next reload", logs
        assert daemon.intake_workers is None

        monkeypatch.setattr(IntakeWorkers, "_write_config", real)
        await daemon.reload()
        assert daemon.intake_workers is not None
        assert await post_alert(port, "a") == 200
    finally:
        await daemon.stop(2.0)


async def test_a_default_intake_port_follows_the_address_the_daemon_serves_on(
        tmp_path: Path) -> None:
    """Without intake_listen, the intake port is the one after the daemon's. A reload that
    changes `listen` (which takes effect at restart) does not move it."""
    serving = next_free_pair()
    daemon, config = await started(tmp_path, with_intake(1, server_listen=serving))
    try:
        host, port = serving.rsplit(":", 1)
        assert daemon.intake_workers is not None
        assert daemon.intake_workers.listen == f"{host}:{int(port) + 1}"
        before = daemon.intake_workers

        config.write_text(with_intake(1, server_listen=f"127.0.0.1:{free_port()}"))
        with capture_logs() as logs:
            await daemon.reload()
        assert daemon.intake_workers is before
        assert [e["setting"] for e in logs if e["event"] == "config.restart_needed"] == [
            "server.listen"]
    finally:
        await daemon.stop(2.0)


async def test_a_listen_address_that_is_not_host_port_fails_start_up(tmp_path: Path) -> None:
    config = tmp_path / "pagerd.yml"
    config.write_text(with_intake(1))
    daemon = Daemon(Options(config=str(config), listen="localhost"),
                    StateDir(tmp_path / "state"))
    with pytest.raises(StartupError, match=r"'load config'.*'localhost': must be HOST:PORT"):
        await daemon.start()
    await daemon.stop(1.0)  # as `pagerd run` does after a failed start
