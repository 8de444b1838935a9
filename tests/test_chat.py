"""Slack and Teams notifiers against local aiohttp servers standing in for the services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from pagerd.notifiers.base import DeliveryError, Page, PageItem
from pagerd.notifiers.chat import (
    ADAPTIVE_CARD,
    MAX_ITEMS,
    SlackWebhook,
    TeamsWebhook,
    slack_payload,
    teams_payload,
)

from helpers import serve_app

ITEM = PageItem(
    incident_id=123, severity="SEV1", title="Checkout error rate above 5%", owner="payments",
    links={"ack": "https://pagerd.example.com/l/k1.ack",
           "resolve": "https://pagerd.example.com/l/k1.res"},
    runbook_url="https://runbooks.example.com/checkout",
    contacts=({"name": "SRE on call", "role": "primary", "email": "sre@example.com"},),
)
PAGE = Page(user="alice", address="", items=(ITEM,), idempotency_key="page-1")
Reply = tuple[int, str, dict[str, str]]
HOSTILE = PageItem(incident_id=9, severity="SEV2",
                   title="<!channel> [click](https://evil.example.com) <https://evil|x> & co",
                   links={"ack": "javascript:alert(1)"})


@dataclass
class Service:
    """A webhook endpoint: answers scripted (status, body, headers) first, then success."""

    success: Reply
    script: list[tuple[int, str]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        body = await request.read()
        if self.script:
            status, text = self.script.pop(0)
            return web.Response(status=status, text=text)
        self.received.append(orjson.loads(body))
        status, text, headers = self.success
        return web.Response(status=status, text=text, headers=headers)


@contextlib.asynccontextmanager
async def service(success: Reply,
                  *script: tuple[int, str]) -> AsyncIterator[Service]:
    endpoint = Service(success, list(script))
    app = web.Application()
    app.router.add_post("/hook/{secret}", endpoint.handle)
    async with serve_app(app) as base:
        endpoint.url = f"{base}/hook/T000-B000-secret"
        yield endpoint


SLACK_OK: Reply = (200, "ok", {})
TEAMS_OK: Reply = (202, "", {"x-ms-workflow-run-id": "08584"})


def texts(document: Any) -> list[str]:
    """Every string in a JSON document."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [text for value in document.values() for text in texts(value)]
    if isinstance(document, list):
        return [text for value in document for text in texts(value)]
    return []


async def test_slack_posts_blocks_with_links() -> None:
    async with service(SLACK_OK) as slack, aiohttp.ClientSession() as session:
        receipt = await SlackWebhook(session, slack.url).send_page(PAGE)
    assert receipt.provider_id is None
    [body] = slack.received
    assert body["text"] == "[SEV1] #123 Checkout error rate above 5%"
    assert body["unfurl_links"] is False
    assert slack.headers[0]["Idempotency-Key"] == "page-1"
    types = [block["type"] for block in body["blocks"]]
    assert types == ["header", "section", "context", "context"]
    section = body["blocks"][1]["text"]["text"]
    assert "*#123 · SEV1 · payments*" in section
    assert "<https://pagerd.example.com/l/k1.ack|Acknowledge>" in section
    assert "<https://pagerd.example.com/l/k1.res|Resolve>" in section
    assert "<https://runbooks.example.com/checkout|Runbook>" in section
    contacts = body["blocks"][2]["elements"][0]["text"]
    assert "SRE on call (primary): email sre@example.com" in contacts


async def test_teams_posts_an_adaptive_card_with_open_url_actions() -> None:
    async with service(TEAMS_OK) as teams, aiohttp.ClientSession() as session:
        receipt = await TeamsWebhook(session, teams.url).send_page(PAGE)
    assert receipt.provider_id == "08584"
    [body] = teams.received
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    container = card["body"][1]
    actions = next(item for item in container["items"] if item["type"] == "ActionSet")["actions"]
    assert [(a["type"], a["title"], a["url"]) for a in actions] == [
        ("Action.OpenUrl", "Acknowledge", "https://pagerd.example.com/l/k1.ack"),
        ("Action.OpenUrl", "Resolve", "https://pagerd.example.com/l/k1.res"),
        ("Action.OpenUrl", "Runbook", "https://runbooks.example.com/checkout"),
    ]
    assert "#123 · SEV1 · payments" in texts(card)


def test_slack_escapes_alert_text() -> None:
    body = slack_payload(Page("alice", "", (HOSTILE,), "k"))
    section = body["blocks"][1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt;" in section
    assert "<https://evil" not in section and "&amp; co" in section
    assert "javascript:" not in orjson.dumps(body).decode()


def test_teams_shows_alert_text_as_text_runs_only() -> None:
    card = teams_payload(Page("alice", "", (HOSTILE,), "k"))["attachments"][0]["content"]
    blocks = [block for container in card["body"][1:2] for block in container["items"]]
    # No TextBlock (which reads markdown) anywhere: alert text is never parsed for links.
    assert '"type":"TextBlock"' not in orjson.dumps(card).decode()
    assert all(block["type"] == "RichTextBlock" for block in blocks)
    assert "javascript:" not in orjson.dumps(card).decode()


@pytest.mark.parametrize("payload", [slack_payload, teams_payload])
def test_big_bundles_are_capped(payload: Any) -> None:
    items = tuple(PageItem(incident_id=n, severity="SEV3", title=f"t{n}") for n in range(45))
    text = orjson.dumps(payload(Page("alice", "", items, "k"))).decode()
    assert f"#{MAX_ITEMS - 1} " in text and f"#{MAX_ITEMS} ·" not in text
    assert f"and {45 - MAX_ITEMS} more" in text
    if payload is slack_payload:
        assert len(payload(Page("alice", "", items, "k"))["blocks"]) <= 50


@pytest.mark.parametrize(("notifier", "success"), [
    (SlackWebhook, SLACK_OK), (TeamsWebhook, TEAMS_OK),
])
async def test_temporary_failures_are_retried(notifier: Any, success: Any) -> None:
    async with service(success, (503, "busy"), (429, "rate_limited")) as endpoint, \
            aiohttp.ClientSession() as session:
        with capture_logs() as logs:
            await notifier(session, endpoint.url).send_page(PAGE)
    assert len(endpoint.received) == 1 and len(endpoint.headers) == 3
    events = [(entry["event"], entry.get("reason")) for entry in logs]
    assert events == [("page.retrying", "http_503"), ("page.retrying", "http_429"),
                      ("page.delivered_after_retries", None)]
    # The webhook URL is the credential: it never reaches a log line.
    assert "secret" not in repr(logs)


@pytest.mark.parametrize(("notifier", "status", "text"), [
    (SlackWebhook, 410, "channel_is_archived"),
    (SlackWebhook, 404, "no_service"),
    (SlackWebhook, 400, "invalid_payload"),
    (TeamsWebhook, 400, "Bad Request"),
    (TeamsWebhook, 401, "DirectApiAuthorizationRequired"),
])
async def test_permanent_failures_are_not_retried(notifier: Any, status: int, text: str) -> None:
    async with service(SLACK_OK, (status, text)) as endpoint, \
            aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as caught:
            await notifier(session, endpoint.url).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == (f"http_{status}", False)
    assert caught.value.detail == text
    assert len(endpoint.headers) == 1


async def test_gives_up_after_quick_attempts() -> None:
    async with service(SLACK_OK, *[(500, "rollup_error")] * 5) as endpoint, \
            aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as caught:
            await SlackWebhook(session, endpoint.url, quick_attempts=2).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("http_500", True)
    assert len(endpoint.headers) == 2


async def test_unreachable_is_a_retryable_connection_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as caught:
            await TeamsWebhook(session, "http://127.0.0.1:9/hook",
                               quick_attempts=1).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("connection", True)


async def test_slow_service_times_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.3)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", slow)
    async with serve_app(app) as base, aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as caught:
            await SlackWebhook(session, f"{base}/hook", timeout=0.05,
                               quick_attempts=1).send_page(PAGE)
    assert (caught.value.reason, caught.value.retryable) == ("timeout", True)


async def test_without_a_url_the_page_address_is_used() -> None:
    async with service(SLACK_OK) as endpoint, aiohttp.ClientSession() as session:
        page = Page("alice", endpoint.url, (ITEM,), "page-2")
        await SlackWebhook(session).send_page(page)
        assert len(endpoint.received) == 1
        with pytest.raises(DeliveryError) as caught:
            mail = Page("alice", "alice@example.com", (ITEM,), "k")
            await SlackWebhook(session).send_page(mail)
    assert (caught.value.reason, caught.value.retryable) == ("no_address", False)
