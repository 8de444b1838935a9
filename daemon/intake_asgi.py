"""The intake port's HTTP application, as ASGI: what an intake process serves.

An intake process does little per request: the gate, a journal entry, a 2xx. aiohttp's
application layer (router, request and response objects) cost about as much as all of that
together, so intake processes serve this bare ASGI callable on uvicorn (httptools, uvloop)
instead: about 30 us less CPU per request (bench/README.md). It speaks to the same gate as
the daemon's aiohttp handler, so both refuse the same requests the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

from multidict import CIMultiDict, MultiDict

from pagerd.daemon.intake_gate import IntakeRequest
from pagerd.daemon.responses import Reply, check_body, json_reply, too_large

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# As the daemon's routes: /api/v1/<kind>, or /api/v1/<kind>/<integration>.
_INTAKE_PATH = re.compile(r"/api/v1/(alertmanager|azure)(?:/([^/{}]+))?")


class IntakeServer(Protocol):
    """What the application asks of the intake process."""

    async def intake(self, request: IntakeRequest) -> Reply:
        """Gate, journal and answer one intake request."""

    def is_ready(self) -> bool:
        """Whether the process takes intake now."""


class Disconnected(Exception):
    """The client went away before its whole body came: there is no one to answer."""


class AsgiIntakeRequest:
    """An ASGI request as the intake gate reads it."""

    def __init__(self, scope: Scope, receive: Receive, kind: str, integration: str) -> None:
        self.kind = kind
        self.integration = integration
        self.headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])
        self._query_string: bytes = scope["query_string"]
        self._receive = receive

    @property
    def query(self) -> MultiDict[str]:
        # Parsed only when asked: only Azure's tokens ride in the query string.
        return MultiDict(parse_qsl(self._query_string.decode("latin-1"), keep_blank_values=True))

    async def body(self, limit: int) -> bytes:
        content_type = self.headers.get("Content-Type", "").partition(";")[0]
        length = self.headers.get("Content-Length", "")
        check_body(content_type.strip().lower(), int(length) if length.isdigit() else None,
                   limit)
        chunks = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            # Counted as it comes: a chunked body says nothing of its length up front.
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class IntakeApp:
    """The ASGI callable: intake, health and readiness; anything else is a 404 or 405."""

    def __init__(self, server: IntakeServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no lifespan or websocket here
            return
        path, method = scope["path"], scope["method"]
        intake = _INTAKE_PATH.fullmatch(path)
        if intake is not None:
            if method != "POST":
                await _send(send, _not_allowed("POST"))
                return
            kind = intake.group(1)
            request = AsgiIntakeRequest(scope, receive, kind, intake.group(2) or kind)
            try:
                reply = await self.server.intake(request)
            except Disconnected:
                return
            await _send(send, reply)
        elif path in ("/-/healthy", "/-/ready"):
            if method not in ("GET", "HEAD"):
                await _send(send, _not_allowed("GET"))
            elif path == "/-/ready" and not self.server.is_ready():
                await _send_text(send, 503, b"not ready\n", [(b"retry-after", b"1")])
            else:
                await _send_text(send, 200, b"OK\n")
        else:
            await _send(send, json_reply({"error": f"no endpoint {path}", "field": "path"},
                                         404))


def _not_allowed(allowed: str) -> Reply:
    return json_reply({"error": f"method not allowed; use {allowed}", "field": "method"}, 405,
                      {"Allow": allowed})


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _send_text(send: Send, status: int, body: bytes,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
