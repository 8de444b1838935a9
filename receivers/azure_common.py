"""Azure Monitor's common alert schema: essentials, then one parser per alertContext type.

The essentials give every alert its identity (`alertId`), state, times, severity and target
resource; the alertContext parser adds the labels and annotations of its type. Which parser
runs is decided by `classify`, from the context's shape first (`conditionType`, the fields
only one type has) and the essentials' `monitoringService` second, since Azure's samples
spell the service names several ways ("ServiceHealth", "Service Health", "Resource Health").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pagerd.models import Alert, AlertStatus
from pagerd.receivers import azure_activity as activity
from pagerd.receivers.azure_fields import (
    AzureParse,
    Node,
    arm_labels,
    as_text,
    compact,
    custom_labels,
    dimension_pairs,
    fingerprint_of,
    label_name,
    portal_link,
    prefixed_labels,
    severity_label,
)
from pagerd.receivers.errors import PayloadError

SCHEMA_ID = "azureMonitorCommonAlertSchema"

# Labels built from the essentials; a context's own labels never replace them.
RESERVED_LABELS = frozenset(
    {
        "alertname",
        "severity",
        "subscription",
        "resource_group",
        "resource_type",
        "resource",
        "monitoring_service",
        "signal_type",
    }
)

# Types whose source never sends Resolved (Azure: "All activity log alerts are stateless").
STATELESS_KINDS = frozenset(
    {
        "log-search-v1",
        "log-simple",
        "activitylog-administrative",
        "activitylog-policy",
        "activitylog-autoscale",
        "activitylog-security",
        "activitylog-recommendation",
        "activitylog-other",
        "servicehealth",
        "resourcehealth",
        "budget",
    }
)


@dataclass(slots=True)
class Essentials:
    """The `essentials` section: what every common-schema alert has."""

    alert_id: str
    rule: str
    severity: str
    status: AlertStatus
    monitoring_service: str
    signal_type: str
    targets: list[str]
    node: Node
    fired: datetime | None
    resolved: datetime | None

    @classmethod
    def read(cls, node: Node) -> Essentials:
        """The essentials of a common-schema payload; a PayloadError names a bad field."""
        return cls(
            alert_id=node.req_text("alertId"),
            rule=node.opt_text("alertRule"),
            severity=_severity(node),
            status=_status(node),
            monitoring_service=node.text("monitoringService"),
            signal_type=node.text("signalType"),
            targets=[as_text(t) for t in node.items("alertTargetIDs") if as_text(t)],
            node=node,
            fired=node.time("firedDateTime"),
            resolved=node.time("resolvedDateTime"),
        )


@dataclass(slots=True)
class Detail:
    """What an alertContext parser adds: labels, annotations, and fallbacks for the essentials."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # Used when the essentials have no alertRule (budgets send null).
    alertname: str = ""
    # Used when the essentials have no alertTargetIDs.
    resource_id: str = ""


# A parser reads an alertContext, given the essentials' monitoringService.
ContextParser = Callable[[Node, str], Detail]


def parse_common(body: Node, integration: str) -> AzureParse:
    """The alert of a common-schema payload (`schemaId: azureMonitorCommonAlertSchema`)."""
    data = body.req_obj("data")
    essentials = Essentials.read(data.req_obj("essentials"))
    context = data.obj("alertContext")
    kind = classify(context, essentials)
    parser = PARSERS.get(kind)
    detail = parser(context, essentials.monitoring_service) if parser else Detail()
    # Metric and log v2 contexts repeat the rule's custom properties in `properties`; in
    # activity-log contexts `properties` is the event's own data, not custom properties.
    rule_properties = context.obj("properties") if kind in _CUSTOM_IN_CONTEXT else Node({}, "")
    custom = custom_labels(rule_properties, data.obj("customProperties"))
    alert = _build(essentials, detail, custom, kind, integration)
    if parser is None:
        # Essentials are enough to route it; the raw payload keeps what no parser read.
        alert.source["raw"] = body.data
        return AzureParse([alert], kind="common/unknown", known=False, notes={"reason": "context"})
    return AzureParse(alerts=[alert], kind=f"common/{kind}")


def classify(context: Node, essentials: Essentials) -> str:
    """The alertContext type of a payload: a key of `PARSERS`, or "unknown"."""
    service = essentials.monitoring_service.lower().replace(" ", "")
    condition_type = context.text("conditionType")
    if condition_type in _CONDITION_KINDS:
        return _CONDITION_KINDS[condition_type]
    if condition_type == "LogQueryCriteria":
        return "log-simple" if service == "simplelogalert" else "log-search-v2"
    if context.has("SearchQuery"):
        return "log-search-v1"
    if service == "costalerts" or context.text("AlertCategory").lower() == "budgets":
        return "budget"
    if service == "prometheus" or (context.has("expression") and context.has("ruleGroup")):
        return "prometheus"
    if service == "smartdetector" or context.has("SmartDetectorId"):
        return "smart-detection"
    return activity.classify(context, service) or "unknown"


_CUSTOM_IN_CONTEXT = frozenset(
    {"metric-static", "metric-dynamic", "metric-webtest", "log-search-v2", "log-simple"}
)

_CONDITION_KINDS = {
    "SingleResourceMultipleMetricCriteria": "metric-static",
    "MultipleResourceMultipleMetricCriteria": "metric-static",
    "DynamicThresholdCriteria": "metric-dynamic",
    "WebtestLocationAvailabilityCriteria": "metric-webtest",
}


def _build(
    essentials: Essentials, detail: Detail, custom: dict[str, str], kind: str, integration: str
) -> Alert:
    labels = {**custom, **_context_labels(detail.labels), **_essential_labels(essentials, detail)}
    annotations = {**_essential_annotations(essentials, detail), **compact(detail.annotations)}
    resolved = essentials.status is AlertStatus.RESOLVED
    return Alert(
        fingerprint=fingerprint_of(essentials.alert_id.lower()),
        status=essentials.status,
        labels=labels,
        annotations=annotations,
        starts_at=essentials.fired,
        ends_at=essentials.resolved if resolved else None,
        generator_url=annotations.get("investigation_link") or annotations.get("portal_link", ""),
        integration=integration,
        # A Resolved notification proves the rule is stateful, whatever its type.
        stateless=kind in STATELESS_KINDS and not resolved,
        source=compact(
            {
                "schema": SCHEMA_ID,
                "kind": f"common/{kind}",
                "alert_id": essentials.alert_id,
                "origin_alert_id": essentials.node.text("originAlertId"),
            }
        ),
    )


def _context_labels(labels: dict[str, str]) -> dict[str, str]:
    """A context's labels, with any that would shadow an essentials label renamed `ctx_*`."""
    out: dict[str, str] = {}
    for name, value in labels.items():
        if value:
            out[label_name("ctx_", name) if name in RESERVED_LABELS else name] = value
    return out


def _essential_labels(essentials: Essentials, detail: Detail) -> dict[str, str]:
    node = essentials.node
    target = essentials.targets[0] if essentials.targets else detail.resource_id
    labels = arm_labels(target)
    overrides = {
        "resource_group": node.text("targetResourceGroup").lower(),
        "resource_type": node.text("targetResourceType").lower(),
    }
    labels.update(compact(overrides))
    name = essentials.rule or detail.alertname or essentials.monitoring_service or "azure-alert"
    labels.update(
        {
            "alertname": name,
            "severity": essentials.severity,
            "monitoring_service": essentials.monitoring_service,
            "signal_type": essentials.signal_type,
        }
    )
    return compact(labels)


def _essential_annotations(essentials: Essentials, detail: Detail) -> dict[str, str]:
    node = essentials.node
    target = essentials.targets[0] if essentials.targets else detail.resource_id
    items = [as_text(i) for i in node.items("configurationItems")]
    return compact(
        {
            "description": node.text("description"),
            "alert_id": essentials.alert_id,
            "alert_rule_id": node.text("alertRuleId") or node.text("alertRuleID"),
            "resource_id": target,
            "alert_targets": "\n".join(essentials.targets) if len(essentials.targets) > 1 else "",
            "configuration_items": ", ".join(i for i in items if i),
            "portal_link": portal_link(target),
            "investigation_link": node.text("investigationLink"),
        }
    )


def _severity(node: Node) -> str:
    if not node.has("severity"):
        return ""  # budgets carry none; the intake applies its configured default
    label = severity_label(node.raw("severity"))
    if not label or not isinstance(node.raw("severity"), str):
        raise PayloadError(node.at("severity"), "expected one of Sev0, Sev1, Sev2, Sev3, Sev4")
    return label


def _status(node: Node) -> AlertStatus:
    condition = node.req_text("monitorCondition").strip().lower()
    if condition == "fired":
        return AlertStatus.FIRING
    if condition == "resolved":
        return AlertStatus.RESOLVED
    raise PayloadError(node.at("monitorCondition"), "expected Fired or Resolved")


# Metric alerts: static, dynamic and availability-test conditions.


def parse_metric(context: Node, service: str) -> Detail:
    """Metric alert with static thresholds (single- and multi-resource criteria)."""
    conditions = context.obj("condition").objs("allOf")
    labels = {
        "metric_name": _distinct(conditions, "metricName", ","),
        "metric_namespace": _distinct(conditions, "metricNamespace", ","),
        **_dimension_labels(conditions, "dimensions"),
    }
    annotations = {
        "summary": "\n".join(_metric_line(c) for c in conditions),
        "metric_value": _joined(conditions, "metricValue"),
        "threshold": _joined(conditions, "threshold"),
        "operator": _joined(conditions, "operator"),
        "time_aggregation": _joined(conditions, "timeAggregation"),
        **_window(context.obj("condition")),
    }
    return Detail(labels=labels, annotations=annotations)


def parse_metric_dynamic(context: Node, service: str) -> Detail:
    """Metric alert with a dynamic threshold (`DynamicThresholdCriteria`)."""
    detail = parse_metric(context, service)
    conditions = context.obj("condition").objs("allOf")
    detail.annotations["alert_sensitivity"] = _joined(conditions, "alertSensitivity")
    detail.annotations["failing_periods"] = "\n".join(
        _failing_periods(c.obj("failingPeriods")) for c in conditions
    ).strip()
    return detail


def parse_metric_webtest(context: Node, service: str) -> Detail:
    """Availability-test metric alert (`WebtestLocationAvailabilityCriteria`)."""
    detail = parse_metric(context, service)
    conditions = context.obj("condition").objs("allOf")
    detail.labels["webtest_name"] = _distinct(conditions, "webTestName", ",")
    return detail


def _metric_line(c: Node) -> str:
    words = [c.text("metricName"), c.text("timeAggregation"), c.text("operator")]
    head = " ".join(w for w in [*words, c.text("threshold")] if w)
    value = c.text("metricValue")
    return f"{head} (value {value})" if value else head


def _failing_periods(node: Node) -> str:
    failing, total = node.text("minFailingPeriodsToAlert"), node.text("numberOfEvaluationPeriods")
    return f"{failing} of {total}" if failing and total else ""


# Log search alerts: v1 (Log Analytics, Application Insights), v2, and simple log alerts.


def parse_log_v1(context: Node, service: str) -> Detail:
    """Log search alert v1 (`monitoringService` Log Analytics or Application Insights)."""
    labels = prefixed_labels("dim_", dimension_pairs(context.objs("Dimensions")))
    filtered_ui = context.text("LinkToFilteredSearchResultsUI")
    filtered_api = context.text("LinkToFilteredSearchResultsAPI")
    annotations = {
        "summary": _log_summary(context),
        "search_query": context.text("SearchQuery"),
        "alert_type": context.text("AlertType"),
        "result_count": context.text("ResultCount"),
        "threshold": context.text("Threshold"),
        "operator": context.text("Operator"),
        "search_interval_start": context.time_text("SearchIntervalStartTimeUtc"),
        "search_interval_end": context.time_text("SearchIntervalEndtimeUtc"),
        "link_to_search_results": filtered_ui or context.text("LinkToSearchResults"),
        "link_to_search_results_api": filtered_api or context.text("LinkToSearchResultsAPI"),
        "workspace_id": context.text("WorkspaceId"),
        "application_id": context.text("ApplicationId"),
        "search_results": render_search_results(context.raw("SearchResults")),
    }
    return Detail(labels=labels, annotations=annotations)


def _log_summary(context: Node) -> str:
    return log_summary(
        context.text("ResultCount"), context.text("Operator"), context.text("Threshold")
    )


def log_summary(count: str, operator: str, threshold: str) -> str:
    """A log search alert's one-line summary: "2 results (Greater Than 0)"."""
    if not count:
        return ""
    return f"{count} results ({operator} {threshold})" if operator else f"{count} results"


def parse_log_v2(context: Node, service: str) -> Detail:
    """Log search alert v2 (`LogQueryCriteria`, `monitoringService` Log Alerts V2)."""
    conditions = context.obj("condition").objs("allOf")
    filtered_ui = _joined(conditions, "linkToFilteredSearchResultsUI")
    filtered_api = _joined(conditions, "linkToFilteredSearchResultsAPI")
    annotations = {
        "search_query": _joined(conditions, "searchQuery"),
        "metric_value": _joined(conditions, "metricValue"),
        "threshold": _joined(conditions, "threshold"),
        "operator": _joined(conditions, "operator"),
        "time_aggregation": _joined(conditions, "timeAggregation"),
        "metric_measure_column": _joined(conditions, "metricMeasureColumn"),
        "target_resource_types": _joined(conditions, "targetResourceTypes"),
        "link_to_search_results": filtered_ui or _joined(conditions, "linkToSearchResultsUI"),
        "link_to_search_results_api": filtered_api or _joined(conditions, "linkToSearchResultsAPI"),
        **_window(context.obj("condition")),
    }
    return Detail(labels=_dimension_labels(conditions, "dimensions"), annotations=annotations)


def parse_log_simple(context: Node, service: str) -> Detail:
    """Simple log search alert: one row per alert, carried as `event` name/value lists."""
    detail = parse_log_v2(context, service)
    conditions = context.obj("condition").objs("allOf")
    rows = [row for c in conditions for row in c.items("event")]
    detail.annotations["events"] = "\n".join(_event_row(row) for row in rows[:_MAX_ROWS])
    return detail


def _event_row(row: object) -> str:
    cells = row if isinstance(row, list) else [row]
    pairs = (
        f"{as_text(c.get('name'))}={as_text(c.get('value'))}" for c in cells if isinstance(c, dict)
    )
    return ", ".join(pairs)


_MAX_ROWS = 10


def render_search_results(value: object) -> str:
    """The first rows of a log search result table, one line each, tab-separated.

    Descriptive only: a table of an unexpected shape renders as "" rather than refusing the
    alert, since the results are a copy of what the query link shows.
    """
    tables = value.get("tables") if isinstance(value, dict) else None
    if not isinstance(tables, list) or not tables or not isinstance(tables[0], dict):
        return ""
    columns, rows = tables[0].get("columns"), tables[0].get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return ""
    head = [as_text(c.get("name")) if isinstance(c, dict) else as_text(c) for c in columns]
    lines = ["\t".join(head)]
    for row in rows[:_MAX_ROWS]:
        cells = row if isinstance(row, list) else [row]
        lines.append("\t".join(as_text(cell) for cell in cells))
    if len(rows) > _MAX_ROWS:
        lines.append(f"... {len(rows) - _MAX_ROWS} more rows")
    return "\n".join(lines)


# The other context types.


def parse_budget(context: Node, service: str) -> Detail:
    """Cost budget alert (`monitoringService` CostAlerts, `AlertCategory` budgets)."""
    data = context.obj("AlertData")
    name = data.text("BudgetName")
    spent, threshold = data.text("SpentAmount"), data.text("BudgetThreshold")
    labels = {
        "budget_name": name,
        "budget_type": data.text("BudgetType"),
        "threshold_type": data.text("ThresholdType"),
    }
    annotations = {
        "summary": f"Budget {name}: spent {spent} of {threshold}" if name else "",
        "spent_amount": spent,
        "forecasted_total": data.text("ForecastedTotalForPeriod"),
        "budget_threshold": threshold,
        "notification_threshold": data.text("NotificationThresholdAmount"),
        "unit": data.text("Unit"),
        "budget_start": data.time_text("BudgetStartDate"),
        "budget_creator": data.text("BudgetCreator"),
        "budget_id": data.text("BudgetId"),
    }
    return Detail(labels, annotations, alertname=name, resource_id=data.text("Scope"))


def parse_prometheus(context: Node, service: str) -> Detail:
    """Azure Monitor managed Prometheus rule: the rule's own labels and annotations."""
    rule_labels = {label_name("", k): as_text(v) for k, v in context.obj("labels").data.items()}
    rule_group = context.text("ruleGroup")
    labels = {**rule_labels, "rule_group": rule_group.rsplit("/", 1)[-1]}
    annotations = {
        **{label_name("", k): as_text(v) for k, v in context.obj("annotations").data.items()},
        "expression": context.text("expression"),
        "expression_value": context.text("expressionValue"),
        "for": context.text("for"),
        "interval": context.text("interval"),
        "rule_group_id": rule_group,
    }
    return Detail(labels=_renamed(labels, "prom_"), annotations=annotations)


def parse_smart_detection(context: Node, service: str) -> Detail:
    """Application Insights smart detection (`monitoringService` SmartDetector)."""
    labels = {"smart_detector": context.text("SmartDetectorId")}
    annotations = {
        "summary": context.text("DetectionSummary"),
        "detector_name": context.text("SmartDetectorName"),
        "detected_value": context.text("DetectedValue"),
        "normal_value": context.text("NormalValue"),
        "occurrence_time": context.time_text("FormattedOccurrenceTime"),
        "analysis_time": context.time_text("AnalysisTimestamp"),
        "insight_query": context.text("PresentationInsightEventRequest"),
    }
    return Detail(labels=labels, annotations=annotations)


def parse_activity(context: Node, service: str) -> Detail:
    """Activity log alert (administrative, policy, autoscale, security, recommendation)."""
    labels, annotations, resource_id = activity.event_fields(context, service)
    return Detail(labels, annotations, resource_id=resource_id)


def parse_service_health(context: Node, service: str) -> Detail:
    """Service Health alert: an Azure incident, maintenance, advisory or security notice."""
    labels, annotations, resource_id = activity.service_health_fields(context)
    return Detail(labels, annotations, resource_id=resource_id)


def parse_resource_health(context: Node, service: str) -> Detail:
    """Resource Health alert: one resource's availability changed."""
    labels, annotations, resource_id = activity.resource_health_fields(context)
    return Detail(labels, annotations, resource_id=resource_id)


PARSERS: dict[str, ContextParser] = {
    "metric-static": parse_metric,
    "metric-dynamic": parse_metric_dynamic,
    "metric-webtest": parse_metric_webtest,
    "log-search-v1": parse_log_v1,
    "log-search-v2": parse_log_v2,
    "log-simple": parse_log_simple,
    "budget": parse_budget,
    "prometheus": parse_prometheus,
    "smart-detection": parse_smart_detection,
    "servicehealth": parse_service_health,
    "resourcehealth": parse_resource_health,
    **{f"activitylog-{c}": parse_activity for c in activity.CATEGORIES},
}


# Helpers over condition lists.


def _distinct(nodes: Iterable[Node], key: str, sep: str) -> str:
    values = (n.text(key) for n in nodes)
    return sep.join(dict.fromkeys(v for v in values if v))


def _joined(nodes: Iterable[Node], key: str) -> str:
    return "\n".join(v for v in (n.text(key) for n in nodes) if v)


def _dimension_labels(conditions: Iterable[Node], key: str) -> dict[str, str]:
    pairs = (pair for c in conditions for pair in dimension_pairs(c.objs(key)))
    return prefixed_labels("dim_", pairs)


def _window(condition: Node) -> dict[str, str]:
    return {
        "window_size": condition.text("windowSize"),
        "window_start": condition.time_text("windowStartTime"),
        "window_end": condition.time_text("windowEndTime"),
    }


def _renamed(labels: dict[str, str], prefix: str) -> dict[str, str]:
    """Labels with those that clash with an essentials label renamed `prefix` + name."""
    return {(prefix + k if k in RESERVED_LABELS else k): v for k, v in labels.items()}
