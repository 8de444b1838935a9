"""What the notifiers' short retries share: which failures to retry, and quiet warnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState

from pagerd.notifiers.base import DeliveryError


def retryable(exc: BaseException) -> bool:
    """Retry only what may pass: a DeliveryError that says so."""
    return isinstance(exc, DeliveryError) and exc.retryable


def warn_on_change(bound: Any) -> Callable[[RetryCallState], None]:
    """A tenacity hook that warns when an error first appears or changes, not every time."""
    seen: list[str] = []

    def hook(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, DeliveryError) else repr(exc)
        if not seen or seen[-1] != reason:
            bound.warning("page.retrying", reason=reason, attempt=state.attempt_number)
        seen.append(reason)

    return hook
