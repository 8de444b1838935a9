"""What every notifier takes and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification about an incident to one receiver.

    `idempotency_key` stays the same across retries of this notification and changes for
    the next one, so a receiver can drop the one repeat a crash may cause.
    """

    incident: dict[str, Any]
    receiver: str
    idempotency_key: str
    incident_url: str


class DeliveryError(Exception):
    """A send failed; `retryable` says whether the same send may succeed later."""

    def __init__(self, reason: str, *, retryable: bool, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retryable = retryable
        self.detail = detail


class Notifier(Protocol):
    """Sends a delivery, or raises DeliveryError."""

    kind: str

    async def send(self, delivery: Delivery) -> None:
        """Deliver once (with the notifier's own short retries)."""


@dataclass(frozen=True, slots=True)
class PageItem:
    """One incident as a page shows it to a person."""

    incident_id: int
    severity: str
    title: str
    owner: str | None = None
    # Per phone, the smallest number not used there in 24 h: replies `4a`, `4r`, `4e`.
    reply_code: str = ""
    # Signed, expiring links by action: "ack", "resolve", "escalate".
    links: dict[str, str] | None = None
    runbook_url: str = ""
    contacts: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """A message to one person about one incident, or a bundle of several."""

    user: str
    # E.164 phone number for SMS and voice, an e-mail address, or a URL for chat.
    address: str
    items: tuple[PageItem, ...]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider said when it took a page (e.g. Twilio's message SID)."""

    provider_id: str | None = None


class PageNotifier(Protocol):
    """Pages a person by one contact method, or raises DeliveryError."""

    kind: str

    async def send_page(self, page: Page) -> Receipt:
        """Send once (with the notifier's own short retries); permanent errors not retried."""
