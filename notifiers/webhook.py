"""The generic webhook notifier: a signed JSON POST.

The body is signed with HMAC-SHA256 over `<timestamp>.<body>` and sent as
`X-Pagerd-Signature: t=<timestamp>,v1=<hex>`, so a receiver can check both origin and
freshness. `Idempotency-Key` is stable across retries of one notification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pagerd import __version__
from pagerd.notifiers.base import Delivery, DeliveryError, Page, Receipt

log = structlog.get_logger("pagerd.notifier")

# Within one claimed attempt: a few quick tries. Longer outages are retried durably by
# the dispatcher, which re-arms the timer, so a restart loses nothing.
QUICK_ATTEMPTS = 3
# Between quick tries: 0.2 s, doubling, plus up to 0.2 s of jitter, at most 2 s.
RETRY_WAIT = 0.2
RETRY_JITTER = 0.2
RETRY_MAX_WAIT = 2.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300) -> bool:
    """Check a signature header as a receiver would: right key, fresh timestamp."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, header)


def payload(delivery: Delivery, max_alerts: int) -> dict[str, Any]:
    """The JSON document a webhook receiver gets."""
    incident = delivery.incident
    alerts = incident["alerts"]
    truncated = 0
    if max_alerts and len(alerts) > max_alerts:
        truncated = len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    return {
        "version": "1",
        "receiver": delivery.receiver,
        "incident": {
            key: incident[key] for key in (
                "id", "state", "severity", "owner", "title", "route_id", "group_labels",
                "opened_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
            )
        } | {"url": delivery.incident_url},
        "alerts": alerts,
        "truncatedAlerts": truncated,
    }


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable


class WebhookNotifier:
    """POSTs an incident to one URL."""

    kind = "webhook"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, *, secret: str | None,
        timeout: float, max_alerts: int = 0, quick_attempts: int = QUICK_ATTEMPTS,
    ) -> None:
        self._session = session
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_alerts = max_alerts
        self._attempts = quick_attempts

    async def send(self, delivery: Delivery) -> None:
        """POST with a few jittered retries on retryable failures only."""
        body = orjson.dumps(payload(delivery, self._max_alerts))
        await self.post_json(body, delivery.idempotency_key)

    async def post_json(self, body: bytes, idempotency_key: str) -> None:
        """POST `body`, signed, with a few jittered retries on retryable failures only."""
        # The first try goes without tenacity: its loop costs about 0.1 ms of CPU a send,
        # a third of the HTTP client's own, and nearly every send passes at the first try.
        try:
            await self._post(body, idempotency_key)
            return
        except DeliveryError as exc:
            if not exc.retryable or self._attempts < 2:
                raise
        await asyncio.sleep(min(RETRY_MAX_WAIT, RETRY_WAIT + random.uniform(0, RETRY_JITTER)))
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts - 1),
            # The waits go on doubling from the one slept above.
            wait=wait_exponential_jitter(multiplier=2 * RETRY_WAIT, max=RETRY_MAX_WAIT,
                                         jitter=RETRY_JITTER),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                await self._post(body, idempotency_key)

    async def _post(self, body: bytes, idempotency_key: str) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"pagerd/{__version__}",
            "Idempotency-Key": idempotency_key,
        }
        if self._secret:
            headers["X-Pagerd-Signature"] = sign(self._secret, int(time.time()), body)
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError as exc:
            raise DeliveryError("timeout", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError("connection", retryable=True, detail=type(exc).__name__) from exc
        if 200 <= status < 300:
            return
        # 429 and 5xx may pass; another 4xx will fail the same way however often we try.
        retryable = status == 429 or status >= 500
        raise DeliveryError(f"http_{status}", retryable=retryable)


class WebhookPager:
    """Pages a person through their own webhook URL (a chat bridge, a home-grown app)."""

    kind = "webhook"

    def __init__(self, session: aiohttp.ClientSession, *, secret: str | None = None,
                 timeout: float = 10.0) -> None:
        self._session = session
        self._secret = secret
        self._timeout = timeout

    async def send_page(self, page: Page) -> Receipt:
        """POST the page as JSON to the person's URL (the page's address)."""
        body = {
            "version": "1",
            "user": page.user,
            "incidents": [
                {"id": item.incident_id, "severity": item.severity, "title": item.title,
                 "owner": item.owner, "reply_code": item.reply_code, "links": item.links or {},
                 "runbook_url": item.runbook_url, "contacts": list(item.contacts)}
                for item in page.items
            ],
        }
        notifier = WebhookNotifier(self._session, page.address, secret=self._secret,
                                   timeout=self._timeout)
        await notifier.post_json(orjson.dumps(body), page.idempotency_key)
        return Receipt()
