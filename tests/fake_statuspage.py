"""A local server speaking the documented part of Statuspage's REST API (v1) that pagerd uses.

Realtime incidents (create, get, list, update with PATCH or PUT) and components (list, get,
update), under `/v1/pages/{page_id}/...`, with JSON bodies wrapped as the API wants them.
Authentication as documented: `Authorization: OAuth <key>` or `?api_key=<key>`; anything
else is a 401. Errors are the documented `{"message": ...}` entity.

Incidents and components are kept in memory with the fields Statuspage returns: ids of 12
lowercase letters and digits, `shortlink`, an `impact` computed from the worst affected
component, `incident_updates` newest first with `affected_components` (old and new status),
and `monitoring_at` / `resolved_at` stamped when the status gets there.

Tests can queue HTTP statuses to answer before anything else (`failures`), delay answers
(`delay`), and read every request received (`requests`). Form-encoded bodies, scheduled
maintenance, subscribers and postmortems are not spoken.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
COMPONENT_STATUSES = (
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage",
)
# An incident's impact follows its worst component, as Statuspage computes it.
IMPACT = {"major_outage": "critical", "partial_outage": "major", "degraded_performance": "minor"}
IMPACT_ORDER = ("none", "maintenance", "minor", "major", "critical")
_ID_CHARS = string.ascii_lowercase + string.digits


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _new_id() -> str:
    return "".join(secrets.choice(_ID_CHARS) for _ in range(12))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class Refused(Exception):
    """A request the real API would refuse: answered with `status` and the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeStatuspage:
    """The server's state; `app()` builds the aiohttp application around it."""

    page_id: str = "kctbh9vrtdwd"
    api_key: str = "89a229ce1a8dbcf9ff30430fbe35eb4c"
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    retry_after: str | None = None
    delay: float = 0.0

    def add_component(self, name: str, status: str = "operational") -> str:
        """Create a component as an admin would in the UI; returns its id."""
        component_id = _new_id()
        self.components[component_id] = {
            "id": component_id, "page_id": self.page_id, "group_id": None,
            "created_at": _now(), "updated_at": _now(), "group": False, "name": name,
            "description": None, "position": len(self.components) + 1, "status": status,
            "showcase": True, "only_show_if_degraded": False, "automation_email": "",
            "start_date": None,
        }
        return component_id

    def app(self) -> web.Application:
        """The aiohttp application serving this state under /v1."""
        app = web.Application(middlewares=[self._gate])
        base = "/v1/pages/{page_id}"
        app.router.add_get(f"{base}/incidents", self._list_incidents)
        app.router.add_post(f"{base}/incidents", self._create_incident)
        app.router.add_get(f"{base}/incidents/{{incident_id}}", self._get_incident)
        app.router.add_patch(f"{base}/incidents/{{incident_id}}", self._update_incident)
        app.router.add_put(f"{base}/incidents/{{incident_id}}", self._update_incident)
        app.router.add_get(f"{base}/components", self._list_components)
        app.router.add_get(f"{base}/components/{{component_id}}", self._get_component)
        app.router.add_patch(f"{base}/components/{{component_id}}", self._update_component)
        app.router.add_put(f"{base}/components/{{component_id}}", self._update_component)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await _body(request)
        self.requests.append(
            Recorded(request.method, request.path_qs, dict(request.headers), body)
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            status = self.failures.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"message": f"injected {status}"}, status=status,
                                     headers=headers)
        if not self._authenticated(request):
            return _error(401, "Could not authenticate")
        if request.match_info.get("page_id") != self.page_id:
            return _error(404, "The requested resource could not be found.")
        if request.can_read_body and not isinstance(body, dict):
            return _error(400, "Body must be a JSON object with a matching Content-Type")
        try:
            return await handler(request)
        except Refused as refused:
            return _error(refused.status, refused.message)

    def _authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme == "OAuth" and secrets.compare_digest(key.strip(), self.api_key):
            return True
        query_key = request.query.get("api_key", "")
        return bool(query_key) and secrets.compare_digest(query_key, self.api_key)

    # Incidents.

    async def _list_incidents(self, request: web.Request) -> web.Response:
        newest_first = sorted(self.incidents.values(), key=lambda i: i["created_at"],
                              reverse=True)
        return web.json_response(newest_first[:100])

    async def _get_incident(self, request: web.Request) -> web.Response:
        return web.json_response(self._incident(request))

    async def _create_incident(self, request: web.Request) -> web.Response:
        fields = _wrapped(await request.json(), "incident")
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(422, "Name can't be blank")
        incident_id = _new_id()
        now = _now()
        incident: dict[str, Any] = {
            "id": incident_id, "page_id": self.page_id, "name": "", "status": "investigating",
            "impact": "none", "impact_override": None, "created_at": now, "updated_at": now,
            "started_at": now, "monitoring_at": None, "resolved_at": None,
            "shortlink": f"http://stspg.io/{secrets.token_hex(4)[:7]}",
            "scheduled_for": None, "scheduled_until": None, "postmortem_body": None,
            "metadata": {}, "components": [], "incident_updates": [],
        }
        self._apply(incident, fields, now)
        self.incidents[incident_id] = incident
        return web.json_response(incident, status=201)

    async def _update_incident(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        fields = _wrapped(await request.json(), "incident")
        self._apply(incident, fields, _now())
        return web.json_response(incident)

    def _incident(self, request: web.Request) -> dict[str, Any]:
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            raise Refused(404, "The requested resource could not be found.")
        return incident

    def _apply(self, incident: dict[str, Any], fields: dict[str, Any], now: str) -> None:
        """Check every field first, then change the incident: a refusal changes nothing."""
        name, status, body = fields.get("name"), fields.get("status"), fields.get("body")
        if name is not None and (not isinstance(name, str) or len(name) > 255):
            raise Refused(422, "Name is too long (maximum is 255 characters)")
        if status is not None and status not in INCIDENT_STATUSES:
            raise Refused(422, f"Status {status!r} is not a realtime incident status")
        if body is not None and (not isinstance(body, str) or len(body) > 25_000):
            raise Refused(422, "Body is too long (maximum is 25000 characters)")
        changes = self._component_changes(fields)
        override = fields.get("impact_override")
        if override is not None and override not in IMPACT_ORDER:
            raise Refused(422, f"Impact override {override!r} is not an impact")
        metadata = fields.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, dict) for v in metadata.values())
        ):
            raise Refused(422, "Metadata top-level values must be objects")

        if name is not None:
            incident["name"] = name
        if override is not None:
            incident["impact_override"] = override
        if metadata is not None:
            incident["metadata"] = metadata
        affected = self._set_components(incident, changes, now)
        if status is not None or body is not None:
            self._post_update(incident, status or incident["status"], body or "", affected,
                              fields, now)
        incident["impact"] = self._impact(incident)
        incident["updated_at"] = now

    def _component_changes(self, fields: dict[str, Any]) -> dict[str, str | None]:
        """Component id -> new status (None: only listed as affected)."""
        changes: dict[str, str | None] = {}
        ids = fields.get("component_ids") or []
        statuses = fields.get("components") or {}
        if not isinstance(ids, list) or not isinstance(statuses, dict):
            raise Refused(422, "Components must be a map of component ids to statuses")
        for component_id in ids:
            changes[str(component_id)] = None
        for component_id, status in statuses.items():
            if status not in COMPONENT_STATUSES:
                raise Refused(422, f"Component status {status!r} is not a status")
            changes[component_id] = status
        for component_id in changes:
            if component_id not in self.components:
                raise Refused(422, f"Component {component_id} does not exist on this page")
        return changes

    def _set_components(
        self, incident: dict[str, Any], changes: dict[str, str | None], now: str
    ) -> list[dict[str, str]]:
        affected = []
        listed = {component["id"] for component in incident["components"]}
        for component_id, status in changes.items():
            component = self.components[component_id]
            if status is not None and status != component["status"]:
                affected.append({"code": component_id, "name": component["name"],
                                 "old_status": component["status"], "new_status": status})
                component["status"] = status
                component["updated_at"] = now
            if component_id not in listed:
                incident["components"].append(component)
                listed.add(component_id)
        return affected

    def _post_update(
        self, incident: dict[str, Any], status: str, body: str,
        affected: list[dict[str, str]], fields: dict[str, Any], now: str,
    ) -> None:
        incident["status"] = status
        if status == "monitoring" and incident["monitoring_at"] is None:
            incident["monitoring_at"] = now
        if status == "resolved":
            incident["resolved_at"] = now
        incident["incident_updates"].insert(0, {
            "id": _new_id(), "incident_id": incident["id"], "status": status, "body": body,
            "created_at": now, "updated_at": now, "display_at": now,
            "affected_components": affected or None,
            "deliver_notifications": bool(fields.get("deliver_notifications", True)),
            "custom_tweet": None, "tweet_id": None, "twitter_updated_at": None,
            "wants_twitter_update": False,
        })

    def _impact(self, incident: dict[str, Any]) -> str:
        if incident["impact_override"]:
            return str(incident["impact_override"])
        impacts = [IMPACT.get(c["status"], "none") for c in incident["components"]]
        return max(impacts, key=IMPACT_ORDER.index, default="none")

    # Components.

    async def _list_components(self, request: web.Request) -> web.Response:
        ordered = sorted(self.components.values(), key=lambda c: c["position"])
        return web.json_response(ordered)

    async def _get_component(self, request: web.Request) -> web.Response:
        return web.json_response(self._component(request))

    async def _update_component(self, request: web.Request) -> web.Response:
        component = self._component(request)
        fields = _wrapped(await request.json(), "component")
        status = fields.get("status")
        if status is not None and status not in COMPONENT_STATUSES:
            raise Refused(422, f"Status {status!r} is not a component status")
        name = fields.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise Refused(422, "Name can't be blank")
        for key in ("status", "name", "description"):
            if key in fields:
                component[key] = fields[key]
        component["updated_at"] = _now()
        return web.json_response(component)

    def _component(self, request: web.Request) -> dict[str, Any]:
        component = self.components.get(request.match_info["component_id"])
        if component is None:
            raise Refused(404, "The requested resource could not be found.")
        return component


async def _body(request: web.Request) -> Any:
    """The JSON body; None without one, or when it is not JSON (form bodies included)."""
    if not request.can_read_body or request.content_type != "application/json":
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _wrapped(body: Any, key: str) -> dict[str, Any]:
    inner = body.get(key) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise Refused(400, f"Body must be an object with an {key!r} object")
    return inner
