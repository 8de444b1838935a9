"""Escalation benchmark (issue 4): 10k incidents escalating at once, and a year of a schedule.

Two figures, printed; run by hand from the repository root with pagerd installed:

    python bench/escalation.py            # 10,000 incidents; 20 runs of the schedule year
    python bench/escalation.py --quick    # 1,000 incidents; 5 runs (a smoke run, seconds)

Options: `--only escalation|schedule`, `--incidents N`, `--users N` (100), `--batch N`,
`--lead SECONDS`, `--concurrency N` (the dispatcher's; the daemon uses its default, 64, so
other values are what-ifs), `--runs N`, `--workdir DIR` (the SQLite file; a disk, since
tmpfs makes fsync free), `--keep` (keep the work dir with the database and the log).
Where the time goes: `py-spy record --threads --format raw -o out.txt -- python
bench/escalation.py --only escalation` (add `--gil` for the event loop's CPU alone).

1. Escalation. The daemon's parts wired as `pagerd.daemon.core` wires them: a SQLiteStore
   file on its production settings (WAL, synchronous=FULL, group commit), Intake, Escalator,
   Pager and a Dispatcher whose `run()` loop reads the real wall clock. `--incidents`
   incidents are opened through `Intake.accept` (`--batch` alerts per call, each its own
   incident) with the intake's clock pinned at one instant a little ahead (`--lead`), so every
   incident's first escalation step is due at that same instant. The incidents are spread
   over `--users` routes and policies, one user each, paged by a no-op webhook notifier that
   only records the time: what is measured is the engine, not a network (the pages due to
   one person at once go out bundled, as the Pager does). For each step:
   claimed (the claim's commit returned) - due; queued (the step's transaction, which stores
   its page, committed) - due; sent (the notifier called with the page) - due; p50/p99/max.
   Target: p99 < 1 s. Also the process CPU time over the run (every thread: the event loop,
   the SQLite writer and reader) and peak RSS (VmHWM, reset before the run where the kernel
   allows it). Logs go, as JSON lines exactly as the daemon writes them, to a file.
   The dispatcher polls every 0.5 s, so the first claim comes up to 0.5 s after the due
   instant, depending on where in its poll it is: the `first claim` line shows that part.

2. Schedule. A 20-person schedule of three layers (a weekly rotation in Europe/London, 12 h
   shifts on Lord Howe Island (a 30-minute DST change), business-hours day shifts in
   America/New_York with a Mon-Fri 09:00-17:00 restriction): `Schedule.shifts` over 365 days,
   median and p95 of `--runs` runs, cold (the wall-clock resolution cache cleared before each
   run, as after a start or a reload) and warm; once more with 52 overrides.
   Target: < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import pagerd
from pagerd.clock import Clock, FakeClock
from pagerd.daemon import logging as daemon_logging
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.daemon.escalator import Escalator
from pagerd.daemon.intake import Intake, Router
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.pager import Pager
from pagerd.links import LinkSigner
from pagerd.models import Alert, AlertStatus
from pagerd.notifiers.base import Page, PageNotifier, Receipt
from pagerd.oncall.overrides import Override, Take
from pagerd.oncall.schedule import Schedule
from pagerd.oncall.wallclock import resolve
from pagerd.settings import Settings, load_settings
from pagerd.store.base import EscalationStepRecord, Timer
from pagerd.store.sqlite import SQLiteStore

TARGET_LATENESS_P99 = 1.0
TARGET_SCHEDULE_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent
# pagerd's source folders, for saying whether the checkout measured has local changes.
PAGERD_DIRS = ("pagerd", "daemon", "store", "oncall", "notifiers", "receivers", "routing",
               "config")


# --- measuring ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def cpu_seconds() -> float:
    """User plus system CPU of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_kib(field_name: str) -> int:
    """A `VmXXX` line of /proc/self/status, in KiB (0 where there is none)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `clear_refs` 5); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- 1. escalation --------------------------------------------------------------------------


@dataclass
class Stamps:
    """Wall-clock instants per incident: when its step was due, claimed, queued and sent."""

    due: dict[int, float] = field(default_factory=dict)
    claimed: dict[int, float] = field(default_factory=dict)
    queued: dict[int, float] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)
    messages: int = 0
    # Sizes of the claim transactions that took escalation steps.
    claims: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0


class TimedStore(SQLiteStore):
    """The production store, stamping when a claim and an escalation step have committed."""

    def __init__(self, path: Path, stamps: Stamps) -> None:
        super().__init__(path)
        self.stamps = stamps

    async def claim_due(self, now: float, limit: int, lease: float) -> list[Timer]:
        timers = await super().claim_due(now, limit, lease)
        at = time.time()
        steps = sum(timer.kind == "escalate" for timer in timers)
        if steps:
            self.stamps.claims.append(steps)
        for timer in timers:
            if timer.kind == "escalate":
                self.stamps.due.setdefault(timer.incident_id, timer.due_at)
                self.stamps.claimed.setdefault(timer.incident_id, at)
        return timers

    async def fire_escalation(self, timer: Timer, now: float,
                              record: EscalationStepRecord) -> bool:
        fired = await super().fire_escalation(timer, now, record)
        if fired and record.pages:
            self.stamps.queued.setdefault(timer.incident_id, time.time())
        return fired

    async def fire_escalations(self, steps: list[tuple[Timer, EscalationStepRecord]],
                               now: float) -> list[bool]:
        fired = await super().fire_escalations(steps, now)
        at = time.time()
        for (timer, record), done in zip(steps, fired, strict=True):
            if done and record.pages:
                self.stamps.queued.setdefault(timer.incident_id, at)
        return fired


@dataclass
class StampingNotifier:
    """A no-op webhook notifier: records when each incident's page left, sends nothing."""

    stamps: Stamps
    kind: str = "webhook"

    async def send_page(self, page: Page) -> Receipt:
        at = time.time()
        self.stamps.messages += 1
        for item in page.items:
            self.stamps.sent.setdefault(item.incident_id, at)
        if len(self.stamps.sent) >= self.stamps.expected:
            self.stamps.done.set()
        return Receipt(provider_id=f"bench-{self.stamps.messages}")


def escalation_config(users: int) -> str:
    """Users, one policy and one route each; the first step pages the user, the next is far."""
    people = "".join(
        f"  - name: u{n:05d}\n    contacts: {{webhook: 'http://127.0.0.1:9/u{n:05d}'}}\n"
        for n in range(users))
    policies = "".join(
        f"  - name: p{n:05d}\n    steps:\n      - targets: [{{user: u{n:05d}}}]\n"
        f"        delay: 30m\n      - targets: [{{user: u{(n + 1) % users:05d}}}]\n"
        f"        delay: 30m\n"
        for n in range(users))
    routes = "".join(
        f"    - matchers: ['team=\"t{n:05d}\"']\n      escalation_policy: p{n:05d}\n"
        for n in range(users))
    return (f"users:\n{people}escalation_policies:\n{policies}"
            f"route:\n  receiver: pager\n  group_by: [instance]\n  group_wait: 0s\n"
            f"  routes:\n{routes}receivers:\n  - name: pager\n")


def alerts(first: int, count: int, users: int) -> list[Alert]:
    """Firing alerts `first`..`first+count`, each its own incident, round-robin over teams."""
    return [
        Alert(fingerprint=f"{n:016x}", status=AlertStatus.FIRING, integration="bench",
              labels={"alertname": "BenchDown", "instance": f"host-{n}",
                      "team": f"t{n % users:05d}"},
              annotations={"summary": f"host-{n} is down"})
        for n in range(first, first + count)
    ]


def build_dispatcher(store: SQLiteStore, settings: Settings, notifier: PageNotifier,
                     concurrency: int) -> Dispatcher:
    """The daemon's escalation parts on one store, as `Daemon.build_dispatcher` wires them."""
    clock = Clock()
    metrics = Metrics()
    signer = LinkSigner({"k1": b"bench-link-key-0123456789"}, "k1", clock=clock.time)
    dispatcher: Dispatcher

    def wake() -> None:  # the dispatcher is built last, from the handlers below
        dispatcher.wake()

    escalator = Escalator(store, metrics, lambda: settings, clock, wake=wake)
    pager = Pager(store, metrics, lambda: settings, clock, {"webhook": notifier},
                  signer=lambda: signer, wake=wake)
    # As Daemon.build_dispatcher wires it: due steps are fired in batches.
    dispatcher = Dispatcher(store, clock, {"page": pager, **escalator.handlers()},
                            batch_handlers={"escalate": escalator.escalate_many},
                            concurrency=concurrency)
    return dispatcher


@dataclass(frozen=True)
class Setup:
    """How many incidents over how many users, opened how, escalated how."""

    incidents: int
    users: int
    batch: int
    lead: float
    # The daemon builds its dispatcher with the default (64); other values are what-ifs.
    concurrency: int = 64


async def open_incidents(store: TimedStore, settings: Settings, due: float,
                         setup: Setup) -> float:
    """Open the incidents, their first steps all due at `due`; returns seconds taken."""
    # The intake's clock is pinned at `due`: with group_wait 0s, each step is due then.
    intake = Intake(store, Metrics(), FakeClock(due), Router(settings))
    began = time.perf_counter()
    for first in range(0, setup.incidents, setup.batch):
        count = min(setup.batch, setup.incidents - first)
        result = await intake.accept(alerts(first, count, setup.users), "bench")
        assert len(result.opened) == count, result
    return time.perf_counter() - began


@dataclass
class EscalationRun:
    """What one escalation run measured."""

    setup: Setup
    ingest_seconds: float
    stamps: Stamps
    cpu: float = 0.0
    wall: float = 0.0
    rss_before_kib: int = 0
    peak_kib: int = 0
    peak_reset: bool = False
    log_lines: int = 0


async def run_escalation(workdir: Path, setup: Setup) -> EscalationRun:
    """Open the incidents, let the real-clock dispatcher escalate them, collect stamps."""
    stamps = Stamps(expected=setup.incidents)
    settings = load_settings("bench.yml", escalation_config(setup.users))
    store = TimedStore(workdir / "pagerd.db", stamps)
    await store.open()
    dispatcher = build_dispatcher(store, settings, StampingNotifier(stamps), setup.concurrency)
    due = time.time() + setup.lead
    run = EscalationRun(setup, await open_incidents(store, settings, due, setup), stamps)
    if time.time() >= due - 0.5:
        await store.close()
        raise SystemExit(f"opening took {run.ingest_seconds:.1f} s, past the due instant: "
                         "raise --lead")
    run.rss_before_kib = status_kib("VmRSS")
    run.peak_reset = reset_peak_rss()
    task = asyncio.create_task(dispatcher.run(), name="dispatcher")
    # Idle until the due instant (the dispatcher polls meanwhile, as a quiet daemon does).
    await asyncio.sleep(max(0.0, due - time.time() - 0.2))
    cpu, began = cpu_seconds(), time.time()
    try:
        async with asyncio.timeout(600):
            await stamps.done.wait()
    finally:
        run.cpu, run.wall = cpu_seconds() - cpu, time.time() - began
        await dispatcher.stop(grace=5.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    run.peak_kib = status_kib("VmHWM")
    return run


def escalation_phase(workdir: Path, setup: Setup) -> EscalationRun:
    """Run the escalation benchmark with the daemon's logging going to a file."""
    log_path = workdir / "pagerd.log"
    with log_path.open("w") as log_file, contextlib.redirect_stderr(log_file):
        daemon_logging.configure("info")  # JSON lines, since stderr is now a file
        run = asyncio.run(run_escalation(workdir, setup))
    with log_path.open() as log_file:
        run.log_lines = sum(1 for _ in log_file)
    return run


def lateness_row(name: str, stamps: dict[int, float], due: dict[int, float]) -> str:
    """One printed line: how late `stamps` came after `due`, per incident."""
    late = [stamps[i] - due[i] for i in stamps if i in due]
    if not late:
        return f"  {name:<8} (none)"
    return (f"  {name:<8} p50 {percentile(late, 0.5) * 1000:8.1f} ms   "
            f"p99 {percentile(late, 0.99) * 1000:8.1f} ms   "
            f"max {max(late) * 1000:8.1f} ms   n={len(late)}")


def report_escalation(run: EscalationRun, out: TextIO = sys.stdout) -> None:
    """Print the escalation figures."""
    s = run.stamps
    first_claim = min(s.claimed.values()) - min(s.due.values()) if s.claimed else math.nan
    claimed = percentile([s.claimed[i] - s.due[i] for i in s.claimed], 0.99)
    queued = percentile([s.queued[i] - s.due[i] for i in s.queued], 0.99)
    print(f"\n== Escalation: {run.setup.incidents:,} incidents due at one instant, "
          f"{run.setup.users} users (one route and policy each) ==", file=out)
    print(f"  opened via Intake.accept in {run.ingest_seconds:.2f} s "
          f"({run.setup.incidents / run.ingest_seconds:,.0f} incidents/s)", file=out)
    print("  lateness after the due instant (wall clock):", file=out)
    for name, stamp in (("claimed", s.claimed), ("queued", s.queued), ("sent", s.sent)):
        print(lateness_row(name, stamp, s.due), file=out)
    print(f"  first claim {first_claim * 1000:.0f} ms after due (the dispatcher polls every "
          f"0.5 s); "
          f"steps claimed by {len(s.claims):,} claims, mean {statistics.mean(s.claims):.1f} "
          f"steps each", file=out)
    print(f"  all {len(s.sent):,} pages sent {max(s.sent.values()) - min(s.due.values()):.2f} s "
          f"after due, in {s.messages:,} messages (pages to one person bundle)", file=out)
    print(f"  CPU {run.cpu:.2f} s over {run.wall:.2f} s wall "
          f"({run.cpu / run.wall:.0%} of a core; event loop, writer and reader threads)",
          file=out)
    reset = "reset before the run" if run.peak_reset else "whole process, reset refused"
    print(f"  RSS {run.rss_before_kib / 1024:.0f} MiB before, peak {run.peak_kib / 1024:.0f} "
          f"MiB (VmHWM, {reset}); {run.log_lines:,} log lines", file=out)
    verdict = "meets" if max(claimed, queued) < TARGET_LATENESS_P99 else "MISSES"
    print(f"  p99 claimed {claimed:.3f} s, queued {queued:.3f} s: {verdict} the target "
          f"(< {TARGET_LATENESS_P99:.0f} s)", file=out)


# --- 2. schedule ----------------------------------------------------------------------------

SCHEDULE_CONFIG = """
users:
{users}
schedules:
  - name: follow-the-sun
    time_zone: Europe/London
    layers:
      - name: weekly
        participants: [{weekly}]
        shift_length: 1w
        start: 2025-12-29
        handoff: "09:00"
      - name: lord-howe
        time_zone: Australia/Lord_Howe
        participants: [{twelve}]
        shift_length: 12h
        start: 2025-12-29
        handoff: "08:00"
      - name: new-york-business-hours
        time_zone: America/New_York
        participants: [{days}]
        shift_length: 1d
        start: 2025-12-29
        handoff: "09:00"
        restrictions:
          - {{days: mon-fri, from: "09:00", to: "17:00"}}
route:
  receiver: pager
receivers:
  - name: pager
"""

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = YEAR_START + timedelta(days=365)


def year_schedule() -> Schedule:
    """The 20-person, 3-layer schedule, read through the config loader."""
    names = [f"person-{n:02d}" for n in range(20)]
    text = SCHEDULE_CONFIG.format(
        users="\n".join(f"  - name: {name}" for name in names),
        weekly=", ".join(names[:8]), twelve=", ".join(names[8:14]), days=", ".join(names[14:]))
    return load_settings("schedule.yml", text).oncall.schedules["follow-the-sun"]


def weekly_takes(schedule: Schedule) -> list[Override]:
    """52 overrides: every week someone takes a Tuesday evening."""
    people = schedule.layers[0].participants
    tuesday = datetime(2026, 1, 6, 18, tzinfo=UTC)
    return [Take(user=people[week % len(people)], start=tuesday + timedelta(weeks=week),
                 end=tuesday + timedelta(weeks=week, hours=6)) for week in range(52)]


def timed_shifts(schedule: Schedule, overrides: Sequence[Override], cold: bool
                 ) -> tuple[float, int]:
    """Milliseconds of one `shifts` call over the year, and how many stretches it gave."""
    if cold:
        resolve.cache_clear()
    began = time.perf_counter()
    count = len(schedule.shifts(YEAR_START, YEAR_END, overrides))
    return (time.perf_counter() - began) * 1000, count


def schedule_phase(runs: int, out: TextIO = sys.stdout) -> None:
    """Time a year of the schedule `runs` times in each variant, interleaved, and print."""
    schedule = year_schedule()
    variants: dict[str, tuple[Sequence[Override], bool]] = {
        "cold": ((), True),
        "warm": ((), False),
        "cold + 52 overrides": (weekly_takes(schedule), True),
    }
    timed_shifts(schedule, (), cold=False)  # first-call costs out of the way
    times: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, int] = {}
    # Interleaved, so a burst of load elsewhere on the machine hits every variant alike.
    for _ in range(runs):
        for name, (overrides, cold) in variants.items():
            took, counts[name] = timed_shifts(schedule, overrides, cold)
            times[name].append(took)
    print(f"\n== Schedule: a year (365 days) of 20 people in 3 layers, {runs} runs ==",
          file=out)
    for name, taken in times.items():
        print(f"  {name:<20} median {statistics.median(taken):7.2f} ms   "
              f"p95 {percentile(taken, 0.95):7.2f} ms   ({counts[name]:,} stretches)", file=out)
    worst = max(percentile(taken, 0.95) for taken in times.values())
    verdict = "meets" if worst < TARGET_SCHEDULE_MS else "MISSES"
    print(f"  worst p95 {worst:.1f} ms {verdict} the target (< {TARGET_SCHEDULE_MS:.0f} ms)",
          file=out)


def machine() -> str:
    """Cores and load averages: other work on the machine moves every figure."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{os.cpu_count()} cores, load average {' '.join(load)}"


def measured() -> str:
    """Which pagerd is measured: this checkout (its commit, and whether pagerd's files have
    uncommitted changes) or an installed copy elsewhere (a snapshot)."""
    package = Path(pagerd.__file__).resolve().parent
    if not package.is_relative_to(ROOT):
        return f"pagerd installed at {package}"
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                *PAGERD_DIRS], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return f"pagerd of the checkout {ROOT}"
    changes = " + uncommitted changes" if dirty.stdout.strip() else ""
    return f"pagerd of the checkout at {head}{changes}"


# --- running --------------------------------------------------------------------------------


@contextlib.contextmanager
def work_dir(parent: str | None, keep: bool) -> Iterator[Path]:
    """A fresh directory for the database and the log; removed unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="pagerd-bench-escalation-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"\nwork dir kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 incidents")
    parser.add_argument("--only", choices=["escalation", "schedule"])
    parser.add_argument("--incidents", type=int, help="default 10000 (1000 with --quick)")
    parser.add_argument("--users", type=int, default=100, help="routes, policies and users")
    parser.add_argument("--batch", type=int, default=500, help="alerts per Intake.accept")
    parser.add_argument("--lead", type=float,
                        help="seconds from the start to the due instant (default: by size)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="the dispatcher's concurrency (the daemon's is 64): a what-if")
    parser.add_argument("--runs", type=int, help="schedule runs (default 20, 5 with --quick)")
    parser.add_argument("--workdir", default="/var/tmp", help="parent of the work dir")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks asked for and print their figures."""
    args = parse_args(argv)
    incidents = args.incidents or (1000 if args.quick else 10000)
    lead = args.lead if args.lead is not None else 3.0 + incidents / 2000
    runs = args.runs or (5 if args.quick else 20)
    print(f"pagerd escalation benchmark ({'quick' if args.quick else 'full'} run): "
          f"{measured()}; python {sys.version.split()[0]}; {machine()}")
    if args.only in (None, "escalation"):
        with work_dir(args.workdir, args.keep) as path:
            run = escalation_phase(path, Setup(incidents, args.users, args.batch, lead,
                                               args.concurrency))
        report_escalation(run)
    if args.only in (None, "schedule"):
        schedule_phase(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
