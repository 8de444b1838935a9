"""JSON responses and request bodies shared by the API's handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from pagerd.daemon.metrics import Metrics
from pagerd.receivers.errors import PayloadError

RETRY_AFTER = "5"


class Counted(Protocol):
    """Whoever answers: the daemon, or an intake process; refusals go to its metrics."""

    metrics: Metrics


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON response not yet any server's: the intake gate's answer, which the daemon
    (aiohttp) and an intake process (daemon/intake_http.py) each send their own way."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A JSON reply encoded with orjson."""
    return Reply(status, orjson.dumps(body), headers or {})


def as_response(reply: Reply) -> web.Response:
    """The reply as aiohttp sends it."""
    return web.Response(body=reply.body, status=reply.status, headers=reply.headers,
                        content_type="application/json")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """A JSON response encoded with orjson."""
    return as_response(json_reply(body, status, headers))


def unavailable_reply(daemon: Counted, reason: str) -> Reply:
    """pagerd's own trouble: 503 with Retry-After, so senders retry instead of dropping."""
    daemon.metrics.unavailable.labels(reason).inc()
    return json_reply({"error": f"pagerd is unavailable: {reason}"}, 503,
                      {"Retry-After": RETRY_AFTER})


def unavailable(daemon: Counted, reason: str) -> web.Response:
    """unavailable_reply, for aiohttp."""
    return as_response(unavailable_reply(daemon, reason))


def unauthorized_reply(daemon: Counted, endpoint: str) -> Reply:
    """Missing or wrong credentials."""
    daemon.metrics.auth_failures.labels(endpoint).inc()
    return json_reply({"error": "missing or invalid credentials", "field": "Authorization"},
                      401, {"WWW-Authenticate": 'Bearer realm="pagerd"'})


def unauthorized(daemon: Counted, endpoint: str) -> web.Response:
    """unauthorized_reply, for aiohttp."""
    return as_response(unauthorized_reply(daemon, endpoint))


async def read_json(request: web.Request, limit: int) -> Any:
    """The request's JSON body; PayloadError (4xx) for what is not one."""
    return decode_json(await read_body(request, limit))


def decode_json(raw: bytes) -> Any:
    """A body's JSON; PayloadError naming the body for what is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", f"invalid JSON: {exc}") from None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, as received, if it says it is JSON and is not too large."""
    check_body(request.content_type, request.content_length, limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    return raw


def check_body(content_type: str, content_length: int | None, limit: int) -> None:
    """PayloadError for a body that does not say it is JSON (415) or says it is larger
    than `limit` (413); `content_type` without its parameters, lower case."""
    if content_type != "application/json":
        raise PayloadError("Content-Type", "must be application/json", status=415)
    if content_length is not None and content_length > limit:
        raise too_large(limit)


def too_large(limit: int) -> PayloadError:
    """The 413 for a body over `limit` bytes."""
    return PayloadError("body", f"larger than {limit} bytes", status=413)
