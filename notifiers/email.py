"""The e-mail notifier: a page as a plain-text and HTML message over SMTP (aiosmtplib).

The Message-ID is derived from the page's idempotency key, so the one repeat a crash can cause
carries the same Message-ID and mail systems that deduplicate on it show one message.
Each attempt opens its own connection: a page is rare enough that a pooled connection would
mostly be a stale one.

SMTP says which failures are worth retrying: a 4xx reply is temporary, a 5xx reply is not
(RFC 5321, section 4.2.1). Connection failures and timeouts are retried too; a TLS or
certificate failure, a missing server extension and a 5xx are permanent.
"""

from __future__ import annotations

import hashlib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from html import escape
from urllib.parse import urlsplit

import aiosmtplib
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pagerd.notifiers.base import DeliveryError, Page, PageItem, Receipt
from pagerd.notifiers.retry import retryable, warn_on_change

log = structlog.get_logger("pagerd.notifier")

QUICK_ATTEMPTS = 3
SUBJECT_MAX = 120
LINK_LABELS = {"ack": "Acknowledge", "resolve": "Resolve", "escalate": "Escalate",
               "view": "View"}


class EmailNotifier:
    """Pages a person by e-mail: `page.address` is their address."""

    kind = "email"

    def __init__(
        self, *, host: str, port: int | None = None, username: str | None = None,
        password: str | None = None, use_tls: bool = False, starttls: bool | None = None,
        from_addr: str, timeout: float = 30.0, tls_context: ssl.SSLContext | None = None,
        quick_attempts: int = QUICK_ATTEMPTS,
    ) -> None:
        """`use_tls` is TLS from the first byte (port 465); `starttls` None upgrades when the
        server offers it, True requires it, False never upgrades. `port` None picks 465, 587
        or 25 accordingly. `tls_context` trusts a private CA."""
        if use_tls and starttls:
            raise ValueError("use_tls and starttls are exclusive")
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._use_tls = use_tls
        self._starttls = starttls
        self._from = from_addr
        self._timeout = timeout
        self._tls_context = tls_context
        self._attempts = quick_attempts

    async def send_page(self, page: Page) -> Receipt:
        """Send with a few jittered retries on temporary failures only."""
        message = build_message(page, self._from)
        bound = log.bind(notifier=self.kind, user=page.user)
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            retry=retry_if_exception(retryable),
            before_sleep=warn_on_change(bound),
            reraise=True,
        ):
            with attempt:
                await self._send(message)
        if attempt.retry_state.attempt_number > 1:
            bound.info("page.delivered_after_retries",
                       attempts=attempt.retry_state.attempt_number)
        return Receipt(provider_id=message["Message-ID"])

    async def _send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message, hostname=self._host, port=self._port, username=self._username,
                password=self._password, use_tls=self._use_tls, start_tls=self._starttls,
                timeout=self._timeout, tls_context=self._tls_context,
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            raise classify(exc) from exc


def classify(exc: aiosmtplib.SMTPException | OSError | ValueError) -> DeliveryError:
    """The DeliveryError for what aiosmtplib (or the network) raised."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        temporary = any(400 <= code < 500 for code in codes)
        return DeliveryError(f"smtp_{codes[0] if codes else 'refused'}", retryable=temporary,
                             detail="recipient refused")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(f"smtp_{exc.code}", retryable=400 <= exc.code < 500,
                             detail=_first_line(exc.message))
    if isinstance(exc, TimeoutError):
        return DeliveryError("timeout", retryable=True)
    if isinstance(exc, ssl.SSLError):
        # A bad certificate or protocol mismatch is configuration: it will fail again.
        return DeliveryError("tls", retryable=False, detail=type(exc).__name__)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return DeliveryError("smtp_not_supported", retryable=False,
                             detail=_first_line(exc.message))
    if isinstance(exc, ConnectionError | OSError):
        return DeliveryError("connection", retryable=True, detail=type(exc).__name__)
    if isinstance(exc, aiosmtplib.SMTPException):
        return DeliveryError("smtp_error", retryable=False, detail=_first_line(exc.message))
    # aiosmtplib refuses an address it cannot send safely.
    return DeliveryError("bad_address", retryable=False, detail=str(exc))


def build_message(page: Page, from_addr: str) -> EmailMessage:
    """The whole message: headers, a plain-text part and an HTML alternative."""
    message = EmailMessage()
    message["From"] = from_addr
    message["To"] = page.address
    message["Subject"] = subject(page)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(page.idempotency_key, from_addr)
    # RFC 3834: out-of-office and other robots must not answer a page.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Pagerd-Incidents"] = ", ".join(str(item.incident_id) for item in page.items)
    message.set_content(plain_text(page))
    message.add_alternative(html_text(page), subtype="html")
    return message


def message_id(idempotency_key: str, from_addr: str) -> str:
    """A Message-ID that is the same for every send of one page."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(from_addr)[1].rpartition("@")[2] or "pagerd.invalid"
    return f"<{digest}.pagerd@{domain}>"


def subject(page: Page) -> str:
    """One line: the incident for a single page, the list for a bundle."""
    if len(page.items) == 1:
        item = page.items[0]
        text = f"[{item.severity}] #{item.incident_id} {item.title}"
    else:
        listed = ", ".join(f"#{item.incident_id} {item.severity}" for item in page.items)
        text = f"[pagerd] {len(page.items)} incidents: {listed}"
    # Titles come from alert annotations: no line breaks may reach a header.
    text = " ".join(text.split())
    return text if len(text) <= SUBJECT_MAX else text[:SUBJECT_MAX - 1] + "…"


def plain_text(page: Page) -> str:
    """The text/plain part."""
    blocks = [_plain_item(item) for item in page.items]
    footer = f"-- \npagerd paged {page.user}. Each link works once and expires."
    return "\n\n----\n\n".join(blocks) + "\n\n" + footer + "\n"


def _plain_item(item: PageItem) -> str:
    lines = [_heading(item), item.title, ""]
    lines += [f"{LINK_LABELS.get(action, action)}: {url}"
              for action, url in (item.links or {}).items()]
    if item.runbook_url:
        lines.append(f"Runbook: {item.runbook_url}")
    if item.contacts:
        lines.append("Contacts:")
        lines += [f"  {_contact(contact)}" for contact in item.contacts]
    return "\n".join(lines).rstrip()


def html_text(page: Page) -> str:
    """The text/html part: simple markup that mail clients render alike."""
    items = "<hr>".join(_html_item(item) for item in page.items)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a">'
        f"{items}<p style=\"font-size:14px;color:#4d4d4d\">pagerd paged "
        f"{escape(page.user)}. Each link works once and expires.</p></body></html>\n"
    )


def _html_item(item: PageItem) -> str:
    parts = [f"<h2 style=\"font-size:18px\">{escape(_heading(item))}</h2>",
             f"<p>{escape(item.title)}</p>"]
    links = [_anchor(url, LINK_LABELS.get(action, action))
             for action, url in (item.links or {}).items()]
    if item.runbook_url:
        links.append(_anchor(item.runbook_url, "Runbook"))
    if links:
        parts.append("<p>" + " &middot; ".join(links) + "</p>")
    if item.contacts:
        contacts = "".join(f"<li>{escape(_contact(contact))}</li>" for contact in item.contacts)
        parts.append(f"<p>Contacts:</p><ul>{contacts}</ul>")
    return "".join(parts)


def _heading(item: PageItem) -> str:
    owner = f" · {item.owner}" if item.owner else ""
    return f"#{item.incident_id} · {item.severity}{owner}"


def _anchor(url: str, label: str) -> str:
    # Only web links become anchors; anything else is shown, not made clickable.
    if urlsplit(url).scheme not in ("http", "https"):
        return f"{escape(label)}: {escape(url)}"
    return f'<a href="{escape(url, quote=True)}">{escape(label)}</a>'


def _contact(contact: dict[str, str]) -> str:
    name = contact.get("name", "")
    role = f" ({contact['role']})" if contact.get("role") else ""
    rest = ", ".join(f"{key} {value}" for key, value in contact.items()
                     if key not in ("name", "role"))
    return f"{name}{role}: {rest}" if rest else f"{name}{role}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


