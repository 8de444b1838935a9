"""pagerd's own Prometheus metrics, on an injected registry so tests stay isolated."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from pagerd import __version__


class Metrics:
    """Every metric pagerd exports, named `pagerd_*`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "pagerd_alerts_received_total", "Alerts received, by integration and outcome "
            "(new, updated, resolved, duplicate).", ["integration", "outcome"], registry=r)
        self.invalid_payloads = Counter(
            "pagerd_invalid_payloads_total", "Requests refused as malformed, by integration "
            "and field.", ["integration", "field"], registry=r)
        self.unknown_payloads = Counter(
            "pagerd_unknown_payloads_total", "Well-formed payloads of a shape pagerd does not "
            "know, kept as generic alerts.", ["integration", "kind", "reason"], registry=r)
        self.auth_failures = Counter(
            "pagerd_auth_failures_total", "Requests refused for missing or wrong credentials.",
            ["endpoint"], registry=r)
        self.unavailable = Counter(
            "pagerd_unavailable_total", "Requests answered 503, by reason.", ["reason"],
            registry=r)
        self.journal_ingested = Counter(
            "pagerd_intake_journal_entries_total", "Requests accepted by intake processes and "
            "ingested from their journals.", registry=r)
        self.intake_process_exits = Counter(
            "pagerd_intake_process_exits_total", "Intake processes that exited unasked (each "
            "is restarted).", registry=r)
        self.alerts_unrouted = Counter(
            "pagerd_alerts_silenced_total", "Alert routings that opened no incident, by reason "
            "(inhibited, muted, inactive).", ["reason"], registry=r)
        self.unknown_severity = Counter(
            "pagerd_unknown_severity_total", "Alerts whose source severity was missing or "
            "unknown and took the configured default.", ["integration"], registry=r)
        self.incidents_opened = Counter(
            "pagerd_incidents_opened_total", "Incidents opened, by severity.", ["severity"],
            registry=r)
        self.open_incidents = Gauge(
            "pagerd_open_incidents", "Open incidents, by severity.", ["severity"], registry=r)
        self.notifications = Counter(
            "pagerd_notifications_total", "Notifications delivered, by notifier.", ["notifier"],
            registry=r)
        self.notification_failures = Counter(
            "pagerd_notification_failures_total", "Failed notification attempts, by notifier "
            "and reason.", ["notifier", "reason"], registry=r)
        self.notification_latency = Histogram(
            "pagerd_notification_latency_seconds", "Time from a notification falling due to "
            "its delivery.", ["notifier"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.escalation_steps = Counter(
            "pagerd_escalation_steps_total", "Escalation steps fired, by policy.", ["policy"],
            registry=r)
        self.escalation_lateness = Histogram(
            "pagerd_escalation_step_lateness_seconds", "How late an escalation step fired "
            "after its due time.", registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600))
        self.escalation_fallbacks = Counter(
            "pagerd_escalation_fallbacks_total", "Steps that paged the policy's fallback "
            "(nobody on the step, or the policy exhausted).", ["policy"], registry=r)
        self.escalation_nobody = Counter(
            "pagerd_escalation_nobody_paged_total", "Steps that found nobody at all to page, "
            "fallback included.", ["policy"], registry=r)
        self.escalations_exhausted = Counter(
            "pagerd_escalations_exhausted_total", "Escalations that ran out of steps.",
            ["policy"], registry=r)
        self.open_escalations = Gauge(
            "pagerd_open_escalations", "Incidents with an escalation still running.",
            registry=r)
        self.pages = Counter(
            "pagerd_pages_total", "Pages sent, by user and method.", ["user", "method"],
            registry=r)
        self.pages_out_of_hours = Counter(
            "pagerd_pages_out_of_hours_total", "Pages sent outside the person's working hours "
            "(Mon-Fri 09:00-17:00 in their time zone), by user.", ["user"], registry=r)
        self.page_failures = Counter(
            "pagerd_page_failures_total", "Failed page attempts, by method and reason.",
            ["method", "reason"], registry=r)
        self.target_breaches = Counter(
            "pagerd_incident_target_breaches_total", "Response targets missed, by severity "
            "and target (ack, mitigate, resolve).", ["severity", "target"], registry=r)
        self.actions_overdue = Counter(
            "pagerd_remediation_actions_overdue_total", "Remediation actions that passed "
            "their due date open (each reminded once).", registry=r)
        self.link_refusals = Counter(
            "pagerd_link_refusals_total", "Action links refused, by reason (forged, expired, "
            "used, csrf).", ["reason"], registry=r)
        self.sms_opt_outs = Gauge(
            "pagerd_sms_opted_out_phones", "Phones that sent STOP: their people are "
            "unreachable by SMS.", registry=r)
        self.time_to_ack = Histogram(
            "pagerd_time_to_acknowledge_seconds", "From an incident opening to its first "
            "acknowledgement.", ["severity", "owner"], registry=r,
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400))
        self.time_to_resolve = Histogram(
            "pagerd_time_to_resolve_seconds", "From an incident opening to its resolution.",
            ["severity", "owner"], registry=r,
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800))
        self.config_hash = Gauge(
            "pagerd_config_hash", "Hash of the loaded configuration (first 52 bits).",
            registry=r)
        self.config_last_reload_success = Gauge(
            "pagerd_config_last_reload_successful", "Whether the last reload succeeded.",
            registry=r)
        self.config_last_reload_time = Gauge(
            "pagerd_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.", registry=r)
        self.build_info = Info("pagerd_build", "pagerd's version.", registry=r)
        self.build_info.info({"version": __version__})

    def set_config(self, digest: str, now: float) -> None:
        """Record a successful (re)load of the config with this digest."""
        self.config_hash.set(int(digest[:13], 16))
        self.config_last_reload_success.set(1)
        self.config_last_reload_time.set(now)
