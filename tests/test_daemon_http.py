"""The daemon over real loopback HTTP: intake, dedup, notification, actions, refusals."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import aiohttp

from pagerd.notifiers.webhook import verify

from helpers import (
    ADMIN,
    SECRET,
    TOKEN,
    am_alert,
    am_payload,
    config_text,
    eventually,
    running_daemon,
    sink_server,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def post(session: aiohttp.ClientSession, base: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.post(f"{base}/api/v1/alertmanager", json=body,
                            headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json(content_type=None)


async def incidents(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/incidents", headers=ADMIN_AUTH) as response:
        assert response.status == 200
        result: list[dict[str, Any]] = await response.json()
        return result


class TestEndToEnd:
    """An alert goes from webhook to incident to a signed notification, and back."""

    async def test_alert_notifies_then_resolution_follows(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            status, _ = await post(session, base, am_payload(am_alert(alertname="Down",
                                                                       severity="critical")))
            assert status == 200
            (first,) = await sink.wait_for(1)
            assert first["json"]["incident"]["state"] == "triggered"
            assert first["json"]["incident"]["severity"] == "SEV1"
            assert first["json"]["incident"]["owner"] == "platform"
            signature = first["headers"]["X-Pagerd-Signature"]
            assert verify(SECRET, signature, first["body"], now=time.time())
            assert first["headers"]["Idempotency-Key"]

            resolved = am_payload(am_alert("resolved", alertname="Down", severity="critical"),
                                  status="resolved")
            assert (await post(session, base, resolved))[0] == 200
            _, second = await sink.wait_for(2)
            assert second["json"]["incident"]["state"] == "resolved"
            assert second["headers"]["Idempotency-Key"] != first["headers"]["Idempotency-Key"]


            async def both_sends_recorded() -> None:
                (incident,) = await incidents(session, base)
                kinds = [entry["kind"] for entry in incident["timeline"]]
                assert kinds.count("notification.sent") == 2
                assert "incident.resolved" in kinds

            await eventually(both_sends_recorded)

    async def test_resent_alert_pages_once(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_daemon, base, session):
            body = am_payload(am_alert(alertname="Down"))
            for _ in range(5):
                assert (await post(session, base, body))[0] == 200
            await sink.wait_for(1)
            (incident,) = await incidents(session, base)
            assert len(incident["alerts"]) == 1
            async with session.get(f"{base}/metrics") as response:
                text = await response.text()
            assert ('pagerd_alerts_received_total{integration="alertmanager",'
                    'outcome="duplicate"} 4.0') in text
            assert len(sink.received) == 1

    async def test_ack_by_person_is_notified_and_audited(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            await post(session, base, am_payload(am_alert(alertname="Down")))
            await sink.wait_for(1)
            (incident,) = await incidents(session, base)
            async with session.post(f"{base}/api/v1/incidents/{incident['id']}/ack",
                                    json={"by": "alice"}, headers=ADMIN_AUTH) as response:
                assert response.status == 200
            _, acked = await sink.wait_for(2)
            assert acked["json"]["incident"]["state"] == "acknowledged"
            assert acked["json"]["incident"]["acknowledged_by"] == "api:alice"

    async def test_null_receiver_records_without_incident(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            status, _ = await post(session, base, am_payload(am_alert(alertname="X",
                                                                       team="nobody")))
            assert status == 200
            assert await incidents(session, base) == []
            assert sink.received == []

    async def test_failing_receiver_is_retried_durably(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            # Three quick tries fail, the timer is re-armed with backoff, then it lands.
            sink.failures = [503, 503, 503, 500]
            await post(session, base, am_payload(am_alert(alertname="Down")))
            await sink.wait_for(1, within=15)

            async def retried_then_sent() -> None:
                (incident,) = await incidents(session, base)
                kinds = [entry["kind"] for entry in incident["timeline"]]
                assert "notification.retry" in kinds and "notification.sent" in kinds

            await eventually(retried_then_sent)


class TestRefusals:
    """Bad input gets a 4xx naming the field; bad credentials a 401; nothing stored."""

    async def test_credentials(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            body = am_payload(am_alert(alertname="Down"))
            assert (await post(session, base, body, headers={}))[0] == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await post(session, base, body, headers=wrong))[0] == 401
            basic = "Basic " + base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
            assert (await post(session, base, body, headers={"Authorization": basic}))[0] == 200

    async def test_bad_payloads_store_nothing(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (daemon, base, session):
            good, bad = am_alert(alertname="A"), am_alert(alertname="B")
            bad["startsAt"] = "not a time"
            status, error = await post(session, base, am_payload(good, bad))
            assert status == 400
            assert error == {"error": "must be an RFC 3339 timestamp",
                             "field": "alerts[1].startsAt"}
            async with session.post(f"{base}/api/v1/alertmanager", data=b"{not json",
                                    headers=AUTH | {"Content-Type": "application/json"}) as r:
                assert r.status == 400 and (await r.json())["field"] == "body"
            async with session.post(f"{base}/api/v1/alertmanager", data=b"x=1",
                                    headers=AUTH | {"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            huge = b'{"alerts": "' + b"x" * (daemon.settings.max_body_bytes + 10) + b'"}'
            async with session.post(f"{base}/api/v1/alertmanager", data=huge,
                                    headers=AUTH | {"Content-Type": "application/json"}) as r:
                assert r.status == 413 and (await r.json())["field"] == "body"
            assert await incidents(session, base) == []
            assert await daemon.store.firing_alerts() == []

    async def test_shutting_down_answers_503(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (daemon, base, session):
            daemon.accepting = False
            async with session.post(f"{base}/api/v1/alertmanager", json=am_payload(),
                                    headers=AUTH) as response:
                assert response.status == 503
                assert response.headers["Retry-After"]

    async def test_health_and_metrics_need_no_credentials(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_, base, session):
            for path in ("/-/healthy", "/-/ready", "/metrics"):
                async with session.get(f"{base}{path}") as response:
                    assert response.status == 200, path
            async with session.post(f"{base}/-/reload") as response:
                assert response.status == 401


class TestReload:
    """A good config swaps in atomically; a bad one is refused and the old one runs."""

    async def test_bad_config_keeps_old(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (daemon, base, session):
            old = daemon.settings.digest
            text = config_text(sink.url).replace("receiver: blackhole", "receiver: missing")
            (tmp_path / "pagerd.yml").write_text(text)
            line = text.splitlines().index("      receiver: missing") + 1
            async with session.post(f"{base}/-/reload", headers=ADMIN_AUTH) as response:
                assert response.status == 400
                (error,) = (await response.json())["errors"]
            assert error["position"].endswith(f"pagerd.yml:{line}")
            assert "missing" in error["reason"]
            assert daemon.settings.digest == old
            assert (await post(session, base, am_payload(am_alert(alertname="A"))))[0] == 200

    async def test_good_config_keeps_open_incidents(self, tmp_path: Path) -> None:
        async with sink_server() as sink, running_daemon(
            tmp_path, config_text(sink.url)
        ) as (_daemon, base, session):
            await post(session, base, am_payload(am_alert(alertname="A", instance="1")))
            (tmp_path / "pagerd.yml").write_text(config_text(sink.url) + "\n# edited\n")
            async with session.post(f"{base}/-/reload", headers=ADMIN_AUTH) as response:
                assert response.status == 200
            await post(session, base, am_payload(am_alert(alertname="A", instance="2")))
            (incident,) = await incidents(session, base)
            assert len(incident["alerts"]) == 2


class TestChat:
    """A receiver's Slack and Teams channels get the incident as a chat message."""

    async def test_slack_and_teams(self, tmp_path: Path) -> None:
        async with sink_server() as slack, sink_server() as teams:
            text = config_text("http://127.0.0.1:9/unused").replace(
                """  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/unused
        secret: webhook-secret-for-tests
        timeout: 2s""", f"""  - name: hook
    slack_configs:
      - url: {slack.url}
    teams_configs:
      - url: {teams.url}""")
            async with running_daemon(tmp_path, text) as (_, base, session):
                await post(session, base, am_payload(am_alert(alertname="Down")))
                (message,) = await slack.wait_for(1)
                assert "Down" in str(message["json"]) or "it broke" in str(message["json"])
                (card,) = await teams.wait_for(1)
                assert card["json"]["type"] == "message"
