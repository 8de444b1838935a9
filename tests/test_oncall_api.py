"""The on-call API and CLI against a running daemon: who is on call, overrides (audited,
refused with the field named), user tokens, iCal feeds."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pagerd.cli import main
from pagerd.receivers.alertmanager import parse_notification

from helpers import ADMIN, am_alert, am_payload, running_daemon

ALICE_TOKEN = "alice-personal-token"

CONFIG = f"""
server:
  admin_token: {ADMIN}
users:
  - name: alice
    contacts: {{email: alice@example.com}}
    api_token_sha256: {hashlib.sha256(ALICE_TOKEN.encode()).hexdigest()}
  - name: bob
    contacts: {{email: bob@example.com}}
schedules:
  - name: primary
    time_zone: UTC
    layers:
      - participants: [alice, bob]
        shift_length: 1w
        start: 2026-03-02
        handoff: "09:00"
escalation_policies:
  - name: frontline
    steps:
      - targets: [{{schedule: primary}}]
        delay: 5m
route:
  receiver: pager
  escalation_policy: frontline
receivers:
  - name: pager
"""

ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
AT = "2026-03-03T12:00:00Z"  # alice's week


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
              ) -> tuple[int, Any]:
    async with session.get(url, headers=ADMIN_AUTH if headers is None else headers) as r:
        return r.status, await r.json(content_type=None)


async def post(session: aiohttp.ClientSession, url: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.post(url, json=body,
                            headers=ADMIN_AUTH if headers is None else headers) as r:
        return r.status, await r.json(content_type=None)


async def test_override_changes_who_is_on_call(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (daemon, base, session):
        status, found = await get(session, f"{base}/api/v1/oncall?at={AT}")
        assert status == 200
        assert found[0]["on_call"][0]["user"] == "alice"

        take = {"kind": "take", "user": "bob", "start": "2026-03-03T10:00:00Z",
                "end": "2026-03-03T18:00:00Z", "reason": "alice at the dentist", "by": "carol"}
        status, created = await post(session, f"{base}/api/v1/schedules/primary/overrides", take)
        assert status == 201
        _, found = await get(session, f"{base}/api/v1/oncall?schedule=primary&at={AT}")
        assert found[0]["on_call"] == [{"user": "bob", "since": "2026-03-03T10:00:00+00:00",
                                        "until": "2026-03-03T18:00:00+00:00",
                                        "unreachable": []}]
        (row,) = (await get(session, f"{base}/api/v1/overrides"))[1]
        assert row["created_by"] == "api:carol" and row["reason"] == "alice at the dentist"

        async with session.delete(f"{base}/api/v1/overrides/{created['id']}",
                                  headers=ADMIN_AUTH) as response:
            assert response.status == 200
        _, found = await get(session, f"{base}/api/v1/oncall?at={AT}")
        assert found[0]["on_call"][0]["user"] == "alice"
        assert daemon.overrides == {}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"kind": "take", "user": "bob", "start": "2026-03-03T18:00:00Z",
      "end": "2026-03-03T10:00:00Z"}, 400, "end"),
    ({"kind": "take", "user": "zed", "start": "2026-03-03T10:00:00Z",
      "end": "2026-03-03T18:00:00Z"}, 400, "user"),
    ({"kind": "take", "user": "bob", "start": "2026-03-03T10:00:00",
      "end": "2026-03-03T18:00:00Z"}, 400, "start"),
    ({"kind": "nap"}, 400, "kind"),
])
async def test_bad_overrides_name_the_field(tmp_path: Path, body: dict[str, Any], status: int,
                                            field: str) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        answer = await post(session, f"{base}/api/v1/schedules/primary/overrides", body)
        assert answer == (status, answer[1]) and answer[1]["field"] == field
        assert (await get(session, f"{base}/api/v1/overrides"))[1] == []


async def test_unknown_schedule_is_404(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        status, error = await post(session, f"{base}/api/v1/schedules/nope/overrides",
                                   {"kind": "add"})
        assert status == 404 and error["field"] == "schedule"


async def test_user_token_acts_as_that_user(tmp_path: Path) -> None:
    alice = {"Authorization": f"Bearer {ALICE_TOKEN}"}
    async with running_daemon(tmp_path, CONFIG) as (daemon, base, session):
        status, _ = await get(session, f"{base}/api/v1/oncall",
                              headers={"Authorization": "Bearer wrong"})
        assert status == 401
        alerts = parse_notification(am_payload(am_alert(alertname="Down"))).alerts
        (incident_id,) = (await daemon.intake.accept(alerts, "alertmanager")).opened
        status, answer = await post(session, f"{base}/api/v1/incidents/{incident_id}/ack",
                                    {"by": "mallory"}, headers=alice)
        assert status == 200 and answer["changed"]
        _, incident = await get(session, f"{base}/api/v1/incidents/{incident_id}")
        assert incident["acknowledged_by"] == "user:alice"  # `by` cannot speak for others


async def test_ical_feeds_need_the_users_secret(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (daemon, base, session):
        output = await asyncio.to_thread(
            _cli, ["ical", "alice", "--config", str(tmp_path / "pagerd.yml"),
                   "--state-dir", str(tmp_path / "state")])
        me, schedule = output.split()
        for url in (me, schedule):
            path = url.split("/ical/", 1)[1]
            async with session.get(f"{base}/ical/{path}") as response:
                assert response.status == 200
                body = await response.text()
            assert "BEGIN:VCALENDAR" in body and "alice" in body
        wrong = me.replace(me.split("/")[-2], "0" * 32).split("/ical/", 1)[1]
        async with session.get(f"{base}/ical/{wrong}") as response:
            assert response.status == 404
        assert daemon.ical_secret_ok("alice", me.split("/")[-2])


def _cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


async def test_cli_override_and_oncall(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, __):
        common = ["--config", str(tmp_path / "pagerd.yml"), "--state-dir",
                  str(tmp_path / "state")]
        output = await asyncio.to_thread(_cli, [
            "override", "add", "primary", "--user", "bob", "--start", "2026-03-03T00:00:00Z",
            "--end", "2026-03-04T00:00:00Z", "--reason", "shadowing", "--by", "carol",
            "--url", base, *common])
        assert "in force" in output
        found = json.loads(await asyncio.to_thread(
            _cli, ["oncall", "primary", "--at", AT, "--json", *common]))
        assert [o["user"] for o in found[0]["on_call"]] == ["alice", "bob"]
        listed = await asyncio.to_thread(_cli, ["override", "list", "--url", base, *common])
        assert "api:carol" in listed and "shadowing" in listed
