"""The incident practice over loopback HTTP: frontline reports, PagerDuty Events API v2
and change events, mitigation, notes, roles, severity, actions, reviews, reports."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from pagerd.cli import main

from conftest import FIXTURES
from helpers import ADMIN, running_daemon

PD_KEY = "e93facc04764012d7bfb002500d5d1a6"
CHANGE_KEY = "737ea619db564d41bd9824063e1f6b08"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

CONFIG = f"""
server:
  admin_token: {ADMIN}
integrations:
  pd:
    type: pagerduty
    token: {PD_KEY}
  builds:
    type: pagerduty
    token: {CHANGE_KEY}
severity:
  levels:
    - {{name: SEV1, ack_target: 5m, mitigate_target: 30m, resolve_target: 2h}}
    - {{name: SEV2, ack_target: 15m, resolve_target: 8h}}
users:
  - name: alice
    contacts: {{webhook: "http://127.0.0.1:9/alice"}}
escalation_policies:
  - name: frontline
    steps:
      - targets: [{{user: alice}}]
        delay: 5m
components:
  - name: checkout
    team: shop
    escalation_policy: frontline
  - name: mysql
    team: dba
    escalation_policy: frontline
route:
  receiver: pager
  group_by: [alertname, component]
  routes:
    - matchers: ['component="mysql"']
      owner: mysql
receivers:
  - name: pager
"""


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "pagerduty" / name).read_text())
    return data


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.request(method, url, json=body,
                               headers=AUTH if headers is None else headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, text


async def test_frontline_report_opens_and_pages(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (daemon, base, session):
        status, created = await call(session, "POST", f"{base}/api/v1/incidents", {
            "component": "checkout", "severity": "SEV1", "summary": "Checkout fails for EU",
            "customer_impact": "EU customers cannot pay", "reporter": "support",
            "support_case": "CASE-1234", "by": "sam"})
        assert status == 201
        _, incident = await call(session, "GET", f"{base}/api/v1/incidents/{created['id']}")
        assert incident["severity"] == "SEV1" and incident["owner"] == "checkout"
        assert incident["escalation_policy"] == "frontline"
        assert incident["details"]["support_case"] == "CASE-1234"
        assert incident["details"]["opened_by"] == "api:sam"
        assert await daemon.store.count_timers("escalate") + await daemon.store.count_timers(
            "page") >= 1


async def test_frontline_refusals_name_the_field(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        for body, field in (
            ({"component": "nope", "severity": "SEV1", "summary": "x"}, "component"),
            ({"component": "checkout", "severity": "SEV9", "summary": "x"}, "severity"),
            ({"component": "checkout", "severity": "SEV1"}, "summary"),
        ):
            status, error = await call(session, "POST", f"{base}/api/v1/incidents", body)
            assert (status, error["field"]) == (400, field)
        assert (await call(session, "GET", f"{base}/api/v1/incidents"))[1] == []


async def test_pagerduty_events_trigger_acknowledge_resolve(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        trigger = fixture("events-v2-trigger.json")
        status, answer = await call(session, "POST", f"{base}/v2/enqueue", trigger, {})
        assert status == 202 and answer["dedup_key"] == "srv01/mysql"
        assert (await call(session, "POST", f"{base}/v2/enqueue", trigger, {}))[0] == 202
        (incident,) = (await call(session, "GET", f"{base}/api/v1/incidents"))[1]
        assert incident["owner"] == "mysql" and incident["severity"] == "SEV1"
        assert len(incident["alerts"]) == 1  # the repeat changed nothing

        ack = fixture("events-v2-acknowledge.constructed.json")
        assert (await call(session, "POST", f"{base}/v2/enqueue", ack, {}))[0] == 202
        _, found = await call(session, "GET", f"{base}/api/v1/incidents/{incident['id']}")
        assert found["state"] == "acknowledged" and found["acknowledged_by"] == "pagerduty:pd"

        resolve = fixture("events-v2-resolve.constructed.json")
        assert (await call(session, "POST", f"{base}/v2/enqueue", resolve, {}))[0] == 202
        _, found = await call(session, "GET", f"{base}/api/v1/incidents/{incident['id']}")
        assert found["state"] == "resolved"


async def test_pagerduty_errors_as_pagerduty_answers_them(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        bad = fixture("events-v2-trigger.json") | {"event_action": "explode"}
        status, error = await call(session, "POST", f"{base}/v2/enqueue", bad, {})
        assert status == 400 and error["status"] == "invalid event" and error["errors"]
        unknown = fixture("events-v2-trigger.json") | {"routing_key": "f" * 32}
        status, error = await call(session, "POST", f"{base}/v2/enqueue", unknown, {})
        assert status == 400 and error["errors"] == ["Invalid routing key"]


async def test_change_events_show_on_incidents(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, session):
        change = fixture("change-events-v2-example.json")
        change["payload"]["custom_details"]["component"] = "checkout"
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        change["payload"]["timestamp"] = an_hour_ago.isoformat()
        status, _ = await call(session, "POST", f"{base}/v2/change/enqueue", change, {})
        assert status == 202
        _, created = await call(session, "POST", f"{base}/api/v1/incidents", {
            "component": "checkout", "severity": "SEV2", "summary": "Slow checkout"})
        status, changes = await call(session, "GET",
                                     f"{base}/api/v1/incidents/{created['id']}/changes")
        assert status == 200
        assert [c["summary"] for c in changes] == [change["payload"]["summary"]]
        assert changes[0]["links"][0]["text"] == "View in Build Pipeline"


async def test_mitigate_note_assign_severity_actions_review(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (daemon, base, session):
        _, created = await call(session, "POST", f"{base}/api/v1/incidents", {
            "component": "checkout", "severity": "SEV2", "summary": "Payments failing"})
        url = f"{base}/api/v1/incidents/{created['id']}"
        assert (await call(session, "POST", f"{url}/severity",
                           {"severity": "SEV1", "reason": "all regions"}))[0] == 200
        assert (await call(session, "POST", f"{url}/assign",
                           {"role": "lead", "user": "alice"}))[0] == 200
        status, error = await call(session, "POST", f"{url}/assign",
                                   {"role": "boss", "user": "alice"})
        assert (status, error["field"]) == (400, "role")
        assert (await call(session, "POST", f"{url}/notes", {"text": "rolled back"}))[0] == 200
        assert (await call(session, "POST", f"{url}/mitigate", {"by": "alice"}))[0] == 200
        assert await daemon.store.count_timers("escalate") == 0
        status, error = await call(session, "POST", f"{url}/actions", {
            "owner": "alice", "due": "2020-01-01", "text": "add a canary"})
        assert (status, error["field"]) == (400, "due")
        status, action = await call(session, "POST", f"{url}/actions", {
            "owner": "alice", "due": "2099-01-01", "text": "add a canary"})
        assert status == 200
        (listed,) = (await call(session, "GET", f"{base}/api/v1/actions?open=1"))[1]
        assert listed["text"] == "add a canary"
        assert (await call(session, "POST",
                           f"{base}/api/v1/actions/{action['id']}/close"))[0] == 200
        assert (await call(session, "POST", f"{url}/resolve", {}))[0] == 200

        _, incident = await call(session, "GET", url)
        kinds = [e["kind"] for e in incident["timeline"]]
        for kind in ("incident.severity", "role.assigned", "note", "incident.mitigated",
                     "action.added", "action.closed", "incident.resolved"):
            assert kind in kinds, kind
        assert incident["lead"] == "user:alice" and incident["severity"] == "SEV1"

        status, draft = await call(session, "GET", f"{url}/review?format=md")
        assert status == 200 and "Contributing causes" in draft
        status, stats = await call(session, "GET", f"{base}/api/v1/report?since=30d")
        assert status == 200 and stats["overall"]


def _cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


async def test_cli_page_note_review(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, CONFIG) as (_, base, __):
        common = ["--config", str(tmp_path / "pagerd.yml"), "--state-dir",
                  str(tmp_path / "state")]
        created = json.loads(await asyncio.to_thread(_cli, [
            "page", "--component", "checkout", "--severity", "SEV1", "--summary",
            "Card payments down", "--url", base, *common]))
        number = str(created["id"])
        await asyncio.to_thread(_cli, ["note", number, "calling the PSP", "--url", base,
                                       *common])
        review = await asyncio.to_thread(_cli, ["review", number, *common])
        assert "Card payments down" in review and "calling the PSP" in review
