"""Watching open incidents against their severity's promises.

Every few seconds: an incident nearing a response target (ack, mitigate, resolve) is
re-paged per its policy (the next step now) and its lead is told; a missed target is put
on the timeline and counted, once. An incident whose severity engages a communications
manager gets one from the configured schedule, paged. The state lives in the store, so a
restart neither repeats nor forgets any of it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from pagerd.oncall.policy import Target, TargetKind
from pagerd.oncall.targets import resolve_target
from pagerd.store.base import PageOrder, StoreUnavailable

if TYPE_CHECKING:  # the daemon wires this module in; only its type is needed here
    from pagerd.daemon.core import Daemon

log = structlog.get_logger("pagerd.targets")

INTERVAL = 5.0
# "About to be breached": this share of the target has passed.
WARNING_SHARE = 0.8
DONE_BY = {"ack": ("acknowledged_at", "mitigated_at", "resolved_at"),
           "mitigate": ("mitigated_at", "resolved_at"),
           "resolve": ("resolved_at",)}


def due_targets(incident: dict[str, Any], targets: dict[str, float | None], now: float
                ) -> list[tuple[str, str, float]]:
    """(target, stage, seconds) of every target the incident has neared or missed."""
    found = []
    for name, seconds in targets.items():
        if not seconds or any(incident.get(key) for key in DONE_BY[name]):
            continue
        elapsed = now - incident["opened_at"]
        if elapsed >= seconds:
            found.append((name, "breached", seconds))
        elif elapsed >= seconds * WARNING_SHARE:
            found.append((name, "warning", seconds))
    return found


async def watch(daemon: Daemon, interval: float = INTERVAL) -> None:
    """Check the open incidents, forever."""
    while True:
        try:
            await check(daemon)
        except StoreUnavailable as exc:
            log.warning("targets.store_unavailable", error=str(exc))
        await asyncio.sleep(interval)


async def check(daemon: Daemon) -> None:
    """One pass over the open incidents that may have reached a target or want a comms
    manager: a light query, so a pass over thousands open does not stall the daemon."""
    now = daemon.clock.time()
    severities = daemon.settings.severities
    shortest = min((seconds * WARNING_SHARE for level in severities.levels
                    for seconds in (level.ack_target, level.mitigate_target,
                                    level.resolve_target) if seconds), default=None)
    comms = [level.name for level in severities.levels if level.comms_manager]
    opened_before = now - shortest if shortest is not None else float("-inf")
    for incident in await daemon.store.watched_incidents(opened_before, comms):
        level = severities.level(incident["severity"])
        if level is None:
            continue
        targets = {"ack": level.ack_target, "mitigate": level.mitigate_target,
                   "resolve": level.resolve_target}
        for name, stage, seconds in due_targets(incident, targets, now):
            if f"{name}:{stage}" not in incident["marked"]:
                await _mark(daemon, incident, name, stage, seconds, now)
        if level.comms_manager and not incident["comms"]:
            await _engage_comms(daemon, incident, now)


async def _mark(daemon: Daemon, incident: dict[str, Any], target: str, stage: str,
                seconds: float, now: float) -> None:
    entry = {"stage": stage, "seconds": seconds, "severity": incident["severity"]}
    if not await daemon.store.mark_target(incident["id"], target, stage, now, entry):
        return
    if stage == "breached":
        daemon.metrics.target_breaches.labels(incident["severity"], target).inc()
        log.warning("target.breached", incident=incident["id"], target=target)
        return
    # About to be missed: page per the policy now, and tell the lead.
    await daemon.store.escalate_now(incident["id"], "pagerd:target", now)
    lead = (incident.get("lead") or "").partition(":")[2]
    if lead:
        await daemon.store.schedule_pages(incident["id"], [PageOrder(
            user=lead, method="", delay=0.0, step=f"target:{target}",
            notice=f"{target} target ({seconds / 60:.0f} min) about to be missed")], now)
    daemon.dispatcher.wake()
    log.info("target.warning", incident=incident["id"], target=target)


async def _engage_comms(daemon: Daemon, incident: dict[str, Any], now: float) -> None:
    schedule = daemon.settings.paging.comms_schedule
    if schedule is None:
        return
    people = resolve_target(Target(TargetKind.SCHEDULE, schedule), daemon.clock.now(),
                            daemon.settings.oncall, daemon.overrides)
    if not people:
        log.warning("comms.nobody_on_call", incident=incident["id"], schedule=schedule)
        return
    user = people[0]
    await daemon.store.assign(incident["id"], "comms", f"user:{user}", "pagerd", now)
    await daemon.store.schedule_pages(incident["id"], [PageOrder(
        user=user, method="", delay=0.0, step="comms",
        notice="You are communications manager")], now)
    daemon.dispatcher.wake()


class ActionReminders:
    """The handler of `action_due` timers: an overdue remediation action reminds its owner."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def __call__(self, timer: Any) -> None:
        """Remind the owner (when they are a pagerd user) and count it."""
        daemon = self.daemon
        now = daemon.clock.time()
        action_id = int(timer.payload.get("action", 0))
        action = next((a for a in await daemon.store.actions(timer.incident_id)
                       if a["id"] == action_id), None)
        failover = None
        if action is not None and action["state"] == "open":
            daemon.metrics.actions_overdue.inc()
            if action["owner"] in daemon.settings.oncall.users:
                failover = PageOrder(user=action["owner"], method="", delay=0.0,
                                     step=f"action:{action_id}",
                                     notice=f"Action #{action_id} overdue: {action['text']}")
            log.warning("action.overdue", incident=timer.incident_id, action=action_id)
        # The reminder is recorded and the owner's page armed in one transaction.
        await daemon.store.finish_page(timer, now, "action.overdue",
                                       {"action": action_id, "owner": action and
                                        action["owner"]}, failover)
        daemon.dispatcher.wake()
