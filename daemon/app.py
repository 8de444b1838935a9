"""The HTTP API: intake endpoints, incidents, health, metrics and reload."""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pagerd.daemon import (
    api_incident_page,
    api_links,
    api_oncall,
    api_practice,
    api_status,
    api_twilio,
)
from pagerd.daemon.core import Daemon, Stopping
from pagerd.daemon.intake_gate import admit
from pagerd.daemon.responses import (
    Reply,
    as_response,
    json_response,
    read_body,
    read_json,
    unauthorized,
    unavailable,
)
from pagerd.errors import ConfigErrors
from pagerd.receivers.auth import presented_token, token_matches
from pagerd.receivers.errors import PayloadError
from pagerd.store.base import StoreUnavailable

log = structlog.get_logger("pagerd.http")

class Api:
    """Request handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def admin_ok(self, request: web.Request) -> bool:
        """Whether the request carries the admin token."""
        token = presented_token(request.headers, request.query)
        return token_matches(token, self.daemon.admin_token)

    def actor(self, request: web.Request) -> str | None:
        """Who the request acts as (admin or a user), or None."""
        return self.daemon.actor_for(presented_token(request.headers, request.query))

    async def intake(self, request: web.Request) -> web.Response:
        """POST /api/v1/{alertmanager|azure}[/{integration}]: alerts from a monitoring system.

        Authenticated, validated whole, stored durably, then answered: a 2xx means the
        alerts are on disk.
        """
        daemon = self.daemon
        admitted = await admit(daemon, _IntakeRequest(request))
        if isinstance(admitted, Reply):
            return as_response(admitted)
        name = admitted.integration
        try:
            result = await daemon.intake.accept(admitted.alerts, name, partial=admitted.partial)
        except StoreUnavailable as exc:
            log.warning("intake.unavailable", integration=name, error=str(exc))
            return unavailable(daemon, "store")
        if result.opened or result.resolved or result.outcomes.keys() - {"duplicate"}:
            daemon.dispatcher.wake()
        return json_response({"status": "success", "alerts": len(admitted.alerts)})

    async def healthy(self, request: web.Request) -> web.Response:
        """GET /-/healthy: the process is up."""
        return web.Response(text="OK\n")

    async def ready(self, request: web.Request) -> web.Response:
        """GET /-/ready: store open and config loaded."""
        if not self.daemon.ready:
            return web.Response(text="not ready\n", status=503, headers={"Retry-After": "1"})
        return web.Response(text="OK\n")

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics."""
        if self.daemon.counter_merge is not None:
            self.daemon.counter_merge.merge()  # what intake processes refused meanwhile
        body = generate_latest(self.daemon.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def reload(self, request: web.Request) -> web.Response:
        """POST /-/reload: swap the config; a bad one is refused, naming file and line."""
        if not self.admin_ok(request):
            return unauthorized(self.daemon, "reload")
        try:
            await self.daemon.reload()
        except ConfigErrors as exc:
            errors = [{"position": str(e.position), "reason": e.reason} for e in exc.errors]
            return json_response({"error": "config refused", "errors": errors}, 400)
        except Stopping:
            return unavailable(self.daemon, "shutting down")
        return json_response({"status": "success", "digest": self.daemon.settings.digest})

    async def list_incidents(self, request: web.Request) -> web.Response:
        """GET /api/v1/incidents[?open=1]."""
        if self.actor(request) is None:
            return unauthorized(self.daemon, "incidents")
        open_only = request.query.get("open") in ("1", "true")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return json_response({"error": "must be an integer", "field": "limit"}, 400)
        try:
            incidents = await self.daemon.store.incidents(open_only=open_only, limit=limit)
        except StoreUnavailable:
            return unavailable(self.daemon, "store")
        return json_response(incidents)

    async def get_incident(self, request: web.Request) -> web.Response:
        """GET /api/v1/incidents/{id}."""
        if self.actor(request) is None:
            return unauthorized(self.daemon, "incidents")
        incident_id = _incident_id(request)
        if incident_id is None:
            return json_response({"error": "must be an integer", "field": "id"}, 400)
        incident = await self.daemon.store.incident(incident_id)
        if incident is None:
            return json_response({"error": "no such incident", "field": "id"}, 404)
        return json_response(incident)

    async def act(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/{action}: acknowledge or resolve, by a person."""
        daemon = self.daemon
        actor = self.actor(request)
        if actor is None:
            return unauthorized(daemon, "incidents")
        incident_id = _incident_id(request)
        if incident_id is None:
            return json_response({"error": "must be an integer", "field": "id"}, 400)
        state = {"ack": "acknowledged", "resolve": "resolved", "mitigate": "mitigated",
                 "escalate": "escalate"}[request.match_info["action"]]
        try:
            body = await read_json(request, 65536) if request.can_read_body else {}
            if not isinstance(body, dict):
                raise PayloadError("body", "must be a JSON object")
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        if "by" in body and not isinstance(body["by"], str):
            return json_response({"error": "must be a string", "field": "by"}, 400)
        try:
            who = daemon.named_actor(actor, body.get("by"))
            changed = await daemon.act(incident_id, state, who, str(body.get("note", "")))
        except KeyError:
            return json_response({"error": "no such incident", "field": "id"}, 404)
        except StoreUnavailable:
            return unavailable(daemon, "store")
        return json_response({"status": "success", "changed": changed, "state": state})


    async def test_page(self, request: web.Request) -> web.Response:
        """POST /api/v1/users/{name}/test-page {"method": ...}: does a page reach them?"""
        daemon = self.daemon
        if self.actor(request) is None:
            return unauthorized(daemon, "test-page")
        name = request.match_info["name"]
        user = daemon.settings.oncall.users.get(name)
        if user is None:
            return json_response({"error": f"unknown user {name!r}", "field": "name"}, 404)
        try:
            body = await read_json(request, 4096) if request.can_read_body else {}
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        method = body.get("method") if isinstance(body, dict) else None
        try:
            result = await daemon.test_page(user, method)
        except ValueError as exc:
            return json_response({"error": str(exc), "field": "method"}, 400)
        return json_response(result, 200 if result["delivered"] else 502)


class _IntakeRequest:
    """An aiohttp request as the intake gate reads it."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.kind = request.match_info["kind"]
        self.integration = request.match_info.get("integration", self.kind)
        self.headers = request.headers
        self.query = request.query

    async def body(self, limit: int) -> bytes:
        return await read_body(self._request, limit)


def _incident_id(request: web.Request) -> int | None:
    raw = request.match_info["id"].lstrip("#")
    return int(raw) if raw.isdigit() else None


def build_app(daemon: Daemon) -> web.Application:
    """The aiohttp application for `daemon`."""
    api = Api(daemon)
    # client_max_size is a backstop; read_json answers over-size bodies with a JSON 413.
    app = web.Application(client_max_size=daemon.settings.max_body_bytes + 1)
    app.router.add_post("/api/v1/{kind:alertmanager|azure}", api.intake)
    app.router.add_post("/api/v1/{kind:alertmanager|azure}/{integration}", api.intake)
    app.router.add_get("/api/v1/incidents", api.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", api.get_incident)
    app.router.add_post("/api/v1/incidents/{id}/{action:ack|resolve|mitigate|escalate}", api.act)
    app.router.add_get("/-/healthy", api.healthy)
    app.router.add_get("/-/ready", api.ready)
    app.router.add_post("/-/reload", api.reload)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_post("/api/v1/users/{name}/test-page", api.test_page)
    api_oncall.add_routes(app, daemon)
    api_twilio.add_routes(app, daemon)
    api_links.add_routes(app, daemon)
    api_practice.add_routes(app, daemon)
    api_status.add_routes(app, daemon)
    api_incident_page.add_routes(app, daemon)
    return app
