"""Handoff notices: at each handoff, the incoming person hears "you are on call for
SCHEDULE from ... until ...". Each shift is told once (remembered in the store); a notice
that could not be sent is tried again at the next look."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from pagerd.store.base import StoreUnavailable

if TYPE_CHECKING:  # the daemon starts this watcher; only its type is needed here
    from pagerd.daemon.core import Daemon

log = structlog.get_logger("pagerd.handoffs")

INTERVAL = 30.0
# A shift that began longer ago than this is not announced (e.g. on a first start).
FRESH = timedelta(hours=1)


async def watch(daemon: Daemon, interval: float = INTERVAL) -> None:
    """Announce new shifts, forever (the first look after one interval)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await announce(daemon)
        except StoreUnavailable as exc:
            log.warning("handoffs.store_unavailable", error=str(exc))


async def announce(daemon: Daemon) -> int:
    """Tell each person whose shift began within the last hour, once; returns how many."""
    settings = daemon.settings
    if not settings.paging.handoff_notices:
        return 0
    now = daemon.clock.now()
    told = 0
    for name, schedule in settings.oncall.schedules.items():
        for shift in schedule.current_shifts(now, daemon.overrides.get(name, ())):
            start = shift.start.timestamp()
            if now - shift.start > FRESH or await daemon.store.handoff_noticed(
                    name, shift.user, start):
                continue
            user = settings.oncall.users.get(shift.user)
            if user is None:
                continue
            text = (f"You are on call for {name} from {shift.start:%Y-%m-%d %H:%M} "
                    f"until {shift.end:%Y-%m-%d %H:%M} UTC")
            result = await daemon.test_page(user, None, title=text)
            if result["delivered"]:
                await daemon.store.record_handoff(name, shift.user, start, now.timestamp())
                told += 1
                log.info("handoff.notified", schedule=name, user=shift.user)
    return told
