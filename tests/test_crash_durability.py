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

PAGERD_CRASH_SEED replays one run (the seed is printed, and named in every failure).
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
from procs import Managed, pagerd_process

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
        await asyncio.sleep(self.rng.uniform(0.0, 0.02))
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


async def crasher(daemon: Managed, sink: KeySink, run: Run, rng: random.Random) -> None:
    """SIGKILL the daemon at random moments, each followed by a restart on the same state.

    Two crashes fall while alerts pour in, one by notification progress (usually while
    both go on); each at a random fraction of the work plus a random pause.
    """
    lo, hi = ALERTS // 10, ALERTS * 9 // 10
    moments = [("acked", n) for n in sorted(rng.sample(range(lo, hi), CRASHES - 1))]
    moments.append(("notified", rng.randrange(lo, hi)))
    for what, threshold in moments:
        if what == "acked":
            await reach(run.progress, lambda: len(run.acked), threshold)
        else:
            await reach(sink.progress, lambda: sink.notified, threshold)
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        await daemon.kill()
        run.crashes.append(f"{what}>={threshold} (acked={len(run.acked)}, "
                           f"notified={sink.notified})")
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


async def test_kill_9_loses_no_acknowledged_alert_and_repeats_only_in_flight_sends(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("PAGERD_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    run = Run(seed)
    print(f"PAGERD_CRASH_SEED={seed}")
    began = time.monotonic()

    sink = KeySink(random.Random(seed + 1))
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    ids = list(range(ALERTS))
    rng.shuffle(ids)
    batches: list[list[int]] = []
    while ids:
        size = rng.randint(1, MAX_BATCH)
        batches.append(ids[:size])
        del ids[:size]

    async with serve_app(app) as sink_base:
        config = tmp_path / "pagerd.yml"
        # One incident per alert: the route groups by a label unique to each.
        config.write_text(config_text(f"{sink_base}/hook", group_by="[id]"))
        port = free_port()
        state = tmp_path / "state"
        daemon = pagerd_process(config, state, port, tmp_path / "pagerd.log")
        daemon.start()
        try:
            run.ready_after.append(await daemon.wait_ready(30))
            url = f"http://127.0.0.1:{port}/api/v1/alertmanager"
            async with aiohttp.ClientSession() as session:
                crashing = asyncio.create_task(crasher(daemon, sink, run, rng))
                await asyncio.gather(*(sender(session, url, batches, run)
                                       for _ in range(SENDERS)))
                intake_done = time.monotonic() - began
                await asyncio.wait_for(crashing, 60)
            # Not every incident may make it: the assertions below then say which.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(45):
                    await reach(sink.progress, lambda: sink.notified, ALERTS)
            notified_done = time.monotonic() - began
            # A clean stop lets the last sends record their outcome before the store closes.
            assert await daemon.stop() == 0, daemon.failure(f"{run}: SIGTERM did not exit 0")
        finally:
            await daemon.stop()

    store = read_store(state / "pagerd.db")
    print(f"{run}; intake {intake_done:.1f}s, all notified {notified_done:.1f}s, "
          f"total {time.monotonic() - began:.1f}s")
    assert len(run.crashes) == CRASHES, run
    assert run.acked == set(range(ALERTS)), run

    # Every acknowledged alert is stored, firing, in its own incident.
    stored = {labels["id"]: (fp, labels, status)
              for fp, (labels, status) in store["alerts"].items()}
    missing = sorted(set(map(str, run.acked)) - stored.keys(), key=int)
    assert not missing, f"{run}: {len(missing)} acknowledged alerts lost, e.g. {missing[:10]}"
    assert len(stored) == ALERTS, run
    for fp, labels, status in stored.values():
        assert fp == fingerprint(labels) and status == "firing", (run, fp, labels, status)
    assert len(store["incidents"]) == ALERTS, run
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
        f"e.g. {not_notified[:10]}; log {daemon.log_path}"
    assert sink.alert_ids == incident_alert, run
    keys_per_incident = Counter(sink.incidents.values())
    several = {i: n for i, n in keys_per_incident.items() if n > 1}
    assert not several, f"{run}: incidents paged under several keys: {list(several)[:10]}"
    for key, incident_id in sink.incidents.items():
        assert key == f"pagerd-{incident_id}-{RECEIVER}-0", (run, key)

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

    # The store agrees: each incident recorded exactly one successful send, and no claim
    # (a send in flight) is left after the clean stop.
    sent = Counter(i for (i, kind), n in store["timeline"].items()
                   if kind == "notification.sent" for _ in range(n))
    wrong = {i: sent.get(i, 0) for i in store["incidents"] if sent.get(i, 0) != 1}
    assert not wrong, f"{run}: notification.sent count != 1 for {list(wrong.items())[:10]}"
    assert all(claimed is None and last_sent is not None
               for _, claimed, last_sent in store["timers"]), run
