"""Every public Azure sample payload in the shared fixtures parses to the expected alert.

`*.alertContext.json` files hold only the alertContext; `common_body` wraps them in a full
common-schema body with the essentials the docs give for that type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pagerd.models import AlertStatus
from pagerd.receivers.azure import parse_azure

from conftest import FIXTURES

AZURE = FIXTURES / "azure"
ALERT_ID = "/subscriptions/0000/providers/Microsoft.AlertsManagement/alerts/5"


def common_body(context: dict[str, Any], **essentials: Any) -> dict[str, Any]:
    """A full common-schema payload around an alertContext."""
    base = {
        "alertId": ALERT_ID,
        "alertRule": "rule-x",
        "severity": "Sev2",
        "signalType": "Metric",
        "monitorCondition": "Fired",
        "monitoringService": "Platform",
        "firedDateTime": "2024-05-01T10:00:00.1234567Z",
        "description": "from the test",
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    base.update(essentials)
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {"essentials": base, "alertContext": context},
    }


def load(relative: str) -> dict[str, Any]:
    """A fixture as a full webhook body (alertContext-only files wrapped per their type)."""
    path = AZURE / relative
    body = json.loads(path.read_text())
    if path.name.endswith(".alertContext.json"):
        service, signal = CONTEXT_ESSENTIALS[path.name.removesuffix(".alertContext.json")]
        return common_body(body["alertContext"], monitoringService=service, signalType=signal)
    return body


# The essentials Azure's docs give with each alertContext sample.
CONTEXT_ESSENTIALS = {
    "activitylog-administrative": ("Activity Log - Administrative", "Activity Log"),
    "activitylog-autoscale": ("Activity Log - Autoscale", "Activity Log"),
    "activitylog-policy": ("Activity Log - Policy", "Activity Log"),
    "activitylog-security": ("Activity Log - Security", "Activity Log"),
    "log-alerts-v2-LogQueryCriteria": ("Log Alerts V2", "Log"),
    "log-search-application-insights": ("Application Insights", "Log"),
    "log-search-log-analytics": ("Log Analytics", "Log"),
    "metric-availability-webtest": ("Platform", "Metric"),
    "metric-dynamic-threshold": ("Platform", "Metric"),
    "metric-static-threshold": ("Platform", "Metric"),
    "prometheus-managed": ("Prometheus", "Metric"),
    "resourcehealth": ("Resource Health", "Activity Log"),
    "servicehealth-numeric-enums": ("ServiceHealth", "Activity Log"),
    "servicehealth-string-enums": ("ServiceHealth", "Activity Log"),
}

FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED
SUB = "aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e"
VM = {"resource_type": "microsoft.compute/virtualmachines"}
STORAGE = {
    "subscription": SUB,
    "resource_group": "test-rg",
    "resource_type": "microsoft.storage/storageaccounts",
    "resource": "test-storageaccount",
}
WORKSPACE = {
    "subscription": SUB,
    "resource_group": "test-rg",
    "resource_type": "microsoft.operationalinsights/workspaces",
    "resource": "test-loganalyticsworkspace",
}

# file, kind, status, stateless, labels that must be present with exactly these values.
CASES: list[tuple[str, str, AlertStatus, bool, dict[str, str]]] = [
    (
        "common/metric-static-resolved.full.json",
        "common/metric-static",
        RESOLVED,
        False,
        {
            "alertname": "WCUS-R2-Gen2",
            "severity": "Sev3",
            "monitoring_service": "Platform",
            "signal_type": "Metric",
            "resource_group": "pipelinealertrg",
            "resource": "wcus-r2-gen2",
            "metric_name": "Percentage CPU",
            "dim_ResourceId": "b1b1b1b1-cccc-dddd-eeee-f2f2f2f2f2f2",
            **VM,
        },
    ),
    (
        "common/metric-static-threshold.alertContext.json",
        "common/metric-static",
        FIRING,
        False,
        {"alertname": "rule-x", "severity": "Sev2", "metric_name": "Percentage CPU"},
    ),
    (
        "common/metric-dynamic-threshold.alertContext.json",
        "common/metric-dynamic",
        FIRING,
        False,
        {"metric_name": "Egress", "metric_namespace": "microsoft.storage/storageaccounts"},
    ),
    (
        "common/metric-availability-webtest.alertContext.json",
        "common/metric-webtest",
        FIRING,
        False,
        {"metric_name": "Failed Location", "webtest_name": "myAvailabilityTest-myApplication"},
    ),
    (
        "common/log-search-log-analytics.alertContext.json",
        "common/log-search-v1",
        FIRING,
        True,
        {
            "monitoring_service": "Log Analytics",
            "signal_type": "Log",
            "dim_Computer": "INC-Gen2Alert",
        },
    ),
    (
        "common/log-search-application-insights.alertContext.json",
        "common/log-search-v1",
        FIRING,
        True,
        {"monitoring_service": "Application Insights", "dim_IP": "1.1.1.1"},
    ),
    (
        "common/log-alerts-v2-LogQueryCriteria.alertContext.json",
        "common/log-search-v2",
        FIRING,
        False,
        {"dim_Computer": "TestComputer", "custom_name1": "value1", "custom_name2": "value2"},
    ),
    (
        "common/activitylog-administrative.alertContext.json",
        "common/activitylog-administrative",
        FIRING,
        True,
        {
            "event_category": "Administrative",
            "operation_name": "Microsoft.Compute/virtualMachines/restart/action",
            "event_status": "Succeeded",
            "event_level": "Informational",
            # No alertTargetIDs here: the resource comes from authorization.scope.
            "resource_group": "pipelinealertrg",
            "resource": "wcus-r2-actlog",
            **VM,
        },
    ),
    (
        "common/activitylog-policy.alertContext.json",
        "common/activitylog-policy",
        FIRING,
        True,
        {"event_category": "Policy", "event_level": "Warning"},
    ),
    (
        "common/activitylog-autoscale.alertContext.json",
        "common/activitylog-autoscale",
        FIRING,
        True,
        {
            "event_category": "Autoscale",
            "resource": "alexademo",
            "resource_type": "microsoft.compute/virtualmachinescalesets",
        },
    ),
    (
        "common/activitylog-security.alertContext.json",
        "common/activitylog-security",
        FIRING,
        True,
        {"event_category": "Security", "security_severity": "Low", "event_status": "Active"},
    ),
    (
        "common/servicehealth-numeric-enums.alertContext.json",
        "common/servicehealth",
        FIRING,
        True,
        {
            # eventSource 2 and level 3 are this same event's "ServiceHealth"/"Informational".
            "event_category": "ServiceHealth",
            "event_level": "Informational",
            "service": "Azure Synapse Analytics",
            "region": "East US",
            "incident_type": "Maintenance",
            "stage": "Planned",
        },
    ),
    (
        "common/servicehealth-string-enums.alertContext.json",
        "common/servicehealth",
        FIRING,
        True,
        {"event_category": "ServiceHealth", "event_level": "Informational", "stage": "Planned"},
    ),
    (
        "common/resourcehealth.alertContext.json",
        "common/resourcehealth",
        FIRING,
        True,
        {
            "health_status": "Unavailable",
            "previous_health_status": "Available",
            "health_event_type": "Downtime",
            "health_cause": "UserInitiated",
        },
    ),
    (
        "common/prometheus-managed.alertContext.json",
        "common/prometheus",
        FIRING,
        False,
        {"Environment": "Prod", "cluster": "myCluster1", "rule_group": "myRuleGroup"},
    ),
    (
        "common/testaction-activity-log-administrative.full.json",
        "common/activitylog-administrative",
        FIRING,
        True,
        {
            "alertname": "test-activityLogAlertRule",
            "severity": "Sev4",
            "monitoring_service": "Activity Log - Administrative",
            "signal_type": "Activity Log",
            "subscription": SUB,
            "resource_group": "test-rg",
            "resource": "test-vm",
            **VM,
        },
    ),
    (
        "common/testaction-metric-static-threshold.full.json",
        "common/metric-static",
        FIRING,
        False,
        {
            "alertname": "test-metricAlertRule",
            "severity": "Sev4",
            "dim_ApiName": "GetBlob",
            "custom_customKey1": "value1",
            **STORAGE,
        },
    ),
    (
        "common/testaction-metric-dynamic-threshold.full.json",
        "common/metric-dynamic",
        FIRING,
        False,
        {"alertname": "test-dynamicMetricAlertRule", "metric_name": "Transactions", **STORAGE},
    ),
    (
        "common/testaction-log-alert-v1-metric-measurement.full.json",
        "common/log-search-v1",
        FIRING,
        True,
        {"alertname": "test-logAlertRule-v1-metricMeasurement", "severity": "Sev4", **WORKSPACE},
    ),
    (
        "common/testaction-log-alert-v1-number-of-results.full.json",
        "common/log-search-v1",
        FIRING,
        True,
        {"alertname": "test-logAlertRule-v1-numResults", **WORKSPACE},
    ),
    (
        "common/testaction-log-alert-v2.full.json",
        "common/log-search-v2",
        FIRING,
        False,
        {
            "alertname": "test-logAlertRule-v2",
            "monitoring_service": "Log Alerts V2",
            "dim_Computer": "test-computer",
            **WORKSPACE,
        },
    ),
    (
        "common/testaction-resource-health.full.json",
        "common/resourcehealth",
        FIRING,
        True,
        {
            "alertname": "test-ResourceHealthAlertRule",
            "monitoring_service": "Resource Health",
            "resource": "test-vm",
            "health_status": "Unavailable",
        },
    ),
    (
        "common/testaction-budget.full.json",
        "common/budget",
        FIRING,
        True,
        {
            # alertRule and severity are null: the budget names the alert, severity is left
            # for the intake's configured default.
            "alertname": "Test_forcasted_budget",
            "budget_name": "Test_forcasted_budget",
            "threshold_type": "Forecasted",
            "monitoring_service": "CostAlerts",
            "subscription": SUB,
        },
    ),
    (
        "common/testaction-forecasted-budget.full.json",
        "common/budget",
        FIRING,
        True,
        {"alertname": "Test_forcasted_budget", "budget_type": "Cost"},
    ),
    (
        "common/testaction-smart-detection.full.json",
        "common/smart-detection",
        FIRING,
        False,
        {
            "alertname": "test-SmartAlertRule",
            "smart_detector": "DependencyPerformanceDegradationDetector",
            "resource_type": "microsoft.insights/components",
        },
    ),
    (
        "legacy/metric-alert-static.AzureMonitorMetricAlert.json",
        "legacy/metric-alert",
        FIRING,
        False,
        {
            "alertname": "test-metricAlertRule",
            "severity": "Sev3",
            "monitoring_service": "Platform",
            "dim_ApiName": "GetBlob",
            "custom_customKey1": "value1",
            **STORAGE,
        },
    ),
    (
        "legacy/log-alert-v1-metric-measurement.json",
        "legacy/log-alert",
        FIRING,
        True,
        {"alertname": "test-logAlertRule-v1-metricMeasurement", "severity": "Sev3", **WORKSPACE},
    ),
    (
        "legacy/log-alert-v1-number-of-results.json",
        "legacy/log-alert",
        FIRING,
        True,
        {"alertname": "test-logAlertRule-v1-numResults", "monitoring_service": "Log Analytics"},
    ),
    (
        "legacy/log-alert-legacy-log-analytics.json",
        "legacy/log-alert",
        FIRING,
        True,
        # The old Log Analytics API's "Warning" is Sev2 in the portal's naming.
        {"alertname": "AcmeRule", "severity": "Sev2", "dim_Computer": "INC-Gen2Alert"},
    ),
    (
        "legacy/activitylog-administrative.json",
        "legacy/activitylog-administrative",
        FIRING,
        True,
        {
            "alertname": "Microsoft.Compute/virtualMachines/restart/action",
            "monitoring_service": "Activity Log - Administrative",
            "custom_customKey1": "value1",
            "subscription": SUB,
            "resource": "test-vm",
            **VM,
        },
    ),
    (
        "legacy/activitylog-servicehealth.json",
        "legacy/servicehealth",
        FIRING,
        True,
        {
            "alertname": "Microsoft.ServiceHealth/incident/action",
            "monitoring_service": "ServiceHealth",
            "tracking_id": "ABC1-DEF",
            "stage": "Resolved",
            "subscription": SUB,
        },
    ),
    (
        "legacy/activitylog-servicehealth.webhookdoc.json",
        "legacy/servicehealth",
        FIRING,
        True,
        {"service": "Virtual Machines", "region": "Australia East", "stage": "Active"},
    ),
    (
        "legacy/activitylog-resourcehealth.json",
        "legacy/resourcehealth",
        FIRING,
        True,
        {
            # The transition (Activated/Resolved) is folded out of the rule name.
            "alertname": "Microsoft.Resourcehealth/healthevent/action",
            "monitoring_service": "Resource Health",
            "health_status": "Unavailable",
            "resource": "test-vm",
        },
    ),
    (
        "legacy/activitylog-recommendation.webhookdoc.json",
        "legacy/activitylog-recommendation",
        FIRING,
        True,
        {
            "recommendation_category": "HighAvailability",
            "recommendation_impact": "Medium",
            "resource_group": "contoso",
            "resource": "contosostore",
        },
    ),
    (
        "legacy/activitylog-recommendation-advisor.json",
        "legacy/activitylog-recommendation",
        FIRING,
        True,
        {
            "recommendation_category": "Performance",
            "resource_type": "microsoft.dbformariadb/servers",
        },
    ),
    (
        "legacy/budget.AIP-Budget-Notification.json",
        "legacy/budget",
        FIRING,
        True,
        {
            "alertname": "test-budgetName",
            "budget_type": "Cost",
            "subscription": SUB,
            "resource_group": "test-rg",
        },
    ),
    (
        "legacy/log-alert-legacy-custom-json-rendered-example.json",
        "generic",
        FIRING,
        True,
        {"alertname": "AzureMonitorUnrecognised"},
    ),
    (
        "legacy/log-alert-legacy-custom-json-template.json",
        "generic",
        FIRING,
        True,
        {"alertname": "AzureMonitorUnrecognised"},
    ),
]


def test_every_fixture_has_a_case() -> None:
    """No Azure fixture is left untested."""
    files = {str(p.relative_to(AZURE)) for p in AZURE.glob("*/*.json")}
    assert files == {case[0] for case in CASES}


@pytest.mark.parametrize(("name", "kind", "status", "stateless", "labels"), CASES)
def test_fixture(
    name: str, kind: str, status: AlertStatus, stateless: bool, labels: dict[str, str]
) -> None:
    """Each fixture gives one alert of the expected kind, state, statefulness and labels."""
    parsed = parse_azure(load(name), integration="azure-prod")
    assert parsed.kind == kind
    assert parsed.known == (kind != "generic")
    [alert] = parsed.alerts
    assert alert.status is status
    assert alert.stateless is stateless
    assert alert.integration == "azure-prod"
    assert {k: alert.labels.get(k) for k in labels} == labels
    assert len(alert.fingerprint) == 16


def test_budget_has_no_severity() -> None:
    """A payload without severity leaves the label out, for the configured default."""
    alert = parse_azure(load("common/testaction-budget.full.json")).alerts[0]
    assert "severity" not in alert.labels
    assert alert.annotations["spent_amount"] == "$999.99"
    assert alert.annotations["forecasted_total"] == "$1111.11"


def test_resolved_fixture_times() -> None:
    """Fired and resolved times become timezone-aware starts_at and ends_at (7 digits cut)."""
    alert = parse_azure(load("common/metric-static-resolved.full.json")).alerts[0]
    assert alert.starts_at is not None and alert.ends_at is not None
    assert alert.starts_at.isoformat() == "2019-03-22T13:58:24.371321+00:00"
    assert alert.ends_at.isoformat() == "2019-03-22T14:03:16.224631+00:00"


def test_log_v1_odd_time_format() -> None:
    """The US-style `3/22/2019 1:36:31 PM` of log search v1 becomes ISO 8601 UTC."""
    alert = parse_azure(load("common/log-search-log-analytics.alertContext.json")).alerts[0]
    assert alert.annotations["search_interval_start"] == "2019-03-22T13:36:31+00:00"
    assert alert.annotations["search_interval_end"] == "2019-03-22T13:51:31+00:00"


def test_log_annotations_link_to_results() -> None:
    """Log alerts link to the filtered query results and carry the query."""
    alert = parse_azure(load("common/testaction-log-alert-v2.full.json")).alerts[0]
    link = alert.annotations["link_to_search_results"]
    assert link.startswith("https://portal.azure.com#@") and "q/" in link
    assert alert.annotations["search_query"] == "Heartbeat"
    assert alert.annotations["metric_value"] == "3"
    assert alert.generator_url == alert.annotations["portal_link"]


def test_log_v1_search_results_rendered() -> None:
    """The embedded search results are shown as a few tab-separated rows."""
    alert = parse_azure(load("legacy/log-alert-v1-number-of-results.json")).alerts[0]
    lines = alert.annotations["search_results"].splitlines()
    assert lines[0] == "TenantId\tComputer\tTimeGenerated"
    assert lines[1].split("\t")[1] == "test-computer"


def test_service_health_communication_is_text() -> None:
    """Service Health's HTML communication becomes plain text."""
    alert = parse_azure(load("legacy/activitylog-servicehealth.json")).alerts[0]
    text = alert.annotations["communication"]
    assert "<p>" not in text and "&nbsp;" not in text
    assert text.startswith("Summary of impact: This is the impact summary.")
    assert alert.annotations["impacted_services"] == "Azure Service Name: Global"


def test_custom_json_payload_keeps_text() -> None:
    """A log alert's custom JSON payload is kept whole, its text shown as the summary."""
    parsed = parse_azure(load("legacy/log-alert-legacy-custom-json-rendered-example.json"))
    alert = parsed.alerts[0]
    assert parsed.known is False
    assert alert.annotations["summary"].startswith("My Alert Rule fired with 18 records")
    assert alert.source["raw"] == {"text": alert.annotations["summary"]}


def test_fixture_paths_exist() -> None:
    """The fixtures are where conftest says (a missing checkout fails loudly, not silently)."""
    assert Path(AZURE / "common").is_dir() and Path(AZURE / "legacy").is_dir()
