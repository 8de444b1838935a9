"""The intake pipeline: canonical alerts -> routing tree -> one durable store write."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog

from pagerd.clock import Clock
from pagerd.daemon.metrics import Metrics
from pagerd.models import Alert, AlertStatus
from pagerd.routing.inhibit import Inhibitor
from pagerd.routing.tree import Route
from pagerd.settings import Settings
from pagerd.store.base import IngestBatch, IngestItem, IngestResult, RouteTarget, Store

log = structlog.get_logger("pagerd.intake")


# Group keys remembered per Router (one config); past this many, the memo starts over, so
# a label with ever-new values cannot grow it without bound.
_GROUP_KEYS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class _RouteFacts:
    """What a target takes from its route and level alone, worked out once per config."""

    severity: str
    severity_rank: int
    escalation_policy: str | None
    opens_incident: bool
    notify: bool


class Router:
    """Turns an alert into the incidents it belongs to, under one config."""

    def __init__(self, settings: Settings, firing: Iterable[tuple[str, dict[str, str]]] = ()):
        self.settings = settings
        self.inhibitor = Inhibitor(settings.routing.inhibit_rules)
        for fingerprint, labels in firing:
            self.inhibitor.observe(fingerprint, labels, True)
        self._facts: dict[tuple[Route, str], _RouteFacts] = {}
        self._group_keys: dict[tuple[Route, tuple[str, ...]], str] = {}

    def targets(self, alert: Alert, metrics: Metrics, clock: Clock) -> IngestItem:
        """The alert with every route it matches as an incident target.

        A firing alert that inhibition or a time interval silences is marked suppressed:
        the store then treats its next re-send as a change, so it can page once the
        silence is over.
        """
        settings = self.settings
        tree = settings.routing.tree
        level, known = settings.severities.classify(alert.labels)
        if not known:
            metrics.unknown_severity.labels(alert.integration).inc()
        firing = alert.status is AlertStatus.FIRING
        if firing and self.inhibitor.is_inhibited(alert.fingerprint, alert.labels):
            metrics.alerts_unrouted.labels("inhibited").inc()
            return IngestItem(alert, [], suppressed=True)

        targets = []
        suppressed = False
        now: datetime | None = None
        for route in tree.match(alert.labels):
            # Only a route with time intervals can be muted: the others need no clock.
            if firing and (route.mute_time_intervals or route.active_time_intervals):
                now = now or clock.now()
                muted = tree.is_muted(route, now)
                if muted is not None:
                    metrics.alerts_unrouted.labels(
                        "inactive" if muted == "inactive" else "muted").inc()
                    suppressed = True
                    continue
            targets.append(self._target(route, alert, level))
        return IngestItem(alert, targets, suppressed)

    def _target(self, route: Route, alert: Alert, source_level: str) -> RouteTarget:
        facts = self._facts.get((route, source_level))
        if facts is None:
            facts = self._facts[(route, source_level)] = self._route_facts(route, source_level)
        tree = self.settings.routing.tree
        group_labels = tree.group_labels(route, alert.labels)
        return RouteTarget(
            key=self._group_key(route, alert, group_labels),
            route_id=route.id,
            receiver=route.receiver,
            group_labels=group_labels,
            severity=facts.severity,
            severity_rank=facts.severity_rank,
            owner=route.owner,
            escalation_policy=facts.escalation_policy,
            opens_incident=facts.opens_incident,
            group_wait=route.group_wait,
            group_interval=route.group_interval,
            notify=facts.notify,
            auto_resolve_after=route.auto_resolve_after if alert.stateless else None,
        )

    def _route_facts(self, route: Route, source_level: str) -> _RouteFacts:
        settings = self.settings
        severity = route.severity or source_level
        receiver = settings.receivers[route.receiver]
        component = settings.components.get(route.owner) if route.owner else None
        level = settings.severities.level(severity)
        policy = (route.escalation_policy
                  or (component.escalation_policy if component else None)
                  or (level.escalation_policy if level else None))
        return _RouteFacts(
            severity=severity,
            severity_rank=settings.severities.rank(severity),
            escalation_policy=policy,
            opens_incident=receiver.has_notifier or policy is not None,
            notify=receiver.has_notifier,
        )

    def _group_key(self, route: Route, alert: Alert, group_labels: dict[str, str]) -> str:
        tree = self.settings.routing.tree
        if route.group_by is None:
            return tree.group_key(route, alert.labels)
        # The key is a function of the route and its group_by labels' values: memoised,
        # since spelling it (Go quoting) costs more than looking it up.
        memo = (route, tuple(group_labels.get(name, "") for name in route.group_by))
        key = self._group_keys.get(memo)
        if key is None:
            if len(self._group_keys) >= _GROUP_KEYS_MAX:
                self._group_keys.clear()
            key = self._group_keys[memo] = tree.group_key(route, alert.labels)
        return key


class Intake:
    """Accepts alerts from any integration and stores them durably before answering."""

    def __init__(self, store: Store, metrics: Metrics, clock: Clock, router: Router) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.router = router

    async def accept(
        self, alerts: list[Alert], integration: str, *, partial: bool = False
    ) -> IngestResult:
        """Route and store `alerts` in one transaction; returns once it is durable."""
        batch = self.prepare(alerts, integration, partial)
        result = await self.store.ingest(batch, self.clock.time())
        self.record(result, integration)
        return result

    def prepare(self, alerts: list[Alert], integration: str, partial: bool) -> IngestBatch:
        """The alerts with their routes, ready to store."""
        router = self.router  # one config for the whole batch, even across a reload
        for alert in alerts:
            router.inhibitor.observe(
                alert.fingerprint, alert.labels, alert.status is AlertStatus.FIRING)
        items = [router.targets(alert, self.metrics, self.clock) for alert in alerts]
        return IngestBatch(items, integration, partial)

    def record(self, result: IngestResult, integration: str) -> None:
        """Count and log what a stored batch did."""
        for outcome, count in result.outcomes.items():
            self.metrics.alerts_received.labels(integration, outcome).inc(count)
        if result.opened:
            log.info("incidents.opened", integration=integration, incidents=result.opened)
        if result.resolved:
            log.info("incidents.resolved", integration=integration, incidents=result.resolved)
