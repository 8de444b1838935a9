"""Paging end to end over loopback: alert -> escalation -> SMS at a fake Twilio -> signed
reply `4a` -> escalation stopped -> metrics; bare replies, bundles, STOP, forged texts,
delivery failures failing over, signed links, test pages."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from pagerd.cli import main
from pagerd.daemon.api_oncall import unreachable
from pagerd.daemon.core import Daemon

from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, fake_twilio
from helpers import ADMIN, TOKEN, am_alert, am_payload, eventually, free_port, running_daemon

ALICE, BOB = "+15550001001", "+15550001002"


def config(twilio: str, port: int) -> str:
    return f"""
server:
  admin_token: {ADMIN}
  listen: 127.0.0.1:{port}
  external_url: http://127.0.0.1:{port}
integrations:
  alertmanager:
    token: {TOKEN}
paging:
  bundle_window: 2m
  twilio:
    account_sid: {ACCOUNT_SID}
    auth_token: {AUTH_TOKEN}
    from_number: "+15005550006"
    base_url: {twilio}
users:
  - name: alice
    contacts: {{sms: "{ALICE}", webhook: "http://127.0.0.1:9/alice"}}
  - name: bob
    contacts: {{sms: "{BOB}"}}
teams:
  - name: ops
    members: [alice, bob]
escalation_policies:
  - name: frontline
    steps:
      - targets: [{{user: alice}}]
        delay: 5m
      - targets: [{{user: bob}}]
        delay: 5m
route:
  receiver: pager
  group_by: [alertname]
  escalation_policy: frontline
receivers:
  - name: pager
"""


@asynccontextmanager
async def chain(tmp_path: Path) -> AsyncIterator[tuple[Daemon, str, aiohttp.ClientSession,
                                                       FakeTwilio]]:
    async with fake_twilio() as twilio:
        port = free_port()
        async with running_daemon(tmp_path, config(twilio.base_url, port), port=port) as (
            daemon, base, session
        ):
            yield daemon, base, session, twilio


async def fire(session: aiohttp.ClientSession, base: str, name: str) -> None:
    async with session.post(f"{base}/api/v1/alertmanager",
                            json=am_payload(am_alert(alertname=name)),
                            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200


async def incident(session: aiohttp.ClientSession, base: str, number: int) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/incidents/{number}",
                           headers={"Authorization": f"Bearer {ADMIN}"}) as response:
        found: dict[str, Any] = await response.json()
        return found


def texts_to(twilio: FakeTwilio, phone: str) -> list[str]:
    return [m.body for m in twilio.messages.values() if m.to == phone]


async def metric(session: aiohttp.ClientSession, base: str, line: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[1])
    return 0.0


async def test_sms_reply_code_acknowledges_and_stops_escalation(tmp_path: Path) -> None:
    async with chain(tmp_path) as (daemon, base, session, twilio):
        await fire(session, base, "Down")
        (sent,) = await twilio.wait_for(1)
        assert sent.field("To") == ALICE
        body = sent.field("Body")
        code = re.search(r"Reply (\d+)a", body)
        assert code, body
        reply = await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE,
                                      body=f"{code[1]}a")
        assert reply.status == 200 and "acknowledged #1" in reply.text
        found = await incident(session, base, 1)
        assert found["state"] == "acknowledged" and found["acknowledged_by"] == "user:alice"
        kinds = [e["kind"] for e in found["timeline"]]
        assert "escalation.stopped" in kinds
        assert await daemon.store.count_timers("escalate") == 0
        assert await metric(session, base, 'pagerd_pages_total{method="sms",user="alice"}') == 1
        assert await metric(
            session, base,
            'pagerd_time_to_acknowledge_seconds_count{owner="",severity="SEV3"}') == 1


async def test_forged_and_unknown_texts_change_nothing(tmp_path: Path) -> None:
    async with chain(tmp_path) as (_, base, session, twilio):
        await fire(session, base, "Down")
        await twilio.wait_for(1)
        twilio.signing_token = "not-the-token"
        forged = await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE, body="ack")
        assert forged.status == 403
        twilio.signing_token = AUTH_TOKEN
        stranger = await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_="+15559999999",
                                         body="ack")
        assert stranger.status == 200 and "<Message>" not in stranger.text
        assert (await incident(session, base, 1))["state"] == "triggered"


async def test_bare_ack_and_help_is_capped(tmp_path: Path) -> None:
    async with chain(tmp_path) as (_, base, session, twilio):
        await fire(session, base, "Down")
        await twilio.wait_for(1)
        answers = [await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE,
                                         body="what is this?") for _ in range(5)]
        assert sum("<Message>" in a.text for a in answers) == 3  # then silence
        done = await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE, body="ack")
        assert "acknowledged #1" in done.text


async def test_pages_within_the_window_are_bundled(tmp_path: Path) -> None:
    async with chain(tmp_path) as (daemon, base, session, twilio):
        await fire(session, base, "First")
        await twilio.wait_for(1)
        await fire(session, base, "Second")
        await fire(session, base, "Third")

        async def both_waiting() -> None:
            for number in (2, 3):
                kinds = [e["kind"] for e in (await incident(session, base, number))["timeline"]]
                assert "page.bundling" in kinds

        await eventually(both_waiting)
        daemon.clock = _shifted(daemon, 121)  # the bundle window passes
        daemon.dispatcher.wake()
        await twilio.wait_for(2, within=10)
        bundle = texts_to(twilio, ALICE)[1]
        assert "2 incidents" in bundle, bundle

        async def bundle_recorded() -> None:
            kinds = [e["kind"] for e in (await incident(session, base, 3))["timeline"]]
            assert "page.sent" in kinds

        await eventually(bundle_recorded)
        reply = await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE, body="ack")
        assert "#2" in reply.text and "#3" in reply.text
        assert len(texts_to(twilio, ALICE)) == 2


async def test_stop_fails_over_and_start_restores(tmp_path: Path) -> None:
    async with chain(tmp_path) as (daemon, base, session, twilio):
        await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE, body="STOP")
        assert ALICE in daemon.opted_out
        await fire(session, base, "Down")

        async def failed_over() -> None:
            found = await incident(session, base, 1)
            failed = [e for e in found["timeline"] if e["kind"] == "page.failed"]
            assert failed and failed[0]["reason"] == "opted_out"
            assert failed[0]["failover"] == "webhook"

        await eventually(failed_over)
        assert texts_to(twilio, ALICE) == []
        async with session.get(f"{base}/api/v1/oncall",
                               headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 200
        assert unreachable(daemon.settings.oncall, "alice", daemon.opted_out) == ["sms"]
        # bob shares a team with alice: he hears she is unreachable by SMS.
        assert any("alice stopped SMS" in text for text in texts_to(twilio, BOB))
        await twilio.send_sms(f"{base}/api/v1/twilio/sms", from_=ALICE, body="START")
        assert ALICE not in daemon.opted_out
        assert unreachable(daemon.settings.oncall, "alice", daemon.opted_out) == []


async def test_undelivered_text_fails_over(tmp_path: Path) -> None:
    async with chain(tmp_path) as (_, base, session, twilio):
        await fire(session, base, "Down")
        await twilio.wait_for(1)
        message_sid = next(iter(twilio.messages))
        result = await twilio.send_status(message_sid, "undelivered", error_code=30003)
        assert result.status == 204
        again = await twilio.send_status(message_sid, "undelivered", error_code=30003)
        assert again.status == 204  # a repeated callback fails over only once

        async def failed_over() -> None:
            # alice's webhook is down too: the failover page is being retried.
            found = await incident(session, base, 1)
            tries = [e for e in found["timeline"]
                     if e["kind"] == "page.retry" and e.get("method") == "webhook"]
            assert tries
            (delivery,) = [e for e in found["timeline"] if e["kind"] == "page.delivery"]
            assert delivery["status"] == "undelivered"

        await eventually(failed_over)


async def test_signed_link_get_changes_nothing_post_acts_once(tmp_path: Path) -> None:
    async with chain(tmp_path) as (_, base, session, twilio):
        await fire(session, base, "Down")
        (sent,) = await twilio.wait_for(1)
        link = re.search(r"(http://\S+/l/\S+)", sent.field("Body"))
        assert link, sent.field("Body")
        async with session.get(link[1]) as response:
            assert response.status == 200
            page = await response.text()
        assert (await incident(session, base, 1))["state"] == "triggered"
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        form = {"csrf": csrf[1]}
        async with session.post(link[1], data=form, headers={"Origin": base}) as response:
            assert response.status == 200
        assert (await incident(session, base, 1))["state"] == "acknowledged"
        async with session.post(link[1], data=form, headers={"Origin": base}) as response:
            assert response.status == 409  # used
        async with session.get(link[1][:-3] + "AAA") as response:
            assert response.status in (400, 403)


async def test_test_page(tmp_path: Path) -> None:
    async with chain(tmp_path) as (_, base, session, twilio):
        common = ["--config", str(tmp_path / "pagerd.yml"), "--state-dir",
                  str(tmp_path / "state"), "--url", base]
        assert await asyncio.to_thread(main, ["test-page", "alice", "--method", "sms",
                                              *common]) == 0
        assert "Test page" in texts_to(twilio, ALICE)[0]
        async with session.post(f"{base}/api/v1/users/bob/test-page", json={"method": "sms"},
                                headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 200
            assert (await response.json())["delivered"] is True
        assert "Test page" in texts_to(twilio, BOB)[0]
        async with session.post(f"{base}/api/v1/users/bob/test-page",
                                json={"method": "email"},
                                headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 502
            assert (await response.json())["reason"] == "no_address"  # bob has no e-mail


def _shifted(daemon: Daemon, seconds: float) -> Any:
    """The daemon's clock moved forward: a live daemon would just wait."""
    real = daemon.clock

    class Shifted(type(real)):  # type: ignore[misc]
        def time(self) -> float:
            return real.time() + seconds

    shifted = Shifted()
    daemon.dispatcher._clock = shifted
    for handler in daemon.dispatcher._handlers.values():
        if hasattr(handler, "_clock"):
            handler._clock = shifted
    return shifted
