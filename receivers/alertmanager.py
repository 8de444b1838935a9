"""Intake for Prometheus Alertmanager's webhook payload, version 4."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pagerd.fingerprint import fingerprint as compute_fingerprint
from pagerd.models import Alert, AlertStatus
from pagerd.receivers.errors import PayloadError
from pagerd.receivers.fields import expect_object, optional_str, string_map, timestamp

_STATUSES = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")


@dataclass(slots=True)
class Notification:
    """One Alertmanager webhook notification: a group's alerts."""

    alerts: list[Alert]
    group_key: str
    status: str
    receiver: str
    truncated_alerts: int
    external_url: str

    @property
    def partial(self) -> bool:
        """Alerts of the group were cut from the payload (max_alerts)."""
        return self.truncated_alerts > 0


def parse_notification(body: Any, integration: str = "alertmanager") -> Notification:
    """Validate a decoded webhook body; raises PayloadError naming the first bad field."""
    payload = expect_object(body, "body")
    version = payload.get("version", "4")
    if version != "4":
        raise PayloadError("version", f"unsupported webhook version {version!r}, want \"4\"")
    status = payload.get("status", "firing")
    if not isinstance(status, str) or status not in _STATUSES:
        raise PayloadError("status", "must be \"firing\" or \"resolved\"")
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts", "must be a non-negative integer")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        string_map(payload.get(key), key)
    group_key = optional_str(payload.get("groupKey"), "groupKey")
    receiver = optional_str(payload.get("receiver"), "receiver")
    external_url = optional_str(payload.get("externalURL"), "externalURL")

    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("alerts", "must be a list of alerts")
    source = {"group_key": group_key, "external_url": external_url} if group_key else {}
    alerts = [
        _parse_alert(item, f"alerts[{index}]", integration, source)
        for index, item in enumerate(raw_alerts)
    ]
    return Notification(alerts, group_key, status, receiver, truncated, external_url)


def _parse_alert(item: Any, field: str, integration: str, source: dict[str, str]) -> Alert:
    alert = expect_object(item, field)
    raw_status = alert.get("status")
    status = _STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise PayloadError(f"{field}.status", "must be \"firing\" or \"resolved\"")
    labels = string_map(alert.get("labels"), f"{field}.labels", required=True)
    if not any(labels.values()):
        raise PayloadError(f"{field}.labels", "must have at least one non-empty label")
    if "" in labels:
        raise PayloadError(f"{field}.labels", "label names must not be empty")
    given = alert.get("fingerprint")
    if given is not None and (not isinstance(given, str) or not _FINGERPRINT.match(given)):
        raise PayloadError(f"{field}.fingerprint", "must be 16 lowercase hex digits")
    return Alert(
        # Alertmanager's own fingerprint when it sends one (it is computed the same way);
        # older payloads lack it, so compute it.
        fingerprint=given or compute_fingerprint(labels),
        status=status,
        labels={name: value for name, value in labels.items() if value != ""},
        annotations=string_map(alert.get("annotations"), f"{field}.annotations"),
        starts_at=timestamp(alert.get("startsAt"), f"{field}.startsAt"),
        ends_at=timestamp(alert.get("endsAt"), f"{field}.endsAt"),
        generator_url=optional_str(alert.get("generatorURL"), f"{field}.generatorURL"),
        integration=integration,
        source=source,
    )
