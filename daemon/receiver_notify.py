"""Notifying receivers (Alertmanager's sense): signed webhooks about an incident's state.

Alertmanager's timing applies: the first notification after `group_wait`, changes no
sooner than `group_interval` after the last send, and a repeat every `repeat_interval`
while the incident is open. An unchanged incident is not sent again early.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import structlog

from pagerd.clock import Clock
from pagerd.daemon.dispatcher import backoff
from pagerd.daemon.metrics import Metrics
from pagerd.notifiers.base import Delivery, DeliveryError, Page, PageItem, PageNotifier
from pagerd.notifiers.chat import SlackWebhook, TeamsWebhook
from pagerd.notifiers.webhook import WebhookNotifier
from pagerd.routing.tree import DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL
from pagerd.settings import ChatConfig, ReceiverConfig, Settings
from pagerd.store.base import Store, Timer

log = structlog.get_logger("pagerd.notify")


def chat_page(delivery: Delivery, settings: Settings, url: str) -> Page:
    """An incident as a chat message: the page model chat notifiers take."""
    incident = delivery.incident
    component = settings.components.get(incident["owner"] or "")
    state = incident["state"]
    title = incident["title"] if state == "triggered" else f"[{state}] {incident['title']}"
    item = PageItem(incident_id=incident["id"], severity=incident["severity"], title=title,
                    owner=incident["owner"], links={"view": delivery.incident_url},
                    runbook_url=component.runbook_url if component else "",
                    contacts=component.contacts if component else ())
    return Page(user=delivery.receiver, address=url, items=(item,),
                idempotency_key=delivery.idempotency_key)


def digest(incident: dict[str, Any]) -> str:
    """What a notification says, so an unchanged incident is not re-sent early."""
    alerts = sorted((a["fingerprint"], a["status"]) for a in incident["alerts"])
    state = (incident["state"], incident["severity"], alerts)
    return hashlib.sha256(orjson.dumps(state)).hexdigest()[:16]


class ReceiverNotifications:
    """The handler of `notify` timers."""

    def __init__(self, store: Store, metrics: Metrics, settings: Callable[[], Settings],
                 session: aiohttp.ClientSession, clock: Clock) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._session = session
        self._clock = clock

    async def __call__(self, timer: Timer) -> None:
        """Send the incident's current state to the timer's receiver, if it is due."""
        incident = await self._store.incident(timer.incident_id, timeline=False)
        settings = self._settings()
        receiver = settings.receivers.get(timer.target)
        if incident is None or receiver is None:
            await self._finish(timer, None, {}, None, None, None)
            return
        route = settings.routing.tree.get(incident["route_id"])
        repeat = route.repeat_interval if route else DEFAULT_REPEAT_INTERVAL
        group_interval = route.group_interval if route else DEFAULT_GROUP_INTERVAL

        now = self._clock.time()
        is_open = incident["state"] != "resolved"
        destinations = [h.send_resolved for h in receiver.webhooks] + [
            c.send_resolved for c in receiver.chats]
        wanted = any(is_open or send_resolved for send_resolved in destinations)
        current = digest(incident)
        next_due = now + repeat if is_open else None
        unchanged = current == timer.last_digest and timer.last_sent_at is not None and (
            now - timer.last_sent_at < repeat
        )
        if not wanted or unchanged:
            if unchanged and is_open and timer.last_sent_at is not None:
                next_due = timer.last_sent_at + repeat
            await self._finish(timer, None, {}, None, next_due, now + group_interval)
            return
        await self._send(timer, incident, receiver, settings, current, next_due,
                         group_interval)

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
        chats = [c for c in receiver.chats if is_open or c.send_resolved]
        log_ = log.bind(incident=incident["id"], receiver=receiver.name, attempt=timer.attempts)
        try:
            await asyncio.gather(
                *(WebhookNotifier(self._session, hook.url, secret=hook.secret,
                                  timeout=hook.timeout, max_alerts=hook.max_alerts).send(delivery)
                  for hook in hooks),
                *(self._chat(chat).send_page(chat_page(delivery, settings, chat.url))
                  for chat in chats),
            )
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
        await self._finish(timer, "notification.sent", entry, current, next_due,
                           now + group_interval)

    def _chat(self, chat: ChatConfig) -> PageNotifier:
        if chat.kind == "slack":
            return SlackWebhook(self._session, chat.url)
        return TeamsWebhook(self._session, chat.url)

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
        await self._finish(timer, "notification.failed", entry, None, next_due, None)

    async def _finish(
        self, timer: Timer, kind: str | None, entry: dict[str, Any], current: str | None,
        next_due: float | None, dirty_due: float | None,
    ) -> None:
        await self._store.finish_timer(
            timer, self._clock.time(), kind=kind, entry=entry, digest=current,
            next_due=next_due, dirty_due=dirty_due,
        )
