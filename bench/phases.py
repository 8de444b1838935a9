"""The benchmark's phases. Each starts fresh servers, one at a time, and stops them after.

One server at a time: on a 2-core machine two servers under load would take each other's
cores, so each figure is measured with the other server stopped (an idle one would only
add noise). Every phase runs Alertmanager first, then pagerd, back to back.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import profiling
from bench.configs import INGEST_GROUP_BY, LATENCY_GROUP_BY
from bench.fill import fill
from bench.servers import ROOT, Server, machine_busy, pinned, start, start_pagerd
from bench.wrk import IngestResult, run_wrk

KINDS = ("alertmanager", "pagerd")
SPY_RATE = 200


@dataclass
class Bench:
    """What every phase needs: where to work, the sink, what to run, which cores."""

    work: Path
    sink_port: int
    pagerd: str
    connections: int = 32
    server_cpus: set[int] | None = None
    client_cpus: set[int] | None = None
    intake_processes: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def sink_url(self) -> str:
        """Where both servers send their webhooks."""
        return f"http://127.0.0.1:{self.sink_port}/hook"

    def start(self, kind: str, group_by: str) -> Server:
        """A fresh server of `kind`."""
        # What the last phase left dirty in the page cache is written back first: its flush
        # would otherwise stall this server's fsyncs (a 100-per-request run leaves about a
        # gigabyte), and that is the last phase's cost, not this one's.
        os.sync()
        return start(kind, self.work, self.sink_url, group_by, self.pagerd, self.server_cpus,
                     self.intake_processes)

    def note(self, text: str) -> None:
        """Progress on stderr, so stdout is only the figures."""
        print(f"[bench] {text}", file=sys.stderr, flush=True)


def ingest(bench: Bench, batch: int, seconds: float) -> dict[str, IngestResult]:
    """Accepted alerts/s at `batch` alerts per request, for each server."""
    results = {}
    for kind in KINDS:
        server = bench.start(kind, INGEST_GROUP_BY)
        try:
            bench.note(f"ingest: {kind}, {batch}/request, {seconds:g} s")
            results[kind] = run_wrk(server, batch, seconds, f"i{batch}{kind[0]}",
                                    bench.connections, bench.client_cpus)
        finally:
            server.stop()
    return results


@dataclass
class LatencyResult:
    """POST -> first notification delays at one arrival rate against one server."""

    rate: float
    sent: int
    ok: int
    failed: int
    latencies: list[float]
    server_cores: float
    client_cores: float
    machine_cores: float

    @property
    def lost(self) -> int:
        """Accepted alerts whose notification never reached the sink in time."""
        return self.ok - len(self.latencies)

    def percentile(self, q: float) -> float:
        """The q-th percentile (nearest rank), in milliseconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
        return ordered[rank] * 1000


def sink_get(port: int, path: str) -> dict[str, list[float]]:
    """A JSON GET on the sink."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def latency(bench: Bench, rate: float, seconds: float, warmup: float
            ) -> dict[str, LatencyResult]:
    """POST -> first notification at `rate` Poisson arrivals, one alert per POST."""
    results = {}
    for kind in KINDS:
        server = bench.start(kind, LATENCY_GROUP_BY)
        run = f"lat{rate:g}-{kind}-{server.port}"
        try:
            bench.note(f"latency: {kind}, {rate:g}/s, {seconds:g} s")
            results[kind] = _latency_run(bench, server, run, rate, seconds, warmup)
        finally:
            server.stop()
    return results


def _latency_run(bench: Bench, server: Server, run: str, rate: float, seconds: float,
                 warmup: float) -> LatencyResult:
    cmd = [sys.executable, "-m", "bench.latency", "--kind", server.kind, "--url", server.url,
           "--rate", str(rate), "--duration", str(seconds), "--warmup", str(warmup),
           "--run", run]
    if server.token:
        cmd += ["--token", server.token]
    client_before, server_before = _children_cpu(), server.cpu_seconds()
    machine_before, began = machine_busy(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT,
                          preexec_fn=pinned(bench.client_cpus))
    elapsed = time.perf_counter() - began
    cores = ((server.cpu_seconds() - server_before) / elapsed,
             (_children_cpu() - client_before) / elapsed,
             (machine_busy() - machine_before) / elapsed)
    if done.returncode != 0:
        raise RuntimeError(f"latency client failed: {done.stderr}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    latencies = _collect(bench.sink_port, run, counts["ok"])
    return LatencyResult(rate, counts["sent"], counts["ok"], counts["failed"], latencies,
                         *cores)


def _collect(sink_port: int, run: str, expected: int, timeout: float = 15.0) -> list[float]:
    """The run's delays, once every accepted alert has been notified (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        latencies = sink_get(sink_port, f"/results?run={run}")["latencies"]
        if len(latencies) >= expected or time.monotonic() > deadline:
            return latencies
        time.sleep(0.2)


@dataclass
class MemoryResult:
    """VmRSS idle and holding each number of open alerts."""

    idle: int
    held: dict[int, int]


def memory(bench: Bench, sizes: list[int], settle: float = 3.0
           ) -> tuple[dict[str, MemoryResult], Path]:
    """RSS holding each size of open alerts; also pagerd's filled state dir, kept."""
    results = {}
    state = bench.work / "pagerd-filled-state"
    for kind in KINDS:
        if kind == "pagerd":
            server = start_pagerd(bench.work, bench.sink_url, INGEST_GROUP_BY, bench.pagerd,
                                  state, bench.server_cpus)
        else:
            server = bench.start(kind, INGEST_GROUP_BY)
        try:
            time.sleep(settle)
            result = MemoryResult(server.rss_bytes(), {})
            held = 0
            for size in sizes:
                bench.note(f"memory: {kind}, filling to {size} open alerts")
                fill(server, f"mem-{kind}", held, size)
                held = size
                time.sleep(settle)
                result.held[size] = server.rss_bytes()
            results[kind] = result
        finally:
            server.stop()
    return results, state


def firing_in(state: Path) -> int:
    """Firing alerts in a stopped pagerd's state dir (read only), to check the fill."""
    conn = sqlite3.connect(f"file:{state / 'pagerd.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM alerts WHERE status = 'firing'")
                   .fetchone()[0])
    finally:
        conn.close()


@dataclass
class RestartResult:
    """pagerd's process start -> GET /-/ready 200, on a filled and on an empty state dir."""

    alerts: int
    filled: list[float]
    empty: float


def restart(bench: Bench, state: Path, trials: int) -> RestartResult:
    """Restart pagerd on `state` `trials` times; and once on an empty state dir."""
    alerts = firing_in(state)
    filled = []
    for trial in range(trials):
        bench.note(f"restart: pagerd on {alerts} open alerts, trial {trial + 1}")
        server = start_pagerd(bench.work, bench.sink_url, INGEST_GROUP_BY, bench.pagerd,
                              state, bench.server_cpus)
        filled.append(server.startup_seconds)
        server.stop()
    server = bench.start("pagerd", INGEST_GROUP_BY)
    empty = server.startup_seconds
    server.stop()
    return RestartResult(alerts, filled, empty)


@dataclass
class ProfileResult:
    """Both views of pagerd under one load, and the load's own figures meanwhile."""

    load: str
    wall: profiling.Profile
    gil: profiling.Profile
    figures: list[str]


def profile(bench: Bench, batch: int, seconds: float) -> ProfileResult:
    """py-spy on pagerd under the throughput load of `batch` alerts per request."""

    def drive(server: Server) -> str:
        result = run_wrk(server, batch, seconds, f"p{batch}-{server.port}", bench.connections,
                         bench.client_cpus)
        return f"{result.alerts_per_second:,.0f} alerts/s"

    return _profiled(bench, INGEST_GROUP_BY, f"{batch} alert(s)/request", seconds, drive)


def profile_latency(bench: Bench, rate: float, seconds: float) -> ProfileResult:
    """py-spy on pagerd under the latency load at `rate` new alerts/s."""

    def drive(server: Server) -> str:
        run = f"plat{rate:g}-{server.port}"
        result = _latency_run(bench, server, run, rate, seconds, 0.0)
        return f"p99 {result.percentile(99):.1f} ms"

    return _profiled(bench, LATENCY_GROUP_BY, f"latency load, {rate:g}/s", seconds, drive)


def _profiled(bench: Bench, group_by: str, load: str, seconds: float,
              drive: Callable[[Server], str]) -> ProfileResult:
    views = []
    figures = []
    for gil in (False, True):
        view = "gil" if gil else "wall"
        server = bench.start("pagerd", group_by)
        out = bench.work / f"profile-{server.port}-{view}.txt"
        bench.note(f"profile: pagerd, {load}, {view} view")
        try:
            # py-spy starts a second into the load and stops a second before its end.
            spy_seconds = max(1, int(seconds) - 2)
            spy = profiling.record(server.pid, spy_seconds, out, gil=gil, rate=SPY_RATE,
                                   delay=1.0)
            figures.append(drive(server))
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
            views.append(profiling.load(out, SPY_RATE, spy_seconds))
        finally:
            server.stop()
    return ProfileResult(load, views[0], views[1], figures)
