"""Escalation at run time: the handlers of `escalate`, `page`, `ack_timeout` and
`auto_resolve` timers.

The state machine itself is pure (`pagerd.oncall.escalation`); this module resolves it at
the current instant, stores each step atomically with its pages, and sends the pages
through the person's contact methods, failing over to the next method on a permanent
error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from pagerd.clock import Clock
from pagerd.daemon.dispatcher import backoff
from pagerd.daemon.metrics import Metrics
from pagerd.notifiers.base import DeliveryError, Page, PageItem, PageNotifier
from pagerd.oncall.escalation import Position, plan_step
from pagerd.oncall.overrides import Override
from pagerd.oncall.users import ContactMethod, NotificationRule, User
from pagerd.settings import Settings
from pagerd.store.base import EscalationStepRecord, PageOrder, Store, Timer

log = structlog.get_logger("pagerd.escalation")

# When a person has no notification rules: the first method they can be reached by.
METHOD_PREFERENCE = (ContactMethod.SMS, ContactMethod.VOICE, ContactMethod.EMAIL,
                     ContactMethod.WEBHOOK)


def rules_of(user: User) -> tuple[NotificationRule, ...]:
    """A person's notification rules, or one at once by their best contact method."""
    if user.notification_rules:
        return tuple(user.notification_rules)
    for method in METHOD_PREFERENCE:
        if user.contacts.address(method):
            return (NotificationRule(method, 0),)
    return ()


class Escalator:
    """Runs escalation steps and sends pages."""

    def __init__(
        self, store: Store, metrics: Metrics, settings: Callable[[], Settings], clock: Clock,
        notifiers: Mapping[str, PageNotifier], wake: Callable[[], None],
        overrides: Callable[[], Mapping[str, Sequence[Override]]] = dict,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._notifiers = notifiers
        self._wake = wake
        self._overrides = overrides

    def handlers(self) -> dict[str, Callable[[Timer], Any]]:
        """The timer kinds this escalator runs."""
        return {"escalate": self.escalate, "page": self.page,
                "ack_timeout": self.ack_timeout, "auto_resolve": self.auto_resolve}

    async def escalate(self, timer: Timer) -> None:
        """Fire one escalation step: page its people, arm the next step."""
        now = self._clock.time()
        oncall = self._settings().oncall
        position = Position.from_json(timer.payload)
        plan = plan_step(oncall, position, self._clock.now(), self._overrides())
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
        record = EscalationStepRecord(
            entry=entry, pages=pages,
            next_payload=plan.next.to_json() if plan.next else None,
            next_due=now + plan.delay if plan.next else None,
        )
        if not await self._store.fire_escalation(timer, now, record):
            return  # acknowledged or resolved meanwhile: escalation is over
        self._count_step(position, plan.fallback, bool(plan.users), now - timer.due_at,
                         plan.next is None)
        log.info("escalation.step", incident=timer.incident_id, policy=position.policy,
                 step=position.step, round=position.round, users=list(plan.users),
                 fallback=plan.fallback)
        if pages:
            self._wake()

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

    async def page(self, timer: Timer) -> None:
        """Send one page, unless the incident no longer needs it."""
        now = self._clock.time()
        order = timer.payload
        incident = await self._store.incident(timer.incident_id, timeline=False)
        info = bool(order.get("info"))
        wanted = incident is not None and (
            incident["state"] == "triggered" or (info and incident["state"] != "resolved"))
        if incident is None or not wanted:
            await self._store.finish_page(timer, now, "page.cancelled",
                                          {"user": order.get("user")})
            return
        user = self._settings().oncall.users.get(str(order.get("user")))
        if user is None:
            await self._store.finish_page(timer, now, "page.failed",
                                          {"user": order.get("user"), "reason": "unknown_user"})
            return
        rules = rules_of(user)
        method = order.get("method") or (rules[0].method.value if rules else "")
        await self._send(timer, incident, user, method, order, now)

    async def _send(self, timer: Timer, incident: dict[str, Any], user: User, method: str,
                    order: dict[str, Any], now: float) -> None:
        entry: dict[str, Any] = {"user": user.name, "method": method, "attempt": timer.attempts,
                                 "info": bool(order.get("info"))}
        notifier = self._notifiers.get(method)
        address = user.contacts.address(ContactMethod(method)) if method else None
        if notifier is None or not address:
            reason = "no_address" if notifier is not None else "method_not_configured"
            await self._fail(timer, user, method, order, entry | {"reason": reason}, now)
            return
        page = Page(user=user.name, address=address, items=(self._item(incident),),
                    idempotency_key=f"pagerd-page-{timer.id}-{timer.generation}")
        try:
            receipt = await notifier.send_page(page)
        except DeliveryError as exc:
            self._metrics.page_failures.labels(method, exc.reason).inc()
            if exc.retryable:
                delay = backoff(timer.attempts)
                await self._store.retry_timer(timer, now, now + delay,
                                              entry | {"reason": exc.reason}, "page.retry")
                return
            await self._fail(timer, user, method, order, entry | {"reason": exc.reason}, now)
            return
        self._metrics.pages.labels(user.name, method).inc()
        if receipt.provider_id:
            entry["provider_id"] = receipt.provider_id
        await self._store.finish_page(timer, self._clock.time(), "page.sent", entry)

    async def _fail(self, timer: Timer, user: User, method: str, order: dict[str, Any],
                    entry: dict[str, Any], now: float) -> None:
        """A permanent failure: record it and fail over to the person's next method."""
        tried = [*order.get("tried", []), method]
        remaining = [r.method.value for r in rules_of(user) if r.method.value not in tried]
        remaining += [m.value for m in METHOD_PREFERENCE
                      if m.value not in tried and m.value not in remaining
                      and user.contacts.address(m)]
        failover = None
        if remaining:
            failover = PageOrder(user=user.name, method=remaining[0], delay=0.0,
                                 step=str(order.get("step", "")), rule=1000 + len(tried),
                                 info=bool(order.get("info")))
            entry["failover"] = remaining[0]
        log.warning("page.failed", incident=timer.incident_id, user=user.name, method=method,
                    reason=entry.get("reason"), failover=entry.get("failover"))
        await self._store.finish_page(timer, now, "page.failed", entry, failover)
        if failover is not None:
            self._wake()

    def _item(self, incident: dict[str, Any]) -> PageItem:
        settings = self._settings()
        component = settings.components.get(incident["owner"] or "")
        return PageItem(
            incident_id=incident["id"], severity=incident["severity"], title=incident["title"],
            owner=incident["owner"],
            links={"view": f"{settings.external_url}/api/v1/incidents/{incident['id']}"},
            runbook_url=component.runbook_url if component else "",
            contacts=component.contacts if component else (),
        )

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
