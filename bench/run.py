"""pagerd vs Alertmanager, in one run, on this machine: `python -m bench.run [--quick]`.

Prints, for both servers and their ratio: accepted alerts/s at 1 and 100 alerts per
request; POST -> first notification p50/p95/p99 at 50/s and 500/s; RSS holding 10k and
100k open alerts; pagerd's restart-to-ready with 100k open alerts; and py-spy hot spots of
pagerd under both throughput loads. See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import phases, report
from bench.phases import Bench
from bench.servers import (
    ALERTMANAGER,
    ROOT,
    free_port,
    http_status,
    machine_busy,
    pagerd_command,
    pinned,
)

PHASES = ("ingest", "latency", "memory", "profile")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; --quick shortens every phase for a smoke run."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="short phases and small sizes: a smoke run, not figures")
    parser.add_argument("--ingest-seconds", type=float)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--warmup-seconds", type=float)
    parser.add_argument("--profile-seconds", type=float)
    parser.add_argument("--sizes", help="open alerts to hold for RSS, e.g. 10000,100000")
    parser.add_argument("--restarts", type=int, help="restart-to-ready trials")
    parser.add_argument("--rates", default="50,500", help="latency arrival rates per second")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--intake-processes", type=int, default=0,
                        help="run pagerd with server.intake_processes (0: off, its default)")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases of {PHASES}; memory includes restart")
    parser.add_argument("--pagerd", help="the pagerd command (default: `pagerd` on PATH)")
    parser.add_argument("--pin", action="store_true",
                        help="servers on cores 0..n-2, load generators and sink on the last")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"),
                        help="where state dirs go: must be a disk, not tmpfs")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    quick = args.quick
    args.ingest_seconds = args.ingest_seconds or (3.0 if quick else 15.0)
    args.latency_seconds = args.latency_seconds or (3.0 if quick else 15.0)
    args.warmup_seconds = args.warmup_seconds or (0.5 if quick else 2.0)
    args.profile_seconds = args.profile_seconds or (5.0 if quick else 12.0)
    args.restarts = args.restarts or (1 if quick else 3)
    args.sizes = [int(n) for n in (args.sizes or ("1000,10000" if quick else
                                                  "10000,100000")).split(",")]
    args.rates = [float(n) for n in args.rates.split(",")]
    args.only = set(args.only.split(","))
    return args


def _first_line(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def header(args: argparse.Namespace, work: Path, pagerd: str) -> list[str]:
    """What was run, where, and how busy the machine was before we started."""
    before = machine_busy()
    time.sleep(2)
    others = (machine_busy() - before) / 2
    load = os.getloadavg()
    lines = [
        f"pagerd benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{' (--quick: smoke run, not figures)' if args.quick else ''}",
        f"machine: {os.cpu_count()} cores ({_cpu_model()}), load average {load[0]:.2f};"
        f" busy before start: {others:.2f} cores",
        f"alertmanager: {_first_line([ALERTMANAGER, '--version'])}, single node,"
        " --cluster.listen-address=",
        f"pagerd: {_first_line([pagerd, '--version'])} ({pagerd}), SQLite WAL"
        " synchronous=FULL (its defaults)",
        f"load: {_first_line(['wrk', '-v'])}; latency client and sink: Python aiohttp,"
        " each in its own process",
        f"state dirs: {work} ({_filesystem(work)})",
        f"durations: ingest {args.ingest_seconds:g} s, latency {args.latency_seconds:g} s"
        f" (+{args.warmup_seconds:g} s warm-up), profile {args.profile_seconds:g} s;"
        f" pinning: {'on' if args.pin else 'off'}",
    ]
    if others > 0.25:
        lines.append(f"WARNING: other processes kept {others:.2f} cores busy before the run;"
                     " figures will be low and noisy")
    return lines


def start_sink(port: int, cpus: set[int] | None) -> subprocess.Popen[bytes]:
    """The webhook sink, in its own process, answering before we go on."""
    sink = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(port)],
                            stdout=subprocess.DEVNULL, cwd=ROOT, preexec_fn=pinned(cpus))
    deadline = time.monotonic() + 15
    while http_status(port, "/stats") != 200:
        if sink.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the sink did not start")
        time.sleep(0.05)
    return sink


def main(argv: list[str] | None = None) -> int:
    """Run the chosen phases and print the figures."""
    args = parse_args(argv)
    pagerd = pagerd_command(args.pagerd)
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None and (tool == "wrk" or "profile" in args.only):
            raise SystemExit(f"{tool} is missing: see bench/README.md")
    work = Path(tempfile.mkdtemp(prefix="pagerd-bench-", dir=args.workdir))
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = set(cores[:-1]) if args.pin and len(cores) > 1 else None
    client_cpus = {cores[-1]} if args.pin and len(cores) > 1 else None
    bench = Bench(work, free_port(), pagerd, args.connections, server_cpus,
                  client_cpus, intake_processes=args.intake_processes)
    print("\n".join(header(args, work, pagerd)), flush=True)
    sink = start_sink(bench.sink_port, client_cpus)
    try:
        print("\n".join(run_phases(bench, args)), flush=True)
    finally:
        sink.terminate()
        sink.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run_phases(bench: Bench, args: argparse.Namespace) -> list[str]:
    """Every chosen phase; the detail printed as it comes, the summary returned."""
    rows: list[report.Row] = []
    if "ingest" in args.only:
        for batch, target in ((1, 0.5), (100, 1.0)):
            results = phases.ingest(bench, batch, args.ingest_seconds)
            _show(report.ingest_detail(batch, results))
            am, pd = (results[k].alerts_per_second for k in phases.KINDS)
            rows.append(report.Row(f"ingest, {batch}/request (alerts/s)", am, pd,
                                   target=f">= {target}x AM", met=pd >= target * am))
    if "latency" in args.only:
        for rate in args.rates:
            lat = phases.latency(bench, rate, args.latency_seconds, args.warmup_seconds)
            _show(report.latency_detail(lat))
            for q in (50, 95, 99):
                pd = lat["pagerd"].percentile(q)
                goal = q == 99 and rate >= 500
                rows.append(report.Row(
                    f"POST->notified {rate:g}/s p{q} (ms)", lat["alertmanager"].percentile(q),
                    pd, "{:.1f}", "< 50 ms" if goal else "", pd < 50 if goal else None))
    if "memory" in args.only:
        rows += _memory(bench, args)
    if "profile" in args.only:
        for batch in (1, 100):
            _show(report.profile_detail(phases.profile(bench, batch, args.profile_seconds)))
        rate = max(args.rates)
        _show(report.profile_detail(phases.profile_latency(bench, rate, args.profile_seconds)))
    return ["", "SUMMARY", *report.table(rows)]


def _memory(bench: Bench, args: argparse.Namespace) -> list[report.Row]:
    mem, state = phases.memory(bench, args.sizes)
    _show(report.memory_detail(mem))
    rows = [report.Row("RSS idle (MB)", mem["alertmanager"].idle / report.MB,
                       mem["pagerd"].idle / report.MB)]
    for size in args.sizes:
        am, pd = (mem[k].held[size] / report.MB for k in phases.KINDS)
        rows.append(report.Row(f"RSS {size:,} open alerts (MB)", am, pd,
                               target="<= AM", met=pd <= am))
    restarted = phases.restart(bench, state, args.restarts)
    _show(report.restart_detail(restarted))
    worst = max(restarted.filled)
    rows.append(report.Row(f"restart-to-ready, {restarted.alerts:,} alerts (s, worst)",
                           None, worst, "{:.2f}", "< 3 s", worst < 3.0))
    return rows


def _show(lines: list[str]) -> None:
    print("\n" + "\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
