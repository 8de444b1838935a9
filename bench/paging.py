"""Paging benchmark (issue 5): from an incident opening to its SMS at a fake Twilio.

Run by hand from the repository root with pagerd installed (`pagerd` on PATH); it prints
figures and is not a test:

    python bench/paging.py            # 300 incidents at 20/s, then a burst of 1,000
    python bench/paging.py --quick    # 100 incidents at 20/s, then a burst of 200

Options: `--only latency|burst`, `--incidents N`, `--rate R` (incidents/s, Poisson),
`--burst N`, `--burst-posts` (the burst as N concurrent POSTs of one alert each instead of
one POST of N alerts), `--pagerd PATH` (the `pagerd` to run, e.g. a snapshot's venv),
`--workdir DIR` (state dirs; a disk, since tmpfs makes fsync free), `--keep` (keep the work
dir with the daemon's config, state and log), `--profile DIR` (py-spy the daemon during
the burst: raw stacks per thread, CPU and wall views; it slows the daemon down).

To measure one commit while others edit the tree, install a snapshot and point `--pagerd`
at it (bench/README.md shows how); the header says which pagerd ran.

What runs where: `pagerd run` is a subprocess on its production settings (SQLite WAL,
synchronous=FULL), with its JSON log going to a file. This process runs the alert client
and the fake Twilio of `tests/fake_twilio.py` (the Messages API over loopback HTTP, basic
auth, form bodies, 201 resources), each in its own aiohttp task on one event loop. The
config (printed with the figures) pages each incident's own user: one user, one
escalation policy (step 1: that user, by SMS at once) and one child route per user, so no
two pages go to one phone and nothing is bundled; `paging: bundle_window: 0s` as well, and
the route has `group_wait: 0s` and `group_by: [instance]` (every alert its own incident).

1. Latency: `--incidents` Alertmanager webhooks (v4, one alert each) at Poisson times,
   open loop (each POST its own task, so a slow server does not slow the arrivals), after
   10 warm-up incidents not counted. Per incident: from the POST answered 200 (the
   incident is on disk and open) to the fake Twilio receiving the SMS request for its
   user's phone (the request's arrival, before its body is read): p50/p95/p99/max. Also
   from the POST sent, which adds the intake's own time.
2. Burst: a fresh daemon, 2 warm-up incidents, then `--burst` incidents opened at once by
   one POST carrying them all (or `--burst-posts`). From the first POST sent: when the
   intake answered, when the first and the last SMS reached the fake; pages per second over
   the whole (first POST sent to last SMS) and over the middle 80 % of arrivals (the steady
   rate); the daemon's CPU over the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp import web

import pagerd

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-alertmanager-token"
ADMIN_TOKEN = "bench-admin-token"
LATENCY_WARMUP = 10
BURST_WARMUP = 2
_TICKS = os.sysconf("SC_CLK_TCK")
# pagerd's source folders, for saying whether the checkout measured has local changes.
PAGERD_DIRS = ("pagerd", "daemon", "store", "oncall", "notifiers", "receivers", "routing",
               "config")


# --- the fake Twilio ------------------------------------------------------------------------


def load_fake_twilio() -> ModuleType:
    """tests/fake_twilio.py, loaded by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fake_twilio", ROOT / "tests" / "fake_twilio.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {ROOT / 'tests' / 'fake_twilio.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Arrivals:
    """When each phone's first SMS request reached the fake (monotonic seconds)."""

    at: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    expected: set[str] = field(default_factory=set)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, phones: Sequence[str]) -> None:
        """Wake `wait` once every one of `phones` has had its SMS."""
        self.expected = set(phones)
        self.all_in.clear()
        self._check()

    def record(self, phone: str, at: float) -> None:
        """One SMS taken (201) for `phone`, whose request arrived at `at`."""
        self.requests += 1
        self.at.setdefault(phone, at)
        self._check()

    def _check(self) -> None:
        if self.expected <= self.at.keys():
            self.all_in.set()

    async def wait(self, within: float) -> None:
        """Until every expected phone has had its SMS; TimeoutError after `within` s."""
        async with asyncio.timeout(within):
            await self.all_in.wait()


@contextlib.asynccontextmanager
async def timed_twilio() -> AsyncIterator[tuple[Any, Arrivals]]:
    """The fake Twilio on loopback, stamping each Messages request as it arrives."""
    fake = load_fake_twilio().FakeTwilio()
    arrivals = Arrivals()

    @web.middleware
    async def stamp(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        if response.status == 201 and request.path.endswith("/Messages.json"):
            form = await request.post()  # already read by the fake: cached
            arrivals.record(str(form.get("To", "")), arrived)
        return response

    app = fake.app()
    app.middlewares.insert(0, stamp)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake, arrivals
    finally:
        await runner.cleanup()


# --- the daemon -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phone(n: int) -> str:
    """User n's SMS number."""
    return f"+1555{n:07d}"


def pagerd_config(port: int, twilio: Any, users: int) -> str:
    """One user, one policy and one child route per incident to be opened."""
    people = "".join(f"  - name: u{n:05d}\n    contacts: {{sms: \"{phone(n)}\"}}\n"
                     for n in range(users))
    policies = "".join(f"  - name: p{n:05d}\n    steps:\n      - targets: [{{user: u{n:05d}}}]\n"
                       f"        delay: 30m\n" for n in range(users))
    routes = "".join(f"    - matchers: ['team=\"t{n:05d}\"']\n      escalation_policy: p{n:05d}\n"
                     for n in range(users))
    return f"""server:
  admin_token: {ADMIN_TOKEN}
  listen: 127.0.0.1:{port}
  external_url: http://127.0.0.1:{port}
integrations:
  alertmanager:
    token: {TOKEN}
paging:
  bundle_window: 0s
  twilio:
    account_sid: {twilio.account_sid}
    auth_token: {twilio.auth_token}
    from_number: "+15005550006"
    base_url: {twilio.base_url}
users:
{people}escalation_policies:
{policies}route:
  receiver: pager
  group_by: [instance]
  group_wait: 0s
  routes:
{routes}receivers:
  - name: pager
"""


def pagerd_command(explicit: str | None) -> list[str]:
    """argv running pagerd: `--pagerd`, else this interpreter's installed script."""
    if explicit:
        return [explicit]
    script = Path(sys.executable).parent / "pagerd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pagerd.cli import main; sys.exit(main())"]


def child_env() -> dict[str, str]:
    """This environment without pagerd's own variables, which would change the child."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PAGERD_", "NOTIFY_"))}


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of a process (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Child:
    """A running `pagerd run` child and how to reach it."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path


def spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a child writing its output to `log` (starting does not block)."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=child_env(),
                                cwd=cwd)


@contextlib.asynccontextmanager
async def running_pagerd(workdir: Path, name: str, command: list[str], twilio: Any,
                         users: int) -> AsyncIterator[Child]:
    """`pagerd run` on a fresh state dir, ready; stopped with SIGTERM afterwards."""
    home = workdir / name
    home.mkdir()
    port = free_port()
    config = home / "pagerd.yml"
    config.write_text(pagerd_config(port, twilio, users))
    log = home / "pagerd.log"
    argv = [*command, "run", "--config", str(config), "--state-dir", str(home / "state"),
            "--listen", f"127.0.0.1:{port}"]
    proc = spawn(argv, log, home)
    daemon = Child(proc, f"http://127.0.0.1:{port}", log)
    try:
        await wait_ready(daemon)
        yield daemon
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def wait_ready(daemon: Child, within: float = 60.0) -> None:
    """Poll GET /-/ready until 200; the log's tail in the error if the daemon died."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if daemon.proc.poll() is not None:
                tail = daemon.log.read_text()[-2000:]
                raise SystemExit(f"pagerd exited with {daemon.proc.returncode}:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{daemon.base}/-/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.02)
    raise SystemExit(f"pagerd not ready within {within:.0f} s (log: {daemon.log})")


# --- the client -----------------------------------------------------------------------------


def am_alert(n: int) -> dict[str, Any]:
    """Alert n of an Alertmanager webhook: its own incident, paging user n (no fingerprint
    field: pagerd computes Alertmanager's from the labels)."""
    return {"status": "firing",
            "labels": {"alertname": "BenchDown", "instance": f"host-{n}",
                       "team": f"t{n:05d}", "severity": "critical"},
            "annotations": {"summary": f"host-{n} is down"},
            "startsAt": "2026-03-02T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local/graph"}


def am_payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """An Alertmanager v4 webhook body."""
    return {"version": "4", "groupKey": "{}:{alertname=\"BenchDown\"}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "pagerd", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.local:9093", "alerts": alerts}


@dataclass
class Opened:
    """When the POST opening an incident left and when its 200 came back (monotonic)."""

    sent: float
    answered: float


async def post_alerts(session: aiohttp.ClientSession, base: str,
                      numbers: Sequence[int]) -> Opened:
    """POST one webhook carrying alerts `numbers`; SystemExit unless answered 200."""
    body = am_payload([am_alert(n) for n in numbers])
    sent = time.monotonic()
    async with session.post(f"{base}/api/v1/alertmanager", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        text = await response.text()
        answered = time.monotonic()
    if response.status != 200:
        raise SystemExit(f"intake answered {response.status}: {text[:300]}")
    return Opened(sent, answered)


async def warm_up(session: aiohttp.ClientSession, base: str, arrivals: Arrivals,
                  numbers: Sequence[int]) -> None:
    """Open a few incidents and wait for their SMS: connections and caches are warm."""
    arrivals.expect([phone(n) for n in numbers])
    for n in numbers:
        await post_alerts(session, base, [n])
    await arrivals.wait(30)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def spread(values_s: Sequence[float]) -> str:
    """p50/p95/p99/max of seconds, printed in milliseconds."""
    return "   ".join(f"{name} {percentile(values_s, q) * 1000:7.1f} ms"
                       for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)))


# --- 1. latency -----------------------------------------------------------------------------


async def latency_phase(workdir: Path, command: list[str], incidents: int,
                        rate: float) -> None:
    """Incidents at Poisson times, each POST its own task; latency to the SMS."""
    users = LATENCY_WARMUP + incidents
    numbers = list(range(LATENCY_WARMUP, users))
    async with timed_twilio() as (twilio, arrivals), \
            running_pagerd(workdir, "latency", command, twilio, users) as daemon, \
            aiohttp.ClientSession() as session:
        await warm_up(session, daemon.base, arrivals, range(LATENCY_WARMUP))
        arrivals.expect([phone(n) for n in numbers])
        cpu = process_cpu(daemon.proc.pid)
        began = time.monotonic()
        tasks: dict[int, asyncio.Task[Opened]] = {}
        for n in numbers:
            tasks[n] = asyncio.create_task(post_alerts(session, daemon.base, [n]))
            await asyncio.sleep(random.expovariate(rate))
        opened = {n: await task for n, task in tasks.items()}
        await arrivals.wait(60 + incidents / rate)
        took = time.monotonic() - began
        cpu = process_cpu(daemon.proc.pid) - cpu
    from_answer = [arrivals.at[phone(n)] - opened[n].answered for n in numbers]
    from_post = [arrivals.at[phone(n)] - opened[n].sent for n in numbers]
    intake = [opened[n].answered - opened[n].sent for n in numbers]
    print(f"\n== Latency: {incidents} incidents at {rate:g}/s (Poisson, open loop), "
          f"each paging its own user ==")
    print(f"  POST answered -> SMS at Twilio   {spread(from_answer)}")
    print(f"  POST sent     -> SMS at Twilio   {spread(from_post)}")
    print(f"  POST sent     -> 200 (intake)    {spread(intake)}")
    print(f"  {arrivals.requests - LATENCY_WARMUP} SMS requests for {incidents} incidents; "
          f"pagerd CPU {cpu:.2f} s over {took:.1f} s ({cpu / took:.0%} of a core)")


# --- 2. burst -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def profiled(pid: int, directory: Path | None) -> AsyncIterator[None]:
    """py-spy on `pid` while the body runs, if `directory`: CPU (active) and wall (idle too)
    views, raw (collapsed) stacks per thread, written there when the body ends."""
    if directory is None:
        yield
        return
    spies = [
        spawn(["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
               "--threads", "--nonblocking", *extra, "--output", str(directory / name)],
              directory / f"{name}.log", directory)
        for name, extra in (("burst-cpu.txt", []), ("burst-wall.txt", ["--idle"]))
    ]
    await asyncio.sleep(0.5)  # attached before the load starts
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await asyncio.to_thread(spy.wait, 30)


async def burst_phase(workdir: Path, command: list[str], burst: int, posts: bool,
                      profile: Path | None) -> None:
    """`burst` incidents opened at once; pages per second to the fake Twilio."""
    users = BURST_WARMUP + burst
    numbers = list(range(BURST_WARMUP, users))
    async with timed_twilio() as (twilio, arrivals), \
            running_pagerd(workdir, "burst", command, twilio, users) as daemon, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await warm_up(session, daemon.base, arrivals, range(BURST_WARMUP))
        arrivals.expect([phone(n) for n in numbers])
        async with profiled(daemon.proc.pid, profile):
            cpu = process_cpu(daemon.proc.pid)
            if posts:
                opened = await asyncio.gather(*(post_alerts(session, daemon.base, [n])
                                                for n in numbers))
            else:
                opened = [await post_alerts(session, daemon.base, numbers)]
            await arrivals.wait(120 + burst / 10)
            cpu = process_cpu(daemon.proc.pid) - cpu
    began = min(o.sent for o in opened)
    answered = max(o.answered for o in opened) - began
    times = sorted(arrivals.at[phone(n)] - began for n in numbers)
    middle = times[int(0.9 * len(times)) - 1] - times[int(0.1 * len(times))]
    how = f"{burst} concurrent POSTs of one alert" if posts else f"one POST of {burst} alerts"
    print(f"\n== Burst: {burst} incidents opened at once ({how}), each paging its own user ==")
    print(f"  from the first POST sent: all answered 200 after {answered * 1000:.0f} ms; "
          f"first SMS at {times[0] * 1000:.0f} ms, last at {times[-1]:.2f} s")
    print(f"  pages/s: {burst / times[-1]:,.0f} from the first POST sent to the last SMS; "
          f"{0.8 * burst / middle:,.0f} over the middle 80 % of arrivals")
    print(f"  POST sent -> SMS per page   {spread(times)}")
    repeats = arrivals.requests - BURST_WARMUP - burst
    print(f"  {arrivals.requests - BURST_WARMUP} SMS requests for {burst} incidents "
          f"({repeats} repeats); pagerd CPU {cpu:.2f} s ({cpu / times[-1]:.0%} of a core)")
    if profile is not None:
        print(f"  profiles (py-spy raw, per thread): {profile}/burst-cpu.txt, burst-wall.txt")


# --- running --------------------------------------------------------------------------------


@contextlib.contextmanager
def work_dir(parent: str | None, keep: bool) -> Iterator[Path]:
    """A fresh directory for the daemons' state and logs; removed unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="pagerd-bench-paging-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"\nwork dir kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--only", choices=["latency", "burst"])
    parser.add_argument("--incidents", type=int, help="latency incidents (300; 100 quick)")
    parser.add_argument("--rate", type=float, default=20.0, help="incidents/s for latency")
    parser.add_argument("--burst", type=int, help="incidents opened at once (1000; 200 quick)")
    parser.add_argument("--burst-posts", action="store_true",
                        help="one POST per incident, all at once, instead of one POST")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy the daemon during the burst; raw profiles go to DIR")
    parser.add_argument("--pagerd", help="the pagerd executable (default: installed one)")
    parser.add_argument("--workdir", default="/var/tmp", help="parent of the work dir")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    """The phases asked for, one fresh daemon each."""
    command = pagerd_command(args.pagerd)
    if args.only in (None, "latency"):
        await latency_phase(workdir, command, args.incidents or (100 if args.quick else 300),
                            args.rate)
    if args.only in (None, "burst"):
        await burst_phase(workdir, command, args.burst or (200 if args.quick else 1000),
                          args.burst_posts, args.profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = parse_args(argv)
    daemon = f"pagerd run: {args.pagerd}" if args.pagerd else measured()
    print(f"pagerd paging benchmark ({'quick' if args.quick else 'full'} run): {daemon}; "
          f"python {sys.version.split()[0]}; {machine()}")
    print("  config: paging.bundle_window 0s, group_wait 0s, group_by [instance]; per user "
          "one sms contact, one policy (step 1: the user), one child route")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    with work_dir(args.workdir, args.keep) as path:
        asyncio.run(run(args, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
