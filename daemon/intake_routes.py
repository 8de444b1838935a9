"""The intake port's routes: what an intake process answers, request by request.

It speaks to the same gate as the daemon's aiohttp handler, so both refuse the same requests
the same way; the HTTP around it is daemon/intake_http.py.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import parse_qsl, unquote

import httptools
from multidict import CIMultiDict, MultiDict

from pagerd.daemon.intake_gate import IntakeRequest
from pagerd.daemon.intake_http import HttpReply, HttpRequest
from pagerd.daemon.responses import Reply, check_body, json_reply

# As the daemon's routes: /api/v1/<kind>, or /api/v1/<kind>/<integration>.
_INTAKE_PATH = re.compile(r"/api/v1/(alertmanager|azure)(?:/([^/{}]+))?")
_JSON = b"application/json"


class IntakeServer(Protocol):
    """What the routes ask of the intake process."""

    async def intake(self, request: IntakeRequest) -> Reply:
        """Gate, journal and answer one intake request."""

    def is_ready(self) -> bool:
        """Whether the process takes intake now."""

    def turned_away(self) -> Reply:
        """The answer to a connection past the server's limit (a 503, counted)."""


class HttpIntakeRequest:
    """An intake request as the gate reads it; its body came whole, within the limit."""

    def __init__(self, request: HttpRequest, query: bytes, kind: str, integration: str
                 ) -> None:
        self.kind = kind
        self.integration = integration
        self.headers: CIMultiDict[str] = request.headers
        self._query = query
        self._body = request.body

    @property
    def query(self) -> MultiDict[str]:
        # Parsed only when asked: only Azure's tokens ride in the query string.
        return MultiDict(parse_qsl(self._query.decode("latin-1"), keep_blank_values=True))

    async def body(self, limit: int) -> bytes:
        content_type = self.headers.get("Content-Type", "").partition(";")[0]
        check_body(content_type.strip().lower(), len(self._body), limit)
        return self._body


class IntakeRoutes:
    """Intake, health and readiness; anything else is a 404 or 405."""

    def __init__(self, server: IntakeServer) -> None:
        self.server = server

    async def __call__(self, request: HttpRequest) -> HttpReply:
        try:
            url = httptools.parse_url(request.target)
        except httptools.HttpParserInvalidURLError:
            return _reply(json_reply({"error": "malformed request target", "field": "path"},
                                     400))
        path = unquote((url.path or b"/").decode("latin-1"))
        intake = _INTAKE_PATH.fullmatch(path)
        if intake is not None:
            if request.method != "POST":
                return _not_allowed("POST")
            kind = intake.group(1)
            gated = HttpIntakeRequest(request, url.query or b"", kind, intake.group(2) or kind)
            return _reply(await self.server.intake(gated))
        if path in ("/-/healthy", "/-/ready"):
            if request.method not in ("GET", "HEAD"):
                return _not_allowed("GET")
            if path == "/-/ready" and not self.server.is_ready():
                return HttpReply(503, b"text/plain; charset=utf-8", b"not ready\n",
                                 [("Retry-After", "1")])
            return HttpReply(200, b"text/plain; charset=utf-8", b"OK\n")
        return _reply(json_reply({"error": f"no endpoint {path}", "field": "path"}, 404))

    def turned_away(self) -> HttpReply:
        """The answer to a connection past the server's limit."""
        return _reply(self.server.turned_away())


def _reply(reply: Reply) -> HttpReply:
    return HttpReply(reply.status, _JSON, reply.body, list(reply.headers.items()))


def _not_allowed(allowed: str) -> HttpReply:
    return _reply(json_reply({"error": f"method not allowed; use {allowed}", "field": "method"},
                             405, {"Allow": allowed}))
