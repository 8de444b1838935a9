"""The door of every intake endpoint: authenticate, read, validate, before anything is kept.

Shared by the daemon's own intake handler (which ingests at once) and by intake processes
(which journal the body for the daemon to ingest): both refuse the same requests the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from pagerd.daemon.metrics import Metrics
from pagerd.daemon.responses import (
    Reply,
    decode_json,
    json_reply,
    unauthorized_reply,
    unavailable_reply,
)
from pagerd.models import Alert
from pagerd.receivers.alertmanager import parse_notification
from pagerd.receivers.auth import presented_token, token_matches
from pagerd.receivers.azure import parse_azure
from pagerd.receivers.errors import PayloadError
from pagerd.settings import Integration, Settings

if TYPE_CHECKING:  # loaded only when an integration takes Entra ID tokens
    from pagerd.receivers.entra import EntraVerifier

log = structlog.get_logger("pagerd.http")


class Gatekeeper(Protocol):
    """What the gate needs of whoever serves intake: config, credentials, metrics."""

    metrics: Metrics
    settings: Settings
    tokens: dict[str, str]
    verifiers: dict[str, EntraVerifier]
    accepting: bool


class IntakeRequest(Protocol):
    """An intake request as the gate reads it, whichever HTTP server took it."""

    @property
    def kind(self) -> str:
        """The endpoint's kind: "alertmanager" or "azure"."""

    @property
    def integration(self) -> str:
        """The integration the path names (the kind itself when it names none)."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Headers, looked up without regard to case."""

    @property
    def query(self) -> Mapping[str, str]:
        """The query string's parameters."""

    async def body(self, limit: int) -> bytes:
        """The body as received; PayloadError (415, 413) for one that does not say it is
        JSON or is larger than `limit` bytes."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed the gate: its alerts, and its body as received."""

    kind: str
    integration: str
    alerts: list[Alert]
    partial: bool
    body: bytes


async def admit(keeper: Gatekeeper, request: IntakeRequest,
                room: Callable[[], Awaitable[bool]] | None = None) -> Admitted | Reply:
    """The request's alerts, or the reply refusing it (401, 404, 4xx naming the field,
    503 while shutting down, or once the request is authenticated, when `room()` says there
    is none)."""
    kind, name = request.kind, request.integration
    if not keeper.accepting:
        return unavailable_reply(keeper, "shutting down")
    integration = keeper.settings.integrations.get(name)
    if integration is None or integration.type != kind:
        return json_reply({"error": f"no {kind} integration {name!r}",
                           "field": "integration"}, 404)
    if not await _authenticated(keeper, request, integration):
        return unauthorized_reply(keeper, name)
    if room is not None and not await room():
        # Let go of when shutdown began (counted as such), or when the wait ran out.
        return unavailable_reply(keeper, "backlog" if keeper.accepting else "shutting down")
    try:
        raw = await request.body(keeper.settings.max_body_bytes)
        alerts, partial = parse_payload(keeper.metrics, kind, decode_json(raw), name)
    except PayloadError as exc:
        keeper.metrics.invalid_payloads.labels(name, exc.field.split("[")[0]).inc()
        log.info("payload.refused", integration=name, field=exc.field, reason=exc.reason)
        return json_reply(exc.to_json(), exc.status)
    return Admitted(kind, name, alerts, partial, raw)


def parse_payload(metrics: Metrics, kind: str, body: Any, name: str) -> tuple[list[Alert], bool]:
    """The alerts of a parsed body, and whether the source left some of their group out."""
    if kind == "alertmanager":
        notification = parse_notification(body, name)
        return notification.alerts, notification.partial
    parsed = parse_azure(body, integration=name)
    if not parsed.known:
        # Kept as a generic alert, never dropped; counted so the gap is visible.
        reason = parsed.notes.get("reason", "unknown")
        metrics.unknown_payloads.labels(name, parsed.kind, reason).inc()
        log.warning("payload.unknown_shape", integration=name, kind=parsed.kind, reason=reason)
    return parsed.alerts, False


async def _authenticated(keeper: Gatekeeper, request: IntakeRequest,
                         integration: Integration) -> bool:
    # Azure action groups can only put a token in the URL; Alertmanager sends headers.
    allow_query = integration.type == "azure"
    token = presented_token(request.headers, request.query, allow_query=allow_query)
    if token_matches(token, keeper.tokens.get(integration.name)):
        return True
    verifier = keeper.verifiers.get(integration.name)
    if verifier is None or token is None or token.count(".") != 2:
        return False
    # Imported here: PyJWT and cryptography cost 8 MB, for Azure's secure webhooks only.
    from pagerd.receivers.entra import EntraError

    try:
        await verifier.verify(token)
    except EntraError as exc:
        log.info("auth.entra_refused", integration=integration.name, reason=exc.reason)
        return False
    return True


def verifiers_for(integrations: Iterable[Integration]) -> dict[str, EntraVerifier]:
    """An Entra ID verifier for each integration that accepts Entra tokens."""
    integrations = list(integrations)
    if all(integration.entra is None for integration in integrations):
        return {}  # PyJWT and cryptography (8 MB) stay unloaded
    from pagerd.receivers.entra import EntraVerifier

    return {
        integration.name: EntraVerifier(
            jwks_url=integration.entra.jwks_url, issuer=integration.entra.issuers,
            audience=integration.entra.audiences, role=integration.entra.role,
        )
        for integration in integrations
        if integration.entra is not None
    }
