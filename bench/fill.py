"""Filling a server with N open (firing) alerts, for the memory and restart figures.

The fill rate is not a figure, so this runs in the orchestrator's process: 100 alerts per
request, a few requests in flight, every response checked.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from bench.alerts import GROUPS, batch
from bench.servers import Server

PER_REQUEST = 100
IN_FLIGHT = 8


async def _post_all(server: Server, bodies: list[bytes]) -> None:
    headers = {"Content-Type": "application/json"}
    if server.token:
        headers["Authorization"] = f"Bearer {server.token}"
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(server.url, data=body, headers=headers) as resp:
                text = await resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"{server.kind} refused a fill: {resp.status} {text!r}")

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(IN_FLIGHT)))


def fill(server: Server, run: str, start: int, stop: int) -> None:
    """Post alerts number `start` to `stop` - 1 (all new, all firing) to `server`."""
    bodies = []
    for first in range(start, stop, PER_REQUEST):
        instances = [f"{run}-{n}" for n in range(first, min(stop, first + PER_REQUEST))]
        bodies.append(orjson.dumps(batch(server.kind, first // PER_REQUEST % GROUPS,
                                         instances)))
    asyncio.run(_post_all(server, bodies))
