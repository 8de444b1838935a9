"""Test helpers: a webhook sink, a daemon started in-process on loopback, payloads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from pagerd.daemon.app import build_app
from pagerd.daemon.core import Daemon, Options
from pagerd.daemon.statedir import StateDir

TOKEN = "am-token-for-tests"
ADMIN = "admin-token-for-tests"
SECRET = "webhook-secret-for-tests"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sink:
    """A local webhook receiver that records what it gets and can be told to fail."""

    received: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failures:
            return web.Response(status=self.failures.pop(0))
        self.received.append({"headers": dict(request.headers), "body": body,
                              "json": await request.json()})
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` notifications have arrived."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on loopback; yields its base URL and always shuts it down."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sink_server() -> AsyncIterator[Sink]:
    """A running webhook sink."""
    sink = Sink()
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    async with serve_app(app) as base:
        sink.url = f"{base}/hook"
        yield sink


def config_text(sink_url: str, extra_routes: str = "", group_by: str = "[alertname]") -> str:
    """A config with one webhook receiver (signed) and optional child routes."""
    return f"""
server:
  admin_token: {ADMIN}
integrations:
  alertmanager:
    type: alertmanager
    token: {TOKEN}
components:
  - name: platform
    team: sre
  - name: db
    team: dba
route:
  receiver: hook
  group_by: {group_by}
  owner: platform
  routes:
    - matchers: ['team="nobody"']
      receiver: blackhole
{extra_routes}
receivers:
  - name: hook
    webhook_configs:
      - url: {sink_url}
        secret: {SECRET}
        timeout: 2s
  - name: blackhole
"""


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path, text: str, port: int = 0
) -> AsyncIterator[tuple[Daemon, str, aiohttp.ClientSession]]:
    """A daemon started in this event loop on a free port; yields it, its URL, a session."""
    config = tmp_path / "pagerd.yml"
    config.write_text(text)
    daemon = Daemon(Options(config=str(config)), StateDir(tmp_path / "state"))
    await daemon.start()
    try:
        async with serve_app(build_app(daemon), port) as base, \
                aiohttp.ClientSession() as session:
            yield daemon, base, session
    finally:
        await daemon.stop(2.0)


def am_payload(*alerts: dict[str, Any], status: str = "firing", truncated: int = 0
               ) -> dict[str, Any]:
    """An Alertmanager v4 webhook body."""
    return {
        "version": "4", "groupKey": '{}:{alertname="x"}', "truncatedAlerts": truncated,
        "status": status, "receiver": "pagerd", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am.local:9093", "alerts": list(alerts),
    }


def am_alert(status: str = "firing", starts: str = "2026-12-01T10:00:00Z", **labels: str
             ) -> dict[str, Any]:
    """One alert of an Alertmanager webhook body."""
    return {"status": status, "labels": labels, "annotations": {"summary": "it broke"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local/graph"}


async def eventually(check: Any, within: float = 10.0) -> None:
    """Wait until the async `check()` stops raising AssertionError."""
    async with asyncio.timeout(within):
        while True:
            try:
                await check()
                return
            except AssertionError:
                await asyncio.sleep(0.05)


async def post_alert(port: int, instance: str) -> int | None:
    """The status of an alert posted to pagerd's Alertmanager endpoint on loopback `port`;
    None if the port refuses connections."""
    try:
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/api/v1/alertmanager",
                json=am_payload(am_alert(alertname="Disk", instance=instance)),
                headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            return response.status
    except aiohttp.ClientConnectorError:
        return None
