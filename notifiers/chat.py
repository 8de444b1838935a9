"""Chat notifiers: a page posted to a Slack incoming webhook or a Microsoft Teams webhook.

Both post JSON to a secret URL (the URL is the credential, so it is never logged), and both
retry like the generic webhook notifier: timeouts, connection errors, 429 and 5xx a few times
with jittered backoff; any other 4xx (a deleted webhook, an archived channel, a payload the
service refuses) is permanent.

Text from alerts is shown, never interpreted: Slack's control characters are escaped, and
Teams gets alert text in `TextRun`s, which Adaptive Cards do not read as markdown, so a title
cannot smuggle a link or a mention into the message. Only the signed action links, the
runbook and the contacts' URLs become buttons or links.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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
from pagerd.notifiers.base import DeliveryError, Page, PageItem, Receipt
from pagerd.notifiers.retry import retryable, warn_on_change

log = structlog.get_logger("pagerd.notifier")

QUICK_ATTEMPTS = 3
DEFAULT_TIMEOUT = 10.0
# Slack allows 50 blocks a message; two per incident and a few around them.
MAX_ITEMS = 20
TITLE_MAX = 300
LINK_LABELS = {"ack": "Acknowledge", "resolve": "Resolve", "escalate": "Escalate",
               "view": "View"}
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


class SlackWebhook:
    """Posts pages to a Slack incoming webhook, as blocks with a plain-text fallback."""

    kind = "slack"

    def __init__(
        self, session: aiohttp.ClientSession, url: str | None = None, *,
        timeout: float = DEFAULT_TIMEOUT, quick_attempts: int = QUICK_ATTEMPTS,
    ) -> None:
        """With no `url`, each page goes to its own `page.address`."""
        self._poster = _Poster(session, url, self.kind, timeout, quick_attempts)

    async def send_page(self, page: Page) -> Receipt:
        """Post once, with a few retries on temporary failures only."""
        await self._poster.post(page, slack_payload(page))
        return Receipt()


class TeamsWebhook:
    """Posts pages to a Microsoft Teams webhook (a Workflows "when a Teams webhook request is
    received" trigger, or a legacy incoming webhook) as an Adaptive Card."""

    kind = "teams"

    def __init__(
        self, session: aiohttp.ClientSession, url: str | None = None, *,
        timeout: float = DEFAULT_TIMEOUT, quick_attempts: int = QUICK_ATTEMPTS,
    ) -> None:
        """With no `url`, each page goes to its own `page.address`."""
        self._poster = _Poster(session, url, self.kind, timeout, quick_attempts)

    async def send_page(self, page: Page) -> Receipt:
        """Post once, with a few retries; the receipt has the workflow run id if given."""
        headers = await self._poster.post(page, teams_payload(page))
        return Receipt(provider_id=headers.get("x-ms-workflow-run-id"))


def fallback_text(page: Page) -> str:
    """One line naming the incident(s): what a phone's notification shows."""
    if len(page.items) == 1:
        item = page.items[0]
        return _cut(f"[{item.severity}] #{item.incident_id} {item.title}", TITLE_MAX)
    listed = ", ".join(f"#{item.incident_id} {item.severity}" for item in page.items)
    return _cut(f"{len(page.items)} incidents for {page.user}: {listed}", TITLE_MAX)


# Slack

def slack_payload(page: Page) -> dict[str, Any]:
    """The incoming-webhook body: header, a section (and contacts) per incident, a footer."""
    blocks: list[dict[str, Any]] = [{
        "type": "header",
        "text": {"type": "plain_text", "text": _cut(fallback_text(page), 150), "emoji": False},
    }]
    for item in page.items[:MAX_ITEMS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_item(item)}})
        if item.contacts:
            contacts = "; ".join(_contact(contact) for contact in item.contacts)
            blocks.append(_slack_context(f"Contacts: {contacts}"))
    more = len(page.items) - MAX_ITEMS
    footer = f"…and {more} more. " if more > 0 else ""
    blocks.append(_slack_context(f"{footer}pagerd paged {page.user}. Links work once."))
    return {
        "text": _slack_escape(fallback_text(page)),
        "blocks": blocks,
        # The links are single-use action links: no reason for Slack to fetch them.
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _slack_item(item: PageItem) -> str:
    lines = [f"*{_slack_escape(_heading(item))}*", _slack_escape(_cut(item.title, TITLE_MAX))]
    links = [_slack_link(url, LINK_LABELS.get(action, action))
             for action, url in (item.links or {}).items() if _is_web(url)]
    if item.runbook_url and _is_web(item.runbook_url):
        links.append(_slack_link(item.runbook_url, "Runbook"))
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)


def _slack_context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(text)}]}


def _slack_link(url: str, label: str) -> str:
    return f"<{_slack_escape(url)}|{_slack_escape(label)}>"


def _slack_escape(text: str) -> str:
    # Slack reads only these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Teams

def teams_payload(page: Page) -> dict[str, Any]:
    """A message with one Adaptive Card (1.4, which Teams renders on desktop and mobile)."""
    body: list[dict[str, Any]] = [{
        "type": "RichTextBlock",
        "inlines": [_run(fallback_text(page), weight="Bolder", size="Medium")],
    }]
    for item in page.items[:MAX_ITEMS]:
        body.append(_teams_item(item))
    more = len(page.items) - MAX_ITEMS
    footer = f"…and {more} more. " if more > 0 else ""
    body.append({"type": "RichTextBlock", "inlines": [
        _run(f"{footer}pagerd paged {page.user}. Links work once.", isSubtle=True)]})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }


def _teams_item(item: PageItem) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"type": "RichTextBlock", "inlines": [_run(_heading(item), weight="Bolder")]},
        {"type": "RichTextBlock", "inlines": [_run(_cut(item.title, TITLE_MAX))]},
    ]
    if item.contacts:
        contacts = "; ".join(_contact(contact) for contact in item.contacts)
        items.append({"type": "RichTextBlock", "inlines": [
            _run(f"Contacts: {contacts}", isSubtle=True)]})
    actions = [_open_url(LINK_LABELS.get(action, action), url)
               for action, url in (item.links or {}).items() if _is_web(url)]
    if item.runbook_url and _is_web(item.runbook_url):
        actions.append(_open_url("Runbook", item.runbook_url))
    if actions:
        items.append({"type": "ActionSet", "actions": actions})
    return {"type": "Container", "separator": True, "items": items}


def _run(text: str, **style: str | bool) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def _open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


# Shared

def _heading(item: PageItem) -> str:
    owner = f" · {item.owner}" if item.owner else ""
    return f"#{item.incident_id} · {item.severity}{owner}"


def _contact(contact: dict[str, str]) -> str:
    name = contact.get("name", "")
    role = f" ({contact['role']})" if contact.get("role") else ""
    rest = ", ".join(f"{key} {value}" for key, value in contact.items()
                     if key not in ("name", "role"))
    return f"{name}{role}: {rest}" if rest else f"{name}{role}"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _is_web(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


class _Poster:
    """One JSON POST with quick retries, quiet logs, and the URL kept out of them."""

    def __init__(self, session: aiohttp.ClientSession, url: str | None, kind: str,
                 timeout: float, attempts: int) -> None:
        self._session = session
        self._url = url
        self._kind = kind
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts

    async def post(self, page: Page, document: dict[str, Any]) -> dict[str, str]:
        """POST `document`; the response headers, or DeliveryError."""
        url = self._url or page.address
        if not _is_web(url):
            raise DeliveryError("no_address", retryable=False, detail="not an http(s) URL")
        body = orjson.dumps(document)
        bound = log.bind(notifier=self._kind, user=page.user, host=urlsplit(url).hostname)
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            retry=retry_if_exception(retryable),
            before_sleep=warn_on_change(bound),
            reraise=True,
        ):
            with attempt:
                headers = await self._once(url, body, page.idempotency_key)
        if attempt.retry_state.attempt_number > 1:
            bound.info("page.delivered_after_retries",
                       attempts=attempt.retry_state.attempt_number)
        return headers

    async def _once(self, url: str, body: bytes, idempotency_key: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"pagerd/{__version__}",
            # Slack and Teams ignore it; a proxy or a custom endpoint may not.
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                text = (await response.read())[:200].decode(errors="replace")
                status = response.status
                received = {key.lower(): value for key, value in response.headers.items()}
        except TimeoutError as exc:
            raise DeliveryError("timeout", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError("connection", retryable=True, detail=type(exc).__name__) from exc
        if 200 <= status < 300:
            return received
        # 429 and 5xx may pass; another 4xx (e.g. Slack's channel_is_archived) will not.
        retryable = status == 429 or status >= 500
        raise DeliveryError(f"http_{status}", retryable=retryable, detail=text.strip())


