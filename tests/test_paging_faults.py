"""Faults of the SMS provider: down for minutes, pages queue durably and retry; a restart
in the middle of retrying loses nothing and sends nothing twice; a permanent refusal fails
over to the next contact method. Real HTTP to a fake Twilio; a fake clock for the minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pagerd.clock import FakeClock
from pagerd.notifiers.base import PageNotifier
from pagerd.notifiers.twilio_sms import TwilioSMS
from pagerd.settings import load_settings

from engine import T0, Engine, Phone
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, Failure, FakeTwilio, fake_twilio

ALICE = "+15550002001"

CONFIG = f"""
users:
  - name: alice
    contacts: {{sms: "{ALICE}", email: alice@example.com}}
    notification_rules:
      - {{method: sms, after: 0m}}
escalation_policies:
  - name: solo
    steps:
      - targets: [{{user: alice}}]
        delay: 60m
route:
  receiver: pager
  group_by: [alertname]
  escalation_policy: solo
receivers:
  - name: pager
"""


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def build(tmp_path: Path, twilio: FakeTwilio, session: aiohttp.ClientSession,
          clock: FakeClock) -> Engine:
    sms = TwilioSMS(session, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
                    from_number="+15005550006", base_url=twilio.base_url, wait_base=0.001)
    notifiers: dict[str, PageNotifier] = {"sms": sms, "email": Phone("email", clock=clock)}
    return Engine(tmp_path / "pagerd.db", clock, load_settings("t.yml", CONFIG), notifiers)


def texts(twilio: FakeTwilio) -> list[str]:
    return [m.body for m in twilio.messages.values()]


async def test_outage_of_minutes_queues_and_delivers_once(
    tmp_path: Path, twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(T0)
    engine = build(tmp_path, twilio, session, clock)
    await engine.start()
    twilio.fail_next(*[Failure(503)] * 40)  # every try for several minutes fails
    for name in ("Disk", "Cpu", "Net"):
        await engine.fire(name)
    assert texts(twilio) == []
    await engine.advance(4)
    assert texts(twilio) == []  # still down; the pages wait in the store
    twilio.failures.clear()  # the provider is back
    await engine.advance(10)
    bodies = texts(twilio)
    # Nothing lost, nothing twice: each incident reached alice in exactly one text.
    for name in ("Disk", "Cpu", "Net"):
        assert sum(name in body for body in bodies) == 1, bodies
    incidents = [await engine.store.incident(i) for i in (1, 2, 3)]  # type: ignore[union-attr]
    for incident in incidents:
        assert incident is not None
        kinds = [e["kind"] for e in incident["timeline"]]
        assert "page.retry" in kinds and "page.sent" in kinds
    await engine.advance(30)
    assert len(texts(twilio)) == len(bodies)  # and nothing more after
    await engine.stop()


async def test_restart_mid_retry_sends_once(
    tmp_path: Path, twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(T0)
    engine = build(tmp_path, twilio, session, clock)
    await engine.start()
    twilio.fail_next(*[Failure(500)] * 6)
    await engine.fire("Disk")
    await engine.advance(1)
    assert texts(twilio) == []
    await engine.stop()  # the daemon goes down while the page is waiting to retry

    clock.advance(300)  # and is down for five minutes, the provider recovering meanwhile
    twilio.failures.clear()
    restarted = build(tmp_path, twilio, session, clock)
    await restarted.start()
    await restarted.run()
    await restarted.advance(30)
    assert len(texts(twilio)) == 1
    await restarted.stop()


async def test_permanent_refusal_fails_over_to_email(
    tmp_path: Path, twilio: FakeTwilio, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(T0)
    twilio.invalid_numbers.add(ALICE)  # 21211: not a number Twilio can text
    engine = build(tmp_path, twilio, session, clock)
    await engine.start()
    incident_id = await engine.fire("Disk")
    await engine.run()
    assert engine.paged() == [(0, "alice", "email")]
    assert engine.store is not None
    incident = await engine.store.incident(incident_id)
    assert incident is not None
    (failed,) = [e for e in incident["timeline"] if e["kind"] == "page.failed"]
    assert failed["reason"] == "twilio_21211" and failed["failover"] == "email"
    await engine.stop()
