"""`pagerd run`: start the daemon, serve HTTP, handle signals, shut down in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from aiohttp import web

from pagerd import __version__
from pagerd.daemon import heap, systemd
from pagerd.daemon.app import build_app
from pagerd.daemon.core import Daemon, Options, StartupError, Stopping
from pagerd.daemon.statedir import StateDir, default_state_dir
from pagerd.errors import ConfigErrors
from pagerd.settings import split_listen

log = structlog.get_logger("pagerd.daemon")

SHUTDOWN_DEADLINE = 10.0
GAUGE_REFRESH = 10.0


async def serve(options: Options) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit code."""
    state = StateDir(options.state_dir or default_state_dir())
    daemon = Daemon(options, state)
    log.info("pagerd.starting", version=__version__, state_dir=str(state.path))
    try:
        await daemon.start()
    except StartupError as exc:
        if isinstance(exc.__cause__, ConfigErrors):
            for error in exc.__cause__.errors:
                log.error("config.refused", position=str(error.position), reason=error.reason)
        log.error("pagerd.startup_failed", error=str(exc))
        await daemon.stop(1.0)
        return 1

    runner = web.AppRunner(build_app(daemon), access_log=None,
                           shutdown_timeout=SHUTDOWN_DEADLINE / 2)
    await runner.setup()
    host, port = split_listen(daemon.listen)
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        log.error("pagerd.startup_failed", error=f"start-up step 'listen' failed: {exc}")
        await runner.cleanup()
        await daemon.stop(1.0)
        return 1
    log.info("pagerd.listening", address=f"{host}:{port}")
    heap.settle()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(daemon)))
    helpers = [asyncio.create_task(_refresh_gauges(daemon)), asyncio.create_task(_watchdog())]
    systemd.notify("READY=1")

    await stop.wait()
    await _shutdown(daemon, runner, helpers)
    return 0


async def _shutdown(daemon: Daemon, runner: web.AppRunner, helpers: list[asyncio.Task[None]]
                    ) -> None:
    """Stop intake, drain, persist, close, within the deadline.

    Intake answers 503 at once; closing the HTTP server then waits for requests already
    inside (their writes commit); the daemon then drains sends and closes the store.
    """
    log.info("pagerd.shutting_down")
    systemd.notify("STOPPING=1")
    daemon.begin_stop()
    # No new sends from here: those that fall due now go out after the restart, while
    # sends already on their way finish (daemon.stop waits for them).
    daemon.dispatcher.stop_claiming()
    for task in helpers:
        task.cancel()
    await runner.cleanup()
    await daemon.stop(SHUTDOWN_DEADLINE / 2)
    log.info("pagerd.stopped")


async def _reload(daemon: Daemon) -> None:
    # Errors are logged by reload itself, with file and line; the old config keeps running.
    with contextlib.suppress(ConfigErrors, Stopping):
        await daemon.reload()


async def _refresh_gauges(daemon: Daemon) -> None:
    while True:
        await asyncio.sleep(GAUGE_REFRESH)
        try:
            await daemon.refresh_gauges()
        except Exception as exc:
            log.warning("metrics.refresh_failed", error=str(exc))


async def _watchdog() -> None:
    interval = systemd.watchdog_interval()
    if interval is None:
        return
    while True:
        systemd.notify("WATCHDOG=1")
        await asyncio.sleep(interval)
