"""A client for Atlassian Statuspage's REST API (v1): incidents, their updates, components.

Customers read about our incidents on a commercial status page, which stays up when we are
down. pagerd only drafts what they are told; a person publishes it through this client.

Every call sends `Authorization: OAuth <api key>` and a JSON body wrapped as the API wants
it (`{"incident": {...}}`, `{"component": {...}}`). Failures raise `StatuspageError`, a
`DeliveryError`: retryable on 420/429 (Statuspage's rate limit, one request a second per
key), on 5xx, timeouts and connection errors; not on another 4xx.

A create, or an update that carries a message, is not idempotent: sent twice, customers
read it twice. After a timeout or a 5xx it may have been applied, so the client does not
repeat it by itself (the error says `maybe_applied`); the person publishing decides.
Setting a component status is idempotent and is retried within the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import structlog

from pagerd import __version__
from pagerd.notifiers.base import DeliveryError

# Initial values, not bind(): binding now would freeze the logging set-up of import time.
log = structlog.get_logger("pagerd.notifier", notifier="statuspage")

DEFAULT_BASE_URL = "https://api.statuspage.io/v1"
# Realtime incidents only; scheduled maintenance has its own statuses and is not ours.
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")


def default_status(incident_state: str) -> str:
    """The status an update of a pagerd incident in `incident_state` is published with,
    unless the person publishing picks another."""
    return "resolved" if incident_state == "resolved" else "investigating"
COMPONENT_STATUSES = (
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance",
)
MAX_NAME = 255
MAX_BODY = 25_000
QUICK_ATTEMPTS = 3
# Statuspage allows one request a second per key: retrying sooner only meets the limit again.
FIRST_DELAY = 1.0
MAX_DELAY = 10.0
_RATE_LIMITED = (420, 429)


class StatuspageError(DeliveryError):
    """A Statuspage call failed.

    `status` is the HTTP status (None when no answer came); `maybe_applied` says the request
    may have taken effect although it failed; `retry_after` is the server's hint in seconds.
    """

    def __init__(
        self, reason: str, *, retryable: bool, detail: str = "", status: int | None = None,
        maybe_applied: bool = False, retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, retryable=retryable, detail=detail)
        self.status = status
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Component:
    """A status page component and its current status."""

    id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """One message posted on an incident, with the status it set."""

    id: str
    status: str
    body: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Incident:
    """A status page incident as Statuspage returns it; `raw` is the whole JSON object.

    `updates` are newest first, as Statuspage lists them.
    """

    id: str
    name: str
    status: str
    impact: str
    shortlink: str
    components: tuple[Component, ...]
    updates: tuple[IncidentUpdate, ...]
    raw: dict[str, Any]


class StatuspageClient:
    """Creates and updates incidents and sets component statuses on one status page."""

    def __init__(
        self, session: aiohttp.ClientSession, *, base_url: str = DEFAULT_BASE_URL,
        page_id: str, api_key: str, timeout: float = 10.0,
        quick_attempts: int = QUICK_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._page = f"{base_url.rstrip('/')}/pages/{quote(page_id, safe='')}"
        self._headers = {
            "Authorization": f"OAuth {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"pagerd/{__version__}",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = max(1, quick_attempts)
        self._sleep = sleep

    async def create_incident(
        self, name: str, *, status: str = "investigating", body: str = "",
        components: Mapping[str, str] | None = None, deliver_notifications: bool = True,
        impact_override: str | None = None, metadata: Mapping[str, Any] | None = None,
    ) -> Incident:
        """Open a realtime incident; `components` maps affected component ids to statuses."""
        if not name.strip():
            raise ValueError("an incident needs a name")
        fields = _incident_fields(
            name=name, status=status, body=body, components=components,
            deliver_notifications=deliver_notifications,
        )
        if impact_override is not None:
            fields["impact_override"] = impact_override
        if metadata is not None:
            fields["metadata"] = dict(metadata)
        answer = await self._call("POST", "/incidents", {"incident": fields}, idempotent=False)
        return _incident(answer)

    async def update_incident(
        self, incident_id: str, *, status: str | None = None, body: str | None = None,
        components: Mapping[str, str] | None = None, name: str | None = None,
        deliver_notifications: bool = True,
    ) -> Incident:
        """Change an incident; a status or body posts an update customers see."""
        fields = _incident_fields(
            name=name, status=status, body=body, components=components,
            deliver_notifications=deliver_notifications,
        )
        # Without a message the change is a plain field update and safe to repeat.
        idempotent = body is None
        answer = await self._call(
            "PATCH", f"/incidents/{quote(incident_id, safe='')}", {"incident": fields},
            idempotent=idempotent,
        )
        return _incident(answer)

    async def incident(self, incident_id: str) -> Incident:
        """One incident by id."""
        answer = await self._call(
            "GET", f"/incidents/{quote(incident_id, safe='')}", None, idempotent=True
        )
        return _incident(answer)

    async def set_component_status(self, component_id: str, status: str) -> Component:
        """Set one component's status, outside any incident."""
        _check_component_status(component_id, status)
        answer = await self._call(
            "PATCH", f"/components/{quote(component_id, safe='')}",
            {"component": {"status": status}}, idempotent=True,
        )
        return _component(answer)

    async def components(self) -> list[Component]:
        """The page's components (the first 100: enough for a page people can read)."""
        answer = await self._call("GET", "/components?per_page=100", None, idempotent=True)
        if not isinstance(answer, list):
            raise _bad_response("a list of components")
        return [_component(item) for item in answer]

    async def _call(
        self, method: str, path: str, payload: dict[str, Any] | None, *, idempotent: bool
    ) -> Any:
        attempt = 1
        while True:
            try:
                answer = await self._once(method, path, payload)
            except StatuspageError as exc:
                safe = exc.retryable and (idempotent or not exc.maybe_applied)
                if not safe or attempt >= self._attempts:
                    raise
                # Warn when an error first appears; later attempts of one call are quiet.
                emit = log.warning if attempt == 1 else log.debug
                emit("statuspage.retry", method=method, reason=exc.reason, attempt=attempt)
                await self._sleep(_delay(attempt, exc.retry_after))
                attempt += 1
                continue
            if attempt > 1:
                log.info("statuspage.delivered_after_retries", method=method, attempts=attempt)
            return answer

    async def _once(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        data = orjson.dumps(payload) if payload is not None else None
        try:
            async with self._session.request(
                method, self._page + path, data=data, headers=self._headers,
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise StatuspageError("timeout", retryable=True, maybe_applied=True) from exc
        except aiohttp.ClientConnectorError as exc:
            # No connection was made, so nothing was sent.
            raise StatuspageError(
                "connection", retryable=True, detail=type(exc).__name__
            ) from exc
        except aiohttp.ClientError as exc:
            raise StatuspageError(
                "connection", retryable=True, detail=type(exc).__name__, maybe_applied=True
            ) from exc
        if 200 <= status < 300:
            return _json(body)
        raise _http_error(status, body, retry_after)


def _incident_fields(
    *, name: str | None, status: str | None, body: str | None,
    components: Mapping[str, str] | None, deliver_notifications: bool,
) -> dict[str, Any]:
    """The `incident` object of a create or update, checked before anything is sent."""
    fields: dict[str, Any] = {"deliver_notifications": deliver_notifications}
    if name is not None:
        if len(name) > MAX_NAME:
            raise ValueError(f"an incident name has at most {MAX_NAME} characters")
        fields["name"] = name
    if status is not None:
        if status not in INCIDENT_STATUSES:
            raise ValueError(f"incident status must be one of {', '.join(INCIDENT_STATUSES)}")
        fields["status"] = status
    if body is not None:
        if len(body) > MAX_BODY:
            raise ValueError(f"an incident update has at most {MAX_BODY} characters")
        fields["body"] = body
    if components:
        for component_id, component_status in components.items():
            _check_component_status(component_id, component_status)
        fields["components"] = dict(components)
        fields["component_ids"] = list(components)
    return fields


def _check_component_status(component_id: str, status: str) -> None:
    if not component_id:
        raise ValueError("a component id must not be empty")
    if status not in COMPONENT_STATUSES:
        raise ValueError(
            f"component {component_id}: status must be one of {', '.join(COMPONENT_STATUSES)}"
        )


def _delay(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(MAX_DELAY, max(FIRST_DELAY, retry_after))
    return min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1))


def _http_error(status: int, body: bytes, retry_after: str | None) -> StatuspageError:
    detail = _error_message(body)
    if status in _RATE_LIMITED:
        # Refused before it was processed: safe to send again, even a create.
        return StatuspageError(
            f"http_{status}", retryable=True, detail=detail, status=status,
            retry_after=_seconds(retry_after),
        )
    if status >= 500:
        return StatuspageError(
            f"http_{status}", retryable=True, detail=detail, status=status, maybe_applied=True
        )
    return StatuspageError(f"http_{status}", retryable=False, detail=detail, status=status)


def _error_message(body: bytes) -> str:
    """Statuspage's error text: `message` as documented, `error` as some answers have it."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace")
    if isinstance(parsed, dict):
        text = parsed.get("message", parsed.get("error", ""))
        if isinstance(text, list):
            text = "; ".join(str(item) for item in text)
        return str(text)[:200]
    return ""


def _seconds(value: str | None) -> float | None:
    # Retry-After may also be an HTTP date; then the default backoff applies.
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise _bad_response("JSON") from None


def _bad_response(wanted: str) -> StatuspageError:
    # The request succeeded (2xx), so it was applied; only its answer is unreadable.
    return StatuspageError(
        "bad_response", retryable=False, detail=f"expected {wanted}", maybe_applied=True
    )


def _component(raw: Any) -> Component:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise _bad_response("a component")
    return Component(raw["id"], str(raw.get("name") or ""), str(raw.get("status") or ""))


def _incident(raw: Any) -> Incident:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise _bad_response("an incident")
    updates = tuple(
        IncidentUpdate(
            str(item.get("id") or ""), str(item.get("status") or ""),
            str(item.get("body") or ""), str(item.get("created_at") or ""),
        )
        for item in raw.get("incident_updates") or () if isinstance(item, dict)
    )
    components = tuple(_component(item) for item in raw.get("components") or ())
    return Incident(
        id=raw["id"], name=str(raw.get("name") or ""), status=str(raw.get("status") or ""),
        impact=str(raw.get("impact") or ""), shortlink=str(raw.get("shortlink") or ""),
        components=components, updates=updates, raw=raw,
    )
