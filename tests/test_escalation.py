"""The escalation engine end to end with a fake clock and a recording notifier: steps,
notification rules, repeats, fallback, acknowledgement, ack timeout, failover, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pagerd.clock import FakeClock
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.models import Alert, AlertStatus
from pagerd.settings import load_settings
from pagerd.store.base import Timer
from pagerd.store.sqlite import SQLiteStore

from engine import T0, Engine, Phone

CONFIG = """
users:
  - name: alice
    contacts: {sms: "+15550000001", email: alice@example.com}
    notification_rules:
      - {method: sms, after: 0m}
      - {method: email, after: 2m}
  - name: bob
    contacts: {sms: "+15550000002", email: bob@example.com}
  - name: carol
    contacts: {email: carol@example.com}
  - name: dave
    contacts: {email: dave@example.com}
schedules:
  - name: primary
    time_zone: UTC
    layers:
      - participants: [alice, bob]
        shift_length: 1w
        start: 2026-03-02
        handoff: "09:00"
  - name: nights
    time_zone: UTC
    layers:
      - participants: [carol]
        shift_length: 1d
        start: 2026-03-02
        handoff: "00:00"
        restrictions:
          - {days: mon-sun, from: "22:00", to: "06:00"}
escalation_policies:
  - name: frontline
    repeat: 1
    ack_timeout: 30m
    fallback: {user: dave}
    steps:
      - targets: [{schedule: primary}]
        delay: 5m
      - targets: [{user: carol}]
        delay: 10m
  - name: nightly
    fallback: {user: dave}
    steps:
      - targets: [{schedule: nights}]
        delay: 5m
  - name: handing
    steps:
      - targets: [{user: bob}, {policy: frontline}]
        delay: 5m
  - name: vendor
    steps:
      - targets: [{user: bob}]
        delay: 5m
        remind_lead: open a case with PayCo
route:
  receiver: pager
  group_by: [alertname]
  escalation_policy: frontline
  routes:
    - matchers: ['team="night"']
      escalation_policy: nightly
    - matchers: ['team="hand"']
      escalation_policy: handing
    - matchers: ['team="vendor"']
      escalation_policy: vendor
receivers:
  - name: pager
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    clock = FakeClock(T0)
    phones = {kind: Phone(kind, clock=clock) for kind in ("sms", "email", "voice")}
    settings = load_settings("test.yml", CONFIG)
    engine = Engine(tmp_path / "pagerd.db", clock, settings, phones)
    await engine.start()
    yield engine
    await engine.stop()


class TestSteps:
    """Who is paged, by which method, when, if nobody acknowledges."""

    async def test_full_policy_with_repeat_and_fallback(self, engine: Engine) -> None:
        await engine.fire()
        await engine.advance(60)
        assert engine.paged() == [
            (0, "alice", "sms"), (2, "alice", "email"),   # step 1: schedule -> alice
            (5, "carol", "email"),                        # step 2: carol
            (15, "alice", "sms"), (17, "alice", "email"),  # repeat 1, step 1
            (20, "carol", "email"),                       # repeat 1, step 2
            (30, "dave", "email"),                        # exhausted: the fallback
        ]

    async def test_acknowledge_stops_escalation_at_once(self, engine: Engine) -> None:
        incident = await engine.fire()
        await engine.advance(1)
        assert engine.store is not None
        assert await engine.store.set_state(incident, "acknowledged", "api:alice",
                                            engine.clock.time())
        await engine.advance(25)
        # alice's email (at +2m) and every later step are gone.
        assert engine.paged() == [(0, "alice", "sms")]

    async def test_ack_timeout_triggers_again(self, engine: Engine) -> None:
        incident = await engine.fire()
        assert engine.store is not None
        await engine.store.set_state(incident, "acknowledged", "api:alice",
                                     engine.clock.time(), ack_timeout=30 * 60)
        await engine.advance(31)
        assert engine.paged() == [(0, "alice", "sms"), (30, "alice", "sms")]
        record = await engine.store.incident(incident)
        assert record is not None and record["state"] == "triggered"

    async def test_resolve_ends_everything(self, engine: Engine) -> None:
        incident = await engine.fire()
        assert engine.store is not None
        await engine.store.set_state(incident, "resolved", "api:bob", engine.clock.time())
        await engine.advance(60)
        assert engine.paged() == [(0, "alice", "sms")]

    async def test_step_with_nobody_pages_fallback(self, engine: Engine) -> None:
        # 10:00 is outside the nights layer's restriction: the schedule has nobody.
        incident = await engine.fire("Disk", team="night")
        assert engine.paged() == [(0, "dave", "email")]
        assert engine.store is not None
        record = await engine.store.incident(incident)
        assert record is not None
        (step,) = [e for e in record["timeline"] if e["kind"] == "escalation.step"]
        assert step["fallback"] is True and step["users"] == ["dave"]

    async def test_handover_pages_both_then_follows_other_policy(self, engine: Engine) -> None:
        await engine.fire("Api", team="hand")
        await engine.advance(6)
        # bob and frontline's first step (alice) at once; then frontline's second step.
        assert engine.paged() == [(0, "alice", "sms"), (0, "bob", "sms"), (2, "alice", "email"),
                                  (5, "carol", "email")]


class TestFailover:
    """A permanent error on one method moves to the person's next method at once."""

    async def test_sms_rejected_fails_over_to_email(self, engine: Engine) -> None:
        engine.phones["sms"].broken = True
        incident = await engine.fire()
        assert engine.paged() == [(0, "alice", "email")]
        assert engine.store is not None
        record = await engine.store.incident(incident)
        assert record is not None
        failed = [e for e in record["timeline"] if e["kind"] == "page.failed"]
        assert failed[0]["reason"] == "twilio_21211" and failed[0]["failover"] == "email"


class TestRestarts:
    """Every state survives a restart; missed steps fire once, not in a burst."""

    @pytest.mark.parametrize("down_at", [0, 1, 3, 5, 7, 16, 29])
    async def test_restart_at_any_minute_changes_nothing(
        self, tmp_path: Path, down_at: int
    ) -> None:
        settings = load_settings("test.yml", CONFIG)

        async def run(restart: bool) -> list[tuple[float, str, str]]:
            clock = FakeClock(T0)
            phones = {kind: Phone(kind, clock=clock) for kind in ("sms", "email", "voice")}
            engine = Engine(tmp_path / f"{restart}.db", clock, settings, phones)
            await engine.start()
            await engine.fire()
            await engine.advance(down_at)
            if restart:
                await engine.stop()
                await engine.start()
                await engine.run()
            await engine.advance(40 - down_at)
            await engine.stop()
            return engine.paged()

        assert await run(restart=True) == await run(restart=False)

    async def test_downtime_fires_missed_step_once(self, engine: Engine) -> None:
        await engine.fire()
        await engine.stop()
        engine.clock.advance(60 * 60)  # down for an hour: four steps and the fallback missed
        await engine.start()
        await engine.run()
        # The pending page (alice's email) goes once, and one step (the next one due,
        # carol), not a burst of every step missed.
        assert engine.paged() == [(0, "alice", "sms"), (60, "alice", "email"),
                                  (60, "carol", "email")]
        await engine.advance(10)
        assert engine.paged()[-1] == (70, "alice", "sms")  # the next step counts from then


async def test_new_alert_on_acknowledged_incident_informs_acknowledger(engine: Engine) -> None:
    incident = await engine.fire("Down", instance="a")
    assert engine.store is not None
    await engine.store.set_state(incident, "acknowledged", "api:bob", engine.clock.time())
    assert engine.intake is not None
    alert = Alert("00000000000000bb", AlertStatus.FIRING, {"alertname": "Down", "instance": "b"},
                  integration="test")
    await engine.intake.accept([alert], "test")
    await engine.run()
    assert engine.paged() == [(0, "alice", "sms"), (0, "bob", "sms")]
    record = await engine.store.incident(incident)
    assert record is not None and record["state"] == "acknowledged"


async def test_step_reminds_to_open_a_vendor_case(engine: Engine) -> None:
    await engine.fire("Db", team="vendor")
    # bob is paged, and, with no lead yet, reminded to open the vendor case.
    assert engine.paged() == [(0, "bob", "sms"), (0, "bob", "sms")]
    assert engine.store is not None
    record = await engine.store.incident(1)
    assert record is not None
    sent = [e for e in record["timeline"] if e["kind"] == "page.sent"]
    assert len(sent) == 2


async def test_a_batch_of_late_steps_starts_before_pages_that_fell_due_after_it(
    tmp_path: Path,
) -> None:
    """Units of work take slots in the order claimed: a storm's last escalation steps
    (claimed with the first pages it ordered) do not queue behind those pages' sends."""
    started: list[str] = []

    async def page(timer: Timer) -> None:
        started.append(f"page:{timer.id}")

    async def escalate(timers: list[Timer]) -> None:
        started.append("escalate:" + ",".join(str(t.id) for t in timers))

    def timer(id: int, kind: str, due: float) -> Timer:
        return Timer(id, kind, 1, "", 0, 0, None, None, T0 + due)

    dispatcher = Dispatcher(SQLiteStore(tmp_path / "unused.db"), FakeClock(T0), {"page": page},
                            batch_handlers={"escalate": escalate}, concurrency=1)
    # As a claim returns them: by id, not by due time (page 1 fell due after step 2).
    claimed = [timer(1, "page", 30), timer(2, "escalate", 10), timer(3, "page", 20),
               timer(4, "escalate", 40)]
    for unit in dispatcher._split(claimed):
        await unit

    assert started == ["escalate:2,4", "page:3", "page:1"]
