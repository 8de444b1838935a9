"""The webhook notifier's quick tries, against a local endpoint that fails as scripted."""

from __future__ import annotations

import time

import aiohttp
import pytest
from aiohttp import web

from pagerd.notifiers import webhook
from pagerd.notifiers.base import DeliveryError
from pagerd.notifiers.webhook import WebhookNotifier, verify

from helpers import serve_app

SECRET = "s3cret"


class Endpoint:
    """Answers the scripted statuses first, then 200; keeps every try's time and headers."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.tries: list[tuple[float, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.tries.append((time.monotonic(), dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


async def post(endpoint: Endpoint, attempts: int = 3) -> None:
    app = web.Application()
    app.router.add_post("/hook", endpoint.handle)
    async with serve_app(app) as base, aiohttp.ClientSession() as session:
        notifier = WebhookNotifier(session, f"{base}/hook", secret=SECRET, timeout=5,
                                   quick_attempts=attempts)
        await notifier.post_json(b'{"incident":1}', "key-1")


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook, "RETRY_WAIT", 0.05)
    monkeypatch.setattr(webhook, "RETRY_JITTER", 0.0)


async def test_a_send_that_passes_is_sent_once_signed() -> None:
    endpoint = Endpoint()
    await post(endpoint)

    ((_, headers, body),) = endpoint.tries
    assert headers["Idempotency-Key"] == "key-1"
    assert verify(SECRET, headers["X-Pagerd-Signature"], body, now=time.time())


async def test_a_retryable_failure_is_tried_again_after_a_wait_that_doubles() -> None:
    endpoint = Endpoint(503, 429)
    await post(endpoint)

    times = [at for at, _, _ in endpoint.tries]
    assert len(times) == 3
    assert {headers["Idempotency-Key"] for _, headers, _ in endpoint.tries} == {"key-1"}
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1


async def test_the_quick_tries_end_with_the_last_failure() -> None:
    endpoint = Endpoint(500, 502, 503, 504)
    with pytest.raises(DeliveryError) as caught:
        await post(endpoint)

    assert (caught.value.reason, caught.value.retryable) == ("http_503", True)
    assert len(endpoint.tries) == 3


@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_refusal_is_not_tried_again(attempts: int) -> None:
    endpoint = Endpoint(400)
    with pytest.raises(DeliveryError) as caught:
        await post(endpoint, attempts)

    assert (caught.value.reason, caught.value.retryable) == ("http_400", False)
    assert len(endpoint.tries) == 1


async def test_one_quick_attempt_is_one_try() -> None:
    endpoint = Endpoint(503)
    with pytest.raises(DeliveryError):
        await post(endpoint, attempts=1)
    assert len(endpoint.tries) == 1
