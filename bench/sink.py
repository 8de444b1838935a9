"""The local webhook sink both servers notify: it stamps when each alert first arrives.

Run as its own process (`python -m bench.sink --port P`). A latency alert carries
`bench_run`, `bench_id` and `bench_sent` (the client's CLOCK_MONOTONIC, which is one clock
for every process on the machine) in its annotations; the sink keeps, per run, the delay of
the first notification that carries each id. Both Alertmanager's webhook and pagerd's put
annotations at `alerts[].annotations`.

GET /results?run=R answers {"latencies": [seconds...]}; GET /stats counts notifications.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from aiohttp import web


class Sink:
    """What has arrived so far."""

    def __init__(self) -> None:
        self.notifications = 0
        self.bytes = 0
        self.first: dict[str, dict[str, float]] = {}

    async def hook(self, request: web.Request) -> web.Response:
        """A notification from either server."""
        body = await request.read()
        arrived = time.monotonic()
        self.notifications += 1
        self.bytes += len(body)
        doc = orjson.loads(body)
        for alert in doc.get("alerts") or ():
            self._stamp(alert.get("annotations") or {}, arrived)
        return web.Response(text="ok")

    def _stamp(self, notes: dict[str, Any], arrived: float) -> None:
        run = notes.get("bench_run")
        if run is None:
            return
        seen = self.first.setdefault(run, {})
        alert_id = notes["bench_id"]
        if alert_id not in seen:
            seen[alert_id] = arrived - float(notes["bench_sent"])

    async def results(self, request: web.Request) -> web.Response:
        """The first-notification delays of one run."""
        seen = self.first.get(request.query["run"], {})
        return web.json_response({"latencies": list(seen.values())})

    async def stats(self, request: web.Request) -> web.Response:
        """Counters, and a readiness probe for the orchestrator."""
        return web.json_response({"notifications": self.notifications, "bytes": self.bytes})


def build_app() -> web.Application:
    """The sink's routes."""
    sink = Sink()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/hook", sink.hook)
    app.router.add_get("/results", sink.results)
    app.router.add_get("/stats", sink.stats)
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None,
                print=None, handle_signals=True)


if __name__ == "__main__":
    main()
