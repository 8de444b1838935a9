"""Escalation at run time: the handlers of `escalate`, `ack_timeout` and `auto_resolve`
timers.

The state machine itself is pure (`pagerd.oncall.escalation`); this module resolves it at
the current instant and stores each step atomically with the pages it orders (which
`pagerd.daemon.pager` sends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from pagerd.clock import Clock
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.pager import rules_of
from pagerd.oncall.escalation import Position, StepPlan, plan_step
from pagerd.oncall.overrides import Override
from pagerd.settings import Settings
from pagerd.store.base import EscalationStepRecord, PageOrder, Store, Timer

log = structlog.get_logger("pagerd.escalation")

class Escalator:
    """Runs escalation steps and sends pages."""

    def __init__(
        self, store: Store, metrics: Metrics, settings: Callable[[], Settings], clock: Clock,
        wake: Callable[[], None],
        overrides: Callable[[], Mapping[str, Sequence[Override]]] = dict,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._wake = wake
        self._overrides = overrides

    def handlers(self) -> dict[str, Callable[[Timer], Any]]:
        """The timer kinds this escalator runs."""
        return {"escalate": self.escalate, "ack_timeout": self.ack_timeout,
                "auto_resolve": self.auto_resolve}

    async def escalate(self, timer: Timer) -> None:
        """Fire one escalation step: page its people, arm the next step."""
        await self.escalate_many([timer])

    async def escalate_many(self, timers: list[Timer]) -> None:
        """Fire many due steps, stored in one transaction (a storm fires thousands)."""
        now = self._clock.time()
        at = self._clock.now()
        steps = [(timer, *await self._plan(timer, now, at)) for timer in timers]
        fired = await self._store.fire_escalations(
            [(timer, record) for timer, record, _ in steps], now)
        paged = False
        for (timer, record, plan), done in zip(steps, fired, strict=True):
            if not done:
                continue  # acknowledged or resolved meanwhile: escalation is over
            position = Position.from_json(timer.payload)
            self._count_step(position, plan.fallback, bool(plan.users), now - timer.due_at,
                             plan.next is None)
            log.debug("escalation.step", incident=timer.incident_id, policy=position.policy,
                      step=position.step, round=position.round, users=list(plan.users),
                      fallback=plan.fallback)
            paged = paged or bool(record.pages)
        log.info("escalation.steps", fired=sum(fired), due=len(timers),
                 latest=round(max(now - t.due_at for t in timers), 3))
        if paged:
            self._wake()

    async def _plan(self, timer: Timer, now: float, at: datetime
                    ) -> tuple[EscalationStepRecord, StepPlan]:
        oncall = self._settings().oncall
        position = Position.from_json(timer.payload)
        plan = plan_step(oncall, position, at, self._overrides())
        step_id = f"{position.policy}:{position.step}:{position.round}"
        pages = [
            PageOrder(user=name, method=rule.method.value, delay=float(rule.delay_seconds),
                      step=step_id, rule=index)
            for name in plan.users if name in oncall.users
            for index, rule in enumerate(rules_of(oncall.users[name]))
        ]
        entry = {**position.to_json(), "users": list(plan.users), "fallback": plan.fallback,
                 "lateness": round(now - timer.due_at, 3)}
        if plan.missing_policy:
            entry["error"] = "escalation policy no longer in config"
        unreachable = [name for name in plan.users if not any(p.user == name for p in pages)]
        if unreachable:
            entry["unreachable"] = unreachable
        pages += await self._reminder(timer.incident_id, position, step_id, plan.users)
        record = EscalationStepRecord(
            entry=entry, pages=pages,
            next_payload=plan.next.to_json() if plan.next else None,
            next_due=now + plan.delay if plan.next else None,
        )
        return record, plan

    async def _reminder(self, incident_id: int, position: Position, step_id: str,
                        paged: tuple[str, ...]) -> list[PageOrder]:
        """A step's reminder (a vendor case to open, say) for the incident's lead, or, with
        no lead yet, for the people the step pages."""
        policy = self._settings().oncall.policies.get(position.policy)
        if policy is None or not 0 <= position.step < len(policy.steps):
            return []
        remind = policy.steps[position.step].remind_lead
        if not remind:
            return []
        incident = await self._store.incident(incident_id, timeline=False)
        lead = ((incident or {}).get("lead") or "").partition(":")[2]
        return [PageOrder(user=user, method="", delay=0.0, step=f"remind:{step_id}",
                          notice=f"Reminder: {remind}")
                for user in ([lead] if lead else paged)]

    def _count_step(self, position: Position, fallback: bool, anyone: bool, late: float,
                    last: bool) -> None:
        metrics = self._metrics
        metrics.escalation_steps.labels(position.policy).inc()
        metrics.escalation_lateness.observe(max(0.0, late))
        if fallback:
            metrics.escalation_fallbacks.labels(position.policy).inc()
        if not anyone:
            metrics.escalation_nobody.labels(position.policy).inc()
        if last:
            metrics.escalations_exhausted.labels(position.policy).inc()

    async def ack_timeout(self, timer: Timer) -> None:
        """An acknowledgement ran out: trigger the incident again."""
        if await self._store.retrigger(timer, self._clock.time()):
            log.info("incident.retriggered", incident=timer.incident_id, reason="ack_timeout")
            self._wake()

    async def auto_resolve(self, timer: Timer) -> None:
        """A stateless incident has been quiet for its route's auto_resolve_after."""
        if await self._store.auto_resolve(timer, self._clock.time()):
            log.info("incident.auto_resolved", incident=timer.incident_id)
            self._wake()
