"""Azure Monitor intake: find which of Azure's webhook schemas a payload uses, and parse it.

`parse_azure` takes the decoded JSON body of an action-group webhook and returns the alerts
it carries. It answers with a `PayloadError` (a 4xx naming the field) for a payload that is
malformed, and never with any other exception: a well-formed payload it does not recognise
becomes one generic alert that keeps the raw payload, so nothing Azure sends is dropped.

The schemas: the common alert schema (`azure_common`), the legacy ones (`azure_legacy`):
`AzureMonitorMetricAlert`, `Microsoft.Insights/activityLogs`, `Microsoft.Insights/LogAlert`,
`AIP Budget Notification`, and two without a `schemaId` (log search alerts v1 on Log
Analytics, classic metric alerts), told apart by their fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from pagerd.models import Alert, AlertStatus
from pagerd.receivers import azure_legacy as legacy
from pagerd.receivers.azure_common import SCHEMA_ID, parse_common
from pagerd.receivers.azure_fields import (
    AzureParse,
    Node,
    canonical_json,
    compact,
    fingerprint_of,
)
from pagerd.receivers.errors import PayloadError

__all__ = ["AzureParse", "parse_azure"]

log = structlog.get_logger(__name__)

_Parser = Callable[[Node, str], AzureParse]

_SCHEMAS: dict[str, _Parser] = {
    SCHEMA_ID.lower(): parse_common,
    legacy.METRIC_ALERT.lower(): legacy.parse_metric_alert,
    legacy.ACTIVITY_LOGS.lower(): legacy.parse_activity_log,
    legacy.BUDGET.lower(): legacy.parse_budget,
    legacy.LOG_ALERT.lower(): lambda body, integration: legacy.parse_log_alert(
        body.req_obj("data"), integration, schema=legacy.LOG_ALERT
    ),
}

# Top-level fields whose text makes a useful summary for a payload of unknown shape, such as
# a log search alert's custom JSON payload (`{"text": "My rule fired ..."}`).
_SUMMARY_KEYS = ("text", "summary", "title", "message", "description")


def parse_azure(payload: object, *, integration: str = "azure") -> AzureParse:
    """The alerts in one Azure Monitor webhook payload (the decoded JSON body).

    Raises `PayloadError` when the payload is malformed: not a JSON object, or a known
    schema with a missing or mistyped identity, state or time field.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("$", "expected a JSON object")
    body = Node(payload, "")
    try:
        return _dispatch(body, integration)
    except PayloadError:
        raise
    except Exception:
        # A parser bug must not lose the page nor answer 500 (Azure would retry it for
        # nothing): keep the payload whole, as for an unknown shape, and say so loudly.
        log.exception("azure.parser_failed", integration=integration)
        return generic(body, integration, reason="parser_error")


def _dispatch(body: Node, integration: str) -> AzureParse:
    schema = body.raw("schemaId")
    if isinstance(schema, str) and schema.strip().lower() in _SCHEMAS:
        return _SCHEMAS[schema.strip().lower()](body, integration)
    if schema is None and legacy.looks_like_log_alert(body):
        return legacy.parse_log_alert(body, integration, schema="LogAnalytics")
    if schema is None and legacy.looks_like_classic_metric(body):
        return legacy.parse_classic_metric(body, integration)
    return generic(body, integration, reason="unknown_schema" if schema else "unknown_shape")


def generic(body: Node, integration: str, *, reason: str) -> AzureParse:
    """One firing, stateless alert for a payload no parser took, with the raw payload kept.

    Its fingerprint hashes the whole payload, so a retried delivery is the same alert.
    """
    schema = body.text("schemaId")
    summary = next((body.text(k) for k in _SUMMARY_KEYS if body.text(k)), "")
    alert = Alert(
        fingerprint=fingerprint_of("generic", canonical_json(body.data)),
        status=AlertStatus.FIRING,
        labels=compact({"alertname": "AzureMonitorUnrecognised", "schema_id": schema}),
        annotations={
            "summary": summary or "Azure Monitor sent a payload pagerd does not recognise",
            "description": "The raw payload is kept with the alert.",
        },
        integration=integration,
        stateless=True,
        source={"schema": schema, "reason": reason, "raw": body.data},
    )
    return AzureParse(alerts=[alert], kind="generic", known=False, notes={"reason": reason})
