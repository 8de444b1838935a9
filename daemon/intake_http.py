"""The intake port's HTTP/1.1 server: httptools parses, each connection answers its requests
in order, each answer goes out in one write.

An intake process does little per request (the gate, a journal entry, a 2xx), so the HTTP
layer around it is most of its cost. Measured on the bench machine, one core, small JSON
POSTs: aiohttp's application 64 us a request, uvicorn with a bare ASGI app 34 us, this 9 us.
It serves only what the intake port needs: requests with a length or chunked bodies,
keep-alive and pipelining, `Expect: 100-continue`, limits on the head and the body, an idle
timeout and a graceful stop. Anything else it refuses and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from socket import socket
from typing import cast

import httptools
import orjson
import structlog
from multidict import CIMultiDict

log = structlog.get_logger("pagerd.intake_http")

# As aiohttp's limits: a request line and its headers within this many bytes.
HEAD_LIMIT = 64 * 1024
# Requests a connection may queue (pipelined) before it stops reading.
_QUEUE_LIMIT = 8


@dataclass
class HttpRequest:
    """One request, its body whole (within the body limit)."""

    method: str
    target: bytes
    headers: CIMultiDict[str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """One answer: a status, the body's content type and the body, other headers."""

    status: int
    content_type: bytes
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[HttpRequest], Awaitable[HttpReply]]


def _json_error(status: int, message: str, name: str) -> HttpReply:
    return HttpReply(status, b"application/json", orjson.dumps({"error": message, "field": name}))


class _Date:
    """The Date header, spelled again only when the second changes."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


class IntakeHttpServer:
    """Serves `handler` on listening sockets until stopped."""

    def __init__(self, handler: Handler, *, body_limit: int, keep_alive: float = 75.0,
                 ) -> None:
        self.handler = handler
        self.body_limit = body_limit
        self.keep_alive = keep_alive
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self._all_closed = asyncio.Event()
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self, sock: socket) -> None:
        """Serve connections accepted on the listening socket `sock`."""
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(lambda: _Connection(self), sock=sock))

    def all_closed(self) -> None:
        """The last connection has closed."""
        self._all_closed.set()

    async def stop(self, grace: float) -> None:
        """Stop accepting; close idle connections now and busy ones once they answer; after
        `grace` seconds, close what is left."""
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        if self.connections:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace)
        for connection in list(self.connections):
            connection.abort()
        for server in self._servers:
            await server.wait_closed()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests as they come, answers them one by one."""

    def __init__(self, server: IntakeHttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[tuple[HttpRequest | HttpReply, bool]] = deque()
        self.serving: asyncio.Task[None] | None = None
        self.closing = False  # answer what is queued, then close
        self.reading = True
        self.writable = True
        self.refused = False  # a refusal is queued: nothing more is parsed
        self.idle_timer: asyncio.TimerHandle | None = None
        self.active_at = 0.0
        # The request being parsed; None while discarding one already refused.
        self.request: HttpRequest | None = None
        self.url = bytearray()
        self.head = 0
        self.chunks: list[bytes] = []
        self.size = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if not self.server.connections:
            self.server.all_closed()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        # A request being answered finishes (its journal entry and poke); its answer is
        # not written.

    def data_received(self, data: bytes) -> None:
        self.active_at = asyncio.get_running_loop().time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_json_error(400, "protocol upgrades are not served", "Upgrade"))
        except httptools.HttpParserError as exc:
            self._refuse(_json_error(400, f"malformed HTTP: {_plain(exc)}", "request"))

    def pause_writing(self) -> None:
        # The client does not read its answers: stop taking requests from it until it does.
        self.writable = False
        self._pause()

    def resume_writing(self) -> None:
        self.writable = True
        self._resume()

    # httptools callbacks: they raise nothing, so the parser's state stays its own.

    def on_message_begin(self) -> None:
        if self.refused:
            return
        self.request = HttpRequest("", b"", CIMultiDict())
        self.url.clear()
        self.head = 0
        self.chunks = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.request is not None:
            self.request.headers.add(name.decode("latin-1"), value.decode("latin-1"))
        self._count_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        request = self.request
        if request is None:
            return
        if self.parser.should_upgrade():
            self._refuse(_json_error(400, "protocol upgrades are not served", "Upgrade"))
            return
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.target = bytes(self.url)
        length = request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.body_limit:
            self._too_large()
            return
        if request.headers.get("Expect", "").lower() == "100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.request is None:
            return
        self.size += len(body)
        if self.size > self.server.body_limit:
            self._too_large()
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        request = self.request
        if request is None:
            return
        self.request = None
        request.body = b"".join(self.chunks)
        self.chunks = []
        self._enqueue(request, self.parser.should_keep_alive())

    # Answering

    def close_when_idle(self) -> None:
        """Close after the requests already queued are answered (now, if there are none)."""
        self.closing = True
        if self.serving is None and self.request is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _enqueue(self, item: HttpRequest | HttpReply, keep_alive: bool) -> None:
        self.queue.append((item, keep_alive))
        if len(self.queue) >= _QUEUE_LIMIT:
            self._pause()
        if self.serving is None:
            self.serving = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        while self.queue and self.transport is not None and not self.transport.is_closing():
            item, keep_alive = self.queue.popleft()
            head_only = False
            if isinstance(item, HttpReply):
                reply = item
            else:
                head_only = item.method == "HEAD"
                try:
                    reply = await self.server.handler(item)
                except Exception:
                    # pagerd's own trouble: 503, which senders retry (never a 4xx).
                    log.exception("intake_http.handler_failed")
                    reply = _json_error(503, "pagerd is unavailable: internal error", "")
                    reply.headers.append(("Retry-After", "5"))
                if self.transport.is_closing():
                    break  # the client left meanwhile
            keep_alive = keep_alive and not self.closing
            self._write(reply, keep_alive, head_only)
            if not keep_alive:
                self.transport.close()
                break
            if len(self.queue) < _QUEUE_LIMIT:
                self._resume()
        self.serving = None
        self.active_at = asyncio.get_running_loop().time()
        if self.closing and self.request is None and self.transport is not None:
            self.transport.close()

    def _write(self, reply: HttpReply, keep_alive: bool, head_only: bool) -> None:
        assert self.transport is not None
        status = HTTPStatus(reply.status)
        head = [b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode()),
                b"Date: %s\r\n" % self.server.date(),
                b"Content-Type: %s\r\nContent-Length: %d\r\n" % (reply.content_type,
                                                                  len(reply.body))]
        head += [b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
                 for name, value in reply.headers]
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if not head_only:  # a HEAD answer has the length of the body it does not carry
            head.append(reply.body)
        self.transport.write(b"".join(head))  # one write: one segment, one wake-up

    def _refuse(self, reply: HttpReply) -> None:
        """Answer `reply` in turn, then close: the rest of what this client sent is not
        read."""
        self.request = None
        self._pause()
        if not self.refused:
            self.refused = self.closing = True
            self._enqueue(reply, False)

    def _too_large(self) -> None:
        limit = self.server.body_limit
        self._refuse(_json_error(413, f"larger than {limit} bytes", "body"))

    def _count_head(self, size: int) -> None:
        self.head += size
        if self.head > HEAD_LIMIT and self.request is not None:
            self._refuse(_json_error(431, f"request head larger than {HEAD_LIMIT} bytes",
                                     "headers"))

    def _pause(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _resume(self) -> None:
        if (not self.reading and self.writable and not self.closing
                and self.transport is not None):
            self.reading = True
            self.transport.resume_reading()

    def _arm_idle(self, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.active_at = self.active_at or loop.time()
        self.idle_timer = loop.call_later(delay or self.server.keep_alive, self._idle)

    def _idle(self) -> None:
        # One timer per keep-alive period, not one per request: it looks at the last activity.
        quiet = asyncio.get_running_loop().time() - self.active_at
        if self.serving is not None or quiet < self.server.keep_alive:
            self._arm_idle(self.server.keep_alive - quiet if self.serving is None else None)
        elif self.transport is not None:
            self.idle_timer = None
            self.transport.close()


def _plain(exc: Exception) -> str:
    # httptools' messages are safe to echo, but keep them JSON-string safe and short.
    return "".join(c for c in str(exc) if c.isprintable() and c not in '"\\')[:80]
