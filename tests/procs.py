"""Real subprocesses for end-to-end tests: pagerd and Alertmanager, started, awaited, stopped.

Each child writes its output to a log file, whose tail goes into every error, so a failed
start says why. Waiting never blocks the event loop: a webhook sink served by the test in
that same loop must keep answering while a daemon drains its sends on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import aiohttp
import pytest

ALERTMANAGER = Path(os.environ.get("PAGERD_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager"))

# Variables of the test runner's environment that would change what a child daemon does.
_INHERITED_NOT = ("PAGERD_", "NOTIFY_SOCKET", "WATCHDOG_", "STATE_DIRECTORY", "LISTEN_")


class ProcessFailed(AssertionError):
    """A child did not start, died, or would not stop; the message ends with its log."""


def require_alertmanager() -> Path:
    """The Alertmanager binary; skip without it, except in CI (CI set), where it must be."""
    if os.access(ALERTMANAGER, os.X_OK):
        return ALERTMANAGER
    reason = f"{ALERTMANAGER} is not installed (Debian package prometheus-alertmanager)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it", pytrace=False)
    pytest.skip(reason)


def pagerd_command() -> list[str]:
    """argv prefix running the installed `pagerd` command of this interpreter.

    Not `python -m pagerd` from the source tree: there `pagerd/` lacks its subpackages.
    """
    script = Path(sys.executable).parent / "pagerd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pagerd.cli import main; sys.exit(main())"]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without pagerd and systemd variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_NOT)}
    env.update(extra or {})
    return env


class Managed:
    """One child process with a log file; ready when GET `ready_url` answers 200.

    `start` may be called again after the child died (a restart appends to the same log).
    """

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, *, ready_url: str,
        env: Mapping[str, str] | None = None, cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_url = ready_url
        self.env = dict(env) if env is not None else child_env()
        self.cwd = cwd or log_path.parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # The exit code of the last `stop` (None: it had to be killed).
        self.stopped_with: int | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running child's process id."""
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Whether the child is running now."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the child (not waiting for it to be ready)."""
        if self.alive:
            raise ProcessFailed(f"{self.name} is already running")
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        # Own session: a ^C at the terminal reaches pytest, which then stops the child itself.
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=self.env, cwd=self.cwd, start_new_session=True,
        )
        self.starts += 1

    async def wait_ready(self, within: float = 20.0) -> float:
        """Poll `ready_url` until 200; returns the seconds it took. Fails if the child dies."""
        began = time.monotonic()
        deadline = began + within
        probe = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=probe) as session:
            while True:
                if not self.alive:
                    raise self.failure(f"exited with {self.returncode()} before it was ready")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.ready_url) as response:
                        if response.status == 200:
                            return time.monotonic() - began
                if time.monotonic() > deadline:
                    raise self.failure(f"not ready after {within:.0f}s")
                await asyncio.sleep(0.05)

    async def wait_exit(self, within: float) -> int | None:
        """The exit code once the child has exited, or None if it still runs after `within`."""
        deadline = time.monotonic() + within
        while self.proc is not None:
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                return code
            await asyncio.sleep(0.02)
        return None

    def returncode(self) -> int | None:
        """The exit code, None while it runs."""
        return self.proc.poll() if self.proc is not None else None

    async def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        if await self.wait_exit(10.0) is None:
            raise self.failure("survived SIGKILL for 10s")

    async def stop(self, within: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `within` seconds; returns the exit code of the SIGTERM.

        None means the child had to be killed (or was never started).
        """
        if self.proc is None:
            return None
        code = self.returncode()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            code = await self.wait_exit(within)
            if code is None:
                await self.kill()
        self._close_log()
        self.stopped_with = code
        return code

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the child's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> ProcessFailed:
        """An error naming this child and quoting its log."""
        return ProcessFailed(f"{self.name} {what}; log {self.log_path}:\n{self.log_tail()}")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def pagerd_process(
    config: Path, state_dir: Path, port: int, log_path: Path,
    env: Mapping[str, str] | None = None,
) -> Managed:
    """`pagerd run` on 127.0.0.1:`port` (not started yet)."""
    argv = [*pagerd_command(), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir)]
    return Managed("pagerd", argv, log_path, ready_url=f"http://127.0.0.1:{port}/-/ready",
                   env=child_env(env))


def intake_pids(state_dir: Path) -> list[int]:
    """Running intake processes of the daemon on `state_dir` (server.intake_processes)."""
    mark = f"--state-dir\0{state_dir}\0".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            raw = cmdline.read_bytes()
            if b"pagerd.daemon.intake_process" in raw and mark in raw:
                found.append(int(cmdline.parent.name))
    return found


def alertmanager_process(
    binary: Path, config: Path, storage: Path, port: int, log_path: Path
) -> Managed:
    """A single-node Alertmanager (clustering off) on 127.0.0.1:`port` (not started yet)."""
    argv = [str(binary), f"--config.file={config}", f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            "--log.level=debug"]
    return Managed("alertmanager", argv, log_path,
                   ready_url=f"http://127.0.0.1:{port}/-/ready", env=child_env())


@contextlib.asynccontextmanager
async def running(process: Managed, within: float = 20.0) -> AsyncIterator[Managed]:
    """Start `process`, wait until it is ready, and always stop it afterwards."""
    try:
        process.start()
        await process.wait_ready(within)
        yield process
    finally:
        await process.stop()


async def pagerd_cli(*args: str, env: Mapping[str, str] | None = None) -> str:
    """Run a `pagerd` command to completion without blocking the loop; its stdout.

    Fails with its stderr when it exits non-zero.
    """
    proc = await asyncio.create_subprocess_exec(
        *pagerd_command(), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=child_env(env), cwd="/",
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30.0)
    if proc.returncode != 0:
        raise ProcessFailed(f"pagerd {' '.join(args)} exited {proc.returncode}: {err.decode()}")
    return out.decode()


async def until(check: Callable[[], Awaitable[None]], within: float = 10.0) -> None:
    """Wait until the async `check()` stops raising AssertionError; re-raise it at `within`."""
    deadline = time.monotonic() + within
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
