"""Customer updates on the status page: pagerd drafts, a person publishes.

Nothing reaches the status page without a person's request naming the draft to publish.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog
from aiohttp import web

from pagerd.daemon.core import Daemon
from pagerd.daemon.responses import json_response, read_json, unauthorized
from pagerd.durations import format_duration
from pagerd.notifiers.base import DeliveryError
from pagerd.notifiers.statuspage import INCIDENT_STATUSES, StatuspageClient, default_status
from pagerd.notifiers.statuspage import Incident as StatuspageIncident
from pagerd.receivers.auth import presented_token
from pagerd.receivers.errors import PayloadError

log = structlog.get_logger("pagerd.status")

def draft_text(daemon: Daemon, incident: dict[str, Any]) -> str:
    """The draft for an incident, from its severity's template."""
    config = daemon.settings.status_page
    assert config is not None
    level = daemon.settings.severities.level(incident["severity"])
    cadence = format_duration(level.update_every) if level and level.update_every else "1h"
    return config.template(incident["severity"]).format(
        component=incident["owner"] or "our service", severity=incident["severity"],
        title=incident["title"], update_every=cadence)


def latest_draft(incident: dict[str, Any]) -> str | None:
    """The newest draft not yet published."""
    for entry in reversed(incident["timeline"]):
        if entry["kind"] == "status.published":
            return None
        if entry["kind"] == "status.drafted":
            return str(entry["text"])
    return None


class StatusApi:
    """Handlers bound to one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def _prepare(self, request: web.Request) -> tuple[str, dict[str, Any], dict[str, Any]]:
        actor = self.daemon.actor_for(presented_token(request.headers, request.query))
        if actor is None:
            raise web.HTTPUnauthorized
        if self.daemon.settings.status_page is None:
            raise PayloadError("status_page", "no status page is configured", status=409)
        raw = request.match_info["id"].lstrip("#")
        incident = await self.daemon.store.incident(int(raw)) if raw.isdigit() else None
        if incident is None:
            raise PayloadError("id", "no such incident", status=404)
        body = await read_json(request, 65536) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise PayloadError("body", "must be a JSON object")
        return self.daemon.named_actor(actor, body.get("by")), incident, body

    async def draft(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/status/draft [{"text": ...}]."""
        try:
            who, incident, body = await self._prepare(request)
            text = body.get("text") or draft_text(self.daemon, incident)
            if not isinstance(text, str):
                raise PayloadError("text", "must be a string")
        except web.HTTPUnauthorized:
            return unauthorized(self.daemon, "status")
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        await self.daemon.store.append_timeline(incident["id"], self.daemon.clock.time(),
                                                "status.drafted", who, {"text": text})
        return json_response({"status": "drafted", "text": text})

    async def publish(self, request: web.Request) -> web.Response:
        """POST /api/v1/incidents/{id}/status/publish [{"status": ...}]: the newest draft."""
        try:
            who, incident, body = await self._prepare(request)
            page = await publish_draft(self.daemon, incident, who, body.get("status"))
        except web.HTTPUnauthorized:
            return unauthorized(self.daemon, "status")
        except PayloadError as exc:
            return json_response(exc.to_json(), exc.status)
        except DeliveryError as exc:
            return json_response({"error": f"status page refused: {exc.reason}",
                                  "field": "status_page"}, 502)
        return json_response({"status": "published", "status_page_incident": page.id,
                              "shortlink": page.shortlink})


async def publish_draft(daemon: Daemon, incident: dict[str, Any], who: str,
                        status: object = None) -> StatuspageIncident:
    """Publish the incident's newest draft, as `who`: the API's and the incident page's way.

    Raises PayloadError (nothing drafted, an unknown status) or DeliveryError (the status
    page refused; that is on the timeline too).
    """
    config = daemon.settings.status_page
    if config is None:
        raise PayloadError("status_page", "no status page is configured", status=409)
    text = latest_draft(incident)
    if text is None:
        raise PayloadError("draft", "nothing to publish: draft an update first")
    status = status or default_status(incident["state"])
    if status not in INCIDENT_STATUSES:
        raise PayloadError("status", f"must be one of {', '.join(INCIDENT_STATUSES)}")
    component = config.components.get(incident["owner"] or "")
    affected = {component: "major_outage" if status != "resolved" else "operational"} if (
        component) else None
    async with aiohttp.ClientSession() as session:
        client = StatuspageClient(session, base_url=config.base_url, page_id=config.page_id,
                                  api_key=config.api_key)
        try:
            if incident["status_page_id"]:
                page = await client.update_incident(incident["status_page_id"], status=status,
                                                    body=text, components=affected)
            else:
                page = await client.create_incident(incident["title"], status=status,
                                                    body=text, components=affected)
        except DeliveryError as exc:
            log.warning("status.publish_failed", incident=incident["id"], reason=exc.reason)
            await daemon.store.append_timeline(incident["id"], daemon.clock.time(),
                                               "status.publish_failed", who,
                                               {"reason": exc.reason, "status": status})
            raise
    await daemon.store.set_status_page_id(incident["id"], page.id, who, daemon.clock.time(),
                                          {"text": text, "status": status,
                                           "status_page_incident": page.id})
    log.info("status.published", incident=incident["id"], user=who)
    return page


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """Mount the status page endpoints."""
    api = StatusApi(daemon)
    app.router.add_post("/api/v1/incidents/{id}/status/draft", api.draft)
    app.router.add_post("/api/v1/incidents/{id}/status/publish", api.publish)
