"""The incident practice API: frontline reports, PagerDuty-compatible events, notes, roles,
severity set by a person, remediation actions, reviews and reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiohttp import web

from pagerd.daemon.core import Daemon
from pagerd.daemon.responses import json_response, read_json, unauthorized, unavailable
from pagerd.durations import parse_duration
from pagerd.models import Alert, AlertStatus
from pagerd.receivers import pagerduty
from pagerd.receivers.auth import presented_token, token_matches
from pagerd.receivers.errors import PayloadError
from pagerd.report import report
from pagerd.review import Targets, render_markdown, review
from pagerd.store.base import IngestBatch, IngestItem, RouteTarget, StoreUnavailable

log = structlog.get_logger("pagerd.practice")

ROLES = ("lead", "comms")


def _text(body: dict[str, Any], key: str, *, required: bool = True, limit: int = 1024) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise PayloadError(key, "must be a non-empty string")
    if len(value) > limit:
        raise PayloadError(key, f"must be at most {limit} characters")
    return value


def targets_by_severity(daemon: Daemon) -> dict[str, Targets]:
    """Each level's ack, mitigate and resolve targets, for reviews."""
    return {level.name: Targets(level.ack_target, level.mitigate_target, level.resolve_target)
            for level in daemon.settings.severities.levels}


class PracticeApi:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _actor(self, request: web.Request) -> str | None:
        return self.daemon.actor_for(presented_token(request.headers, request.query))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body = await read_json(request, 65536)
        if not isinstance(body, dict):
            raise PayloadError("body", "must be a JSON object")
        return body

    async def open_incident(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents: a frontline tool or person opens an incident."""
        daemon = self.daemon
        actor = self._actor(request)
        if actor is None:
            return unauthorized(daemon, "incidents")
        try:
            body = await self._body(request)
            component = _text(body, "component", limit=200)
            if component not in daemon.settings.components:
                raise PayloadError("component", f"unknown component {component!r}")
            severity = _text(body, "severity", limit=50)
            if severity not in daemon.settings.severities.names():
                raise PayloadError("severity", f"unknown severity {severity!r}")
            summary = _text(body, "summary")
            details = {key: _text(body, key, required=False) for key in
                       ("customer_impact", "reporter", "support_case")}
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        who = daemon.named_actor(actor, body.get("by"))
        try:
            incident_id = await self.daemon_open(component, severity, summary,
                                                 details | {"opened_by": who})
        except StoreUnavailable:
            return unavailable(daemon, "store")
        return json_response({"id": incident_id, "state": "triggered"}, 201)

    async def daemon_open(self, component: str, severity: str, summary: str,
                          details: dict[str, Any]) -> int:
        """Open a reported incident: its own key, the component as owner, paged at once."""
        daemon = self.daemon
        settings = daemon.settings
        report_id = uuid.uuid4().hex
        owner = settings.components[component]
        level = settings.severities.level(severity)
        policy = owner.escalation_policy or (level.escalation_policy if level else None)
        labels = {"alertname": "Reported", "component": component, "severity": severity}
        alert = Alert(fingerprint=report_id[:16], status=AlertStatus.FIRING, labels=labels,
                      annotations={"summary": summary, **{k: v for k, v in details.items() if v}},
                      starts_at=datetime.now(UTC), integration="frontline")
        receiver = settings.routing.tree.root.receiver
        target = RouteTarget(
            key=f"reported:{report_id}", route_id="reported", receiver=receiver,
            group_labels={"component": component}, severity=severity,
            severity_rank=settings.severities.rank(severity), owner=component,
            escalation_policy=policy, opens_incident=True, group_wait=0.0,
            group_interval=300.0, notify=settings.receivers[receiver].has_notifier,
            details=details)
        daemon.dispatcher.claim_beside_next_write()
        result = await daemon.store.ingest(
            IngestBatch([IngestItem(alert, [target])], "frontline"), daemon.clock.time())
        daemon.dispatcher.wake()
        (incident_id,) = result.opened
        log.info("incident.reported", incident=incident_id, component=component,
                 severity=severity, user=details.get("opened_by"))
        return incident_id

    async def note(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/notes {"text": ...}."""
        return await self._incident_write(request, self._note)

    async def _note(self, incident_id: int, body: dict[str, Any], who: str) -> dict[str, Any]:
        text = _text(body, "text", limit=4000)
        await self.daemon.store.append_timeline(incident_id, self.daemon.clock.time(), "note",
                                                who, {"text": text, "by": "person"})
        return {"status": "success"}

    async def assign(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/assign {"role": "lead"|"comms", "user": NAME}."""
        return await self._incident_write(request, self._assign)

    async def _assign(self, incident_id: int, body: dict[str, Any], who: str) -> dict[str, Any]:
        role = body.get("role")
        if role not in ROLES:
            raise PayloadError("role", "must be lead or comms")
        user = _text(body, "user", limit=200)
        if user not in self.daemon.settings.oncall.users:
            raise PayloadError("user", f"unknown user {user!r}")
        await self.daemon.store.assign(incident_id, role, f"user:{user}", who,
                                       self.daemon.clock.time())
        return {"status": "success", "role": role, "user": user}

    async def severity(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/severity {"severity": LEVEL, "reason": ...}."""
        return await self._incident_write(request, self._severity)

    async def _severity(self, incident_id: int, body: dict[str, Any], who: str
                        ) -> dict[str, Any]:
        levels = self.daemon.settings.severities
        severity = _text(body, "severity", limit=50)
        if severity not in levels.names():
            raise PayloadError("severity", f"unknown severity {severity!r}")
        changed = await self.daemon.store.set_severity(
            incident_id, severity, levels.rank(severity), who, self.daemon.clock.time(),
            _text(body, "reason", required=False))
        return {"status": "success", "changed": changed, "severity": severity}

    async def add_action(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/actions {"owner", "due", "text"}."""
        return await self._incident_write(request, self._add_action)

    async def _add_action(self, incident_id: int, body: dict[str, Any], who: str
                          ) -> dict[str, Any]:
        owner = _text(body, "owner", limit=200)
        text = _text(body, "text", limit=2000)
        raw = _text(body, "due", limit=40)
        try:
            due = datetime.fromisoformat(raw)
        except ValueError:
            raise PayloadError("due", "must be an ISO 8601 date or time") from None
        if due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        now = self.daemon.clock.time()
        if due.timestamp() <= now:
            raise PayloadError("due", "must be in the future")
        action_id = await self.daemon.store.add_action(incident_id, owner, due.timestamp(),
                                                       text, who, now)
        return {"id": action_id, "status": "open"}

    async def _incident_write(self, request: web.Request, change: Any) -> web.Response:
        actor = self._actor(request)
        if actor is None:
            return unauthorized(self.daemon, "incidents")
        raw = request.match_info["id"].lstrip("#")
        if not raw.isdigit():
            return json_response({"error": "must be an integer", "field": "id"}, 400)
        incident_id = int(raw)
        try:
            body = await self._body(request)
            if await self.daemon.store.incident(incident_id, timeline=False) is None:
                return json_response({"error": "no such incident", "field": "id"}, 404)
            answer = await change(incident_id, body, self.daemon.named_actor(actor,
                                                                            body.get("by")))
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        except StoreUnavailable:
            return unavailable(self.daemon, "store")
        return json_response(answer)

    async def list_actions(self, request: web.Request) -> web.Response:
        """GET /api/v1/actions[?open=1]."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "actions")
        open_only = request.query.get("open") in ("1", "true")
        return json_response(await self.daemon.store.actions(open_only=open_only))

    async def close_action(self, request: web.Request) -> web.Response:
        """POST /api/v1/actions/{id}/close."""
        actor = self._actor(request)
        if actor is None:
            return unauthorized(self.daemon, "actions")
        raw = request.match_info["id"]
        if not raw.isdigit():
            return json_response({"error": "must be an integer", "field": "id"}, 400)
        who = self.daemon.named_actor(actor, request.query.get("by"))
        if not await self.daemon.store.close_action(int(raw), who, self.daemon.clock.time()):
            return json_response({"error": "no such open action", "field": "id"}, 404)
        return json_response({"status": "closed"})

    async def review(self, request: web.Request) -> web.Response:
        """GET /api/v1/incidents/{id}/review[?format=md]: a post-incident review draft."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "review")
        raw = request.match_info["id"].lstrip("#")
        incident = await self.daemon.store.incident(int(raw)) if raw.isdigit() else None
        if incident is None:
            return json_response({"error": "no such incident", "field": "id"}, 404)
        draft = review(incident, severities=targets_by_severity(self.daemon),
                       now=self.daemon.clock.time())
        if request.query.get("format") == "md":
            return web.Response(text=render_markdown(draft), content_type="text/markdown")
        return json_response(draft)

    async def report(self, request: web.Request) -> web.Response:
        """GET /api/v1/report?since=30d: MTTA, MTTR, pages per person, out-of-hours pages."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "report")
        try:
            window = parse_duration(request.query.get("since", "30d"))
        except ValueError:
            return json_response({"error": "must be a duration such as 30d", "field": "since"},
                                 400)
        now = self.daemon.clock.time()
        incidents = await self.daemon.store.incidents(limit=100_000)
        return json_response(report([i for i in incidents if i["updated_at"] >= now - window],
                                    since=now - window, now=now))

    async def enqueue(self, request: web.Request) -> web.Response:
        """POST /v2/enqueue: PagerDuty's Events API v2, so tools that page PagerDuty can
        page pagerd unchanged. Statuses as PagerDuty documents them: 202, 400, 429."""
        daemon = self.daemon
        if not daemon.accepting:
            return _too_many(daemon, "shutting down")
        try:
            event = pagerduty.parse_event(pagerduty.decode_body(await request.read()))
        except pagerduty.PDEventError as exc:
            return json_response(exc.response_body(), 400)
        name = self._integration(event.routing_key)
        if name is None:
            return _invalid_routing_key()
        try:
            await self._apply(event, name)
        except StoreUnavailable:
            return _too_many(daemon, "store")
        return json_response(pagerduty.success_body(event.dedup_key), 202)

    def _integration(self, routing_key: str) -> str | None:
        """The pagerduty integration whose token is this routing key (constant time)."""
        for name, integration in self.daemon.settings.integrations.items():
            if integration.type == "pagerduty" and token_matches(
                    routing_key, self.daemon.tokens.get(name)):
                return name
        return None

    async def _apply(self, event: pagerduty.PDEvent, name: str) -> None:
        daemon = self.daemon
        if event.action == "acknowledge":
            for incident_id in await daemon.store.open_incidents_with(event.fingerprint(name)):
                await daemon.act(incident_id, "acknowledged", f"pagerduty:{name}", via="events")
            return
        alert = pagerduty.to_alert(event, name)
        if event.action == "resolve":
            labels = await daemon.store.alert_labels(alert.fingerprint)
            if labels is None:
                return  # never triggered here: nothing to resolve
            alert.labels = labels
        result = await daemon.intake.accept([alert], name)
        if result.outcomes.keys() - {"duplicate"}:
            daemon.dispatcher.wake()

    async def change(self, request: web.Request) -> web.Response:
        """POST /v2/change/enqueue: a deploy, shown on incidents of its component."""
        daemon = self.daemon
        try:
            event = pagerduty.parse_change_event(pagerduty.decode_body(await request.read()))
        except pagerduty.PDEventError as exc:
            return json_response(exc.response_body(), 400)
        name = self._integration(event.routing_key)
        if name is None:
            return _invalid_routing_key()
        details = event.custom_details if isinstance(event.custom_details, dict) else {}
        component = details.get("component") or event.source or None
        at = event.timestamp.timestamp() if event.timestamp else daemon.clock.time()
        links = [{"href": link.href, "text": link.text} for link in event.links]
        await daemon.store.add_change(component, event.summary, event.source or name, at,
                                      {"links": links, "integration": name})
        return json_response(pagerduty.change_success_body(), 202)

    async def changes(self, request: web.Request) -> web.Response:
        """GET /api/v1/incidents/{id}/changes: recent changes to the incident's component."""
        if self._actor(request) is None:
            return unauthorized(self.daemon, "incidents")
        raw = request.match_info["id"].lstrip("#")
        incident = await self.daemon.store.incident(int(raw), timeline=False) if (
            raw.isdigit()) else None
        if incident is None:
            return json_response({"error": "no such incident", "field": "id"}, 404)
        opened = incident["opened_at"]
        return json_response(await self.daemon.store.recent_changes(
            incident["owner"], opened - 24 * 3600, max(opened, self.daemon.clock.time())))


def _invalid_routing_key() -> web.Response:
    """PagerDuty's answer to a routing key it does not know."""
    return json_response({"status": "invalid event", "message": "Event object is invalid",
                          "errors": ["Invalid routing key"]}, 400)


def _too_many(daemon: Daemon, reason: str) -> web.Response:
    """PagerDuty's clients retry a 429; it is the status its API documents for overload."""
    daemon.metrics.unavailable.labels(reason).inc()
    return web.Response(body=orjson.dumps({"status": "throttle event",
                                           "message": f"pagerd is unavailable: {reason}"}),
                        status=429, headers={"Retry-After": "5"}, content_type="application/json")


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the practice endpoints."""
    api = PracticeApi(daemon)
    app.router.add_post("/api/v1/incidents", api.open_incident)
    app.router.add_post("/api/v1/incidents/{id}/notes", api.note)
    app.router.add_post("/api/v1/incidents/{id}/assign", api.assign)
    app.router.add_post("/api/v1/incidents/{id}/severity", api.severity)
    app.router.add_post("/api/v1/incidents/{id}/actions", api.add_action)
    app.router.add_get("/api/v1/incidents/{id}/review", api.review)
    app.router.add_get("/api/v1/incidents/{id}/changes", api.changes)
    app.router.add_get("/api/v1/actions", api.list_actions)
    app.router.add_post("/api/v1/actions/{id}/close", api.close_action)
    app.router.add_get("/api/v1/report", api.report)
    app.router.add_post("/v2/enqueue", api.enqueue)
    app.router.add_post("/v2/change/enqueue", api.change)
