"""JSON responses and request bodies shared by the API's handlers."""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from aiohttp import web

from pagerd.daemon.metrics import Metrics
from pagerd.receivers.errors import PayloadError

RETRY_AFTER = "5"


class Counted(Protocol):
    """Whoever answers: the daemon, or an intake process; refusals go to its metrics."""

    metrics: Metrics


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def unavailable(daemon: Counted, reason: str) -> web.Response:
    """pagerd's own trouble: 503 with Retry-After, so senders retry instead of dropping."""
    daemon.metrics.unavailable.labels(reason).inc()
    return json_response({"error": f"pagerd is unavailable: {reason}"}, 503,
                         {"Retry-After": RETRY_AFTER})


def unauthorized(daemon: Counted, endpoint: str) -> web.Response:
    """Missing or wrong credentials."""
    daemon.metrics.auth_failures.labels(endpoint).inc()
    return json_response({"error": "missing or invalid credentials", "field": "Authorization"},
                         401, {"WWW-Authenticate": 'Bearer realm="pagerd"'})


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
    if request.content_type != "application/json":
        raise PayloadError("Content-Type", "must be application/json", status=415)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadError("body", f"larger than {limit} bytes", status=413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadError("body", f"larger than {limit} bytes", status=413) from None
    return raw
