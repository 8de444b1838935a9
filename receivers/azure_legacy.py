"""Azure Monitor's non-common (legacy) webhook schemas, one parser each.

These payloads name no alert instance, so each parser derives a stable identity from what
does not change between a notification and its retry: the rule and resource for metric
alerts (so Resolved meets its Activated), the evaluation window for log alerts, the event
ID for activity-log events and the notification's amounts for budgets.
"""

from __future__ import annotations

from pagerd.models import Alert, AlertStatus
from pagerd.receivers import azure_activity as activity
from pagerd.receivers.azure_common import (
    RESERVED_LABELS,
    log_summary,
    parse_log_v1,
    parse_metric,
    render_search_results,
)
from pagerd.receivers.azure_fields import (
    AzureParse,
    Node,
    arm_labels,
    as_text,
    canonical_json,
    compact,
    custom_labels,
    dimension_pairs,
    fingerprint_of,
    label_name,
    parse_time,
    portal_link,
    severity_label,
)
from pagerd.receivers.errors import PayloadError

METRIC_ALERT = "AzureMonitorMetricAlert"
ACTIVITY_LOGS = "Microsoft.Insights/activityLogs"
LOG_ALERT = "Microsoft.Insights/LogAlert"
BUDGET = "AIP Budget Notification"


def parse_metric_alert(body: Node, integration: str) -> AzureParse:
    """A metric alert in the `AzureMonitorMetricAlert` schema (version 2.0)."""
    data = body.req_obj("data")
    context = data.req_obj("context")
    status = _activation(data)
    detail = parse_metric(context, "Platform")
    conditions = context.obj("condition").objs("allOf")
    rule_id = context.text("id") or context.req_text("name")
    resource_id = context.text("resourceId")
    labels = {
        **custom_labels(data.obj("properties")),
        **_renamed(detail.labels),
        **_resource_labels(context, resource_id),
        "alertname": context.req_text("name"),
        "severity": severity_label(context.raw("severity")),
        "monitoring_service": "Platform",
        "signal_type": "Metric",
    }
    annotations = {
        **_resource_annotations(context.text("description"), resource_id),
        **detail.annotations,
        "portal_link": context.text("portalLink") or portal_link(resource_id),
    }
    identity = (METRIC_ALERT, rule_id.lower(), resource_id.lower(), *_dimension_key(conditions))
    stamp = context.time("timestamp")
    return _parse(
        "legacy/metric-alert",
        Alert(
            fingerprint=fingerprint_of(*identity),
            status=status,
            labels=compact(labels),
            annotations=compact(annotations),
            starts_at=stamp if status is AlertStatus.FIRING else None,
            ends_at=stamp if status is AlertStatus.RESOLVED else None,
            generator_url=annotations["portal_link"],
            integration=integration,
            source={"schema": METRIC_ALERT, "rule_id": rule_id},
        ),
    )


def looks_like_classic_metric(body: Node) -> bool:
    """Whether a payload without `schemaId` is a classic metric alert (retired in 2019)."""
    context = body.raw("context")
    return isinstance(context, dict) and "conditionType" in context and body.has("status")


def parse_classic_metric(body: Node, integration: str) -> AzureParse:
    """A classic metric alert: `{status, context: {conditionType: Metric, ...}, properties}`."""
    context = body.req_obj("context")
    condition = context.obj("condition")
    status = _activation(body)
    rule_id = context.text("id") or context.req_text("name")
    resource_id = context.text("resourceId")
    labels = {
        **custom_labels(body.obj("properties")),
        **_resource_labels(context, resource_id),
        "alertname": context.req_text("name"),
        "metric_name": condition.text("metricName"),
        "monitoring_service": "Classic",
        "signal_type": context.text("conditionType"),
    }
    annotations = {
        **_resource_annotations(context.text("description"), resource_id),
        "summary": _classic_summary(condition),
        "metric_value": condition.text("metricValue"),
        "metric_unit": condition.text("metricUnit"),
        "threshold": condition.text("threshold"),
        "operator": condition.text("operator"),
        "time_aggregation": condition.text("timeAggregation"),
        "window_size": condition.text("windowSize"),
        "region": context.text("resourceRegion"),
        "portal_link": context.text("portalLink") or portal_link(resource_id),
    }
    stamp = context.time("timestamp")
    return _parse(
        "legacy/metric-classic",
        Alert(
            fingerprint=fingerprint_of("classic", rule_id.lower(), resource_id.lower()),
            status=status,
            labels=compact(labels),
            annotations=compact(annotations),
            starts_at=stamp if status is AlertStatus.FIRING else None,
            ends_at=stamp if status is AlertStatus.RESOLVED else None,
            generator_url=annotations["portal_link"],
            integration=integration,
            source={"schema": "classic", "rule_id": rule_id},
        ),
    )


def _classic_summary(condition: Node) -> str:
    keys = ("metricName", "timeAggregation", "operator", "threshold")
    head = " ".join(v for v in (condition.text(k) for k in keys) if v)
    value = condition.text("metricValue")
    return f"{head} (value {value})" if value else head


def looks_like_log_alert(body: Node) -> bool:
    """Whether a payload without `schemaId` is a log search alert v1 (Log Analytics)."""
    return body.has("AlertRuleName") and body.has("SearchQuery")


def parse_log_alert(data: Node, integration: str, *, schema: str) -> AzureParse:
    """A log search alert v1: the bare Log Analytics body, or `Microsoft.Insights/LogAlert`.

    Stateless: v1 rules never send Resolved. Each evaluation window is its own alert, so a
    retry (same window) is the same alert and the next firing is a new one.
    """
    rule = data.req_text("AlertRuleName")
    app_id, workspace_id = data.text("ApplicationId"), data.text("WorkspaceId")
    detail = parse_log_v1(data, "")
    detail.annotations.update(_legacy_log_annotations(data))
    detail.annotations["summary"] = log_summary(
        data.text("ResultCount"), detail.annotations["operator"], detail.annotations["threshold"]
    )
    resource_id = data.text("ResourceId")
    labels = {
        **detail.labels,
        **arm_labels(resource_id),
        "alertname": rule,
        "severity": severity_label(data.raw("Severity")),
        "subscription": data.text("SubscriptionId").lower(),
        "monitoring_service": "Application Insights" if app_id else "Log Analytics",
        "signal_type": "Log",
    }
    window_end = data.text("SearchIntervalEndtimeUtc")
    dims = sorted(f"{n}={as_text(v)}" for n, v in dimension_pairs(data.objs("Dimensions")))
    identity = (schema, data.text("SubscriptionId"), app_id or workspace_id, rule, window_end)
    return _parse(
        "legacy/log-alert",
        Alert(
            fingerprint=fingerprint_of(*identity, *dims),
            status=AlertStatus.FIRING,
            labels=compact(labels),
            annotations=compact({**_resource_annotations("", resource_id), **detail.annotations}),
            starts_at=parse_time(window_end),
            generator_url=detail.annotations.get("link_to_search_results", ""),
            integration=integration,
            stateless=True,
            source={"schema": schema},
        ),
    )


def _legacy_log_annotations(data: Node) -> dict[str, str]:
    annotations = {
        "description": data.text("Description"),
        "threshold": data.text("AlertThresholdValue") or data.text("Threshold"),
        "operator": data.text("AlertThresholdOperator") or data.text("Operator"),
        "search_interval_seconds": data.text("SearchIntervalInSeconds"),
        "search_results": render_search_results(data.raw("SearchResult"))
        or render_search_results(data.raw("SearchResults")),
        "affected_configuration_items": ", ".join(
            i for i in (as_text(x) for x in data.items("AffectedConfigurationItems")) if i
        ),
    }
    if not severity_label(data.raw("Severity")):
        annotations["azure_severity"] = data.text("Severity")
    return annotations


def parse_activity_log(body: Node, integration: str) -> AzureParse:
    """An activity-log alert in the `Microsoft.Insights/activityLogs` schema.

    Stateless: every event is its own alert, identified by its `eventDataId`, so retries of
    one event change nothing and repeats group by rule (operation) and resource.
    """
    data = body.req_obj("data")
    status = _activation(data)
    event = data.req_obj("context").req_obj("activityLog")
    kind = activity.classify(event) or "activitylog-other"
    labels, annotations, resource_id = _activity_fields(kind, event)
    service = _ACTIVITY_SERVICES.get(kind, "Activity Log - " + labels.get("event_category", ""))
    labels = {
        **custom_labels(data.obj("properties")),
        **_renamed(labels),
        **_resource_labels(event, resource_id),
        "alertname": activity.rule_name(event) or kind,
        "monitoring_service": service,
        "signal_type": "Activity Log",
    }
    return _parse(
        f"legacy/{kind}",
        Alert(
            fingerprint=fingerprint_of(ACTIVITY_LOGS, _event_identity(event)),
            status=status,
            labels=compact(labels),
            annotations=compact({**_resource_annotations("", resource_id), **annotations}),
            starts_at=event.time("eventTimestamp"),
            generator_url=annotations.get("recommendation_link") or portal_link(resource_id),
            integration=integration,
            stateless=status is AlertStatus.FIRING,
            source={"schema": ACTIVITY_LOGS, "event_data_id": event.text("eventDataId")},
        ),
    )


_ACTIVITY_SERVICES = {"servicehealth": "ServiceHealth", "resourcehealth": "Resource Health"}


def _activity_fields(kind: str, event: Node) -> activity.Fields:
    if kind == "servicehealth":
        return activity.service_health_fields(event)
    if kind == "resourcehealth":
        return activity.resource_health_fields(event)
    return activity.event_fields(event)


def _event_identity(event: Node) -> str:
    event_id = event.text("eventDataId")
    if event_id:
        return event_id.lower()
    keys = ("correlationId", "operationName", "eventTimestamp", "resourceId")
    parts = [event.text(k) for k in keys]
    return "|".join(parts) if any(parts) else canonical_json(event.data)


def parse_budget(body: Node, integration: str) -> AzureParse:
    """A cost budget notification in the `AIP Budget Notification` schema. Stateless."""
    data = body.req_obj("data")
    name = data.req_text("BudgetName")
    amounts = ("BudgetStartDate", "NotificationThresholdAmount", "SpendingAmount")
    scope = (data.text("SubscriptionId"), data.text("ResourceGroup"), name)
    labels = {
        "alertname": name,
        "budget_name": name,
        "budget_type": data.text("BudgetType"),
        "subscription": data.text("SubscriptionId").lower(),
        "resource_group": data.text("ResourceGroup").lower(),
        "monitoring_service": "CostAlerts",
    }
    return _parse(
        "legacy/budget",
        Alert(
            fingerprint=fingerprint_of(BUDGET, *scope, *(data.text(k) for k in amounts)),
            status=AlertStatus.FIRING,
            labels=compact(labels),
            annotations=compact(_budget_annotations(data, name)),
            integration=integration,
            stateless=True,
            source={"schema": BUDGET},
        ),
    )


def _budget_annotations(data: Node, name: str) -> dict[str, str]:
    spent, budget = data.text("SpendingAmount"), data.text("Budget")
    unit = data.text("Unit")
    return {
        "summary": f"Budget {name}: spent {spent} of {budget} {unit}".rstrip(),
        "spent_amount": spent,
        "budget_threshold": budget,
        "notification_threshold": data.text("NotificationThresholdAmount"),
        "unit": unit,
        "budget_start": data.time_text("BudgetStartDate"),
        "budget_creator": data.text("BudgetCreator"),
        "subscription_name": data.text("SubscriptionName"),
        "department": data.text("DepartmentName"),
        "account": data.text("AccountName"),
        "enrollment": data.text("EnrollmentNumber"),
        "billing_account_id": data.text("BillingAccountId"),
    }


# Shared pieces.


def _parse(kind: str, alert: Alert) -> AzureParse:
    return AzureParse(alerts=[alert], kind=kind, known=True)


def _activation(node: Node) -> AlertStatus:
    """`Activated` is firing; `Resolved` (and classic `Deactivated`) is resolved."""
    status = node.req_text("status").strip().lower()
    if status == "activated":
        return AlertStatus.FIRING
    if status in {"resolved", "deactivated"}:
        return AlertStatus.RESOLVED
    raise PayloadError(node.at("status"), "expected Activated or Resolved")


def _resource_labels(node: Node, resource_id: str) -> dict[str, str]:
    """ARM labels from the resource ID, filled in from the payload's separate name fields."""
    fields = {
        "subscription": node.text("subscriptionId"),
        "resource_group": node.text("resourceGroupName"),
        "resource_type": node.text("resourceType"),
        "resource": node.text("resourceName"),
    }
    return {**{k: v.lower() for k, v in compact(fields).items()}, **arm_labels(resource_id)}


def _resource_annotations(description: str, resource_id: str) -> dict[str, str]:
    return {
        "description": description,
        "resource_id": resource_id,
        "portal_link": portal_link(resource_id),
    }


def _renamed(labels: dict[str, str]) -> dict[str, str]:
    return {(label_name("ctx_", k) if k in RESERVED_LABELS else k): v for k, v in labels.items()}


def _dimension_key(conditions: list[Node]) -> list[str]:
    pairs = (pair for c in conditions for pair in dimension_pairs(c.objs("dimensions")))
    return sorted(f"{name}={as_text(value)}" for name, value in pairs)
