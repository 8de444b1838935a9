"""Printing the figures: per-phase detail, then one summary table against the targets."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench import profiling
from bench.phases import LatencyResult, MemoryResult, ProfileResult, RestartResult
from bench.wrk import IngestResult

MB = 1024 * 1024


@dataclass
class Row:
    """One line of the summary: a figure for both servers, their ratio, a target."""

    figure: str
    am: float | None
    pagerd: float
    fmt: str = "{:,.0f}"
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        """The row as printed cells."""
        am = self.fmt.format(self.am) if self.am is not None else "-"
        ratio = "-"
        if self.am and not math.isnan(self.pagerd):
            ratio = f"{self.pagerd / self.am:.2f}x"
        verdict = "" if self.met is None else ("met" if self.met else "MISSED")
        return [self.figure, am, self.fmt.format(self.pagerd), ratio, self.target, verdict]


def table(rows: list[Row]) -> list[str]:
    """The summary table, aligned."""
    head = ["figure", "Alertmanager", "pagerd", "pagerd/AM", "target", ""]
    cells = [head, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head))]
    out = []
    for n, line in enumerate(cells):
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join([first, *rest]).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    return out


def _others(machine: float, *ours: float) -> float:
    """Cores busy with anything but the server and the load generator: the sink, the
    orchestrator, py-spy, and whatever else runs on the machine."""
    return max(0.0, machine - sum(ours))


def ingest_detail(batch: int, results: dict[str, IngestResult]) -> list[str]:
    """One throughput run per server, with where the CPU went."""
    lines = [f"ingest, {batch} alert(s) per request (wrk -t1, closed loop):"]
    for kind, r in results.items():
        lines.append(
            f"  {kind:<12} {r.alerts_per_second:>9,.0f} alerts/s  {r.requests:>7,} requests"
            f" in {r.seconds:.1f} s, {r.failed} failed; request p50 {r.p50_ms:.1f} ms,"
            f" p99 {r.p99_ms:.1f} ms; cores: server {r.server_cores:.2f},"
            f" wrk {r.client_cores:.2f},"
            f" rest of machine {_others(r.machine_cores, r.server_cores, r.client_cores):.2f}")
        if r.ingest_tail is not None and r.ingested_per_second is not None:
            lines.append(
                f"  {'':<12} {r.ingested_per_second:>9,.0f} alerts/s ingested: every accepted"
                f" alert routed and stored {r.ingest_tail:.2f} s after the load ended")
    return lines


def latency_detail(results: dict[str, LatencyResult]) -> list[str]:
    """One latency run per server."""
    rate = next(iter(results.values())).rate
    lines = [f"POST -> first notification at the sink, {rate:g}/s Poisson, 1 alert/POST:"]
    for kind, r in results.items():
        lines.append(
            f"  {kind:<12} p50 {r.percentile(50):6.1f} ms  p95 {r.percentile(95):6.1f} ms"
            f"  p99 {r.percentile(99):6.1f} ms  max {r.percentile(100):6.1f} ms;"
            f" {r.ok} accepted, {r.failed} failed, {r.lost} not notified;"
            f" cores: server {r.server_cores:.2f}, client {r.client_cores:.2f},"
            f" rest of machine {_others(r.machine_cores, r.server_cores, r.client_cores):.2f}")
    return lines


def memory_detail(results: dict[str, MemoryResult]) -> list[str]:
    """RSS per server, idle and holding each size."""
    lines = ["RSS (VmRSS) holding N open (firing) alerts, 500 groups:"]
    for kind, r in results.items():
        held = ", ".join(f"{size:,}: {rss / MB:.0f} MB" for size, rss in r.held.items())
        lines.append(f"  {kind:<12} idle: {r.idle / MB:.0f} MB, {held}")
    return lines


def restart_detail(r: RestartResult) -> list[str]:
    """pagerd's restart-to-ready trials."""
    trials = ", ".join(f"{s:.2f}" for s in r.filled)
    return [f"pagerd restart -> /-/ready 200 with {r.alerts:,} firing alerts in its state dir:"
            f" {trials} s (empty state dir: {r.empty:.2f} s)"]


def profile_detail(result: ProfileResult) -> list[str]:
    """Both views of one profiled load."""
    lines = [f"profile of pagerd, {result.load} (meanwhile: {', '.join(result.figures)};"
             " py-spy costs some of it)", " wall view:"]
    lines += profiling.wall_report(result.wall)
    lines.append(" GIL view:")
    lines += profiling.gil_report(result.gil)
    return lines
