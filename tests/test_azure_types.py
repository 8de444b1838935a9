"""Table tests for the Azure intake: the label set of each alert type, identity, state, errors.

The payloads here are built for the tests (no public sample covers these cases); their shapes
follow Azure's documented schemas, values are made up.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from test_azure_fixtures import common_body, load

from pagerd.models import AlertStatus
from pagerd.receivers.azure import parse_azure
from pagerd.receivers.azure_fields import arm_labels, label_name, parse_time, severity_label
from pagerd.receivers.errors import PayloadError

VM_ID = (
    "/subscriptions/1111/resourceGroups/Prod-RG/providers/Microsoft.Compute/virtualMachines/web-1"
)
BASE = {"alertname", "severity", "monitoring_service", "signal_type"}
ARM = {"subscription", "resource_group", "resource_type", "resource"}
EVENT = {"event_category", "event_level", "event_status", "operation_name"}


def essentials(service: str, signal: str, **more: Any) -> dict[str, Any]:
    """Essentials of a fired alert on VM_ID."""
    return {
        "monitoringService": service,
        "signalType": signal,
        "alertTargetIDs": [VM_ID],
        **more,
    }


def metric_condition(**more: Any) -> dict[str, Any]:
    return {
        "metricName": "Percentage CPU",
        "metricNamespace": "Microsoft.Compute/virtualMachines",
        "operator": "GreaterThan",
        "threshold": "80",
        "timeAggregation": "Average",
        "dimensions": [{"name": "Instance Name", "value": "web-1-0"}],
        "metricValue": 93.5,
        **more,
    }


def metric(condition_type: str, **condition: Any) -> dict[str, Any]:
    return {
        "properties": {"team": "web"},
        "conditionType": condition_type,
        "condition": {"windowSize": "PT5M", "allOf": [metric_condition(**condition)]},
    }


def log_v2(service: str, **condition: Any) -> dict[str, Any]:
    return {
        "properties": {"team": "web"},
        "conditionType": "LogQueryCriteria",
        "condition": {
            "windowSize": "PT10M",
            "allOf": [
                {
                    "searchQuery": "Heartbeat",
                    "operator": "LowerThan",
                    "threshold": "1",
                    "timeAggregation": "Count",
                    "dimensions": [{"name": "Computer", "value": "web-1"}],
                    "metricValue": 0.0,
                    "linkToFilteredSearchResultsUI": "https://portal.example/q",
                    **condition,
                }
            ],
        },
    }


def activity(source: Any, operation: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "channels": "Operation",
        "caller": "someone@example.com",
        "correlationId": "c-1",
        "eventSource": source,
        "eventTimestamp": "2024-05-01T09:59:00+00:00",
        "eventDataId": "e-1",
        "level": "Warning",
        "operationName": operation,
        "properties": properties,
        "status": "Succeeded",
    }


# kind -> (alertContext, essentials, expected label names)
LABEL_TABLE: list[tuple[str, dict[str, Any], dict[str, Any], set[str]]] = [
    (
        "common/metric-static",
        metric("SingleResourceMultipleMetricCriteria"),
        essentials("Platform", "Metric"),
        BASE | ARM | {"metric_name", "metric_namespace", "dim_Instance_Name", "custom_team"},
    ),
    (
        "common/metric-dynamic",
        metric("DynamicThresholdCriteria", alertSensitivity="Medium"),
        essentials("Platform", "Metric"),
        BASE | ARM | {"metric_name", "metric_namespace", "dim_Instance_Name", "custom_team"},
    ),
    (
        "common/metric-webtest",
        metric("WebtestLocationAvailabilityCriteria", webTestName="home-page", dimensions=[]),
        essentials("Platform", "Metric"),
        BASE | ARM | {"metric_name", "metric_namespace", "webtest_name", "custom_team"},
    ),
    (
        "common/log-search-v1",
        {
            "SearchQuery": "Heartbeat",
            "ResultCount": 3,
            "Threshold": 0,
            "Operator": "Greater Than",
            "Dimensions": [{"name": "Computer", "value": "web-1"}],
            "LinkToSearchResults": "https://portal.example/q",
        },
        essentials("Log Analytics", "Log"),
        BASE | ARM | {"dim_Computer"},
    ),
    (
        "common/log-search-v2",
        log_v2("Log Alerts V2"),
        essentials("Log Alerts V2", "Log"),
        BASE | ARM | {"dim_Computer", "custom_team"},
    ),
    (
        "common/log-simple",
        log_v2(
            "Simple Log Alert",
            dimensions=None,
            event=[[{"name": "type", "value": "NullReferenceException"}]],
        ),
        essentials("Simple Log Alert", "Log"),
        BASE | ARM | {"custom_team"},
    ),
    (
        "common/activitylog-administrative",
        activity("Administrative", "Microsoft.Compute/virtualMachines/restart/action", {}),
        essentials("Activity Log - Administrative", "Activity Log"),
        BASE | ARM | EVENT,
    ),
    (
        "common/activitylog-policy",
        activity("Policy", "Microsoft.Authorization/policies/audit/action", {"policies": "[]"}),
        essentials("Activity Log - Policy", "Activity Log"),
        BASE | ARM | EVENT,
    ),
    (
        "common/activitylog-autoscale",
        activity("Autoscale", "Microsoft.Insights/AutoscaleSettings/Scaleup/Action", {}),
        essentials("Activity Log - Autoscale", "Activity Log"),
        BASE | ARM | EVENT,
    ),
    (
        "common/activitylog-security",
        activity(
            "Security", "Microsoft.Security/locations/alerts/activate/action", {"severity": "High"}
        ),
        essentials("Activity Log - Security", "Activity Log"),
        BASE | ARM | EVENT | {"security_severity"},
    ),
    (
        "common/activitylog-recommendation",
        activity(
            "Recommendation",
            "Microsoft.Advisor/recommendations/available/action",
            {"recommendationCategory": "Cost", "recommendationImpact": "High"},
        ),
        essentials("Activity Log - Recommendation", "Activity Log"),
        BASE | ARM | EVENT | {"recommendation_category", "recommendation_impact"},
    ),
    (
        "common/servicehealth",
        activity(
            "ServiceHealth",
            "Microsoft.ServiceHealth/incident/action",
            {
                "title": "Storage degraded",
                "service": "Storage",
                "region": "West Europe",
                "incidentType": "Incident",
                "trackingId": "AB12-3CD",
                "stage": "Active",
            },
        ),
        {
            "monitoringService": "ServiceHealth",
            "signalType": "Activity Log",
            "alertTargetIDs": ["/subscriptions/1111"],
        },
        BASE
        | EVENT
        | {"subscription", "service", "region", "incident_type", "tracking_id", "stage"},
    ),
    (
        "common/resourcehealth",
        activity(
            "ResourceHealth",
            "Microsoft.Resourcehealth/healthevent/Activated/action",
            {
                "currentHealthStatus": "Degraded",
                "previousHealthStatus": "Available",
                "type": "Downtime",
                "cause": "PlatformInitiated",
            },
        ),
        essentials("Resource Health", "Activity Log"),
        BASE
        | ARM
        | EVENT
        | {"health_status", "previous_health_status", "health_event_type", "health_cause"},
    ),
    (
        "common/smart-detection",
        {"SmartDetectorId": "FailureAnomaliesDetector", "DetectionSummary": "Failure spike"},
        essentials("SmartDetector", "Log"),
        BASE | ARM | {"smart_detector"},
    ),
    (
        "common/budget",
        {
            "AlertCategory": "budgets",
            "AlertData": {
                "Scope": "/subscriptions/1111/resourceGroups/Prod-RG",
                "ThresholdType": "Actual",
                "BudgetType": "Cost",
                "BudgetName": "prod-monthly",
                "SpentAmount": "900",
                "BudgetThreshold": "1000",
            },
        },
        {
            "monitoringService": "CostAlerts",
            "alertRule": None,
            "severity": None,
            "signalType": None,
            "alertTargetIDs": None,
        },
        # No severity: budgets take the configured default.
        {
            "alertname",
            "monitoring_service",
            "subscription",
            "resource_group",
            "budget_name",
            "budget_type",
            "threshold_type",
        },
    ),
    (
        "common/prometheus",
        {
            "interval": "PT1M",
            "expression": "up == 0",
            "expressionValue": "0",
            "for": "PT5M",
            "labels": {"job": "api", "severity": "critical"},
            "annotations": {"summary": "api down"},
            "ruleGroup": "/subscriptions/1111/resourceGroups/Prod-RG/providers/"
            "Microsoft.AlertsManagement/prometheusRuleGroups/api-rules",
        },
        essentials("Prometheus", "Metric"),
        # The rule's own `severity` label would shadow Azure's: it is kept as prom_severity.
        BASE | ARM | {"job", "prom_severity", "rule_group"},
    ),
]


@pytest.mark.parametrize(
    ("kind", "context", "essential", "labels"), LABEL_TABLE, ids=[row[0] for row in LABEL_TABLE]
)
def test_label_set_per_type(
    kind: str, context: dict[str, Any], essential: dict[str, Any], labels: set[str]
) -> None:
    """Each common-schema type produces exactly its documented label set."""
    parsed = parse_azure(common_body(context, **essential))
    assert parsed.kind == kind
    assert parsed.known
    assert set(parsed.alerts[0].labels) == labels


def test_arm_labels_are_lower_case() -> None:
    """Routes see one spelling of ARM names, whatever case the payload used."""
    labels = (
        parse_azure(
            common_body(
                metric("SingleResourceMultipleMetricCriteria"), **essentials("Platform", "Metric")
            )
        )
        .alerts[0]
        .labels
    )
    assert {k: labels[k] for k in ARM} == {
        "subscription": "1111",
        "resource_group": "prod-rg",
        "resource_type": "microsoft.compute/virtualmachines",
        "resource": "web-1",
    }


def test_prometheus_severity_does_not_shadow_azure() -> None:
    """A Prometheus rule label named like an essentials label never replaces it."""
    _, context, essential, _ = next(row for row in LABEL_TABLE if row[0] == "common/prometheus")
    alert = parse_azure(common_body(context, **essential)).alerts[0]
    assert alert.labels["severity"] == "Sev2"
    assert alert.labels["prom_severity"] == "critical"
    assert alert.annotations["summary"] == "api down"
    assert alert.annotations["expression"] == "up == 0"


def test_multi_condition_metric() -> None:
    """Several conditions: every metric named, every dimension a label, one line each."""
    context = metric("MultipleResourceMultipleMetricCriteria")
    second = metric_condition(
        metricName="Available Memory Bytes",
        metricValue=1024,
        dimensions=[{"name": "Disk", "value": "C:"}],
    )
    context["condition"]["allOf"].append(second)
    alert = parse_azure(common_body(context, **essentials("Platform", "Metric"))).alerts[0]
    assert alert.labels["metric_name"] == "Percentage CPU,Available Memory Bytes"
    assert alert.labels["dim_Instance_Name"] == "web-1-0"
    assert alert.labels["dim_Disk"] == "C:"
    assert alert.annotations["summary"].splitlines() == [
        "Percentage CPU Average GreaterThan 80 (value 93.5)",
        "Available Memory Bytes Average GreaterThan 80 (value 1024)",
    ]


def test_simple_log_alert_is_stateless_with_events() -> None:
    """A simple log search alert (one row per alert) shows the row and never resolves."""
    _, context, essential, _ = next(row for row in LABEL_TABLE if row[0] == "common/log-simple")
    alert = parse_azure(common_body(context, **essential)).alerts[0]
    assert alert.stateless
    assert alert.annotations["events"] == "type=NullReferenceException"


def test_service_health_test_action_shape() -> None:
    """The test action's shape: numeric enums, impactedServices as an array, `ActivityLog`."""
    context = activity(
        2,
        "Microsoft.ServiceHealth/incident/action",
        {
            "title": "Test notice",
            "service": "Storage",
            "region": "Global",
            "communication": "<p>Testing&nbsp;only</p>",
            "incidentType": "Incident",
            "trackingId": "TEST-123",
            "stage": "Resolved",
            "impactedServices": [
                {"ServiceName": "Storage", "ImpactedRegions": [{"RegionName": "Global"}]}
            ],
        },
    )
    context["level"] = 3
    parsed = parse_azure(
        common_body(
            context,
            monitoringService="ServiceHealth",
            signalType="ActivityLog",
            alertTargetIDs=["/subscriptions/1111"],
        )
    )
    alert = parsed.alerts[0]
    assert parsed.kind == "common/servicehealth"
    assert alert.labels["event_level"] == "Informational"
    assert alert.labels["stage"] == "Resolved"
    assert alert.annotations["impacted_services"] == "Storage: Global"
    assert alert.annotations["communication"] == "Testing only"
    # A Service Health "Resolved" stage is a new stateless event, not the close of an alert.
    assert alert.status is AlertStatus.FIRING and alert.stateless


def test_unknown_context_keeps_essentials_and_raw() -> None:
    """A context Azure adds later is routed by its essentials and stored whole."""
    body = common_body({"brandNew": {"x": 1}}, **essentials("Some Future Service", "Metric"))
    parsed = parse_azure(body)
    alert = parsed.alerts[0]
    assert (parsed.kind, parsed.known) == ("common/unknown", False)
    assert alert.labels["alertname"] == "rule-x"
    assert alert.labels["resource"] == "web-1"
    assert alert.source["raw"] == body


# Identity and state.


def test_fired_and_resolved_share_fingerprint() -> None:
    """Fired and Resolved of one alertId are one alert; the resolution carries its end."""
    fired = load("common/testaction-metric-static-threshold.full.json")
    resolved = copy.deepcopy(fired)
    resolved["data"]["essentials"].update(
        monitorCondition="Resolved", resolvedDateTime="2025-04-15T18:27:12.851Z"
    )
    a, b = parse_azure(fired).alerts[0], parse_azure(resolved).alerts[0]
    assert a.fingerprint == b.fingerprint
    assert (a.status, b.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)
    assert a.ends_at is None
    assert b.ends_at == datetime(2025, 4, 15, 18, 27, 12, 851000, tzinfo=UTC)


def test_retry_is_the_same_alert() -> None:
    """A retried delivery parses to an equal alert."""
    body = load("common/testaction-log-alert-v2.full.json")
    assert parse_azure(body) == parse_azure(copy.deepcopy(body))


def test_fingerprint_is_alert_id_hash() -> None:
    """The documented recipe: first 16 hex digits of SHA-256 of the lower-cased alertId."""
    import hashlib

    body = load("common/testaction-smart-detection.full.json")
    alert_id = body["data"]["essentials"]["alertId"]
    expected = hashlib.sha256(alert_id.lower().encode()).hexdigest()[:16]
    assert parse_azure(body).alerts[0].fingerprint == expected


def test_resolved_proves_a_stateful_log_rule() -> None:
    """A log v1 alert is stateless unless Azure sends its Resolved."""
    body = load("common/testaction-log-alert-v1-number-of-results.full.json")
    assert parse_azure(body).alerts[0].stateless
    body["data"]["essentials"]["monitorCondition"] = "Resolved"
    assert not parse_azure(body).alerts[0].stateless


def test_activity_events_are_distinct_alerts() -> None:
    """Each activity-log event is its own (stateless) alert; the same event is the same."""
    body = load("legacy/activitylog-administrative.json")
    other = copy.deepcopy(body)
    other["data"]["context"]["activityLog"]["eventDataId"] = "another-event"
    a, b = parse_azure(body).alerts[0], parse_azure(other).alerts[0]
    assert a.fingerprint != b.fingerprint
    assert a.labels == b.labels  # so repeats group by rule and resource


def test_legacy_metric_activated_and_resolved_share_fingerprint() -> None:
    """Legacy metric alerts name no instance: rule, resource and dimensions make the identity."""
    fired = load("legacy/metric-alert-static.AzureMonitorMetricAlert.json")
    resolved = copy.deepcopy(fired)
    resolved["data"]["status"] = "Resolved"
    resolved["data"]["context"]["timestamp"] = "2021-11-15T09:50:00Z"
    a, b = parse_azure(fired).alerts[0], parse_azure(resolved).alerts[0]
    assert a.fingerprint == b.fingerprint
    assert b.status is AlertStatus.RESOLVED
    assert b.ends_at == datetime(2021, 11, 15, 9, 50, tzinfo=UTC)
    other_dim = copy.deepcopy(fired)
    other_dim["data"]["context"]["condition"]["allOf"][0]["dimensions"][0]["value"] = "PutBlob"
    assert parse_azure(other_dim).alerts[0].fingerprint != a.fingerprint


def classic(status: str) -> dict[str, Any]:
    return {
        "status": status,
        "context": {
            "timestamp": "2018-01-01T10:00:00Z",
            "id": "/subscriptions/1111/resourceGroups/rg/providers/microsoft.insights/rules/cpu",
            "name": "cpu",
            "description": "CPU high",
            "conditionType": "Metric",
            "condition": {
                "metricName": "CPU",
                "metricUnit": "Percent",
                "metricValue": "95",
                "threshold": "90",
                "windowSize": "5",
                "timeAggregation": "Average",
                "operator": "GreaterThan",
            },
            "subscriptionId": "1111",
            "resourceGroupName": "Prod-RG",
            "resourceName": "web-1",
            "resourceType": "microsoft.compute/virtualmachines",
            "resourceId": VM_ID,
            "resourceRegion": "westeurope",
            "portalLink": "https://portal.azure.com/#resource" + VM_ID,
        },
        "properties": {"team": "web"},
    }


def test_classic_metric_alert() -> None:
    """The classic metric alert (no schemaId) is recognised; Resolved closes Activated."""
    fired, resolved = parse_azure(classic("Activated")), parse_azure(classic("Resolved"))
    assert fired.kind == "legacy/metric-classic"
    alert = fired.alerts[0]
    assert (
        set(alert.labels)
        == {"alertname", "metric_name", "monitoring_service", "signal_type", "custom_team"} | ARM
    )
    assert alert.fingerprint == resolved.alerts[0].fingerprint
    assert resolved.alerts[0].status is AlertStatus.RESOLVED


def test_legacy_application_insights_log_alert() -> None:
    """`Microsoft.Insights/LogAlert` wraps the v1 body in `data`."""
    data = load("legacy/log-alert-legacy-log-analytics.json")
    data.pop("WorkspaceId")
    data["ApplicationId"] = "app-1"
    parsed = parse_azure({"schemaId": "Microsoft.Insights/LogAlert", "data": data})
    assert parsed.kind == "legacy/log-alert"
    assert parsed.alerts[0].labels["monitoring_service"] == "Application Insights"
    assert parsed.alerts[0].annotations["summary"] == "2 results (Greater Than 0)"


def test_legacy_log_windows_are_distinct_alerts() -> None:
    """A v1 log alert's evaluation window is its identity: retry same, next firing new."""
    body = load("legacy/log-alert-v1-number-of-results.json")
    later = copy.deepcopy(body)
    later["SearchIntervalEndtimeUtc"] = "2021-11-16T15:20:24Z"
    assert parse_azure(body) == parse_azure(copy.deepcopy(body))
    assert parse_azure(later).alerts[0].fingerprint != parse_azure(body).alerts[0].fingerprint


def test_generic_payload_identity() -> None:
    """An unknown payload is one stateless alert whose identity is the payload itself."""
    a = parse_azure({"hello": "world"})
    assert (a.kind, a.known) == ("generic", False)
    assert a.alerts[0].fingerprint == parse_azure({"hello": "world"}).alerts[0].fingerprint
    assert a.alerts[0].fingerprint != parse_azure({"hello": "there"}).alerts[0].fingerprint
    unknown = parse_azure({"schemaId": "SomethingNew", "data": {}})
    assert unknown.alerts[0].labels["schema_id"] == "SomethingNew"
    assert unknown.notes["reason"] == "unknown_schema"


# Malformed payloads: a 4xx naming the field.


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()
COMMON = "common/testaction-metric-static-threshold.full.json"

ERRORS: list[tuple[str, str, Any, str]] = [
    (COMMON, "data", _DELETE, "data"),
    (COMMON, "data", [], "data"),
    (COMMON, "data.essentials", _DELETE, "data.essentials"),
    (COMMON, "data.essentials.alertId", _DELETE, "data.essentials.alertId"),
    (COMMON, "data.essentials.alertId", 7, "data.essentials.alertId"),
    (COMMON, "data.essentials.alertId", " ", "data.essentials.alertId"),
    (COMMON, "data.essentials.monitorCondition", "Maybe", "data.essentials.monitorCondition"),
    (COMMON, "data.essentials.monitorCondition", _DELETE, "data.essentials.monitorCondition"),
    (COMMON, "data.essentials.severity", "Sev9", "data.essentials.severity"),
    (COMMON, "data.essentials.severity", 3, "data.essentials.severity"),
    (COMMON, "data.essentials.firedDateTime", "yesterday", "data.essentials.firedDateTime"),
    (COMMON, "data.essentials.resolvedDateTime", 12, "data.essentials.resolvedDateTime"),
    (COMMON, "data.essentials.alertTargetIDs", "x", "data.essentials.alertTargetIDs"),
    (COMMON, "data.alertContext", "text", "data.alertContext"),
    (COMMON, "data.alertContext.condition", [1], "data.alertContext.condition"),
    (COMMON, "data.alertContext.condition.allOf", {}, "data.alertContext.condition.allOf"),
    (COMMON, "data.alertContext.condition.allOf", [5], "data.alertContext.condition.allOf[0]"),
    (COMMON, "data.customProperties", "x", "data.customProperties"),
    (
        "legacy/metric-alert-static.AzureMonitorMetricAlert.json",
        "data.status",
        "Pending",
        "data.status",
    ),
    (
        "legacy/metric-alert-static.AzureMonitorMetricAlert.json",
        "data.context.timestamp",
        "soon",
        "data.context.timestamp",
    ),
    (
        "legacy/activitylog-administrative.json",
        "data.context.activityLog",
        _DELETE,
        "data.context.activityLog",
    ),
    (
        "legacy/activitylog-administrative.json",
        "data.context.activityLog.eventTimestamp",
        "x",
        "data.context.activityLog.eventTimestamp",
    ),
    ("legacy/budget.AIP-Budget-Notification.json", "data.BudgetName", None, "data.BudgetName"),
    ("legacy/log-alert-v1-metric-measurement.json", "AlertRuleName", 5, "AlertRuleName"),
    ("legacy/log-alert-v1-metric-measurement.json", "Dimensions", "x", "Dimensions"),
]


@pytest.mark.parametrize(("fixture", "path", "value", "field"), ERRORS)
def test_malformed_payload_names_the_field(fixture: str, path: str, value: Any, field: str) -> None:
    """A known schema with a broken identity, state, time or structure field is refused."""
    body = _set(load(fixture), path, value)
    with pytest.raises(PayloadError) as caught:
        parse_azure(body)
    assert caught.value.field == field
    assert caught.value.status == 400


@pytest.mark.parametrize("payload", [None, [], [{"schemaId": "x"}], "text", 3, True])
def test_non_object_payload(payload: object) -> None:
    """Only a JSON object can be an Azure payload."""
    with pytest.raises(PayloadError) as caught:
        parse_azure(payload)
    assert caught.value.field == "$"


# The helpers' tables.


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2019-03-22T13:58:24.3713213Z", "2019-03-22T13:58:24.371321+00:00"),
        ("2019-03-22T13:56:31.2917159+00:00", "2019-03-22T13:56:31.291715+00:00"),
        ("2021-11-16T09:50:20.406+00:00", "2021-11-16T09:50:20.406000+00:00"),
        ("2025-04-15T17:55:39.04Z", "2025-04-15T17:55:39.040000+00:00"),
        ("3/22/2019 1:36:31 PM", "2019-03-22T13:36:31+00:00"),
        ("12/1/2019 12:05:00 AM", "2019-12-01T00:05:00+00:00"),
        ("Wed, 21 Aug 2019 16:17:47 GMT", "2019-08-21T16:17:47+00:00"),
        ("2022-11-01", "2022-11-01T00:00:00+00:00"),
        ("2018-03-26T08:10:40", "2018-03-26T08:10:40+00:00"),
    ],
)
def test_time_formats(text: str, iso: str) -> None:
    """Every time format seen in Azure's samples becomes an aware UTC datetime."""
    stamp = parse_time(text)
    assert stamp is not None and stamp.isoformat() == iso


@pytest.mark.parametrize("text", ["", "yesterday", "13/45/2019 1:00:00 PM", "x" * 100])
def test_not_times(text: str) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("Sev0", "Sev0"),
        ("sev4", "Sev4"),
        ("3", "Sev3"),
        (2, "Sev2"),
        ("Critical", "Sev0"),
        ("Warning", "Sev2"),
        ("Informational", "Sev3"),
        ("Sev5", ""),
        (None, ""),
        ("high", ""),
    ],
)
def test_severity_labels(value: object, label: str) -> None:
    assert severity_label(value) == label


@pytest.mark.parametrize(
    ("resource_id", "labels"),
    [
        (
            VM_ID,
            {
                "subscription": "1111",
                "resource_group": "prod-rg",
                "resource_type": "microsoft.compute/virtualmachines",
                "resource": "web-1",
            },
        ),
        ("/subscriptions/1111", {"subscription": "1111"}),
        (
            "/subscriptions/1/resourcegroups/rg/providers/Microsoft.Sql/servers/s1/databases/db",
            {
                "subscription": "1",
                "resource_group": "rg",
                "resource_type": "microsoft.sql/servers/databases",
                "resource": "db",
            },
        ),
        ("not an id", {}),
        ("", {}),
    ],
)
def test_arm_labels(resource_id: str, labels: dict[str, str]) -> None:
    assert arm_labels(resource_id) == labels


@pytest.mark.parametrize(
    ("prefix", "name", "label"),
    [
        ("dim_", "Instance Name", "dim_Instance_Name"),
        ("custom_", "a.b-c", "custom_a_b_c"),
        ("", "9lives", "_9lives"),
        ("dim_", "", "dim__"),
        ("", "ünï", "_n_"),
    ],
)
def test_label_names(prefix: str, name: str, label: str) -> None:
    assert label_name(prefix, name) == label
