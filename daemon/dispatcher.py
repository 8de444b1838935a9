"""The dispatcher: claims due timers and hands each to the handler of its kind.

A timer is claimed (recorded as in flight) before its work starts and finished after, in
the store; so a crash repeats at most the sends that were in flight, and a timer whose
send failed is re-armed durably with backoff, surviving restarts and long outages.
Timers are due at wall-clock times; waiting is on monotonic time, with a short poll, so a
jump of the wall clock is noticed at the next look rather than slept through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import structlog

from pagerd.clock import Clock
from pagerd.store.base import Store, StoreUnavailable, Timer

log = structlog.get_logger("pagerd.dispatcher")

MAX_BACKOFF = 300.0

Handler = Callable[[Timer], Awaitable[None]]
# Runs many timers of one kind at once (one store transaction for all of them).
BatchHandler = Callable[[list[Timer]], Awaitable[None]]

# Timers claimed per transaction: a storm of due escalation steps is claimed in a few
# transactions, not one per free slot.
CLAIM_BATCH = 512


def backoff(attempts: int) -> float:
    """Seconds before a failed send is tried again: exponential, jittered, capped."""
    base = min(MAX_BACKOFF, 2.0 ** min(attempts, 12))
    return base * random.uniform(0.5, 1.0)


class Dispatcher:
    """Runs due timers until stopped."""

    def __init__(
        self, store: Store, clock: Clock, handlers: Mapping[str, Handler], *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        lease: float = 120.0, concurrency: int = 64, poll: float = 0.5,
    ) -> None:
        self._store = store
        self._clock = clock
        self._handlers = dict(handlers)
        self._batch_handlers = dict(batch_handlers or {})
        self._lease = lease
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._poll = poll
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._beside: set[asyncio.Task[None]] = set()  # claims beside a write (see below)

    def wake(self) -> None:
        """Something may be due now: look without waiting for the next poll."""
        self._wake.set()

    def claim_beside_next_write(self) -> None:
        """Claim what is due right behind the store write the caller is about to queue.

        Call it just before queuing the write, with no await between. The claim is queued
        by a task whose first step runs before the store's writer is woken for that write
        (the store queues a write without awaiting first, and tasks start lazily), so the
        writer most often runs both in one transaction: timers the write makes due at once
        (a new incident's notification, its first escalation step, with group_wait 0) are
        claimed as it commits, rather than by the claim loop after the wake-up, a commit
        later. Should the writer take the write alone, the claim simply comes in the next
        transaction. Nothing depends on it: what it misses, the claim loop finds.

        At most one is under way at a time, and it claims no more timers than there are
        free slots, so what it claims starts at once rather than waiting, claimed, behind
        busy slots (where the claim loop could take it again once the lease ran out).
        Worth it beside a write of many alerts (a pass over the intake journals); the
        daemon's own intake, where a turn mostly holds one request, gained nothing from it
        at 500 alerts/s and claimed about twice as often.
        """
        # Each unit in flight holds a slot (taken just before it is added, given back as it
        # leaves), so what is left of them is the free slots.
        free = self._concurrency - len(self._in_flight)
        if self._stopping or self._beside or free <= 0:
            return
        task = asyncio.create_task(self._claim_beside(min(free, CLAIM_BATCH)))
        self._beside.add(task)
        task.add_done_callback(self._beside.discard)

    async def _claim_beside(self, wanted: int) -> None:
        await self._start(await self._claim(wanted))

    async def run(self) -> None:
        """Claim and run due timers until `stop`."""
        try:
            await self._loop()
        finally:
            self._stopped.set()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed = await self._claim(CLAIM_BATCH)
            await self._start(claimed)
            if len(claimed) < CLAIM_BATCH:
                # Nothing more is due: wait until the next timer falls due (at most a poll,
                # so a jump of the wall clock is noticed) or a change wakes us. A full claim
                # means more may be due: claim again at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), await self._until_next())

    async def _start(self, claimed: list[Timer]) -> None:
        for work in self._split(claimed):
            # A slot per unit of work: a send, or a whole batch of escalation steps.
            await self._slots.acquire()
            task = asyncio.create_task(work)
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    async def _until_next(self) -> float:
        try:
            due = await self._store.next_due()
        except StoreUnavailable:
            return self._poll
        if due is None:
            return self._poll
        return min(self._poll, max(0.0, due - self._clock.time()))

    def _split(self, claimed: list[Timer]) -> list[Coroutine[Any, Any, None]]:
        """The claimed timers as units of work: a batch per batched kind, else one each.

        Earliest due first (a claim's rows come back in no promised order), a batch at the
        place of its first timer: units wait for slots in this order, and a batch of late
        escalation steps must not wait behind the sends of pages that fell due after them.
        """
        batches: dict[str, list[Timer]] = {}
        units: list[Timer | list[Timer]] = []
        for timer in sorted(claimed, key=lambda timer: (timer.due_at, timer.id)):
            if timer.kind not in self._batch_handlers:
                units.append(timer)
            elif timer.kind in batches:
                batches[timer.kind].append(timer)
            else:
                batches[timer.kind] = [timer]
                units.append(batches[timer.kind])
        return [self._handle_batch(unit[0].kind, unit) if isinstance(unit, list)
                else self._handle(unit) for unit in units]

    async def run_due(self) -> int:
        """Run every timer due now, to completion; for tests driving a fake clock."""
        count = 0
        while claimed := await self._claim(CLAIM_BATCH):
            await asyncio.gather(*self._split(claimed))
            count += len(claimed)
        return count

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    def stop_claiming(self) -> None:
        """Claim nothing more; what is claimed already runs on (see `stop`)."""
        self._stopping = True
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let work in flight finish within `grace` seconds, then cancel it.

        The claim loop (and any claim beside a write) is waited for first: timers it claimed
        just now are started and so waited for too, never left claimed behind a closed
        store. A send cancelled at the deadline keeps its claim and goes out again after
        restart: the only repeat.
        """
        self.stop_claiming()
        end = asyncio.get_running_loop().time() + grace  # one deadline for every wait

        def left() -> float:
            return max(0.0, end - asyncio.get_running_loop().time())

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), left())
        if self._beside:
            _, late = await asyncio.wait(self._beside, timeout=left())
            for task in late:
                task.cancel()  # what it claimed keeps its claim, as a cancelled send does
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=left())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _claim(self, wanted: int) -> list[Timer]:
        try:
            return await self._store.claim_due(self._clock.time(), wanted, self._lease)
        except StoreUnavailable as exc:
            log.warning("dispatcher.store_unavailable", error=str(exc))
            await asyncio.sleep(self._poll)
            return []

    async def _handle_batch(self, kind: str, timers: list[Timer]) -> None:
        try:
            await self._batch_handlers[kind](timers)
        except StoreUnavailable as exc:
            log.warning("dispatcher.store_unavailable", kind=kind, timers=len(timers),
                        error=str(exc))
        except Exception:
            # As for one timer: the claims expire and the timers are tried again.
            log.exception("dispatcher.handler_failed", kind=kind, timers=len(timers))

    async def _handle(self, timer: Timer) -> None:
        handler = self._handlers.get(timer.kind)
        if handler is None:
            log.error("dispatcher.unknown_timer", kind=timer.kind, timer=timer.id)
            return
        try:
            await handler(timer)
        except StoreUnavailable as exc:
            # The claim stays; the lease runs out and the timer is tried again.
            log.warning("dispatcher.store_unavailable", timer=timer.id, error=str(exc))
        except Exception:
            # A bug in one handler must not stop the others; its claim expires and the
            # timer is retried, and the traceback says where to look.
            log.exception("dispatcher.handler_failed", kind=timer.kind, timer=timer.id)
