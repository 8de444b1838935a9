"""The error an intake raises for a payload it cannot take: a 4xx naming the field."""

from __future__ import annotations


class PayloadError(Exception):
    """The payload is malformed; `field` is a JSON path such as `alerts[3].labels`."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status

    def to_json(self) -> dict[str, str]:
        """The JSON error body answered to the sender."""
        return {"error": self.reason, "field": self.field}
