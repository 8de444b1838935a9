"""The daemon's intake processes: started with it, restarted when they die, stopped first.

Each is `python -m pagerd.daemon.intake_process` with the daemon's config and state dir, and the
write end of a pipe it pokes after each commit; the daemon's JournalDrain listens on the
read end. A process checks for its parent, so none outlives a daemon killed with -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from pagerd.daemon.metrics import Metrics

log = structlog.get_logger("pagerd.intake_processes")

# A process that exits unasked is started again after this long (doubling, up to the cap),
# so one that cannot start does not spin.
_RESTART_FIRST = 0.5
_RESTART_MAX = 10.0
# A process that ran this long before exiting counts as having started well.
_STARTED_WELL = 10.0
# How long start-up waits for every process to listen.
_LISTEN_TIMEOUT = 15.0
# What a process writes on the pipe: "committed something", and "listening".
POKE = b"\0"
LISTENING = b"L"


class NotListening(RuntimeError):
    """Some processes of a set did not listen in time: the set keeps starting them."""


class IntakeWorkers:
    """Runs `count` intake processes for one daemon, listening on `listen`."""

    def __init__(self, count: int, listen: str, source: Callable[[], tuple[str, str]],
                 state_dir: Path, metrics: Metrics, poke: Callable[[], None],
                 exited: Callable[[], None] = lambda: None) -> None:
        self.count = count
        self.listen = listen
        self._exited = exited
        # The config the daemon accepted (file name, text): the processes run that, not
        # whatever the file holds now, which may be refused or not yet reloaded.
        self._source = source
        self.config_copy = state_dir / "intake" / "config.json"
        self.state_dir = state_dir
        self.metrics = metrics
        self._poke = poke
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_asked = asyncio.Event()
        # The one stop of this set: a second stop() (a shutdown while a reload stops the
        # set) waits for it rather than closing the pipe twice.
        self._stopping: asyncio.Future[None] | None = None
        self._read_fd, self._write_fd = os.pipe()
        self._listening: set[int] = set()
        self._unread = b""
        self._all_listening = asyncio.Event()
        self._spawning = asyncio.Lock()

    async def start(self) -> None:
        """Start every process, each watched by a task that restarts it; return once all
        of them listen, so that connections made from then on are spread over all of them,
        or once stop() is called meanwhile.
        """
        try:
            self._write_config()
        except BaseException:
            self._close_pipe()  # nothing was started: the set is done with
            raise
        os.set_blocking(self._read_fd, False)
        asyncio.get_running_loop().add_reader(self._read_fd, self._read_pipe)
        for index in range(self.count):
            self._tasks.append(asyncio.create_task(self._keep(index)))
        listening = asyncio.ensure_future(self._all_listening.wait())
        stopping = asyncio.ensure_future(self._stop_asked.wait())
        try:
            await asyncio.wait((listening, stopping), timeout=_LISTEN_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            stopping.cancel()
        if not self._all_listening.is_set() and not self._stop_asked.is_set():
            raise NotListening(f"{self.count - len(self._listening)} of {self.count} intake "
                               "processes did not listen (their log says why)")

    def _write_config(self) -> None:
        file, text = self._source()
        self.config_copy.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.config_copy.with_suffix(".new")
        fresh.unlink(missing_ok=True)
        # Private from the first byte: the config may hold secrets.
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"file": file, "text": text}))
        fresh.replace(self.config_copy)

    def _read_pipe(self) -> None:
        data = self._unread
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._read_fd, 4096):
                data += chunk
        # LISTENING is followed by the process's index; a read may end between the two.
        at = data.find(LISTENING)
        while at != -1 and at + 1 < len(data):
            self._listening.add(data[at + 1])
            at = data.find(LISTENING, at + 2)
        self._unread = data[at:] if at != -1 else b""
        if len(self._listening) >= self.count:
            self._all_listening.set()
        self._poke()

    async def _keep(self, index: int) -> None:
        delay = _RESTART_FIRST
        while not self._stop_asked.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                process = await self._spawn(index)
            except OSError as exc:
                log.error("intake_process.start_failed", index=index, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESTART_MAX)
                continue
            self._processes[index] = process
            if self._stop_asked.is_set():  # stop() came while it started, and did not see it
                process.send_signal(signal.SIGTERM)
            code = await process.wait()
            self._poke()  # whatever it committed last
            self._exited()  # and counted last
            if self._stop_asked.is_set():
                return
            self.metrics.intake_process_exits.inc()
            log.error("intake_process.exited", index=index, pid=process.pid, code=code)
            delay = _RESTART_FIRST if loop.time() - started > _STARTED_WELL else delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        # -P: the daemon's working directory is not on the process's path, so a `pagerd/`
        # folder there (the source tree's) cannot stand in for the installed package.
        args = [sys.executable, "-P", "-m", "pagerd.daemon.intake_process",
                "--index", str(index), "--notify-fd", str(self._write_fd), "--listen", self.listen,
                "--state-dir", str(self.state_dir), "--config-copy", str(self.config_copy)]
        # Started with SIGHUP blocked (a mask survives exec): a reload sent while it imports
        # stays pending until its handler is in, instead of killing it (SIGHUP's default).
        # The mask is the thread's, and this one waits in between: spawns go one at a time,
        # or one would restore the mask another had set, and leave SIGHUP blocked. A SIGHUP
        # sent to the daemon meanwhile is taken by one of its other threads (the store's,
        # started with it unblocked), whose handler hands it to the event loop.
        async with self._spawning:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
            try:
                process = await asyncio.create_subprocess_exec(
                    *args, pass_fds=(self._write_fd,))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        log.info("intake_process.started", index=index, pid=process.pid)
        return process

    def reload(self) -> None:
        """Tell every process to take the config the daemon has just taken."""
        self._write_config()
        self._signal(signal.SIGHUP)

    def _signal(self, signum: int) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def stop(self, deadline: float) -> None:
        """Stop every process: each answers 503, finishes what is inside, commits and exits
        within `deadline`, or is killed.

        The stop runs to its end even if the caller is cancelled: half done, it would leave
        processes running with their pipe closed. A second call waits for the first, for
        its own deadline at most, then kills what is left.
        """
        if self._stopping is None:
            self._stop_asked.set()
            self._stopping = asyncio.ensure_future(self._stop_all(deadline))
            await asyncio.shield(self._stopping)
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._stopping), deadline)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await asyncio.shield(self._stopping)

    async def _stop_all(self, deadline: float) -> None:
        try:
            await self._stop_processes(deadline)
        finally:
            self._close_pipe()

    async def _stop_processes(self, deadline: float) -> None:
        self._signal(signal.SIGTERM)
        waits = [process.wait() for process in self._processes.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), deadline)
        except TimeoutError:
            # What a killed process had committed is in its journal; what it had not was
            # never answered 2xx.
            pids = [p.pid for p in self._processes.values() if p.returncode is None]
            log.warning("intake_process.killed", pids=pids, deadline=deadline)
            self._signal(signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in self._processes.values()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close_pipe(self) -> None:
        if self._read_fd < 0:
            return
        asyncio.get_running_loop().remove_reader(self._read_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)
        self._read_fd = self._write_fd = -1
