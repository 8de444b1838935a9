"""The shared models: a canonical alert, an incident and a timeline entry.

Every intake (Alertmanager, Azure Monitor, event APIs) turns its payload into `Alert`s; the
routing tree groups alerts into incidents; the store keeps both with their timelines.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class AlertStatus(enum.StrEnum):
    """Whether the source says the alert is firing or resolved."""

    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentState(enum.StrEnum):
    """An incident is triggered, then acknowledged, then resolved."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Alert:
    """One source alert, in pagerd's canonical form.

    `fingerprint` is its identity (16 hex digits, as Alertmanager computes it over the
    labels, unless the source names the identity, as Azure's alertId does). `starts_at` and
    `ends_at` are timezone-aware; `ends_at` is None when the source gives no end.
    """

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""
    integration: str = ""
    # A stateless alert never gets a Resolved from its source (Azure activity log, budgets).
    stateless: bool = False
    # Source attributes kept for people and later issues (e.g. Alertmanager's groupKey).
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TimelineEntry:
    """One event in an incident's life, in order, with who and when."""

    incident_id: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]
