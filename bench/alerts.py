"""Alert bodies for both servers: Alertmanager's API v2 list and its webhook payload v4.

Every alert carries the same label set shape in both formats, spread over `GROUPS` groups
(alertname x team), so both servers route and group the same traffic. The wrk Lua script
(`bench.lua`) builds the same shapes for the throughput runs.
"""

from __future__ import annotations

import time
from typing import Any

GROUPS = 500
TEAMS = 50
GENERATOR_URL = "http://prometheus.local/graph?g0.expr=up"

_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint (FNV-1a 64), as a real Alertmanager webhook carries it."""
    h = _OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _PRIME) & _MASK
            h = ((h ^ 0xFF) * _PRIME) & _MASK
    return f"{h:016x}"


def group_labels(group: int) -> dict[str, str]:
    """The grouping labels of group number `group` (0 <= group < GROUPS)."""
    return {"alertname": f"Bench{group % 10}", "team": f"team-{group // 10 % TEAMS}"}


def labels_for(group: int, instance: str) -> dict[str, str]:
    """One alert's labels: unique through `instance`."""
    return {**group_labels(group), "instance": instance, "job": "bench", "severity": "warning"}


def now_rfc3339() -> str:
    """The current UTC time, to the second, as Prometheus sends `startsAt`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def am_alert(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """One alert as POST /api/v2/alerts takes it (what Prometheus sends)."""
    return {"labels": labels, "annotations": annotations, "startsAt": now_rfc3339(),
            "generatorURL": GENERATOR_URL}


def webhook_alert(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """One alert as Alertmanager's webhook payload v4 carries it."""
    return {"status": "firing", "labels": labels, "annotations": annotations,
            "startsAt": now_rfc3339(), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": GENERATOR_URL, "fingerprint": fingerprint(labels)}


def webhook_body(alerts: list[dict[str, Any]], group_by: dict[str, str]) -> dict[str, Any]:
    """A whole Alertmanager webhook notification around `alerts` of one group."""
    key = ",".join(f'{name}="{value}"' for name, value in sorted(group_by.items()))
    return {
        "version": "4", "groupKey": f"{{}}:{{{key}}}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "pagerd", "groupLabels": group_by,
        "commonLabels": group_by, "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093", "alerts": alerts,
    }


def batch(kind: str, group: int, instances: list[str],
          annotations: dict[str, str] | None = None) -> Any:
    """A request body of len(instances) alerts of one group, for server `kind`."""
    notes = annotations or {"summary": "bench alert"}
    labels = [labels_for(group, instance) for instance in instances]
    if kind == "alertmanager":
        return [am_alert(item, notes) for item in labels]
    return webhook_body([webhook_alert(item, notes) for item in labels], group_labels(group))
