"""End to end with the real Alertmanager binary: Alertmanager -> pagerd -> webhook sink.

Alertmanager (Debian's prometheus-alertmanager, single node) takes alerts on its own API and
notifies pagerd's intake through its webhook receiver, authenticated as an operator would
configure it (`http_config`). pagerd runs as a real `pagerd run` process with a tmp state
dir and notifies a sink served by the test. Incidents are read back with
`pagerd incidents --json`, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pagerd.fingerprint import fingerprint
from pagerd.notifiers.webhook import verify

from helpers import ADMIN, SECRET, TOKEN, Sink, config_text, free_port, sink_server
from procs import (
    Managed,
    alertmanager_process,
    pagerd_cli,
    pagerd_process,
    require_alertmanager,
    running,
    until,
)

pytestmark = pytest.mark.slow

# team="db" goes to the db component at a fixed SEV2, whatever the alert's own severity says.
DB_ROUTE = """\
    - matchers: ['team="db"']
      receiver: hook
      owner: db
      severity: SEV2
"""


@dataclass
class Stack:
    """A running Alertmanager -> pagerd -> sink chain."""

    sink: Sink
    pagerd: Managed
    pagerd_url: str
    state_dir: Path
    alertmanager: Managed
    am_url: str
    session: aiohttp.ClientSession

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST alerts to Alertmanager's own API, as Prometheus does."""
        async with self.session.post(f"{self.am_url}/api/v2/alerts", json=alerts) as response:
            assert response.status == 200, await response.text()

    async def am_alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds, with the fingerprints it computed."""
        async with self.session.get(f"{self.am_url}/api/v2/alerts") as response:
            assert response.status == 200
            result: list[dict[str, Any]] = await response.json()
            return result

    async def api_incidents(self) -> list[dict[str, Any]]:
        """pagerd's incidents over its admin API (cheap enough to poll)."""
        async with self.session.get(f"{self.pagerd_url}/api/v1/incidents?limit=1000",
                                    headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            assert response.status == 200
            result: list[dict[str, Any]] = await response.json()
            return result

    async def cli_incidents(self) -> list[dict[str, Any]]:
        """pagerd's incidents as `pagerd incidents --json` prints them."""
        out = await pagerd_cli("incidents", "--json", "--state-dir", str(self.state_dir))
        result: list[dict[str, Any]] = json.loads(out)
        return result

    async def metric(self, line_prefix: str) -> float:
        """The value of the first pagerd /metrics sample starting with `line_prefix`."""
        async with self.session.get(f"{self.pagerd_url}/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


Launch = Callable[..., Awaitable[Stack]]


def am_config(pagerd_url: str, http_config: str) -> str:
    """Alertmanager's config: everything to pagerd, first flush at once, then every 1s.

    Alerts named Storm go to a receiver that sends at most 2 alerts per notification
    (`truncatedAlerts` counts the rest).
    """
    return f"""
route:
  receiver: pagerd
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['alertname="Storm"']
      receiver: pagerd-truncated
receivers:
  - name: pagerd
    webhook_configs:
      - url: {pagerd_url}/api/v1/alertmanager
        send_resolved: true
        http_config:
{http_config}
  - name: pagerd-truncated
    webhook_configs:
      - url: {pagerd_url}/api/v1/alertmanager
        send_resolved: true
        max_alerts: 2
        http_config:
{http_config}
"""


def bearer(token: str) -> str:
    """http_config lines for `Authorization: Bearer <token>`."""
    return f"          authorization:\n            credentials: {token}\n"


def basic(password: str) -> str:
    """http_config lines for basic auth, the token being the password."""
    return ("          basic_auth:\n            username: alertmanager\n"
            f"            password: {password}\n")


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts the chain on demand; always stops Alertmanager, pagerd and the sink."""
    binary = require_alertmanager()
    children: list[Managed] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start(http_config: str = bearer(TOKEN),
                        pagerd_env: dict[str, str] | None = None) -> Stack:
            sink = await stack.enter_async_context(sink_server())
            session = await stack.enter_async_context(aiohttp.ClientSession())
            config = tmp_path / "pagerd.yml"
            config.write_text(config_text(sink.url, extra_routes=DB_ROUTE))
            port = free_port()
            pagerd = await stack.enter_async_context(running(pagerd_process(
                config, tmp_path / "state", port, tmp_path / "pagerd.log", pagerd_env)))
            children.append(pagerd)
            pagerd_url = f"http://127.0.0.1:{port}"
            (tmp_path / "am.yml").write_text(am_config(pagerd_url, http_config))
            am_port = free_port()
            alertmanager = await stack.enter_async_context(running(alertmanager_process(
                binary, tmp_path / "am.yml", tmp_path / "am-data", am_port,
                tmp_path / "alertmanager.log")))
            return Stack(sink, pagerd, pagerd_url, tmp_path / "state", alertmanager,
                         f"http://127.0.0.1:{am_port}", session)

        yield start
    for child in children:
        # SIGTERM drains and exits 0 within its deadline, even beside a live Alertmanager.
        assert child.stopped_with == 0, child.failure(f"stopped with {child.stopped_with}")


def rfc3339(moment: datetime) -> str:
    """A timestamp as Alertmanager's API takes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def prom_alert(labels: dict[str, str], starts: datetime, ends: datetime | None = None
               ) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager."""
    alert: dict[str, Any] = {
        "labels": labels, "annotations": {"summary": f"{labels.get('alertname')} is on fire"},
        "startsAt": rfc3339(starts), "generatorURL": "http://prometheus.local/graph?g0.expr=up",
    }
    if ends is not None:
        alert["endsAt"] = rfc3339(ends)
    return alert


def by_owner(received: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sink records keyed by the notified incident's owner."""
    return {r["json"]["incident"]["owner"]: r for r in received}


class TestThroughAlertmanager:
    """An alert posted to Alertmanager pages through pagerd, then its resolution follows."""

    async def test_alert_is_routed_notified_then_resolved(self, launch: Launch) -> None:
        chain = await launch()
        began = datetime.now(UTC) - timedelta(minutes=1)
        db = {"alertname": "ReplicationLag", "team": "db", "severity": "critical",
              "instance": "db-1:9187"}
        web = {"alertname": "HighLatency", "team": "web", "severity": "warning"}
        await chain.post_alerts([prom_alert(db, began), prom_alert(web, began)])

        sent = by_owner(await chain.sink.wait_for(2, 20))
        assert sent.keys() == {"db", "platform"}
        page = sent["db"]
        incident = page["json"]["incident"]
        # The route's fixed level wins over the alert's own severity=critical (SEV1).
        assert (incident["state"], incident["severity"], incident["owner"]) == (
            "triggered", "SEV2", "db")
        (alert,) = page["json"]["alerts"]
        assert alert["labels"] == db and alert["status"] == "firing"
        assert verify(SECRET, page["headers"]["X-Pagerd-Signature"], page["body"],
                      now=time.time())
        first_key = page["headers"]["Idempotency-Key"]
        other = sent["platform"]["json"]["incident"]
        assert (other["severity"], other["owner"]) == ("SEV3", "platform")  # warning -> SEV3

        am_fingerprints = {a["labels"]["alertname"]: a["fingerprint"]
                           for a in await chain.am_alerts()}
        incidents = {i["owner"]: i for i in await chain.cli_incidents()}
        stored = incidents["db"]
        assert (stored["state"], stored["severity"]) == ("triggered", "SEV2")
        assert [a["fingerprint"] for a in stored["alerts"]] == [am_fingerprints["ReplicationLag"]]
        assert stored["alerts"][0]["labels"] == db

        # Prometheus says it is over: endsAt in the past. Alertmanager's next flush tells
        # pagerd; the incident resolves and the sink hears it under a new key.
        await chain.post_alerts([prom_alert(db, began, datetime.now(UTC) - timedelta(seconds=1))])
        await chain.sink.wait_for(3, 20)
        resolved = chain.sink.received[2]
        assert resolved["json"]["incident"]["id"] == incident["id"]
        assert resolved["json"]["incident"]["state"] == "resolved"
        assert resolved["json"]["alerts"][0]["status"] == "resolved"
        assert resolved["headers"]["Idempotency-Key"] != first_key

        async def resolution_recorded() -> None:
            incidents = {i["owner"]: i for i in await chain.api_incidents()}
            kinds = [entry["kind"] for entry in incidents["db"]["timeline"]]
            assert kinds.count("notification.sent") == 2
            assert incidents["platform"]["state"] == "triggered"

        await until(resolution_recorded)
        stored = {i["owner"]: i for i in await chain.cli_incidents()}["db"]
        assert stored["state"] == "resolved"
        assert stored["resolved_by"] == "alertmanager"
        assert [a["status"] for a in stored["alerts"]] == ["resolved"]
        # Nothing more: Alertmanager's later flushes and a re-post of the other alert are
        # no change, so nobody is paged again.
        await chain.post_alerts([prom_alert(web, began)])
        await asyncio.sleep(2.5)
        assert len(chain.sink.received) == 3

    async def test_basic_auth_with_token_from_environment(self, launch: Launch) -> None:
        # PAGERD_ALERTMANAGER_TOKEN overrides the config's token; Alertmanager sends it as
        # the basic auth password.
        env_token = "token-from-the-environment"
        chain = await launch(basic(env_token), {"PAGERD_ALERTMANAGER_TOKEN": env_token})
        labels = {"alertname": "Disk", "team": "db"}
        await chain.post_alerts([prom_alert(labels, datetime.now(UTC))])
        (page,) = await chain.sink.wait_for(1, 20)
        assert page["json"]["incident"]["owner"] == "db"
        async with chain.session.post(
            f"{chain.pagerd_url}/api/v1/alertmanager", json={"alerts": []},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert response.status == 401  # the config's token no longer opens the door

    async def test_wrong_credentials_page_nobody(self, launch: Launch) -> None:
        chain = await launch(bearer("not-the-token"))
        await chain.post_alerts([prom_alert({"alertname": "Nope"}, datetime.now(UTC))])

        async def refused() -> None:
            assert await chain.metric(
                'pagerd_auth_failures_total{endpoint="alertmanager"}') >= 1

        await until(refused, 20)
        assert await chain.api_incidents() == []
        assert chain.sink.received == []


class TestTruncatedGroups:
    """Alertmanager's max_alerts: pagerd sees only part of a group, and must not take the
    part for the whole.

    Alertmanager computes a notification's `status` from the alerts left after truncation
    (notify/webhook: truncateAlerts, then GetTemplateData), so "resolved" with
    truncatedAlerts > 0 can come while alerts it cut off still fire.
    """

    async def test_incident_stays_open_while_truncated_alerts_fire(self, launch: Launch) -> None:
        chain = await launch()
        began = datetime.now(UTC) - timedelta(minutes=1)
        storm = [{"alertname": "Storm", "instance": f"node-{i}"} for i in range(1, 6)]
        await chain.post_alerts([prom_alert(labels, began) for labels in storm])
        (page,) = await chain.sink.wait_for(1, 20)
        assert page["json"]["incident"]["state"] == "triggered"
        (incident,) = await chain.api_incidents()
        # Alertmanager sends its first two alerts by label order and counts three more.
        assert sorted(a["labels"]["instance"] for a in incident["alerts"]) == [
            "node-1", "node-2"]

        # The two alerts pagerd knows resolve; the three it never saw still fire, and
        # Alertmanager still holds them as active.
        over = datetime.now(UTC) - timedelta(seconds=1)
        await chain.post_alerts([prom_alert(labels, began, over) for labels in storm[:2]])
        await asyncio.sleep(3)  # three of Alertmanager's 1s flushes
        active = sorted(a["labels"]["instance"] for a in await chain.am_alerts()
                        if a["status"]["state"] == "active")
        assert active == ["node-3", "node-4", "node-5"]
        (incident,) = await chain.api_incidents()
        assert incident["state"] != "resolved", (
            "incident resolved while Alertmanager still fires 3 alerts of its group")
        assert all(r["json"]["incident"]["state"] != "resolved" for r in chain.sink.received)


# Label sets whose fingerprints must agree; empty values are dropped by both sides.
LABEL_SETS: list[dict[str, str]] = [
    {"alertname": "FPPlain"},
    {"alertname": "FPTypical", "instance": "node-3:9100", "job": "node", "severity": "warning"},
    {"alertname": "FPUnicode", "city": "Zürich", "msg": "日本語 ☃ ÿ \u00e9\u0301", "emoji": "🔥"},
    {"alertname": "FPEmpty", "team": "db", "empty": ""},
    {"alertname": "FPManyEmpty", "a": "", "zz": "x", "z": "", "_leading": "y"},
    {"alertname": "FPQuoting", "expr": 'rate(x{a="1",b=~"2|3"}[5m]) > 0', "nl": "line1\nline2"},
    {"alertname": "FPLong", "blob": "v" * 2000, "b": "=,{}\\\""},
    {"alertname": "FPWide", **{f"label_{i:02d}": f"value {i}" for i in range(40)}},
]


class TestFingerprints:
    """The fingerprint pagerd stores is the one Alertmanager itself reports."""

    async def test_pagerd_stores_alertmanagers_fingerprints(self, launch: Launch) -> None:
        chain = await launch()
        now = datetime.now(UTC)
        await chain.post_alerts([prom_alert(labels, now) for labels in LABEL_SETS])

        async def all_stored() -> None:
            stored = [a for i in await chain.api_incidents() for a in i["alerts"]]
            assert len(stored) == len(LABEL_SETS)

        await until(all_stored, 20)
        am = {a["labels"]["alertname"]: a for a in await chain.am_alerts()}
        stored = {a["labels"]["alertname"]: a
                  for i in await chain.cli_incidents() for a in i["alerts"]}
        assert am.keys() == stored.keys() == {labels["alertname"] for labels in LABEL_SETS}
        for labels in LABEL_SETS:
            name = labels["alertname"]
            kept = {k: v for k, v in labels.items() if v}
            assert am[name]["labels"] == kept, name
            assert stored[name]["labels"] == kept, name
            assert stored[name]["fingerprint"] == am[name]["fingerprint"], name
            # pagerd's own computation agrees too, on the labels as posted (empties and all),
            # for payloads that carry no fingerprint.
            assert fingerprint(labels) == am[name]["fingerprint"], name
