"""The intake port's HTTP/1.1 server, byte by byte over loopback: keep-alive, pipelining,
limits, refusals, timeouts and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import orjson
import pytest

from pagerd.daemon.intake_http import HEAD_LIMIT, HttpReply, HttpRequest, IntakeHttpServer
from pagerd.daemon.intake_process import shared_socket

from helpers import free_port

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Echo:
    """A handler that answers with what it got; it can be held, or made to fail."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []
        self.arrived = asyncio.Event()
        self.hold: asyncio.Event | None = None
        self.finished = 0

    async def __call__(self, request: HttpRequest) -> HttpReply:
        self.seen.append(request)
        self.arrived.set()
        if self.hold is not None and request.method != "GET":  # health checks never wait
            await self.hold.wait()
        if request.target == b"/fail":
            raise RuntimeError("handler trouble")
        self.finished += 1
        body = orjson.dumps({"method": request.method, "target": request.target.decode(),
                             "body": request.body.decode()})
        return HttpReply(200, b"application/json", body, [("X-Seen", str(len(self.seen)))])


@contextlib.asynccontextmanager
async def serving(handler: Echo, **options: float) -> AsyncIterator[tuple[IntakeHttpServer, int]]:
    port = free_port()
    server = IntakeHttpServer(handler, body_limit=int(options.pop("body_limit", 100)),
                              **options)
    await server.start(shared_socket("127.0.0.1", port))
    try:
        yield server, port
    finally:
        await server.stop(1)


async def connect(port: int) -> Streams:
    return await asyncio.open_connection("127.0.0.1", port)


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names), body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def post(target: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    handler = Echo()
    async with serving(handler) as (_, port):
        reader, writer = await connect(port)
        writer.write(post("/a", b"one"))
        status, headers, body = await response(reader)
        assert status == 200 and orjson.loads(body)["body"] == "one"
        assert headers["content-type"] == "application/json" and "date" in headers

        # Twenty requests in one write: twenty answers, in order, on the same connection.
        writer.write(b"".join(post(f"/p{n}", str(n).encode()) for n in range(20)))
        answers = [orjson.loads((await response(reader))[2]) for _ in range(20)]
        assert [a["target"] for a in answers] == [f"/p{n}" for n in range(20)]
        assert "connection" not in headers
        writer.close()


async def test_a_flood_of_pipelined_requests_is_held_back_not_queued() -> None:
    """Parsing stops while a connection holds a full queue of unanswered requests; what it
    has not parsed waits, and is answered in order once the queue drains."""
    handler = Echo()
    handler.hold = asyncio.Event()
    async with serving(handler) as (server, port):
        reader, writer = await connect(port)
        writer.write(b"".join(post(f"/f{n}", b"") for n in range(2000)))
        await asyncio.wait_for(handler.arrived.wait(), 5)
        await asyncio.sleep(0.1)
        (connection,) = server.connections
        assert len(connection.queue) < 8 + 8 * 1024 // len(post("/f0000", b""))
        handler.hold.set()
        answers = [orjson.loads((await response(reader))[2])["target"] for _ in range(2000)]
        assert answers == [f"/f{n}" for n in range(2000)]
        writer.close()


async def test_chunked_bodies_and_expect_continue() -> None:
    handler = Echo()
    async with serving(handler) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert orjson.loads((await response(reader))[2])["body"] == "abcde"

        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
            b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"ok")
        assert orjson.loads((await response(reader))[2])["body"] == "ok"
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    post("/big", b"x" * 101),
    b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
    b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"40\r\n" + b"y" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64 + b"\r\n",
], ids=["length", "announced", "chunked"])
async def test_a_body_over_the_limit_is_refused_and_the_connection_closed(
        request_bytes: bytes) -> None:
    handler = Echo()
    async with serving(handler) as (_, port):
        reader, writer = await connect(port)
        writer.write(request_bytes)
        status, headers, body = await response(reader)
        assert (status, orjson.loads(body)["field"]) == (413, "body")
        assert headers["connection"] == "close"
        assert await closed(reader)
        assert handler.seen == []


@pytest.mark.parametrize(("request_bytes", "status", "field"), [
    (b"NONSENSE\r\n\r\n", 400, "request"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "request"),
    (b"GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 400, "Upgrade"),
    (b"GET /x HTTP/1.1\r\nX-Big: " + b"z" * (HEAD_LIMIT + 1) + b"\r\n\r\n", 431, "headers"),
], ids=["garbage", "smuggling", "upgrade", "huge-head"])
async def test_malformed_requests_get_a_json_4xx_and_a_close(
        request_bytes: bytes, status: int, field: str) -> None:
    handler = Echo()
    async with serving(handler) as (_, port):
        reader, writer = await connect(port)
        writer.write(request_bytes)
        got, _, body = await response(reader)
        assert (got, orjson.loads(body)["field"]) == (status, field)
        assert await closed(reader)
        assert handler.seen == []


async def test_a_header_that_never_ends_is_refused_at_the_head_limit() -> None:
    async with serving(Echo()) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        for _ in range(HEAD_LIMIT // 4096 + 4):
            writer.write(b"a" * 4096)
        status, _, body = await response(reader)
        assert (status, orjson.loads(body)["field"]) == (431, "headers")


async def test_requests_before_a_refused_one_are_answered_first() -> None:
    handler = Echo()
    async with serving(handler) as (_, port):
        reader, writer = await connect(port)
        writer.write(post("/a", b"1") + post("/b", b"2")
                     + b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        assert [(await response(reader))[0] for _ in range(3)] == [200, 200, 413]
        assert await closed(reader)
        assert [r.target for r in handler.seen] == [b"/a", b"/b"]


async def test_a_refusal_reaches_a_client_still_sending_its_body() -> None:
    """The rest of an oversized body is read and dropped for a while, so the client gets
    its 413 rather than a reset (which senders retry)."""
    async with serving(Echo()) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        writer.write(b"x" * 300_000)
        status, _, _ = await response(reader)
        assert status == 413
        assert await closed(reader)


async def test_a_request_that_trickles_in_is_cut_at_the_request_timeout() -> None:
    async with serving(Echo(), request_timeout=0.3) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12")
        for _ in range(4):  # a byte now and then keeps it from being idle, not from this
            await asyncio.sleep(0.1)
            writer.write(b"3")
        status, _, body = await response(reader)
        assert (status, orjson.loads(body)["field"]) == (408, "request")
        assert await closed(reader)


async def test_a_client_that_reads_no_answers_is_cut_off() -> None:
    async with serving(Echo(), keep_alive=0.2, close_deadline=0.2) as (server, port):
        _, writer = await connect(port)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(200):  # far more answers than the socket buffers hold
            writer.write(b"".join(post(f"/{n}", b"z" * 50) for n in range(50)))
            await asyncio.sleep(0)
        for _ in range(100):
            if not server.connections:
                break
            await asyncio.sleep(0.05)
        assert server.connections == set()
        writer.close()


async def test_connection_close_and_http_1_0_are_honoured() -> None:
    async with serving(Echo()) as (_, port):
        reader, writer = await connect(port)
        writer.write(post("/a", b"", "Connection: close"))
        assert (await response(reader))[1]["connection"] == "close"
        assert await closed(reader)

        reader, writer = await connect(port)
        writer.write(b"GET /old HTTP/1.0\r\n\r\n")
        assert (await response(reader))[0] == 200
        assert await closed(reader)

        reader, writer = await connect(port)
        writer.write(b"GET /kept HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert (await response(reader))[1]["connection"] == "keep-alive"
        writer.write(b"GET /again HTTP/1.0\r\n\r\n")
        assert (await response(reader))[0] == 200
        assert await closed(reader)


async def test_a_head_answer_carries_no_body() -> None:
    async with serving(Echo()) as (_, port):
        reader, writer = await connect(port)
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n" + post("/next", b"after"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: " in head
        # The next answer follows the head at once: no body between them.
        assert orjson.loads((await response(reader))[2])["body"] == "after"
        writer.close()


async def test_a_failing_handler_is_a_503_to_retry() -> None:
    async with serving(Echo()) as (_, port):
        reader, writer = await connect(port)
        writer.write(post("/fail", b""))
        status, headers, _ = await response(reader)
        assert (status, headers["retry-after"]) == (503, "5")
        writer.write(post("/after", b""))  # the connection still serves
        assert (await response(reader))[0] == 200
        writer.close()


async def test_an_idle_connection_is_closed_after_the_keep_alive_time() -> None:
    async with serving(Echo(), keep_alive=0.2) as (server, port):
        reader, writer = await connect(port)
        writer.write(post("/a", b""))
        assert (await response(reader))[0] == 200
        assert await closed(reader)
        assert server.connections == set()


async def test_stop_finishes_what_is_inside_and_closes_the_rest() -> None:
    handler = Echo()
    handler.hold = asyncio.Event()
    async with serving(handler) as (server, port):
        idle_reader, _ = await connect(port)
        busy_reader, busy_writer = await connect(port)
        busy_writer.write(post("/slow", b"inside"))
        await asyncio.wait_for(handler.arrived.wait(), 5)

        stopping = asyncio.create_task(server.stop(5))
        assert await closed(idle_reader)  # idle: closed at once
        with pytest.raises(OSError):
            await connect(port)  # no new connections
        handler.hold.set()
        status, headers, body = await response(busy_reader)
        assert (status, headers["connection"]) == (200, "close")
        assert orjson.loads(body)["body"] == "inside"
        assert await closed(busy_reader)
        await stopping


async def test_a_client_that_leaves_does_not_cut_its_request_short() -> None:
    """Its handler runs to its end (an intake request's journal entry and poke), and a stop
    waits for it."""
    handler = Echo()
    handler.hold = asyncio.Event()
    async with serving(handler) as (server, port):
        _, writer = await connect(port)
        writer.write(post("/gone", b""))
        await asyncio.wait_for(handler.arrived.wait(), 5)
        writer.close()
        stopping = asyncio.create_task(server.stop(5))
        await asyncio.sleep(0.1)
        assert not stopping.done()
        handler.hold.set()
        await asyncio.wait_for(stopping, 5)
        assert handler.finished == 1 and server.tasks == set()


async def test_requests_past_the_connection_limit_are_answered_503_and_closed() -> None:
    """While max_connections connections have a request under way, another connection's
    request is refused with a 503 to retry as soon as its head is read (its body unread),
    and the connection closed; a GET is still answered. An idle keep-alive connection holds
    no slot."""
    handler = Echo()
    async with serving(handler, max_connections=2) as (server, port):
        idle_reader, idle_writer = await connect(port)
        idle_writer.write(post("/in", b"x"))
        assert (await response(idle_reader))[0] == 200  # then idle, kept alive

        handler.hold = asyncio.Event()
        busy = [await connect(port) for _ in range(2)]
        for _, writer in busy:
            writer.write(post("/held", b"x"))
        for _ in range(2):
            handler.arrived.clear()
            if len(handler.seen) < 3:
                await asyncio.wait_for(handler.arrived.wait(), 5)
        assert len(handler.seen) == 3 and server.busy == 2

        idle_writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await response(idle_reader))[0] == 200
        idle_writer.write(post("/over", b"y" * 50))
        status, headers, body = await response(idle_reader)
        assert (status, headers["retry-after"]) == (503, "1")
        assert orjson.loads(body)["error"]
        assert await closed(idle_reader)
        assert b"/over" not in [request.target for request in handler.seen]

        handler.hold.set()
        for reader, _ in busy:
            assert (await response(reader))[0] == 200
        assert server.busy == 0
        reader, writer = await connect(port)
        writer.write(post("/again", b"z"))
        assert (await response(reader))[0] == 200
        for _, other in [*busy, (reader, writer)]:
            other.close()
