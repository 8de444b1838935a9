"""Starting, watching and stopping the servers under test, each in its own process."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.configs import TOKEN, alertmanager_config, pagerd_config

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
# Where `python -m bench.<module>` works from, for the bench's own child processes.
ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of GET `path` on loopback, or None if nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of all of a process's threads so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (pagerd's intake processes), as they are now."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                continue  # the thread ended meanwhile
    return found


def _vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(value) for value in first[1:9]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / _TICKS


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> float:
    """Poll GET /-/ready every 5 ms until it is 200; returns when (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        if http_status(port, "/-/ready") == 200:
            return time.perf_counter()
        time.sleep(0.005)
    raise TimeoutError(f"server on port {port} not ready within {timeout} s")


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A Popen `preexec_fn` that pins the child (and every thread it starts) to `cpus`."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@dataclass
class Server:
    """A running server process: which kind, where it listens, how to reach it."""

    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    intake_path: str
    token: str | None
    started: float
    ready_at: float
    # pagerd with intake processes: the port they share, which the load goes to.
    intake_port: int | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    @property
    def url(self) -> str:
        """The intake URL the load generators post to."""
        return f"http://127.0.0.1:{self.intake_port or self.port}{self.intake_path}"

    @property
    def startup_seconds(self) -> float:
        """From process start to the first 200 of /-/ready."""
        return self.ready_at - self.started

    def rss_bytes(self) -> int:
        """VmRSS of the process and its children (intake processes), from /proc."""
        return sum(_vm_rss(pid) for pid in process_tree(self.pid))

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process and its children so far."""
        return sum(process_cpu(pid) for pid in process_tree(self.pid))

    def ingested_alerts(self) -> float:
        """pagerd: alerts routed and stored (pagerd_alerts_received_total), from /metrics."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("pagerd_alerts_received_total{"))

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM, wait for the exit (SIGKILL after `timeout`); returns seconds taken."""
        began = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.perf_counter() - began


def _spawn(cmd: list[str], log: Path, cwd: Path, cpus: set[int] | None
           ) -> tuple[subprocess.Popen[bytes], float]:
    # The installed pagerd, never the source tree: a PYTHONPATH pointing at the repo would
    # shadow the installed package map with the bare `pagerd/` folder.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, preexec_fn=pinned(cpus))
    return proc, started


def start_alertmanager(work: Path, sink_url: str, group_by: str,
                       cpus: set[int] | None = None) -> Server:
    """A single-node Alertmanager (clustering off) with a fresh storage dir."""
    port = free_port()
    home = work / f"alertmanager-{port}"
    home.mkdir(parents=True)
    config = home / "alertmanager.yml"
    config.write_text(alertmanager_config(sink_url, group_by))
    cmd = [ALERTMANAGER, f"--config.file={config}", f"--storage.path={home / 'data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
           "--log.level=warn"]
    proc, started = _spawn(cmd, home / "log", home, cpus)
    ready = wait_ready(proc, port)
    return Server("alertmanager", proc, port, "/api/v2/alerts", None, started, ready)


def pagerd_command(given: str | None) -> str:
    """The `pagerd` entry point to run: `given`, else the one on PATH."""
    found = shutil.which(given or "pagerd")
    if found is None:
        raise SystemExit(f"no `{given or 'pagerd'}` command: pip install -e . first")
    return found


def start_pagerd(work: Path, sink_url: str, group_by: str, command: str,
                 state_dir: Path | None = None, cpus: set[int] | None = None,
                 intake_processes: int = 0) -> Server:
    """`pagerd run` on its production durability settings, with a given or fresh state dir.

    Nothing about durability is configured here: pagerd's defaults (SQLite WAL,
    synchronous=FULL, commit before 2xx) are its production settings.
    """
    port = free_port()
    home = work / f"pagerd-{port}"
    home.mkdir(parents=True)
    config = home / "pagerd.yml"
    intake_port = free_port() if intake_processes else None
    config.write_text(pagerd_config(sink_url, group_by, intake_processes, intake_port))
    state = state_dir or home / "state"
    cmd = [command, "run", "--config", str(config), "--listen", f"127.0.0.1:{port}",
           "--state-dir", str(state)]
    proc, started = _spawn(cmd, home / "log", home, cpus)
    ready = wait_ready(proc, port)
    if intake_port is not None:
        wait_ready(proc, intake_port)
    return Server("pagerd", proc, port, "/api/v1/alertmanager", TOKEN, started, ready,
                  intake_port)


def start(kind: str, work: Path, sink_url: str, group_by: str, pagerd: str,
          cpus: set[int] | None = None, intake_processes: int = 0) -> Server:
    """A fresh server of `kind` ("alertmanager" or "pagerd")."""
    if kind == "alertmanager":
        return start_alertmanager(work, sink_url, group_by, cpus)
    return start_pagerd(work, sink_url, group_by, pagerd, cpus=cpus,
                        intake_processes=intake_processes)
