"""The intake port's HTTP/1.1 server: httptools parses, each connection answers its requests
in order, each answer goes out in one write.

An intake process does little per request (the gate, a journal entry, a 2xx), so the HTTP
layer around it is most of its cost. Measured on the bench machine, one core, small JSON
POSTs: aiohttp's application 64 us a request, uvicorn with a bare ASGI app 34 us, this 9 us.
It serves only what the intake port needs: requests with a length or chunked bodies,
keep-alive and pipelining, `Expect: 100-continue`, limits on the head, the body, the queue of
pipelined requests and the time a request may take, an idle timeout and a graceful stop.
Anything else it refuses and closes.
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
# Pipelined requests a connection may hold unanswered before it stops parsing more.
_QUEUE_LIMIT = 8
# Bytes handed to the parser at a time, so a full queue stops it within one slice.
_SLICE = 8 * 1024
# A request begun must have come whole within this long (a trickle holds a connection).
REQUEST_TIMEOUT = 30.0
# After a refusal, what the client still sends is read and dropped for this long (up to
# _LINGER_BYTES, or the body limit if larger), so the refusal reaches it rather than a reset.
_LINGER = 2.0
_LINGER_BYTES = 1024 * 1024
# A connection closed with answers the client does not read is cut off after this long.
CLOSE_DEADLINE = 5.0
# Connections with a request under way (being read, waiting or being answered) at once.
# Each may hold a body up to the body limit, so past this many a request is answered 503
# (to retry) as soon as its head is read, its body never read, and its connection closed:
# what requests hold stays bounded whatever clients send. Idle keep-alive connections hold
# no body, and no slot.
MAX_CONNECTIONS = 512


@dataclass
class HttpRequest:
    """One request, its body whole (within the body limit)."""

    method: str
    target: bytes
    headers: CIMultiDict[str]
    body: bytes = b""
    version: str = "1.1"


@dataclass(frozen=True, slots=True)
class HttpReply:
    """One answer: a status, the body's content type and the body, other headers."""

    status: int
    content_type: bytes
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[HttpRequest], Awaitable[HttpReply]]

_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                 for status in HTTPStatus}


def _json_error(status: int, message: str, name: str) -> HttpReply:
    return HttpReply(status, b"application/json", orjson.dumps({"error": message, "field": name}))


_UPGRADE = _json_error(400, "protocol upgrades are not served", "Upgrade")
_HEAD_TOO_LARGE = _json_error(431, f"request head larger than {HEAD_LIMIT} bytes", "headers")
_TOO_MANY_CONNECTIONS = HttpReply(
    503, b"application/json", orjson.dumps({"error": "pagerd is unavailable: connections"}),
    [("Retry-After", "1")])


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
                 request_timeout: float = REQUEST_TIMEOUT,
                 close_deadline: float = CLOSE_DEADLINE,
                 max_connections: int = MAX_CONNECTIONS,
                 turned_away: Callable[[], HttpReply] = lambda: _TOO_MANY_CONNECTIONS) -> None:
        self.handler = handler
        self.body_limit = body_limit
        self.max_connections = max_connections
        self.turned_away = turned_away  # the answer past max_connections
        self.busy = 0  # connections holding a slot: with a request under way
        self.keep_alive = keep_alive
        self.request_timeout = request_timeout
        self.close_deadline = close_deadline
        self.date = _Date()
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # answering, one per busy connection
        self._all_closed = asyncio.Event()
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self, sock: socket) -> None:
        """Serve connections accepted on the listening socket `sock`."""
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(lambda: _Connection(self), sock=sock))

    def forget(self, connection: _Connection) -> None:
        """A connection has closed."""
        self.connections.discard(connection)
        if not self.connections:
            self._all_closed.set()

    async def stop(self, grace: float) -> None:
        """Stop accepting; close idle connections now and busy ones once they have answered
        what they hold; after `grace` seconds, cut off what is left. Handlers whose clients
        left still run to their end, within the same grace."""
        deadline = time.monotonic() + grace
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
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - time.monotonic()))
        for server in self._servers:
            await server.wait_closed()


class _Connection(asyncio.Protocol):
    """One client connection: parses requests as they come, answers them one by one."""

    def __init__(self, server: IntakeHttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[tuple[HttpRequest | HttpReply, bool]] = deque()
        self.queued_bytes = 0
        self.unparsed: bytes | None = None  # held back while the queue is full
        self.serving: asyncio.Task[None] | None = None
        self.stopping = False  # the server stops: answer what is held, then close
        self.refused = False  # a refusal is queued: nothing more is parsed
        self.reading = True
        self.drained: asyncio.Future[None] | None = None  # set while the client reads nothing
        self.idle_timer: asyncio.TimerHandle | None = None
        self.request_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.active_at = 0.0
        # The request being parsed; None between requests and once one is refused.
        self.request: HttpRequest | None = None
        self.in_head = True
        self.head_bytes = 0  # read since the head began, by slice: a line not yet ended counts
        self.head_size = 0  # the request line's target and the headers, exactly
        self.url = bytearray()
        self.chunks: list[bytes] = []
        self.size = 0
        self.lingering = -1  # bytes dropped since a refusal was sent; -1 when not lingering
        self.slot = False  # one of the server's max_connections, while a request is under way
        self.turned_away = False  # the request being read found no slot: refused at its head

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._free_slot()
        self.server.forget(self)
        for timer in (self.idle_timer, self.request_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        # A request being answered finishes (its journal entry and poke); its answer is
        # not written.

    def data_received(self, data: bytes) -> None:
        self.active_at = asyncio.get_running_loop().time()
        if self.lingering >= 0:
            self.lingering += len(data)
            if self.lingering > max(_LINGER_BYTES, self.server.body_limit):
                self.abort()
        elif self.unparsed is not None:
            self.unparsed += data  # what arrived before reading paused
        elif not self.refused:
            self._feed(data)

    def eof_received(self) -> bool:
        return False  # the client is done sending: close once the answers are written

    def pause_writing(self) -> None:
        # The client does not read its answers: take no more requests from it until it does.
        loop = asyncio.get_running_loop()
        self.drained = loop.create_future()
        self._pause()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None
        self._resume()

    # Parsing

    def _feed(self, data: bytes) -> None:
        for start in range(0, len(data), _SLICE):
            if self.refused:
                return
            if self._full():
                self.unparsed = data[start:]
                self._pause()
                return
            piece = data[start:start + _SLICE]
            if self.in_head:
                self.head_bytes += len(piece)
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                self._refuse(_UPGRADE)
            except httptools.HttpParserError as exc:
                self._refuse(_json_error(400, f"malformed HTTP: {_plain(exc)}", "request"))
            # Counted as it arrives too: the parser tells of a header only once its line ends.
            if self.in_head and self.head_bytes > HEAD_LIMIT:
                self._refuse(_HEAD_TOO_LARGE)
        if self.request is not None and self.request_timer is None and not self.refused:
            # A request left incomplete by this read: it has this long to come whole.
            loop = asyncio.get_running_loop()
            self.request_timer = loop.call_later(self.server.request_timeout, self._too_slow)

    def _full(self) -> bool:
        return len(self.queue) >= _QUEUE_LIMIT or (
            bool(self.queue) and self.queued_bytes >= self.server.body_limit)

    # httptools callbacks: they raise nothing, so the parser's state stays its own.

    def on_message_begin(self) -> None:
        if self.refused:
            return
        self.turned_away = not self._take_slot()
        self.request = HttpRequest("", b"", CIMultiDict())
        self.head_size = 0
        self.url.clear()
        self.chunks = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        if self.request is not None:
            self.url += url
            self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.request is not None and self.in_head:  # not a chunked body's trailers
            self.request.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            self.head_size += len(name) + len(value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        request = self.request
        if request is None:
            return
        if self.head_size > HEAD_LIMIT:
            self._refuse(_HEAD_TOO_LARGE)
            return
        if self.parser.should_upgrade():
            self._refuse(_UPGRADE)
            return
        request.method = self.parser.get_method().decode("ascii", "replace")
        if self.turned_away and request.method not in ("GET", "HEAD"):
            # Health checks carry no body: they are answered even when every slot is taken.
            self._refuse(self.server.turned_away())
            return
        request.target = bytes(self.url)
        request.version = self.parser.get_http_version()
        length = request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.body_limit:
            self._too_large()
            return
        # Only when nothing is being answered, or the 100 would land inside another answer.
        if (request.headers.get("Expect", "").lower() == "100-continue"
                and request.version != "1.0" and not self.queue and self.serving is None
                and self.transport is not None):
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
        self.in_head = True
        self.head_bytes = 0
        self._stop_request_timer()
        request = self.request
        if request is None:
            return
        self.request = None
        request.body = b"".join(self.chunks)
        self.chunks = []
        self.queued_bytes += len(request.body)
        self._enqueue(request, self.parser.should_keep_alive())

    # Answering

    def close_when_idle(self) -> None:
        """Close once the requests held are answered (now, if there are none)."""
        self.stopping = True
        if self.serving is None and self.request is None and not self.queue:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _enqueue(self, item: HttpRequest | HttpReply, keep_alive: bool) -> None:
        self.queue.append((item, keep_alive))
        if self.serving is None:
            self.serving = asyncio.get_running_loop().create_task(self._serve())
            self.server.tasks.add(self.serving)
            self.serving.add_done_callback(self.server.tasks.discard)

    async def _serve(self) -> None:
        try:
            await self._answer_queued()
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            # A bug here must not leave the connection stuck with nobody answering.
            log.exception("intake_http.connection_failed")
            self.abort()
        finally:
            self.serving = None
            self.active_at = asyncio.get_running_loop().time()
        if self.request is None and not self.queue:
            self._free_slot()  # idle now: a keep-alive connection holds no slot
            if self.stopping:
                self._close()

    async def _answer_queued(self) -> None:
        transport = self.transport
        assert transport is not None
        while self.queue and not transport.is_closing():
            item, keep_alive = self.queue.popleft()
            head_only = False
            version = "1.1"
            if isinstance(item, HttpReply):
                reply = item
            else:
                self.queued_bytes -= len(item.body)
                head_only, version = item.method == "HEAD", item.version
                reply = await self._handle(item)
                if transport.is_closing():
                    return  # the client left meanwhile
            last = not self.queue and self.request is None
            keep_alive = keep_alive and not (self.stopping and last)
            if self.drained is not None:
                await self.drained  # the client reads its earlier answers first
                if transport.is_closing():
                    return
            self._write(reply, keep_alive, head_only, version)
            if not keep_alive:
                if isinstance(item, HttpReply):
                    self._linger()
                else:
                    self._close()
                return
            if self.unparsed is not None and not self._full():
                held, self.unparsed = self.unparsed, None
                self._feed(held)
            self._resume()

    async def _handle(self, request: HttpRequest) -> HttpReply:
        try:
            return await self.server.handler(request)
        except Exception:
            # pagerd's own trouble: 503, which senders retry (never a 4xx).
            log.exception("intake_http.handler_failed")
            reply = _json_error(503, "pagerd is unavailable: internal error", "")
            reply.headers.append(("Retry-After", "5"))
            return reply

    def _write(self, reply: HttpReply, keep_alive: bool, head_only: bool, version: str
               ) -> None:
        assert self.transport is not None
        head = [_STATUS_LINES[reply.status], b"Date: %s\r\n" % self.server.date(),
                b"Content-Type: %s\r\nContent-Length: %d\r\n" % (reply.content_type,
                                                                  len(reply.body))]
        head += [b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
                 for name, value in reply.headers]
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        elif version == "1.0":
            head.append(b"Connection: keep-alive\r\n")  # 1.0 closes unless told otherwise
        head.append(b"\r\n")
        if not head_only:  # a HEAD answer has the length of the body it does not carry
            head.append(reply.body)
        self.transport.write(b"".join(head))  # one write: one segment, one wake-up

    def _refuse(self, reply: HttpReply) -> None:
        """Answer the requests before this one, then `reply`, then close: nothing more
        this client sends is parsed."""
        self.request = None
        self._stop_request_timer()
        if not self.refused:
            self.refused = True
            self._pause()
            self._enqueue(reply, False)

    def _stop_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _too_large(self) -> None:
        limit = self.server.body_limit
        self._refuse(_json_error(413, f"larger than {limit} bytes", "body"))

    def _too_slow(self) -> None:
        self.request_timer = None
        if self.request is not None:
            timeout = self.server.request_timeout
            self._refuse(_json_error(408, f"request not whole within {timeout:g} s",
                                     "request"))

    def _linger(self) -> None:
        """Close after a refusal, reading and dropping what the client still sends for a
        while: closing with unread bytes would reset the connection, and the refusal with
        it."""
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.lingering = 0
        self.reading = True
        self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        self.close_timer = loop.call_later(_LINGER, self._close)

    def _close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.close()
        # close() waits for the answers to be written; a client that reads none is cut off.
        loop = asyncio.get_running_loop()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = loop.call_later(self.server.close_deadline, self.abort)

    def _take_slot(self) -> bool:
        """Hold one of the server's slots while a request is under way; False if none is
        free."""
        if not self.slot:
            if self.server.busy >= self.server.max_connections:
                return False
            self.slot = True
            self.server.busy += 1
        return True

    def _free_slot(self) -> None:
        if self.slot:
            self.slot = False
            self.server.busy -= 1

    def _pause(self) -> None:
        if self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def _resume(self) -> None:
        if (not self.reading and self.drained is None and not self.refused
                and self.unparsed is None and not self._full() and self.transport is not None):
            self.reading = True
            self.transport.resume_reading()

    def _arm_idle(self, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.active_at = self.active_at or loop.time()
        self.idle_timer = loop.call_later(delay or self.server.keep_alive, self._idle)

    def _idle(self) -> None:
        # One timer per keep-alive period, not one per request: it looks at the last activity.
        self.idle_timer = None
        quiet = asyncio.get_running_loop().time() - self.active_at
        if self.serving is not None and self.drained is None:
            self._arm_idle()  # answering: not idle
        elif quiet < self.server.keep_alive:
            self._arm_idle(self.server.keep_alive - quiet)
        else:
            self._close()


def _plain(exc: Exception) -> str:
    # httptools' messages are safe to echo, but keep them short and printable.
    return "".join(c for c in str(exc) if c.isprintable())[:80]
