"""Azure Monitor over real loopback HTTP: auth (token, ?token=, Entra ID), mapping to
severity and owner, Fired -> Resolved, unknown shapes kept, stateless auto-resolve."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import FIXTURES
from helpers import ADMIN, eventually, running_daemon, serve_app, sink_server

AZ_TOKEN = "azure-token-for-tests"
ISSUER = "https://sts.windows.net/tenant/"
AUDIENCE = "api://pagerd"
COMMON = FIXTURES / "azure" / "common"


def config(sink_url: str, jwks_url: str = "http://127.0.0.1:9/keys") -> str:
    return f"""
server:
  admin_token: {ADMIN}
integrations:
  azure:
    type: azure
    token: {AZ_TOKEN}
    entra:
      jwks_url: {jwks_url}
      issuer: {ISSUER}
      audience: {AUDIENCE}
components:
  - name: platform
    team: sre
  - name: storage
    team: storage
route:
  receiver: hook
  group_by: [alertname, resource]
  owner: platform
  routes:
    - matchers: ['signal_type="Activity Log"']
      owner: storage
      auto_resolve_after: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: {sink_url}
"""


def sample(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((COMMON / name).read_text())
    return body


async def post(session: aiohttp.ClientSession, base: str, body: Any, *, query: str = "",
               headers: dict[str, str] | None = None) -> int:
    if headers is None:
        headers = {"Authorization": f"Bearer {AZ_TOKEN}"}
    async with session.post(f"{base}/api/v1/azure{query}", json=body,
                            headers=headers) as response:
        return response.status


async def incidents(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/incidents",
                           headers={"Authorization": f"Bearer {ADMIN}"}) as response:
        result: list[dict[str, Any]] = await response.json()
        return result


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[str, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(65537, 2048)
    document = {"keys": [{**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
                          "kid": "k1", "use": "sig"}]}

    async def keys(_: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/keys", keys)
    async with serve_app(app) as base:
        yield f"{base}/keys", key


async def test_fired_then_resolved_closes_the_incident(tmp_path: Path) -> None:
    resolved = sample("metric-static-resolved.full.json")
    fired = copy.deepcopy(resolved)
    fired["data"]["essentials"]["monitorCondition"] = "Fired"
    del fired["data"]["essentials"]["resolvedDateTime"]
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url)) as (
        _, base, session
    ):
        assert await post(session, base, fired) == 200
        assert await post(session, base, fired) == 200  # Azure's retry changes nothing
        (first,) = await sink.wait_for(1)
        assert first["json"]["incident"]["severity"] == "SEV4"  # Sev3 -> SEV4
        assert first["json"]["incident"]["owner"] == "platform"
        assert await post(session, base, resolved) == 200
        _, second = await sink.wait_for(2)
        assert second["json"]["incident"]["state"] == "resolved"
        (incident,) = await incidents(session, base)
        assert len(incident["alerts"]) == 1


async def test_token_in_query_and_bad_credentials(tmp_path: Path) -> None:
    body = sample("testaction-metric-static-threshold.full.json")
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url)) as (
        daemon, base, session
    ):
        assert await post(session, base, body, query=f"?token={AZ_TOKEN}", headers={}) == 200
        assert await post(session, base, body, query="?token=wrong", headers={}) == 401
        assert await post(session, base, body, headers={}) == 401
        forged = {"Authorization": "Bearer a.b.c"}
        assert await post(session, base, body, headers=forged) == 401
        text = daemon.metrics.registry.get_sample_value(
            "pagerd_auth_failures_total", {"endpoint": "azure"})
        assert text == 3


async def test_entra_id_bearer_token(tmp_path: Path,
                                     jwks: tuple[str, rsa.RSAPrivateKey]) -> None:
    url, key = jwks
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 600}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    expired = jwt.encode(claims | {"exp": now - 3600}, key, algorithm="RS256",
                         headers={"kid": "k1"})
    wrong_aud = jwt.encode(claims | {"aud": "api://other"}, key, algorithm="RS256",
                           headers={"kid": "k1"})
    body = sample("testaction-metric-static-threshold.full.json")
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url, url)) as (
        _, base, session
    ):
        assert await post(session, base, body, headers={"Authorization": f"Bearer {good}"}) == 200
        for bad in (expired, wrong_aud):
            assert await post(session, base, body,
                              headers={"Authorization": f"Bearer {bad}"}) == 401


async def test_unknown_shape_is_kept_and_counted(tmp_path: Path) -> None:
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url)) as (
        daemon, base, session
    ):
        assert await post(session, base, {"text": "my custom log alert fired"}) == 200
        (incident,) = await incidents(session, base)
        assert incident["alerts"][0]["status"] == "firing"
        counted = daemon.metrics.registry.get_sample_value(
            "pagerd_unknown_payloads_total",
            {"integration": "azure", "kind": "generic", "reason": "unknown_shape"})
        assert counted == 1


async def test_malformed_payload_names_the_field(tmp_path: Path) -> None:
    body = sample("testaction-metric-static-threshold.full.json")
    body["data"]["essentials"]["monitorCondition"] = 7
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url)) as (
        _, base, session
    ):
        async with session.post(f"{base}/api/v1/azure", json=body,
                                headers={"Authorization": f"Bearer {AZ_TOKEN}"}) as response:
            assert response.status == 400
            assert (await response.json())["field"] == "data.essentials.monitorCondition"
        assert await incidents(session, base) == []


async def test_stateless_alert_auto_resolves(tmp_path: Path) -> None:
    body = sample("testaction-activity-log-administrative.full.json")
    async with sink_server() as sink, running_daemon(tmp_path, config(sink.url)) as (
        _, base, session
    ):
        assert await post(session, base, body) == 200
        await sink.wait_for(1)

        async def resolved_by_timer() -> None:
            (incident,) = await incidents(session, base)
            assert incident["state"] == "resolved"
            assert incident["owner"] == "storage"
            assert incident["resolved_by"] == "pagerd:auto_resolve_after"

        await eventually(resolved_by_timer, within=10)
