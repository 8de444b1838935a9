"""Durability under crashes: a `pagerd run` process is SIGKILLed while it takes thousands of
alerts and sends their notifications, and restarted on the same state directory.

Senders behave as Alertmanager does: they retry a request on a connection error or a 5xx
until it gets a 2xx, and drop nothing else. The webhook sink lives in the test process, so
it outlives every crash and sees every delivery. The promises checked afterwards:

- every alert that got a 2xx is in the store (the 2xx comes after the commit);
- every incident was notified, each under one idempotency key;
- a key arrives again only for a send that was in flight at a crash: never twice from one
  daemon process, and after each crash at most the dispatcher's concurrency of keys
  arrive again. (Two crashes in quick succession can interrupt the same send twice, so
  "at most twice" holds per crash, not per key.)

The same storm with SIGTERM restarts must repeat nothing (a graceful stop drains its
sends), and sends failing against a broken receiver must survive a crash and go out once
it recovers.

PAGERD_CRASH_SEED replays one run's choices (the seed is printed, and named in every
failure); the timing of a run is never quite the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pagerd.fingerprint import fingerprint

from helpers import TOKEN, config_text, free_port, serve_app
from procs import Managed, intake_pids, pagerd_process, until

pytestmark = pytest.mark.slow

ALERTS = 3000
SENDERS = 16
MAX_BATCH = 20
CRASHES = 3
# Dispatcher concurrency (pagerd.daemon.dispatcher.Dispatcher's default): the most sends
# that can be in flight, hence repeated, at one crash.
IN_FLIGHT = 64
RECEIVER = "hook"


@dataclass
class KeySink:
    """A webhook receiver that records each delivery's idempotency key as it arrives.

    It answers after a short random pause, as a real receiver does, so sends are in flight
    (delivered, not yet recorded as sent by pagerd) when a crash comes.
    """

    rng: random.Random
    # The shortest and longest pause before answering, in seconds.
    pause: tuple[float, float] = (0.0, 0.02)
    # Set on every delivery, for whoever waits for progress.
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    # How many daemon processes have been started before the current one: the crasher
    # moves it on just before a restart, once the dead process's last bytes are handled.
    epoch: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    epochs: dict[str, list[int]] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    alert_ids: dict[int, str] = field(default_factory=dict)
    states: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        key = request.headers["Idempotency-Key"]
        incident = body["incident"]
        self.keys[key] += 1
        self.epochs.setdefault(key, []).append(self.epoch)
        self.incidents[key] = incident["id"]
        self.states[incident["state"]] += 1
        (alert,) = body["alerts"]
        self.alert_ids[incident["id"]] = alert["labels"]["id"]
        self.progress.set()
        await asyncio.sleep(self.rng.uniform(*self.pause))
        return web.Response(text="ok")

    @property
    def notified(self) -> int:
        """Distinct incidents notified so far."""
        return len(self.alert_ids)


@dataclass
class Run:
    """What happened, for the assertions and for a reader of a failure."""

    seed: int
    acked: set[int] = field(default_factory=set)
    # Set whenever alerts are acknowledged.
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    retries: int = 0
    crashes: list[str] = field(default_factory=list)
    ready_after: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        ready = [round(s, 2) for s in self.ready_after]
        return (f"seed={self.seed} crashes={self.crashes} requests={self.requests} "
                f"retries={self.retries} restart-to-ready={ready}")


def payload(ids: list[int]) -> dict[str, Any]:
    """An Alertmanager v4 webhook body with one firing alert per id."""
    alerts = [{
        "status": "firing", "labels": {"alertname": "CrashTest", "id": str(i)},
        "annotations": {"summary": f"alert {i}"}, "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.local/graph",
    } for i in ids]
    return {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "pagerd", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am.local:9093", "alerts": alerts}


async def sender(session: aiohttp.ClientSession, url: str, batches: list[list[int]],
                 run: Run) -> None:
    """Post batches until none is left, each retried Alertmanager's way until a 2xx."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=10)
    while batches:
        batch = batches.pop()
        body = payload(batch)
        backoff = 0.02
        while True:
            run.requests += 1
            status = None
            try:
                async with session.post(url, json=body, headers=headers,
                                        timeout=timeout) as response:
                    text = await response.text()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                pass  # refused or cut off by a crash: whether it was stored is unknown
            if status is not None and 200 <= status < 300:
                run.acked.update(batch)
                run.progress.set()
                break
            if status is not None and status < 500:
                raise AssertionError(f"{run}: a {status} drops alerts for good: {text}")
            run.retries += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)


async def interrupter(daemon: Managed, sink: KeySink, run: Run, rng: random.Random,
                      alerts: int, kind: str, count: int) -> None:
    """Stop the daemon `count` times at random moments, each followed by a restart on the
    same state: by SIGKILL (`kind` "kill", a crash) or SIGTERM ("term", which must exit 0).

    All but the last fall while alerts pour in, the last by notification progress (often
    once intake is over); each at a random fraction of the work plus a random pause.
    """
    lo, hi = alerts // 10, alerts * 9 // 10
    moments = [("acked", n) for n in sorted(rng.sample(range(lo, hi), count - 1))]
    moments.append(("notified", rng.randrange(lo, hi)))
    for what, threshold in moments:
        if what == "acked":
            await reach(run.progress, lambda: len(run.acked), threshold)
        else:
            await reach(sink.progress, lambda: sink.notified, threshold)
        if kind == "term":
            # Just after the next delivery arrives: sends are in flight at the sink.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await reach(sink.progress, lambda: sink.notified, sink.notified + 1)
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        moment = f"{what}>={threshold} (acked={len(run.acked)}, notified={sink.notified})"
        if kind == "kill":
            await daemon.kill()
        else:
            took = time.monotonic()
            code = await daemon.stop(within=15)
            moment += f" exit {code} after {time.monotonic() - took:.1f}s"
            assert code == 0, daemon.failure(f"{run}: SIGTERM at {moment} did not exit 0")
        run.crashes.append(moment)
        # Down a while: senders meet refusals, and the sink handles what the dead process
        # had already sent before the epoch moves on.
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        sink.epoch += 1
        daemon.start()
        run.ready_after.append(await daemon.wait_ready(30))


async def reach(event: asyncio.Event, count: Callable[[], int], target: int) -> None:
    """Wait until `count()` reaches `target`, looking again whenever `event` is set."""
    while count() < target:
        event.clear()
        await event.wait()


def read_store(database: Path) -> dict[str, Any]:
    """The store's contents, read-only, as plain Python."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        alerts = {fp: (json.loads(labels), status) for fp, labels, status in conn.execute(
            "SELECT fingerprint, labels, status FROM alerts")}
        incidents = {i: state for i, state in conn.execute("SELECT id, state FROM incidents")}
        members: dict[int, list[str]] = {}
        for incident_id, fp in conn.execute(
                "SELECT incident_id, fingerprint FROM incident_alerts"):
            members.setdefault(incident_id, []).append(fp)
        timeline = Counter((i, kind) for i, kind in conn.execute(
            "SELECT incident_id, kind FROM timeline"))
        timers = conn.execute(
            "SELECT incident_id, claimed_until, last_sent_at FROM timers").fetchall()
    finally:
        conn.close()
    return {"alerts": alerts, "incidents": incidents, "members": members,
            "timeline": timeline, "timers": timers}


@dataclass
class Storm:
    """One run's record: what the senders and the sink saw, and the store afterwards."""

    run: Run
    sink: KeySink
    store: dict[str, Any]
    log_path: Path


async def storm(tmp_path: Path, alerts: int, kind: str, interruptions: int,
                pause: tuple[float, float] = (0.0, 0.02), intake_processes: int = 0) -> Storm:
    """`alerts` alerts from SENDERS senders into a daemon interrupted `interruptions` times,
    notifying a sink that answers after `pause` (min, max) seconds; returns once every
    incident was notified (or 45 s passed) and the daemon stopped.

    With `intake_processes`, the senders post to the intake processes' port: a 2xx then
    means "journalled", and the daemon ingests the journals after each restart.
    """
    seed = int(os.environ.get("PAGERD_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    run = Run(seed)
    print(f"PAGERD_CRASH_SEED={seed}")
    began = time.monotonic()

    sink = KeySink(random.Random(seed + 1), pause)
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    ids = list(range(alerts))
    rng.shuffle(ids)
    batches: list[list[int]] = []
    while ids:
        size = rng.randint(1, MAX_BATCH)
        batches.append(ids[:size])
        del ids[:size]

    async with serve_app(app) as sink_base:
        config = tmp_path / "pagerd.yml"
        # One incident per alert: the route groups by a label unique to each. A generous
        # send timeout: a timed-out send is retried under its key, a repeat with no crash.
        text = config_text(f"{sink_base}/hook", group_by="[id]")
        intake_port = port = free_port()
        if intake_processes:
            intake_port = free_port()
            text = text.replace("server:\n", f"server:\n  intake_processes: {intake_processes}"
                                f"\n  intake_listen: 127.0.0.1:{intake_port}\n")
        config.write_text(text.replace("timeout: 2s", "timeout: 30s"))
        daemon = pagerd_process(config, tmp_path / "state", port, tmp_path / "pagerd.log")
        daemon.start()
        try:
            run.ready_after.append(await daemon.wait_ready(30))
            url = f"http://127.0.0.1:{intake_port}/api/v1/alertmanager"
            async with aiohttp.ClientSession() as session:
                stopping = asyncio.create_task(
                    interrupter(daemon, sink, run, rng, alerts, kind, interruptions))
                await asyncio.gather(*(sender(session, url, batches, run)
                                       for _ in range(SENDERS)))
                intake_done = time.monotonic() - began
                await asyncio.wait_for(stopping, 60)
            # Not every incident may make it: the assertions then say which.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(45):
                    await reach(sink.progress, lambda: sink.notified, alerts)
            notified_done = time.monotonic() - began
            # A clean stop lets the last sends record their outcome before the store closes.
            assert await daemon.stop() == 0, daemon.failure(f"{run}: SIGTERM did not exit 0")
        finally:
            await daemon.stop()
    await no_intake_processes_left(tmp_path / "state")

    print(f"{run}; intake {intake_done:.1f}s, all notified {notified_done:.1f}s, "
          f"total {time.monotonic() - began:.1f}s")
    return Storm(run, sink, read_store(tmp_path / "state" / "pagerd.db"), daemon.log_path)


async def no_intake_processes_left(state_dir: Path) -> None:
    """No intake process of this state dir outlives its daemon, killed or stopped."""
    async def none_left() -> None:
        assert intake_pids(state_dir) == [], "intake processes outlived their daemon"

    await until(none_left, within=5)


def check_nothing_lost(storm: Storm, alerts: int) -> None:
    """Every acknowledged alert stored in its own incident, every incident notified once
    under one key, and the store recording exactly one successful send for each."""
    run, sink, store = storm.run, storm.sink, storm.store
    assert run.acked == set(range(alerts)), run

    stored = {labels["id"]: (fp, labels, status)
              for fp, (labels, status) in store["alerts"].items()}
    missing = sorted(set(map(str, run.acked)) - stored.keys(), key=int)
    assert not missing, f"{run}: {len(missing)} acknowledged alerts lost, e.g. {missing[:10]}"
    assert len(stored) == alerts, run
    for fp, labels, status in stored.values():
        assert fp == fingerprint(labels) and status == "firing", (run, fp, labels, status)
    assert len(store["incidents"]) == alerts, run
    assert set(store["incidents"].values()) == {"triggered"}, run
    by_fingerprint = {fp: labels["id"] for fp, labels, _ in stored.values()}
    incident_alert = {}
    for incident_id, fps in store["members"].items():
        assert len(fps) == 1, (run, incident_id, fps)
        incident_alert[incident_id] = by_fingerprint[fps[0]]
    assert incident_alert.keys() == store["incidents"].keys(), run

    # Every incident reached the sink, about its own alert, under exactly one key.
    not_notified = sorted(store["incidents"].keys() - sink.alert_ids.keys())
    assert not not_notified, f"{run}: {len(not_notified)} incidents never notified, " \
        f"e.g. {not_notified[:10]}; log {storm.log_path}"
    assert sink.alert_ids == incident_alert, run
    keys_per_incident = Counter(sink.incidents.values())
    several = {i: n for i, n in keys_per_incident.items() if n > 1}
    assert not several, f"{run}: incidents paged under several keys: {list(several)[:10]}"
    for key, incident_id in sink.incidents.items():
        assert key == f"pagerd-{incident_id}-{RECEIVER}-0", (run, key)

    # The store agrees: each incident recorded exactly one successful send, and no claim
    # (a send in flight) is left after the clean stop.
    sent = Counter(i for (i, kind), n in store["timeline"].items()
                   if kind == "notification.sent" for _ in range(n))
    wrong = {i: sent.get(i, 0) for i in store["incidents"] if sent.get(i, 0) != 1}
    assert not wrong, f"{run}: notification.sent count != 1 for {list(wrong.items())[:10]}"
    assert all(claimed is None and last_sent is not None
               for _, claimed, last_sent in store["timers"]), run


@pytest.mark.parametrize("intake_processes", [0, 2], ids=["in-daemon", "intake-processes"])
async def test_kill_9_loses_no_acknowledged_alert_and_repeats_only_in_flight_sends(
    tmp_path: Path, intake_processes: int,
) -> None:
    result = await storm(tmp_path, ALERTS, "kill", CRASHES, intake_processes=intake_processes)
    run, sink = result.run, result.sink
    assert len(run.crashes) == CRASHES, run
    check_nothing_lost(result, ALERTS)

    # A key repeats only for a send in flight at a crash. One process never delivers a key
    # twice; a delivery by process e followed by another means crash e cut that send off
    # before its outcome was recorded, and crash e can have cut off at most IN_FLIGHT.
    counts = Counter(sink.keys.values())
    print(f"deliveries per key: {dict(sorted(counts.items()))}")
    cut_off: Counter[int] = Counter()
    for key, epochs in sink.epochs.items():
        assert len(set(epochs)) == len(epochs), f"{run}: {key} repeated by one process: {epochs}"
        cut_off.update(epochs[:-1])
    print(f"sends repeated after crash n: {dict(sorted(cut_off.items()))}")
    assert max(counts) <= 1 + len(run.crashes), (run, counts)
    assert all(0 <= e < len(run.crashes) for e in cut_off), (run, cut_off)
    assert max(cut_off.values(), default=0) <= IN_FLIGHT, f"{run}: repeats per crash {cut_off}"
    assert sum(cut_off.values()) <= len(run.crashes) * IN_FLIGHT, (run, cut_off)


@pytest.mark.parametrize("intake_processes", [0, 2], ids=["in-daemon", "intake-processes"])
async def test_sigterm_under_load_drains_loses_nothing_and_repeats_nothing(
    tmp_path: Path, intake_processes: int,
) -> None:
    """A graceful restart is no crash: intake refuses with 503 (retried), sends in flight
    finish and are recorded, so no notification goes out twice."""
    alerts = 800
    # A slow receiver: SIGTERM comes while sends are in flight, waiting for its answers.
    result = await storm(tmp_path, alerts, "term", 4, pause=(0.1, 0.3),
                         intake_processes=intake_processes)
    check_nothing_lost(result, alerts)
    repeated = {key: n for key, n in result.sink.keys.items() if n > 1}
    assert not repeated, f"{result.run}: repeated after SIGTERM: {list(repeated.items())[:10]}"


@dataclass
class FlakySink:
    """A webhook receiver that fails (503, 500, 429 in turn) until told to recover."""

    failing: bool = True
    tried: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    incidents: dict[str, int] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        key = request.headers["Idempotency-Key"]
        self.tried[key] += 1
        self.incidents[key] = body["incident"]["id"]
        self.progress.set()
        if self.failing:
            return web.Response(status=(503, 500, 429)[sum(self.tried.values()) % 3])
        self.delivered[key] += 1
        return web.Response(text="ok")


async def test_failed_sends_survive_kill_9_and_go_out_once_the_receiver_recovers(
    tmp_path: Path,
) -> None:
    """Retries are durable: a crash while the receiver fails loses no notification.

    Every incident's send fails and is re-armed with backoff; the daemon is SIGKILLed with
    some sends re-armed and some mid-retry, the receiver recovers, the daemon restarts:
    every incident is then delivered exactly once, under the key its failed tries had.
    """
    count = 200
    sink = FlakySink()
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    run = Run(seed=0)
    async with serve_app(app) as sink_base:
        config = tmp_path / "pagerd.yml"
        config.write_text(config_text(f"{sink_base}/hook", group_by="[id]"))
        port = free_port()
        state = tmp_path / "state"
        daemon = pagerd_process(config, state, port, tmp_path / "pagerd.log")
        daemon.start()
        try:
            await daemon.wait_ready(30)
            url = f"http://127.0.0.1:{port}/api/v1/alertmanager"
            batches = [list(range(i, min(i + 10, count))) for i in range(0, count, 10)]
            async with aiohttp.ClientSession() as session:
                await asyncio.gather(*(sender(session, url, batches, run) for _ in range(4)))
            async with asyncio.timeout(30):
                await reach(sink.progress, lambda: len(sink.tried), count)
            await daemon.kill()
            tried_before = dict(sink.tried)
            sink.failing = False
            daemon.start()
            await daemon.wait_ready(30)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await reach(sink.progress, lambda: len(sink.delivered), count)
            assert await daemon.stop() == 0, daemon.failure("SIGTERM did not exit 0")
        finally:
            await daemon.stop()

    store = read_store(state / "pagerd.db")
    assert len(store["incidents"]) == count
    undelivered = sorted(store["incidents"].keys() - {sink.incidents[k] for k in sink.delivered})
    assert not undelivered, f"never delivered after recovery: {undelivered[:10]}; " \
        f"log {daemon.log_path}"
    assert set(sink.delivered.values()) == {1}, sink.delivered
    # The key is stable across quick retries, durable re-arms and the restart.
    assert sink.delivered.keys() == tried_before.keys()
    for key, incident_id in sink.incidents.items():
        assert key == f"pagerd-{incident_id}-{RECEIVER}-0", key
    kinds = Counter(kind for (_, kind), n in store["timeline"].items() for _ in range(n))
    assert kinds["notification.sent"] == count, kinds
    assert kinds["notification.retry"] > 0, kinds  # some re-arms were committed before the kill
    assert all(claimed is None and last_sent is not None
               for _, claimed, last_sent in store["timers"])
