"""The store contract: every state change is one atomic operation.

Two backends implement it: SQLite (embedded default) and, for replicas sharing work, Redis.
Each method below is a single transaction in the backend, so a crash leaves either all of
its effects or none: upsert alerts by fingerprint with their incidents and timelines,
append to a timeline, claim a due timer once.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pagerd.models import Alert


class StoreUnavailable(Exception):
    """The store cannot take the operation now (I/O error, closed, overloaded): a 503."""


@dataclass(slots=True)
class RouteTarget:
    """Where routing sent one alert: the incident it belongs to and how it notifies."""

    key: str
    route_id: str
    receiver: str
    group_labels: dict[str, str]
    severity: str
    # Lower is more severe (SEV1 = 0); an incident takes its most severe alert's level.
    severity_rank: int
    owner: str | None
    escalation_policy: str | None
    # False for a receiver with no notifier and no policy: alerts are kept, no incident.
    opens_incident: bool
    group_wait: float
    group_interval: float
    notify: bool = True
    # For stateless alerts (their source never resolves them): resolve the incident this
    # long after its last alert, if the route asks for it.
    auto_resolve_after: float | None = None
    # What a person reported when opening the incident (impact, reporter, support case).
    details: dict[str, Any] | None = None


@dataclass(slots=True)
class IngestItem:
    """An alert and the routes it matched."""

    alert: Alert
    targets: list[RouteTarget]
    # Silenced now (inhibited, muted): a later re-send is a change, not a duplicate.
    suppressed: bool = False


@dataclass(slots=True)
class IngestBatch:
    """One intake request's alerts, applied in one transaction."""

    items: list[IngestItem]
    integration: str
    # The source left alerts of this group out (Alertmanager's truncatedAlerts > 0): an
    # incident whose known alerts all resolved may still have firing ones, so it stays
    # open. Alertmanager computes a truncated notification's status from the alerts it
    # kept, so even "resolved" does not speak for the ones it cut.
    partial: bool = False


@dataclass(slots=True)
class IngestResult:
    """What a batch changed, for metrics and logs."""

    outcomes: dict[str, int] = field(default_factory=dict)
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        """Count one alert's outcome (new, updated, resolved, duplicate)."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def add(self, other: IngestResult) -> None:
        """Take in what another batch changed."""
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        self.opened += other.opened
        self.resolved += other.resolved


@dataclass(slots=True)
class Timer:
    """A claimed timer: a notification (or escalation step) due now."""

    id: int
    kind: str
    incident_id: int
    target: str
    attempts: int
    generation: int
    last_sent_at: float | None
    last_digest: str | None
    due_at: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageOrder:
    """A page to send to a person: one of their notification rules, after its delay."""

    user: str
    method: str
    delay: float
    # Which escalation step this page belongs to, e.g. "frontline:0:0"; keeps the timer's
    # identity unique per firing, so a repeat round pages again.
    step: str
    rule: int = 0
    # Informational (a new alert on an incident the person acknowledged): no escalation.
    info: bool = False
    # A notice that someone acted ("acknowledged by alice"): sent whatever the state.
    notice: str | None = None
    # Methods that already failed for this page (failover order).
    tried: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """The timer's target: unique per user, rule and escalation step."""
        return f"{self.user}/{self.rule}/{self.step}"

    def payload(self) -> dict[str, Any]:
        """What the page timer carries."""
        payload: dict[str, Any] = {"user": self.user, "method": self.method,
                                   "rule": self.rule, "step": self.step, "info": self.info}
        if self.notice:
            payload["notice"] = self.notice
        if self.tried:
            payload["tried"] = list(self.tried)
        return payload


@dataclass(frozen=True, slots=True)
class EscalationStepRecord:
    """What firing an escalation step did, to store atomically with its pages."""

    entry: dict[str, Any]
    pages: list[PageOrder]
    # The next position (a timer payload) and when it is due; None ends the escalation.
    next_payload: dict[str, Any] | None
    next_due: float | None


class Store(abc.ABC):
    """The contract both backends keep."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the store, migrating its schema; fail fast with the reason."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued writes and close."""

    @abc.abstractmethod
    async def ingest(self, batch: IngestBatch, now: float) -> IngestResult:
        """Upsert the batch's alerts by fingerprint, open or update their incidents, append
        their timelines and schedule their notifications, atomically."""

    @abc.abstractmethod
    async def ingest_journaled(self, batches: list[IngestBatch], cursors: dict[str, int],
                               now: float) -> list[IngestResult]:
        """Ingest batches read from intake journals, and move each journal's cursor to the
        last entry read (`cursors`: journal -> entry id), atomically: an entry is ingested
        exactly once."""

    @abc.abstractmethod
    async def journal_cursor(self, source: str) -> int:
        """The last entry of intake journal `source` already ingested (0 for none)."""

    @abc.abstractmethod
    async def claim_due(self, now: float, limit: int, lease: float) -> list[Timer]:
        """Claim up to `limit` timers due at `now`; each is claimed by one caller only."""

    @abc.abstractmethod
    async def finish_timer(
        self, timer: Timer, now: float, *, kind: str | None, entry: dict[str, Any],
        digest: str | None, next_due: float | None, dirty_due: float | None,
    ) -> None:
        """Record a claimed timer's outcome (timeline entry `kind`, none if None) and re-arm
        it at `next_due` (at `dirty_due` if the incident changed meanwhile) or drop it.
        A `digest` marks a send: it and the send time are kept for the next one."""

    @abc.abstractmethod
    async def retry_timer(
        self, timer: Timer, now: float, due: float, entry: dict[str, Any],
        kind: str = "notification.retry",
    ) -> None:
        """Release a claimed timer to fire again at `due`, recording why."""

    @abc.abstractmethod
    async def fire_escalation(
        self, timer: Timer, now: float, record: EscalationStepRecord
    ) -> bool:
        """If the incident is still triggered: schedule the step's pages, record it and re-arm
        the escalation (or end it). Otherwise drop the timer. True if the step fired."""

    @abc.abstractmethod
    async def fire_escalations(
        self, steps: list[tuple[Timer, EscalationStepRecord]], now: float
    ) -> list[bool]:
        """`fire_escalation` for many steps in one transaction."""

    @abc.abstractmethod
    async def next_due(self) -> float | None:
        """When the earliest unclaimed timer falls due, if any."""

    @abc.abstractmethod
    async def retrigger(self, timer: Timer, now: float) -> bool:
        """An ack timeout ran out: an incident still acknowledged is triggered again and its
        escalation restarts. Drops the timer either way."""

    @abc.abstractmethod
    async def finish_page(
        self, timer: Timer, now: float, kind: str, entry: dict[str, Any],
        failover: PageOrder | None = None, sent: dict[str, Any] | None = None,
        incidents: tuple[int, ...] = (),
    ) -> None:
        """Record a page's outcome and drop its timer; schedule `failover` (the person's
        next contact method) and log the `sent` page in the same transaction. A bundle
        names its other `incidents`: their timelines get the entry too."""

    @abc.abstractmethod
    async def auto_resolve(self, timer: Timer, now: float) -> bool:
        """Resolve the incident of a claimed auto-resolve timer and drop the timer."""

    @abc.abstractmethod
    async def append_timeline(
        self, incident_id: int, now: float, kind: str, actor: str, data: dict[str, Any]
    ) -> None:
        """Append one entry to an incident's timeline."""

    @abc.abstractmethod
    async def set_state(
        self, incident_id: int, state: str, actor: str, now: float, note: str = "",
        ack_timeout: float | None = None, via: str = "api",
    ) -> bool:
        """Acknowledge or resolve an incident by a person, stopping its escalation at once;
        with `ack_timeout`, an acknowledgement expires after that many seconds. False if
        nothing changed."""

    @abc.abstractmethod
    async def incident(
        self, incident_id: int, *, timeline: bool = True
    ) -> dict[str, Any] | None:
        """One incident with its alerts and (unless told not to) its timeline."""

    @abc.abstractmethod
    async def incidents(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Incidents, newest first, each with its alerts and timeline."""

    @abc.abstractmethod
    async def open_counts(self) -> dict[str, int]:
        """Open incidents by severity."""

    @abc.abstractmethod
    async def add_override(
        self, schedule: str, kind: str, data: dict[str, Any], actor: str, reason: str,
        now: float,
    ) -> int:
        """Store a schedule override and its audit record; returns its id."""

    @abc.abstractmethod
    async def remove_override(self, override_id: int, actor: str, now: float) -> bool:
        """Retire an override (kept for the audit); False if there was none in force."""

    @abc.abstractmethod
    async def overrides(self, schedule: str | None = None) -> list[dict[str, Any]]:
        """Overrides in force, oldest first (later ones win), with who made them and why."""

    @abc.abstractmethod
    async def claim_pages(self, user: str, method: str, now: float, *,
                          exclude: int) -> list[Timer]:
        """Claim the other pages due now to a person by a method (to bundle them)."""

    @abc.abstractmethod
    async def schedule_pages(self, incident_id: int, orders: list[PageOrder],
                             now: float) -> None:
        """Arm pages for an incident outside an escalation step (notices, failovers)."""

    @abc.abstractmethod
    async def paged_for(self, incident_id: int) -> list[tuple[str, str]]:
        """(user, method) of everyone a page about the incident reached, once each."""

    @abc.abstractmethod
    async def assign_reply_code(self, phone: str, incident_id: int, now: float) -> int:
        """The reply code an incident has on a phone (assigned once per 24 h)."""

    @abc.abstractmethod
    async def incident_for_code(self, phone: str, code: int, now: float) -> int | None:
        """The incident a reply code names on a phone, if still valid."""

    @abc.abstractmethod
    async def last_page(self, *, user: str | None = None, method: str | None = None,
                        address: str | None = None) -> dict[str, Any] | None:
        """The newest page to a person by a method, or to an address."""

    @abc.abstractmethod
    async def page_by_provider(self, provider_id: str) -> dict[str, Any] | None:
        """The page a provider's id (e.g. a Twilio message SID) belongs to."""

    @abc.abstractmethod
    async def set_page_status(self, provider_id: str, status: str) -> bool:
        """Record a delivery status of a page; False if it already had a final one."""

    @abc.abstractmethod
    async def set_opt_out(self, phone: str, out: bool, now: float) -> None:
        """A phone sent STOP (out) or START."""

    @abc.abstractmethod
    async def opted_out(self) -> set[str]:
        """Every phone that has opted out of SMS."""

    @abc.abstractmethod
    async def spend_link(self, nonce: str, expires_at: float, now: float) -> bool:
        """Use an action link once; False when it was used before."""

    @abc.abstractmethod
    async def allow_help(self, phone: str, now: float, limit: int, window: float) -> bool:
        """Whether another help reply may go to a phone now (and count it)."""

    @abc.abstractmethod
    async def escalate_now(self, incident_id: int, actor: str, now: float) -> bool:
        """A person asks for the next escalation step at once; False if not escalating."""

    @abc.abstractmethod
    async def assign(self, incident_id: int, role: str, user: str, actor: str,
                     now: float) -> bool:
        """Make a person the incident's lead or communications manager."""

    @abc.abstractmethod
    async def set_severity(self, incident_id: int, severity: str, rank: int, actor: str,
                           now: float, reason: str) -> bool:
        """A person raises or lowers an incident's level (recorded; the level stays)."""

    @abc.abstractmethod
    async def add_change(self, component: str | None, summary: str, source: str, at: float,
                         data: dict[str, Any]) -> int:
        """Record a change (a deploy) to a component."""

    @abc.abstractmethod
    async def recent_changes(self, component: str | None, since: float,
                             until: float) -> list[dict[str, Any]]:
        """Changes to a component in a window, newest first."""

    @abc.abstractmethod
    async def add_action(self, incident_id: int, owner: str, due: float, text: str,
                         actor: str, now: float) -> int:
        """A remediation action, reminded when overdue."""

    @abc.abstractmethod
    async def close_action(self, action_id: int, actor: str, now: float) -> bool:
        """Close a remediation action."""

    @abc.abstractmethod
    async def actions(self, incident_id: int | None = None,
                      open_only: bool = False) -> list[dict[str, Any]]:
        """Remediation actions by due date."""

    @abc.abstractmethod
    async def watched_incidents(self, opened_before: float, comms_severities: Sequence[str]
                                ) -> list[dict[str, Any]]:
        """The open incidents the targets watcher may have work for: those opened at or
        before `opened_before`, and those of `comms_severities` with no comms manager yet. Each is
        a light row (no alerts, no timeline) with `marked`, the set of "target:stage"
        already recorded."""

    @abc.abstractmethod
    async def mark_target(self, incident_id: int, target: str, stage: str, now: float,
                          entry: dict[str, Any]) -> bool:
        """Record, once, that an incident neared or missed a response target."""

    @abc.abstractmethod
    async def set_status_page_id(self, incident_id: int, page_id: str, actor: str,
                                 now: float, entry: dict[str, Any]) -> None:
        """Remember the status page incident an incident was published as."""

    @abc.abstractmethod
    async def handoff_noticed(self, schedule: str, user: str, start: float) -> bool:
        """Whether the person was told of this shift already."""

    @abc.abstractmethod
    async def record_handoff(self, schedule: str, user: str, start: float,
                             now: float) -> None:
        """Remember that the person was told of this shift."""

    @abc.abstractmethod
    async def alert_labels(self, fingerprint: str) -> dict[str, str] | None:
        """A stored alert's labels (to resolve it by identity alone)."""

    @abc.abstractmethod
    async def open_incidents_with(self, fingerprint: str) -> list[int]:
        """The open incidents an alert belongs to."""

    @abc.abstractmethod
    async def count_timers(self, kind: str) -> int:
        """How many timers of `kind` are pending (e.g. running escalations)."""

    @abc.abstractmethod
    async def firing_alerts(self) -> list[tuple[str, dict[str, str]]]:
        """Every firing alert's fingerprint and labels (to rebuild in-memory indexes)."""
