"""Intake for PagerDuty's Events API v2: alert events (`/v2/enqueue`) and change events.

Tools that already page PagerDuty can page pagerd unchanged: the same body, the same 202
answer carrying the `dedup_key` (one is generated for a trigger that has none), and the same
400 answer for a refused event, `{"status": "invalid event", "message": "Event object is
invalid", "errors": [...]}`, listing every problem found. Problems are worded as PagerDuty
words them where its wording is public; elsewhere in the same style.

A trigger becomes a canonical `Alert`:

- labels: `alertname` is the payload's `class` (PagerDuty's "type of event"), or
  `PagerDutyEvent` when it has none. The summary is not used: it changes between triggers
  of one alert ("DISK at 98%", "DISK at 99%") and would split an incident in two. Then
  `severity`, `source`, `component`, `group` and `class` as the payload has them, empty
  ones dropped. `severity` is critical|error|warning|info, which the default severity
  mapping already knows.
- annotations: `summary`, `client`, and `custom_details` as JSON text.
- `generator_url` is `client_url`; `starts_at` is the payload's timestamp, if readable.
- fingerprint: 16 hex digits of SHA-256 over the integration and the `dedup_key`, so an
  acknowledge or resolve through the same integration finds the trigger's alert. PagerDuty
  too applies follow-up events only within the routing key of the trigger.
- `source` keeps the `dedup_key`, `client`, `links` and `images`. Never the routing key,
  which is a credential.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pagerd.models import Alert, AlertStatus
from pagerd.receivers.errors import PayloadError

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
# PagerDuty's documented size limit for one event.
MAX_EVENT_BYTES = 512 * 1024
DEFAULT_ALERTNAME = "PagerDutyEvent"

# ASCII only: str.isalnum() also accepts letters of other scripts.
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]*")


class PDEventError(PayloadError):
    """An event PagerDuty would refuse (400); `response_body()` is PagerDuty's error body.

    `field` and `reason` name the first problem, as every PayloadError does; `errors` lists
    them all, as PagerDuty does.
    """

    def __init__(
        self, problems: list[tuple[str, str]], *, status_text: str = "invalid event",
        message: str = "Event object is invalid",
    ) -> None:
        field, reason = problems[0]
        super().__init__(field, reason, 400)
        self.errors = [text for _, text in problems]
        self.status_text = status_text
        self.message = message

    def response_body(self) -> dict[str, Any]:
        """The JSON body PagerDuty answers with its 400."""
        return {"status": self.status_text, "message": self.message, "errors": self.errors}


@dataclass(frozen=True, slots=True)
class Link:
    """A link attached to an event: `href` and its optional text."""

    href: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Image:
    """An image attached to an event: `src`, an optional link and alternative text."""

    src: str
    href: str = ""
    alt: str = ""


@dataclass(frozen=True, slots=True)
class EventPayload:
    """The PD-CEF fields of a trigger: what broke, where, and how badly."""

    summary: str
    source: str
    severity: str
    timestamp: datetime | None = None
    component: str = ""
    group: str = ""
    event_class: str = ""
    custom_details: Any = None


@dataclass(frozen=True, slots=True)
class PDEvent:
    """One validated alert event.

    `payload` is set for triggers only: PagerDuty ignores it on acknowledge and resolve.
    `warnings` name fields that were accepted but not used (an unreadable timestamp).
    """

    routing_key: str
    action: str
    dedup_key: str
    dedup_key_generated: bool = False
    payload: EventPayload | None = None
    client: str = ""
    client_url: str = ""
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()
    warnings: tuple[str, ...] = ()

    def fingerprint(self, integration: str) -> str:
        """The fingerprint of this event's alert when it comes through `integration`."""
        return fingerprint(integration, self.dedup_key)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One validated change event: a deploy or other change, shown beside incidents."""

    routing_key: str
    summary: str
    source: str = ""
    timestamp: datetime | None = None
    custom_details: Any = None
    links: tuple[Link, ...] = ()
    warnings: tuple[str, ...] = ()


def fingerprint(integration: str, dedup_key: str) -> str:
    """The fingerprint of the alert a `dedup_key` names within one integration."""
    digest = hashlib.sha256(f"{integration}\x00{dedup_key}".encode())
    return digest.hexdigest()[:16]


def decode_body(raw: bytes) -> Any:
    """A request body as JSON, or PagerDuty's "Unrecognized object" error.

    The size limit is PagerDuty's; the wording of that one error is pagerd's.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise PDEventError([("body", "Event object is too large (maximum is 512 KB)")])
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _unrecognized("JSON parse error") from None


def success_body(dedup_key: str) -> dict[str, str]:
    """The body of the 202 answer to an accepted alert event."""
    return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


def change_success_body() -> dict[str, str]:
    """The body of the 202 answer to an accepted change event.

    PagerDuty's own change-event answer is not in the public examples we have; this is the
    alert-event shape without a dedup_key.
    """
    return {"status": "success", "message": "Event processed"}


def parse_event(
    body: Any, *, new_dedup_key: Callable[[], str] = lambda: uuid.uuid4().hex
) -> PDEvent:
    """Validate a decoded `/v2/enqueue` body; raises PDEventError listing every problem."""
    event = _expect_event(body)
    problems: list[tuple[str, str]] = []
    routing_key = _routing_key(event, problems)
    action = _action(event, problems)
    dedup_key = _dedup_key(event, action, problems)
    payload = _trigger_payload(event, problems) if action == "trigger" else None
    client = _optional_text(event, "client", "client", problems)
    client_url = _optional_text(event, "client_url", "client_url", problems)
    links = _links(event.get("links"), problems)
    images = _images(event.get("images"), problems)
    if problems:
        raise PDEventError(problems)
    generated = action == "trigger" and not dedup_key
    warnings = _timestamp_warnings(event.get("payload")) if payload else ()
    return PDEvent(
        routing_key=routing_key, action=action,
        dedup_key=new_dedup_key() if generated else dedup_key, dedup_key_generated=generated,
        payload=payload, client=client, client_url=client_url, links=links, images=images,
        warnings=warnings,
    )


def parse_change_event(body: Any) -> ChangeEvent:
    """Validate a decoded `/v2/change/enqueue` body; raises PDEventError.

    Change events support only `links` as context: `images`, which some senders (and
    PagerDuty's own example) include, are ignored as PagerDuty ignores them.
    """
    event = _expect_event(body)
    problems: list[tuple[str, str]] = []
    routing_key = _routing_key(event, problems)
    payload = _payload_object(event, problems)
    summary = source = ""
    if payload is not None:
        summary = _required_text(payload, "summary", problems, max_length=MAX_SUMMARY)
        source = _optional_text(payload, "source", "payload.source", problems)
    links = _links(event.get("links"), problems)
    if problems or payload is None:
        raise PDEventError(problems)
    return ChangeEvent(
        routing_key=routing_key, summary=summary, source=source,
        timestamp=_timestamp(payload.get("timestamp")),
        custom_details=payload.get("custom_details"), links=links,
        warnings=_timestamp_warnings(payload),
    )


def to_alert(event: PDEvent, integration: str) -> Alert:
    """The canonical alert of a trigger or resolve event.

    A resolve carries no payload, so its alert has no labels: look the trigger's alert up
    by fingerprint. An acknowledge changes an incident, not an alert: ValueError.
    """
    if event.action == "acknowledge":
        raise ValueError("an acknowledge event has no alert; use event.fingerprint()")
    source: dict[str, Any] = {"dedup_key": event.dedup_key}
    if event.payload is None:
        return Alert(
            fingerprint=event.fingerprint(integration), status=AlertStatus.RESOLVED,
            labels={}, integration=integration, source=source,
        )
    payload = event.payload
    source.update(_context(event))
    return Alert(
        fingerprint=event.fingerprint(integration),
        status=AlertStatus.FIRING,
        labels=_labels(payload),
        annotations=_annotations(event, payload),
        starts_at=payload.timestamp,
        generator_url=event.client_url,
        integration=integration,
        source=source,
    )


def _labels(payload: EventPayload) -> dict[str, str]:
    labels = {
        "alertname": payload.event_class or DEFAULT_ALERTNAME,
        "severity": payload.severity,
        "source": payload.source,
        "component": payload.component,
        "group": payload.group,
        "class": payload.event_class,
    }
    return {name: value for name, value in labels.items() if value}


def _annotations(event: PDEvent, payload: EventPayload) -> dict[str, str]:
    annotations = {"summary": payload.summary, "client": event.client}
    if payload.custom_details is not None:
        # The stdlib encoder: custom details may hold integers beyond 64 bits.
        annotations["custom_details"] = json.dumps(payload.custom_details, ensure_ascii=False)
    return {name: value for name, value in annotations.items() if value}


def _context(event: PDEvent) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if event.client:
        context["client"] = event.client
    if event.links:
        context["links"] = [{"href": link.href, "text": link.text} for link in event.links]
    if event.images:
        context["images"] = [
            {"src": image.src, "href": image.href, "alt": image.alt} for image in event.images
        ]
    return context


def _unrecognized(reason: str) -> PDEventError:
    return PDEventError(
        [("body", reason)], status_text="Unrecognized object",
        message="Event object format is unrecognized",
    )


def _expect_event(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _unrecognized("Event object must be a JSON object")
    return body


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _routing_key(event: dict[str, Any], problems: list[tuple[str, str]]) -> str:
    value = event.get("routing_key")
    if _is_blank(value):
        problems.append(("routing_key", "'routing_key' is missing or blank"))
        return ""
    if not isinstance(value, str):
        problems.append(("routing_key", "'routing_key' is invalid (must be a string)"))
        return ""
    if len(value) != ROUTING_KEY_LENGTH:
        problems.append((
            "routing_key",
            f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)",
        ))
    if not _ALPHANUMERIC.fullmatch(value):
        problems.append(
            ("routing_key", "'routing_key' cannot contain non-alphanumeric characters.")
        )
    return value


def _action(event: dict[str, Any], problems: list[tuple[str, str]]) -> str:
    value = event.get("event_action")
    if _is_blank(value):
        problems.append(("event_action", "'event_action' is missing or blank"))
        return ""
    if value not in ACTIONS:
        problems.append((
            "event_action",
            "'event_action' is invalid (must be one of the following: "
            "'trigger', 'acknowledge' or 'resolve')",
        ))
        return ""
    return str(value)


def _dedup_key(event: dict[str, Any], action: str, problems: list[tuple[str, str]]) -> str:
    value = event.get("dedup_key")
    if _is_blank(value):
        # A trigger without one gets a new key; a follow-up event must name its alert.
        if action in ("acknowledge", "resolve"):
            problems.append(("dedup_key", "'dedup_key' is missing or blank"))
        return ""
    if not isinstance(value, str):
        problems.append(("dedup_key", "'dedup_key' is invalid (must be a string)"))
        return ""
    if len(value) > MAX_DEDUP_KEY:
        problems.append(
            ("dedup_key", f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)")
        )
    return value


def _trigger_payload(
    event: dict[str, Any], problems: list[tuple[str, str]]
) -> EventPayload | None:
    raw = _payload_object(event, problems)
    if raw is None:
        return None
    summary = _required_text(raw, "summary", problems, max_length=MAX_SUMMARY)
    source = _required_text(raw, "source", problems)
    severity = _severity(raw, problems)
    return EventPayload(
        summary=summary, source=source, severity=severity,
        timestamp=_timestamp(raw.get("timestamp")),
        component=_optional_text(raw, "component", "payload.component", problems),
        group=_optional_text(raw, "group", "payload.group", problems),
        event_class=_optional_text(raw, "class", "payload.class", problems),
        custom_details=raw.get("custom_details"),
    )


def _payload_object(
    event: dict[str, Any], problems: list[tuple[str, str]]
) -> dict[str, Any] | None:
    raw = event.get("payload")
    if _is_blank(raw):
        problems.append(("payload", "'payload' is missing or blank"))
        return None
    if not isinstance(raw, dict):
        problems.append(("payload", "'payload' is invalid (must be an object)"))
        return None
    return raw


def _severity(payload: dict[str, Any], problems: list[tuple[str, str]]) -> str:
    value = payload.get("severity")
    if _is_blank(value):
        problems.append(("payload.severity", "'payload.severity' is missing or blank"))
        return ""
    if value not in SEVERITIES:
        problems.append((
            "payload.severity",
            "'payload.severity' is invalid (must be one of the following: "
            "'critical', 'warning', 'error' or 'info')",
        ))
        return ""
    return str(value)


def _required_text(
    node: dict[str, Any], key: str, problems: list[tuple[str, str]], *, max_length: int = 0
) -> str:
    field = f"payload.{key}"
    value = node.get(key)
    if _is_blank(value):
        problems.append((field, f"'{field}' is missing or blank"))
        return ""
    if not isinstance(value, str):
        problems.append((field, f"'{field}' is invalid (must be a string)"))
        return ""
    if max_length and len(value) > max_length:
        problems.append((field, f"'{field}' is too long (maximum is {max_length} characters)"))
    return value


def _optional_text(
    node: dict[str, Any], key: str, field: str, problems: list[tuple[str, str]]
) -> str:
    value = node.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append((field, f"'{field}' is invalid (must be a string)"))
        return ""
    return value


def _links(value: Any, problems: list[tuple[str, str]]) -> tuple[Link, ...]:
    items = _context_list(value, "links", problems)
    links = []
    for index, item in enumerate(items):
        field = f"links[{index}]"
        href = _context_text(item, "href", field, problems, required=True)
        text = _context_text(item, "text", field, problems)
        links.append(Link(href, text))
    return tuple(links)


def _images(value: Any, problems: list[tuple[str, str]]) -> tuple[Image, ...]:
    items = _context_list(value, "images", problems)
    images = []
    for index, item in enumerate(items):
        field = f"images[{index}]"
        src = _context_text(item, "src", field, problems, required=True)
        href = _context_text(item, "href", field, problems)
        alt = _context_text(item, "alt", field, problems)
        images.append(Image(src, href, alt))
    return tuple(images)


def _context_list(value: Any, field: str, problems: list[tuple[str, str]]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append((field, f"'{field}' is invalid (must be an array of objects)"))
        return []
    return value


def _context_text(
    item: Any, key: str, field: str, problems: list[tuple[str, str]], *, required: bool = False
) -> str:
    if not isinstance(item, dict):
        # One problem per element, reported once, on its required key.
        if required:
            problems.append((field, f"'{field}' is invalid (must be an object)"))
        return ""
    value = item.get(key)
    if required and _is_blank(value):
        problems.append((f"{field}.{key}", f"'{field}.{key}' is missing or blank"))
        return ""
    return _optional_text(item, key, f"{field}.{key}", problems)


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time, or None: PagerDuty then uses the time it received the event.

    A time without an offset is read as UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp_warnings(payload: Any) -> tuple[str, ...]:
    if not isinstance(payload, dict) or payload.get("timestamp") in (None, ""):
        return ()
    if _timestamp(payload["timestamp"]) is None:
        return ("payload.timestamp is not an ISO 8601 time; the receive time is used",)
    return ()
