"""The escalation engine end to end with a fake clock and a recording notifier: steps,
notification rules, repeats, fallback, acknowledgement, ack timeout, failover, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pagerd.clock import FakeClock
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.daemon.escalator import Escalator
from pagerd.daemon.intake import Intake, Router
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.pager import Pager
from pagerd.links import LinkSigner
from pagerd.models import Alert, AlertStatus
from pagerd.notifiers.base import DeliveryError, Page, Receipt
from pagerd.settings import Settings, load_settings
from pagerd.store.sqlite import SQLiteStore

# Monday 2026-03-02 10:00 UTC: inside the first week of the rotation (alice).
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()

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
route:
  receiver: pager
  group_by: [alertname]
  escalation_policy: frontline
  routes:
    - matchers: ['team="night"']
      escalation_policy: nightly
    - matchers: ['team="hand"']
      escalation_policy: handing
receivers:
  - name: pager
"""


@dataclass
class Phone:
    """A fake contact method: records pages, can be told to fail permanently."""

    kind: str
    pages: list[tuple[float, str, int]] = field(default_factory=list)
    broken: bool = False
    clock: FakeClock | None = None

    async def send_page(self, page: Page) -> Receipt:
        if self.broken:
            raise DeliveryError("twilio_21211", retryable=False)
        assert self.clock is not None
        for item in page.items:
            self.pages.append((self.clock.time() - T0, page.user, item.incident_id))
        return Receipt(provider_id=f"SM{len(self.pages)}")


@dataclass
class Engine:
    """Store, intake and dispatcher on one SQLite file, driven by a fake clock."""

    path: Path
    clock: FakeClock
    settings: Settings
    phones: dict[str, Phone]
    store: SQLiteStore | None = None
    dispatcher: Dispatcher | None = None
    intake: Intake | None = None

    async def start(self) -> None:
        self.store = SQLiteStore(self.path)
        await self.store.open()
        metrics = Metrics()
        escalator = Escalator(self.store, metrics, lambda: self.settings, self.clock,
                              wake=lambda: None)
        signer = LinkSigner({"k1": b"0123456789abcdef"}, "k1", clock=self.clock.time)
        pager = Pager(self.store, metrics, lambda: self.settings, self.clock, self.phones,
                      signer=lambda: signer, wake=lambda: None)
        self.dispatcher = Dispatcher(self.store, self.clock,
                                     {"page": pager, **escalator.handlers()})
        self.intake = Intake(self.store, metrics, self.clock, Router(self.settings))

    async def stop(self) -> None:
        assert self.store is not None
        await self.store.close()

    async def fire(self, name: str = "Down", **labels: str) -> int:
        assert self.intake is not None
        labels = {"alertname": name, **labels}
        alert = Alert(fingerprint=f"{abs(hash(name + str(labels))):016x}"[:16],
                      status=AlertStatus.FIRING, labels=labels, integration="test")
        result = await self.intake.accept([alert], "test")
        await self.run()
        return result.opened[0]

    async def run(self) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.run_due()

    async def advance(self, minutes: float) -> None:
        """Move time minute by minute, running what falls due, as a live daemon would."""
        for _ in range(int(minutes)):
            self.clock.advance(60)
            await self.run()

    def paged(self) -> list[tuple[float, str, str]]:
        """(minute, user, method) of every page so far, in order."""
        sent = [(t / 60, user, kind) for kind, phone in self.phones.items()
                for t, user, _ in phone.pages]
        return sorted(sent)


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
