"""The dispatcher: claims due notification timers and delivers them.

A timer is claimed (recorded as in flight) before its send leaves and finished after, in
the store; so a crash repeats at most the sends that were in flight, and a timer whose
send failed is re-armed durably with backoff, surviving restarts and long outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import structlog

from pagerd.clock import Clock
from pagerd.daemon.metrics import Metrics
from pagerd.notifiers.base import Delivery, DeliveryError
from pagerd.notifiers.webhook import WebhookNotifier
from pagerd.settings import ReceiverConfig, Settings
from pagerd.store.base import Store, StoreUnavailable, Timer

log = structlog.get_logger("pagerd.dispatcher")

DEFAULT_REPEAT = 4 * 3600.0
DEFAULT_GROUP_INTERVAL = 300.0
MAX_BACKOFF = 300.0


def digest(incident: dict[str, Any]) -> str:
    """What a notification says, so an unchanged incident is not re-sent early."""
    alerts = sorted((a["fingerprint"], a["status"]) for a in incident["alerts"])
    state = (incident["state"], incident["severity"], alerts)
    return hashlib.sha256(orjson.dumps(state)).hexdigest()[:16]


def backoff(attempts: int) -> float:
    """Seconds before a failed notification is tried again: exponential, jittered, capped."""
    base = min(MAX_BACKOFF, 2.0 ** min(attempts, 12))
    return base * random.uniform(0.5, 1.0)


class Dispatcher:
    """Delivers due notifications until stopped."""

    def __init__(
        self, store: Store, metrics: Metrics, settings: Callable[[], Settings],
        session: aiohttp.ClientSession, clock: Clock, *, lease: float = 120.0,
        concurrency: int = 64, poll: float = 0.5,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._session = session
        self._clock = clock
        self._lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._poll = poll
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Something may be due now: look without waiting for the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and deliver due timers until `stop`."""
        while not self._stopping:
            self._wake.clear()
            claimed = await self._claim()
            for timer in claimed:
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver(timer))
                self._in_flight.add(task)
                task.add_done_callback(self._done)
            if len(claimed) < self._concurrency:
                # The poll: timers fall due by time as well as by a change that wakes us.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatcher.delivery_crashed", error=repr(task.exception()))

    async def stop(self, grace: float) -> None:
        """Stop claiming; let sends in flight finish within `grace` seconds, then cancel them.

        A cancelled send keeps its claim in the store and goes out again after restart.
        """
        self._stopping = True
        self._wake.set()
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _claim(self) -> list[Timer]:
        free = max(1, self._concurrency - len(self._in_flight))
        try:
            return await self._store.claim_due(self._clock.time(), free, self._lease)
        except StoreUnavailable as exc:
            log.warning("dispatcher.store_unavailable", error=str(exc))
            await asyncio.sleep(self._poll)
            return []

    async def _deliver(self, timer: Timer) -> None:
        if timer.kind == "auto_resolve":
            if await self._store.auto_resolve(timer, self._clock.time()):
                log.info("incident.auto_resolved", incident=timer.incident_id)
                self.wake()  # its receivers have a resolution to send
            return
        incident = await self._store.incident(timer.incident_id, timeline=False)
        settings = self._settings()
        now = self._clock.time()
        route = settings.routing.tree.get(incident["route_id"]) if incident else None
        repeat = route.repeat_interval if route else DEFAULT_REPEAT
        group_interval = route.group_interval if route else DEFAULT_GROUP_INTERVAL
        receiver = settings.receivers.get(timer.target)
        if incident is None or receiver is None:
            await self._finish(timer, "skipped", {}, None, None, None)
            return

        is_open = incident["state"] != "resolved"
        hooks = [h for h in receiver.webhooks if is_open or h.send_resolved]
        current = digest(incident)
        next_due = now + repeat if is_open else None
        unchanged = current == timer.last_digest and timer.last_sent_at is not None and (
            now - timer.last_sent_at < repeat
        )
        if not hooks or unchanged:
            if unchanged and is_open and timer.last_sent_at is not None:
                next_due = timer.last_sent_at + repeat
            await self._finish(timer, "skipped", {}, None, next_due, now + group_interval)
            return
        await self._send(timer, incident, receiver, settings, current, next_due, group_interval)

    async def _send(
        self, timer: Timer, incident: dict[str, Any], receiver: ReceiverConfig,
        settings: Settings, current: str, next_due: float | None, group_interval: float,
    ) -> None:
        delivery = Delivery(
            incident=incident, receiver=receiver.name,
            idempotency_key=f"pagerd-{incident['id']}-{receiver.name}-{timer.generation}",
            incident_url=f"{settings.external_url}/api/v1/incidents/{incident['id']}",
        )
        is_open = incident["state"] != "resolved"
        hooks = [h for h in receiver.webhooks if is_open or h.send_resolved]
        log_ = log.bind(incident=incident["id"], receiver=receiver.name, attempt=timer.attempts)
        try:
            await asyncio.gather(*(
                WebhookNotifier(self._session, hook.url, secret=hook.secret,
                                timeout=hook.timeout, max_alerts=hook.max_alerts).send(delivery)
                for hook in hooks
            ))
        except DeliveryError as exc:
            self._metrics.notification_failures.labels("webhook", exc.reason).inc()
            await self._failed(timer, exc, log_, next_due)
            return
        now = self._clock.time()
        self._metrics.notifications.labels("webhook").inc()
        self._metrics.notification_latency.labels("webhook").observe(max(0.0, now - timer.due_at))
        if timer.attempts > 1:
            log_.info("notification.delivered_after_retries", attempts=timer.attempts)
        entry = {"receiver": receiver.name, "attempt": timer.attempts, "notifier": "webhook",
                 "state": incident["state"]}
        await self._finish(timer, "sent", entry, current, next_due, now + group_interval)

    async def _failed(
        self, timer: Timer, exc: DeliveryError, log_: Any, next_due: float | None
    ) -> None:
        now = self._clock.time()
        entry = {"receiver": timer.target, "attempt": timer.attempts, "notifier": "webhook",
                 "reason": exc.reason}
        if exc.retryable:
            delay = backoff(timer.attempts)
            # Warn when a failure first appears; later attempts of the same outage are quiet.
            emit = log_.warning if timer.attempts == 1 else log_.debug
            emit("notification.failed", reason=exc.reason, retry_in=round(delay, 1))
            await self._store.retry_timer(timer, now, now + delay, entry)
            return
        log_.error("notification.rejected", reason=exc.reason)
        await self._finish(timer, "failed", entry, None, next_due, None)

    async def _finish(
        self, timer: Timer, outcome: str, entry: dict[str, Any], current: str | None,
        next_due: float | None, dirty_due: float | None,
    ) -> None:
        await self._store.finish_timer(
            timer, self._clock.time(), outcome=outcome, entry=entry, digest=current,
            next_due=next_due, dirty_due=dirty_due,
        )
