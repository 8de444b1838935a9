"""Throughput runs with wrk: a closed loop of POSTs of new alerts, in wrk's own process.

wrk (C, one event loop per thread) is the load generator here because on a 2-core machine
every cycle the client burns is taken from the server under test: wrk with one thread
costs a fraction of what a Python client costs for the same request rate (its CPU time
is measured and printed), and it is what the reference figures used (`-t1 -c32`).
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import Server, machine_busy, pinned

SCRIPT = Path(__file__).with_name("ingest.lua")


@dataclass
class IngestResult:
    """One wrk run against one server."""

    batch: int
    requests: int
    failed: int
    seconds: float
    server_cores: float
    client_cores: float
    machine_cores: float
    p50_ms: float
    p99_ms: float
    # pagerd: from the end of the load until every accepted alert was routed and stored
    # (with intake processes, ingest trails the 2xx; without, it is done by then).
    ingest_tail: float | None = None

    @property
    def alerts_per_second(self) -> float:
        """Accepted alerts per second: 2xx responses x batch / duration."""
        return (self.requests - self.failed) * self.batch / self.seconds

    @property
    def ingested_per_second(self) -> float | None:
        """Accepted alerts over the time until all of them were ingested."""
        if self.ingest_tail is None:
            return None
        return (self.requests - self.failed) * self.batch / (self.seconds + self.ingest_tail)


def ingest_tail(server: Server, accepted: int, timeout: float = 300.0) -> float:
    """Seconds from now until pagerd has ingested `accepted` alerts."""
    began = time.perf_counter()
    while server.ingested_alerts() < accepted:
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"pagerd ingested < {accepted} alerts in {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - began


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(server: Server, batch: int, seconds: float, run: str, connections: int = 32,
            cpus: set[int] | None = None) -> IngestResult:
    """Load `server` with `batch` alerts per request for `seconds`; the figures."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
           "-s", str(SCRIPT), server.url, "--", server.kind, str(batch), run,
           server.token or ""]
    client_before = _children_cpu()
    server_before = server.cpu_seconds()
    machine_before = machine_busy()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          preexec_fn=pinned(cpus))
    machine_cpu = machine_busy() - machine_before
    server_cpu = server.cpu_seconds() - server_before
    client_cpu = _children_cpu() - client_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    figures = json.loads(line.removeprefix("BENCH "))
    elapsed = figures["duration_us"] / 1e6
    failed = figures["status"] + figures["timeout"]
    accepted = (figures["requests"] - failed) * batch
    tail = ingest_tail(server, accepted) if server.kind == "pagerd" else None
    return IngestResult(
        batch=batch, requests=figures["requests"], failed=failed, seconds=elapsed,
        server_cores=server_cpu / elapsed, client_cores=client_cpu / elapsed,
        machine_cores=machine_cpu / elapsed,
        p50_ms=figures["latency_p50_us"] / 1000, p99_ms=figures["latency_p99_us"] / 1000,
        ingest_tail=tail,
    )
