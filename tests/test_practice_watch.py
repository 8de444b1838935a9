"""Promises kept track of: response targets near and missed, the communications manager,
overdue remediation actions, vendors in pages, and status page updates published only by a
person (against a local server speaking Statuspage's API)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from pagerd.daemon import practice_watch
from pagerd.daemon.core import Daemon

from fake_statuspage import FakeStatuspage
from helpers import ADMIN, eventually, running_daemon, serve_app, sink_server

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def config(hook: str, statuspage: str = "", component_id: str = "") -> str:
    status = f"""
status_page:
  base_url: {statuspage}
  page_id: kctbh9vrtdwd
  api_key: 89a229ce1a8dbcf9ff30430fbe35eb4c
  components: {{checkout: {component_id}}}
  templates:
    SEV1: >-
      Payments are failing for some customers ({{component}}).
      Next update in {{update_every}}.
""" if statuspage else ""
    return f"""
server:
  admin_token: {ADMIN}
severity:
  levels:
    - {{name: SEV1, ack_target: 10m, mitigate_target: 30m, resolve_target: 2h,
        comms_manager: true, update_every: 30m}}
    - {{name: SEV2, ack_target: 1h, resolve_target: 1d}}
paging:
  comms_schedule: comms
users:
  - name: lead
    contacts: {{webhook: "{hook}"}}
  - name: talker
    contacts: {{webhook: "{hook}"}}
schedules:
  - name: comms
    time_zone: UTC
    layers:
      - participants: [talker]
        shift_length: 1w
        start: 2026-01-05
        handoff: "09:00"
escalation_policies:
  - name: frontline
    steps:
      - targets: [{{user: lead}}]
        delay: 60m
components:
  - name: checkout
    team: shop
    escalation_policy: frontline
    vendors:
      - {{name: PayCo, support_level: premium, phone: "+15550009999",
          case_url: "https://support.payco.example/new"}}
route:
  receiver: pager
receivers:
  - name: pager
{status}"""


async def report(session: aiohttp.ClientSession, base: str, severity: str = "SEV1") -> int:
    async with session.post(f"{base}/api/v1/incidents", headers=AUTH, json={
            "component": "checkout", "severity": severity, "summary": "Payments failing"}) as r:
        assert r.status == 201
        created: dict[str, Any] = await r.json()
        return int(created["id"])


async def incident(session: aiohttp.ClientSession, base: str, number: int) -> dict[str, Any]:
    async with session.get(f"{base}/api/v1/incidents/{number}", headers=AUTH) as response:
        found: dict[str, Any] = await response.json()
        return found


def later(daemon: Daemon, seconds: float) -> None:
    """Move the daemon's clock: the watcher then sees the incident that much older."""
    real = daemon.clock.time

    daemon.clock.time = lambda: real() + seconds  # type: ignore[method-assign]


async def test_targets_warn_then_breach_once(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        daemon, base, session
    ):
        number = await report(session, base)
        await hook.wait_for(1)  # the lead is paged at once
        later(daemon, 9 * 60)   # 90% of the 10 min ack target
        await practice_watch.check(daemon)
        await practice_watch.check(daemon)
        found = await incident(session, base, number)
        warnings = [e for e in found["timeline"] if e["kind"] == "target.warning"]
        assert [w["target"] for w in warnings] == ["ack"]
        assert any(e["kind"] == "escalation.requested" for e in found["timeline"])

        later(daemon, 2 * 60)   # past it
        await practice_watch.check(daemon)
        await practice_watch.check(daemon)
        found = await incident(session, base, number)
        assert [e["target"] for e in found["timeline"] if e["kind"] == "target.breached"] == [
            "ack"]
        breaches = daemon.metrics.registry.get_sample_value(
            "pagerd_incident_target_breaches_total", {"severity": "SEV1", "target": "ack"})
        assert breaches == 1


async def test_comms_manager_engaged_and_paged(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        daemon, base, session
    ):
        number = await report(session, base)
        await practice_watch.check(daemon)
        found = await incident(session, base, number)
        assert found["comms"] == "user:talker"

        async def told() -> None:
            users = [r["json"]["user"] for r in hook.received]
            assert "talker" in users

        await eventually(told)
        notice = next(r["json"] for r in hook.received if r["json"]["user"] == "talker")
        assert notice["incidents"][0]["title"].startswith("You are communications manager")


async def test_pages_carry_vendors(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        _, base, session
    ):
        await report(session, base, "SEV2")
        (page,) = await hook.wait_for(1)
        contacts = page["json"]["incidents"][0]["contacts"]
        assert {"name": "PayCo", "role": "vendor premium", "phone": "+15550009999",
                "case_url": "https://support.payco.example/new"} in contacts


async def test_overdue_action_reminds_owner(tmp_path: Path) -> None:
    async with sink_server() as hook, running_daemon(tmp_path, config(hook.url)) as (
        daemon, base, session
    ):
        number = await report(session, base, "SEV2")
        await hook.wait_for(1)
        async with session.post(f"{base}/api/v1/incidents/{number}/actions", headers=AUTH,
                                json={"owner": "lead", "due": "2099-01-01",
                                      "text": "add a canary"}) as response:
            assert response.status == 200
        later(daemon, 80 * 365 * 86400)
        daemon.dispatcher.wake()

        async def reminded() -> None:
            titles = [r["json"]["incidents"][0]["title"] for r in hook.received]
            assert any("overdue: add a canary" in t for t in titles)

        await eventually(reminded)
        assert daemon.metrics.registry.get_sample_value(
            "pagerd_remediation_actions_overdue_total") == 1


@contextlib.asynccontextmanager
async def with_status_page(tmp_path: Path) -> AsyncIterator[
        tuple[FakeStatuspage, str, Daemon, str, aiohttp.ClientSession]]:
    """A daemon whose status page is a local fake with one component, checkout's."""
    fake = FakeStatuspage()
    component = fake.add_component("Checkout")
    async with serve_app(fake.app()) as statuspage, sink_server() as hook, running_daemon(
        tmp_path, config(hook.url, f"{statuspage}/v1", component)
    ) as (daemon, base, session):
        yield fake, component, daemon, base, session


async def test_status_page_draft_then_publish_by_a_person(tmp_path: Path) -> None:
    async with with_status_page(tmp_path) as (fake, component, _, base, session):
        number = await report(session, base)
        url = f"{base}/api/v1/incidents/{number}/status"
        async with session.post(f"{url}/publish", headers=AUTH) as response:
            assert response.status == 400  # nothing drafted: nothing published
            assert (await response.json())["field"] == "draft"
        assert fake.incidents == {}
        async with session.post(f"{url}/draft", headers=AUTH) as response:
            draft = (await response.json())["text"]
        assert draft == ("Payments are failing for some customers (checkout). "
                         "Next update in 30m.")
        assert fake.incidents == {}  # a draft is not published
        async with session.post(f"{url}/publish", headers=AUTH,
                                json={"by": "sam"}) as response:
            assert response.status == 200
        (published,) = fake.incidents.values()
        assert published["incident_updates"][0]["body"] == draft
        assert fake.components[component]["status"] == "major_outage"
        found = await incident(session, base, number)
        (entry,) = [e for e in found["timeline"] if e["kind"] == "status.published"]
        assert entry["actor"] == "api:sam"


async def test_status_update_drafted_and_published_from_the_incident_page(
    tmp_path: Path,
) -> None:
    """The page's buttons: draft from the template, then publish it, as the link's person;
    a status page that refuses leaves the draft pending and says so on the timeline."""
    async with with_status_page(tmp_path) as (fake, _, daemon, base, session):
        number = await report(session, base)
        page = f"{base}/i/{daemon.signer.sign(number, 'view', 'alice')}/"

        async def press(button: str, **fields: str) -> str:
            async with session.get(page) as response:
                html = await response.text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', html)
            assert csrf is not None and f'id="{button}"' in html
            async with session.post(f"{page}act/{button}", data={"csrf": csrf[1], **fields},
                                    allow_redirects=True) as response:
                assert response.status == 200
                return await response.text()

        shown = await press("draft")
        assert "Payments are failing for some customers (checkout)." in shown
        assert 'id="publish"' in shown and fake.incidents == {}

        fake.failures.append(401)
        shown = await press("publish", status="identified")
        assert fake.incidents == {} and 'id="publish"' in shown
        assert "status.publish_failed" in shown

        shown = await press("publish", status="identified")
        (published,) = fake.incidents.values()
        assert published["status"] == "identified"
        assert 'id="draft"' in shown and 'id="publish"' not in shown
        found = await incident(session, base, number)
        (entry,) = [e for e in found["timeline"] if e["kind"] == "status.published"]
        assert entry["actor"] == "user:alice"
