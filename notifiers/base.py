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
