"""The latency load generator: one new alert per POST at Poisson arrivals (open loop).

Run as its own process (`python -m bench.latency ...`); prints one JSON line of counts.
Sends are scheduled at exponential gaps and each goes out in its own task, so a slow
server does not slow the arrival process (no coordinated omission). The send time,
CLOCK_MONOTONIC taken just before the request is written, travels in an annotation; the
sink computes the delay of the first notification. Alerts sent during the warm-up carry
a different run name and are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

import aiohttp
import orjson

from bench.alerts import batch


class Client:
    """Posts single-alert requests to one server and counts the outcomes."""

    def __init__(self, session: aiohttp.ClientSession, kind: str, url: str,
                 token: str | None) -> None:
        self.session = session
        self.kind = kind
        self.url = url
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.ok = 0
        self.failed = 0

    async def send(self, run: str, seq: int) -> None:
        """POST one new alert, in a group of its own, stamped with its send time."""
        alert_id = f"{run}-{seq}"
        notes = {"summary": "bench latency", "bench_run": run, "bench_id": alert_id,
                 "bench_sent": repr(time.monotonic())}
        body = orjson.dumps(batch(self.kind, seq % 500, [alert_id], notes))
        try:
            async with self.session.post(self.url, data=body, headers=self.headers) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    self.ok += 1
                    return
        except aiohttp.ClientError:
            pass  # counted below: a failed send is reported, not retried
        self.failed += 1


async def arrivals(client: Client, run: str, rate: float, duration: float,
                   rng: random.Random) -> int:
    """Send at Poisson arrivals of `rate`/s for `duration` s; returns how many were sent."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time()
    due = start
    seq = 0
    while True:
        due += rng.expovariate(rate)
        if due - start >= duration:
            break
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(client.send(run, seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        seq += 1
    if tasks:
        await asyncio.wait(tasks)
    return seq


async def main_async(args: argparse.Namespace) -> dict[str, int]:
    """Warm up, then the measured run; the counts of the measured run."""
    rng = random.Random(args.seed)
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.warmup > 0:
            warm = Client(session, args.kind, args.url, args.token)
            await arrivals(warm, f"{args.run}-warmup", args.rate, args.warmup, rng)
        client = Client(session, args.kind, args.url, args.token)
        sent = await arrivals(client, args.run, args.rate, args.duration, rng)
    return {"sent": sent, "ok": client.ok, "failed": client.failed}


def main() -> None:
    """Parse arguments, run, print the counts as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["alertmanager", "pagerd"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--run", required=True)
    parser.add_argument("--seed", type=int, default=1)
    counts = asyncio.run(main_async(parser.parse_args()))
    sys.stdout.write(orjson.dumps(counts).decode() + "\n")


if __name__ == "__main__":
    main()
