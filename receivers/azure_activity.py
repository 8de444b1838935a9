"""Azure activity-log events, as both schemas carry them: labels and annotations per category.

An activity-log alert (including Service Health and Resource Health, which are activity-log
alerts too) wraps one activity-log event. The common schema puts the event in `alertContext`;
the legacy `Microsoft.Insights/activityLogs` schema puts it in `data.context.activityLog`
with a few more fields (`resourceId`, `subscriptionId`). Both parsers read it here.

Azure's samples send some enums as numbers (`eventSource: 2`, `level: 3`) and others as
strings for the same event; the number tables below come from those paired samples only,
and an unmapped number is kept as its digits.
"""

from __future__ import annotations

import html
import json
import re

from pagerd.receivers.azure_fields import Node, as_text, compact, label_name

CATEGORIES = ("administrative", "policy", "autoscale", "security", "recommendation", "other")

# From the docs' Service Health sample given once with numbers and once with strings.
_SOURCE_NUMBERS = {2: "ServiceHealth"}
_LEVEL_NUMBERS = {3: "Informational"}

_MAX_PROPERTY = 2000
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</p>|</tr>", re.IGNORECASE)
_BLANK_LINES = re.compile(r"\n\s*\n+")

Fields = tuple[dict[str, str], dict[str, str], str]


def event_source(event: Node) -> str:
    """The event's category (`Administrative`, `ServiceHealth`, ...), numbers mapped."""
    return _enum(event.raw("eventSource"), _SOURCE_NUMBERS)


def classify(event: Node, service: str = "") -> str | None:
    """The kind of an activity-log event, or None if `event` is not one.

    `service` is the common schema's monitoringService, lower-cased without spaces
    ("activitylog-administrative", "servicehealth"); "" for the legacy schema.
    """
    source = event_source(event).lower().replace(" ", "")
    operation = event.text("operationName").lower()
    if "servicehealth" in (source, service) or operation.startswith("microsoft.servicehealth/"):
        return "servicehealth"
    if "resourcehealth" in (source, service) or operation.startswith("microsoft.resourcehealth/"):
        return "resourcehealth"
    if not (source or service.startswith("activitylog") or event.has("operationName")):
        return None
    category = source or service.removeprefix("activitylog-")
    return f"activitylog-{category if category in CATEGORIES else 'other'}"


def event_fields(event: Node, service: str = "") -> Fields:
    """Labels, annotations and resource ID of an administrative, policy, autoscale, security
    or recommendation event."""
    properties = event.obj("properties")
    category = event_source(event) or service.removeprefix("Activity Log - ")
    labels = {**_event_labels(event), "event_category": category}
    labels.update(_category_labels(category.lower(), properties))
    annotations = {
        "summary": _event_summary(event, properties),
        **_event_annotations(event),
        "recommendation_link": properties.text("recommendationResourceLink"),
        **_property_annotations(properties),
    }
    return labels, annotations, _event_resource(event, properties)


def service_health_fields(event: Node) -> Fields:
    """Labels, annotations and resource ID of a Service Health event."""
    p = event.obj("properties")
    labels = {
        **_event_labels(event),
        "event_category": "ServiceHealth",
        "service": p.text("service"),
        "region": p.text("region"),
        "incident_type": p.text("incidentType"),
        "tracking_id": p.text("trackingId"),
        "stage": p.text("stage"),
    }
    annotations = {
        "summary": p.text("title") or p.text("defaultLanguageTitle"),
        "communication": html_text(p.text("communication") or p.text("defaultLanguageContent")),
        "impact_start": p.time_text("impactStartTime"),
        "impact_mitigation": p.time_text("impactMitigationTime"),
        "impacted_services": impacted_services(p.raw("impactedServices")),
        "communication_id": p.text("communicationId"),
        "maintenance_id": p.text("maintenanceId"),
        **_event_annotations(event),
    }
    subscription = event.text("subscriptionId")
    return labels, annotations, f"/subscriptions/{subscription}" if subscription else ""


def resource_health_fields(event: Node) -> Fields:
    """Labels, annotations and resource ID of a Resource Health event."""
    p = event.obj("properties")
    labels = {
        **_event_labels(event),
        "event_category": "ResourceHealth",
        "health_status": p.text("currentHealthStatus"),
        "previous_health_status": p.text("previousHealthStatus"),
        "health_event_type": p.text("type"),
        "health_cause": p.text("cause"),
    }
    annotations = {
        "summary": p.text("title"),
        "details": p.text("details"),
        **_event_annotations(event),
    }
    return labels, annotations, event.text("resourceId")


def rule_name(event: Node) -> str:
    """A stable rule name for an event, for the legacy schema that names no rule.

    The operation name, with Resource Health's transition (`healthevent/Activated/action`,
    `.../Resolved/action`) folded so that one resource's events share one name.
    """
    operation = event.text("operationName")
    return re.sub(r"(?i)(/healthevent)/[^/]+(/action)$", r"\1\2", operation)


def impacted_services(value: object) -> str:
    """Service Health's impacted services as "Service: Region, Region; ...".

    Azure sends them as a JSON string in most samples and as an array in one; anything else
    is shown as given.
    """
    services = value
    if isinstance(value, str):
        try:
            services = json.loads(value)
        except ValueError:
            return value
    if not isinstance(services, list):
        return as_text(value)
    parts = [_impacted_service(s) for s in services if isinstance(s, dict)]
    return "; ".join(p for p in parts if p)


def _impacted_service(service: dict[str, object]) -> str:
    regions = service.get("ImpactedRegions")
    names = (
        [as_text(r.get("RegionName")) for r in regions if isinstance(r, dict)]
        if (isinstance(regions, list))
        else []
    )
    name = as_text(service.get("ServiceName"))
    return f"{name}: {', '.join(n for n in names if n)}" if names else name


def html_text(text: str) -> str:
    """Service Health's HTML communication as plain text for a pager or chat message."""
    plain = html.unescape(_TAG.sub("", _BREAK.sub("\n", text))).replace("\xa0", " ")
    return _BLANK_LINES.sub("\n", plain).strip()


def _enum(value: object, numbers: dict[int, str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return numbers.get(value, str(value))
    return as_text(value)


def _event_labels(event: Node) -> dict[str, str]:
    return {
        "operation_name": event.text("operationName"),
        "event_status": event.text("status"),
        "event_level": _enum(event.raw("level"), _LEVEL_NUMBERS),
    }


def _category_labels(category: str, properties: Node) -> dict[str, str]:
    if category == "security":
        return {"security_severity": properties.text("severity")}
    if category == "recommendation":
        return {
            "recommendation_category": properties.text("recommendationCategory"),
            "recommendation_impact": properties.text("recommendationImpact"),
        }
    return {}


def _event_summary(event: Node, properties: Node) -> str:
    candidates = (
        event.text("Activity Log Event Description"),
        event.text("description"),
        properties.text("description"),
        properties.text("recommendationName"),
        properties.text("title"),
        " ".join(filter(None, (event.text("operationName"), event.text("status")))),
    )
    return next((c for c in candidates if c), "")


def _event_annotations(event: Node) -> dict[str, str]:
    return compact(
        {
            "caller": event.text("caller"),
            "correlation_id": event.text("correlationId"),
            "event_data_id": event.text("eventDataId"),
            "operation_id": event.text("operationId"),
            "sub_status": event.text("subStatus"),
            "event_timestamp": event.time_text("eventTimestamp"),
            "submission_timestamp": event.time_text("submissionTimestamp"),
        }
    )


def _property_annotations(properties: Node) -> dict[str, str]:
    return {
        label_name("property_", name): as_text(value)[:_MAX_PROPERTY]
        for name, value in properties.data.items()
        if as_text(value)
    }


def _event_resource(event: Node, properties: Node) -> str:
    candidates = (
        event.text("resourceId"),
        event.obj("authorization").text("scope"),
        properties.text("entity"),
        properties.text("resourceName"),
    )
    return next((c for c in candidates if c.lower().startswith("/subscriptions/")), "")
