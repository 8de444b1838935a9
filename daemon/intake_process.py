"""One intake process: the intake endpoints on a port of their own, journalled, not ingested.

One Python process routes and stores on one core at most. With `server.intake_processes`,
the daemon starts this many processes that share the intake port (SO_REUSEPORT): each
authenticates and validates a request exactly as the daemon would (daemon/intake_gate.py),
commits the body to its own journal, answers 2xx, and pokes the daemon through a pipe. The
daemon ingests the journals (daemon/journal_drain.py). A 2xx still means "on disk".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import uvloop

from pagerd.daemon import heap
from pagerd.daemon.intake_counters import counters_file, counters_text, write_counters
from pagerd.daemon.intake_gate import IntakeRequest, admit, verifiers_for
from pagerd.daemon.intake_http import IntakeHttpServer
from pagerd.daemon.intake_routes import IntakeRoutes
from pagerd.daemon.intake_workers import LISTENING, POKE
from pagerd.daemon.logging import configure as configure_logging
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.responses import Reply, json_reply, unavailable_reply
from pagerd.daemon.statedir import StateDir
from pagerd.errors import ConfigErrors
from pagerd.settings import Settings, load_settings, split_listen
from pagerd.store.base import StoreUnavailable
from pagerd.store.journal import JournalWriter

if TYPE_CHECKING:  # loaded only when an integration takes Entra ID tokens
    from pagerd.receivers.entra import EntraVerifier

log = structlog.get_logger("pagerd.intake_process")

# How often the backlog is read back from the journal, and the parent checked for.
_CHECK_EVERY = 0.2
# Over the backlog, a request waits this long for the daemon to make room before its 503:
# a sender that waits for its answer is slowed down rather than refused and retrying (which
# costs the CPU the daemon needs to catch up). Under any sender's timeout.
_ROOM_WAIT = 1.0
# How often the backlog is read back while requests wait for room, and at most.
_CHECK_WAITING = 0.05
# Seconds requests inside get at shutdown; the daemon kills a process after 1.5 s.
_SHUTDOWN_GRACE = 1


def journal_path(state_dir: Path, index: int) -> Path:
    """Where intake process `index` journals."""
    return state_dir / "intake" / f"journal-{index}.db"


@dataclass(frozen=True)
class ProcessOptions:
    """How the daemon started this process."""

    config_copy: Path
    state_dir: Path
    index: int
    notify_fd: int
    # The daemon's, not the config's: a default intake port follows the address the daemon
    # serves on, which a reload does not move.
    listen: str


class IntakeProcess:
    """Serves intake, journals it, tells the daemon; holds what the gate needs."""

    def __init__(self, options: ProcessOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        self.settings: Settings
        self.tokens: dict[str, str] = {}
        self.verifiers: dict[str, EntraVerifier] = {}
        self.accepting = False
        self.journal = JournalWriter(journal_path(options.state_dir, options.index))
        # The backlog: alerts journalled and not yet ingested, as last read from the journal
        # plus those committed since, and alerts admitted whose entries are committing.
        self._journalled = 0
        self._committed = 0  # alerts committed to the journal by this process, ever
        self._entering = 0
        self._waiting = 0  # requests waiting for room in the backlog
        self._hurry = asyncio.Event()  # read the backlog now: a request waits for it
        self._checked = asyncio.Event()  # set, and replaced, at each read of the backlog
        self._counters_written = ""
        self._run = f"{os.getpid()}-{time.time():.6f}"
        self._parent = os.getppid()
        self._closing: set[asyncio.Future[None]] = set()
        self._poke_due = False

    def load_config(self) -> None:
        """Take the config the daemon accepted, and the integrations' tokens; raises
        ConfigErrors or OSError."""
        source = json.loads(self.options.config_copy.read_text())
        # Under the file's own name: relative `_file` secrets resolve as the daemon's did.
        settings = load_settings(source["file"], source["text"])
        state = StateDir(self.options.state_dir)
        tokens = {}
        for name, integration in settings.integrations.items():
            token = integration.token or state.read_token(name)
            if token:
                tokens[name] = token
        old = self.verifiers
        self.settings, self.tokens = settings, tokens
        self.verifiers = verifiers_for(settings.integrations.values())
        for verifier in old.values():  # their JWKS sessions
            closing = asyncio.ensure_future(verifier.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def intake(self, request: IntakeRequest) -> Reply:
        """POST /api/v1/{alertmanager|azure}[/{integration}], as the daemon serves it."""
        # Held, or refused, once authenticated and before the body is parsed: the daemon,
        # behind already, needs the CPU more than a 400 would.
        admitted = await admit(self, request, room=self._room)
        if isinstance(admitted, Reply):
            return admitted
        alerts = len(admitted.alerts)
        # In the backlog from now: whoever checks it next, while this entry commits, counts
        # it (requests waiting for room are let in one after another, not all at once).
        self._entering += alerts
        try:
            await self.journal.append(admitted.kind, admitted.integration, alerts,
                                      time.time(), admitted.body)
        except StoreUnavailable as exc:
            log.warning("intake.unavailable", integration=admitted.integration, error=str(exc))
            return unavailable_reply(self, "store")
        finally:
            self._entering -= alerts
        self._journalled += alerts
        self._committed += alerts
        self._poke_soon()
        return json_reply({"status": "success", "alerts": alerts})

    async def _room(self) -> bool:
        """Whether the backlog has room, waiting up to _ROOM_WAIT for the daemon to make
        it. Requests waiting are let in one after another, each counted in the backlog
        before the next looks (see `intake`), not all at once."""
        limit = self.settings.intake.backlog
        if self._backlog() < limit:
            return True

        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ROOM_WAIT
        self._waiting += 1
        if self._waiting == 1:
            self._hurry.set()  # the watch reads the backlog more often from now
        try:
            while self._backlog() >= limit:
                left = deadline - loop.time()
                if left <= 0 or not self.accepting:
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._checked.wait(), left)
        finally:
            self._waiting -= 1
        return True

    def _backlog(self) -> int:
        return self._journalled + self._entering

    async def read_backlog(self) -> None:
        """Read the backlog back from the journal; wake whoever waits for room."""
        # What commits while the journal is read may be in the figure read or not: counted
        # on top, at worst twice, never missed.
        committed = self._committed
        try:
            read = await asyncio.to_thread(self.journal.backlog)
            self._journalled = read + self._committed - committed
        except Exception as exc:  # the journal's trouble shows on the next append
            log.warning("intake_process.backlog_unknown", error=str(exc))
        # Whoever waits for room looks again, at the figure just read.
        checked, self._checked = self._checked, asyncio.Event()
        checked.set()

    def turned_away(self) -> Reply:
        """A connection past the HTTP server's limit: 503, to retry."""
        return unavailable_reply(self, "connections")

    def stop_accepting(self) -> None:
        """Answer 503 from now on, those waiting for room included."""
        self.accepting = False
        self._checked.set()

    def is_ready(self) -> bool:
        """GET /-/ready: accepting."""
        return self.accepting

    def _poke_soon(self) -> None:
        # Once per turn of the loop: the requests of one journal commit resume together, and
        # one poke tells of them all (a write, and a wake-up of the daemon, each saved).
        if not self._poke_due:
            self._poke_due = True
            asyncio.get_running_loop().call_soon(self._poke)

    def _poke(self) -> None:
        self._poke_due = False
        # One byte says "there is more to read"; a full pipe already says so.
        try:
            os.write(self.options.notify_fd, POKE)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                log.warning("intake_process.daemon_gone")

    def tell_listening(self) -> None:
        """Tell the daemon this process takes connections now (its start-up waits for it)."""
        message = LISTENING + bytes([self.options.index])
        for _ in range(500):  # a full pipe empties as soon as the daemon reads it
            try:
                os.write(self.options.notify_fd, message)
                return
            except BlockingIOError:
                time.sleep(0.01)

    def reload(self) -> None:
        """SIGHUP (from the daemon, after its own reload): new config and tokens."""
        try:
            self.load_config()
        except (ConfigErrors, OSError, ValueError) as exc:
            # The daemon accepted it, so this is the copy's trouble: keep the old one.
            log.warning("intake_process.reload_refused", error=str(exc))
            return
        log.info("intake_process.reloaded", digest=self.settings.digest)
        heap.settle()

    def write_counters(self) -> None:
        """Leave this process's refusal counters where the daemon reads them, if changed."""
        text = counters_text(self.metrics, self._run)
        if text == self._counters_written:
            return
        try:
            write_counters(text, counters_file(self.journal.path.parent, self.options.index))
            self._counters_written = text
        except OSError as exc:
            log.warning("intake_process.counters_unwritten", error=str(exc))

    async def watch(self, stop: asyncio.Event) -> None:
        """Keep the backlog figure true and the counters written; stop when the daemon is
        gone."""
        loop = asyncio.get_running_loop()
        counted = 0.0
        while not stop.is_set():
            if loop.time() - counted >= _CHECK_EVERY:
                self.write_counters()
                counted = loop.time()
            await self.read_backlog()
            if os.getppid() != self._parent:
                log.warning("intake_process.orphaned", index=self.options.index)
                stop.set()
            # One read per _CHECK_WAITING at most, however many requests begin to wait.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), _CHECK_WAITING)
            if self._waiting or stop.is_set():
                continue
            self._hurry.clear()  # until a request waits: read every _CHECK_EVERY
            wakes = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._hurry.wait())]
            await asyncio.wait(wakes, timeout=_CHECK_EVERY - _CHECK_WAITING,
                               return_when=asyncio.FIRST_COMPLETED)
            for wake in wakes:
                wake.cancel()


def intake_server(process: IntakeProcess) -> IntakeHttpServer:
    """The HTTP server of the intake endpoints."""
    # The body limit is the gate's too: a larger body is refused before it is all read.
    routes = IntakeRoutes(process)
    return IntakeHttpServer(routes, body_limit=process.settings.max_body_bytes,
                            turned_away=routes.turned_away)


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on the intake port that the other intake processes share: the
    kernel spreads connections over them (SO_REUSEPORT)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def run_intake_process(options: ProcessOptions) -> int:
    """Serve until SIGTERM or the daemon's exit; SIGHUP reloads. Returns the exit code."""
    os.set_blocking(options.notify_fd, False)
    process = IntakeProcess(options)
    # Handlers first: a reload sent from here on is taken (it re-reads the copy), and a
    # stop sent while starting ends the process once it has.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, process.reload)
    # The daemon starts this process with SIGHUP blocked, so that a reload sent while it
    # imported waited: it is taken now, by the handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    try:
        process.load_config()
    except (ConfigErrors, OSError, ValueError) as exc:
        log.error("intake_process.startup_failed", error=str(exc))
        return 1
    try:
        host, port = split_listen(options.listen)
        sock = shared_socket(host, port)
    except (OSError, ValueError) as exc:
        log.error("intake_process.startup_failed", error=f"listen: {exc}")
        return 1
    await process.read_backlog()  # what an earlier run left counts from the first request
    # Accepting before the server takes its first connection: the shared port may hand this
    # process connections from the moment it listens, and none of them may be told
    # "shutting down" (they wait in the socket's queue until the server starts).
    process.accepting = True
    server = intake_server(process)
    await server.start(sock)
    process.tell_listening()
    log.info("intake_process.listening", index=options.index, address=f"{host}:{port}")
    heap.settle()
    await process.watch(stop)

    # Answer 503 from here; requests already inside finish, and their entries commit.
    process.stop_accepting()
    await server.stop(_SHUTDOWN_GRACE)
    process.write_counters()
    await process.journal.close()
    log.info("intake_process.stopped", index=options.index)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pagerd.daemon.intake_process`: started by `pagerd run`, never by hand.

    Its own entry point rather than a `pagerd` command, so it imports what intake needs and
    not the whole daemon.
    """
    parser = argparse.ArgumentParser(prog="pagerd-intake-process")
    parser.add_argument("--config-copy", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--notify-fd", type=int, required=True)
    parser.add_argument("--listen", required=True)
    args = parser.parse_args(argv)
    configure_logging()
    options = ProcessOptions(config_copy=args.config_copy, state_dir=args.state_dir,
                             index=args.index, notify_fd=args.notify_fd, listen=args.listen)
    # uvloop: this process is all HTTP, which it serves about 8 % faster than asyncio's loop.
    return uvloop.run(run_intake_process(options))


if __name__ == "__main__":
    sys.exit(main())
