"""Sending pages: the handler of `page` timers.

A page carries a reply code (for SMS: per phone, the smallest number free in 24 h) and
signed action links. Pages to one person by one method inside the bundle window go out
as one message. A permanent failure moves to the person's next contact method at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from pagerd.clock import Clock
from pagerd.daemon.dispatcher import backoff
from pagerd.daemon.metrics import Metrics
from pagerd.links import Action, LinkSigner
from pagerd.notifiers.base import DeliveryError, Page, PageItem, PageNotifier
from pagerd.oncall.users import ContactMethod, NotificationRule, User
from pagerd.report import BusinessHours
from pagerd.settings import Settings
from pagerd.store.base import PageOrder, Store, Timer

log = structlog.get_logger("pagerd.pager")

# When a person has no notification rules: the first method they can be reached by.
METHOD_PREFERENCE = (ContactMethod.SMS, ContactMethod.VOICE, ContactMethod.EMAIL,
                     ContactMethod.WEBHOOK)
ACTIONS: tuple[Action, ...] = ("ack", "resolve", "escalate")
VIEW_TTL = 7 * 86400


def rules_of(user: User) -> tuple[NotificationRule, ...]:
    """A person's notification rules, or one at once by their best contact method."""
    if user.notification_rules:
        return tuple(user.notification_rules)
    for method in METHOD_PREFERENCE:
        if user.contacts.address(method):
            return (NotificationRule(method, 0),)
    return ()


class Pager:
    """Sends the page of a claimed timer, bundling and failing over."""

    def __init__(
        self, store: Store, metrics: Metrics, settings: Callable[[], Settings], clock: Clock,
        notifiers: Mapping[str, PageNotifier], signer: Callable[[], LinkSigner],
        wake: Callable[[], None], opted_out: Callable[[], set[str]] = set,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._notifiers = notifiers
        self._signer = signer
        self._wake = wake
        self._opted_out = opted_out
        # Pages the dispatcher claimed together, by (user, method): the first handler to
        # run takes the others into its bundle.
        self._arrived: dict[tuple[str, str], list[Timer]] = {}
        self._taken: set[int] = set()

    async def __call__(self, timer: Timer) -> None:
        """Send one page (with any others due to the same person), unless not needed."""
        key = (str(timer.payload.get("user")), str(timer.payload.get("method")))
        self._arrived.setdefault(key, []).append(timer)
        await asyncio.sleep(0)  # let the handlers of timers claimed with this one arrive
        if timer.id in self._taken:
            self._taken.discard(timer.id)
            return  # another handler sent it in its bundle
        arrived = [t for t in self._arrived.pop(key, []) if t.id != timer.id]
        self._taken.update(t.id for t in arrived)
        try:
            await self._page(timer, arrived)
        except BaseException:
            # Those taken along go again on their own; their claims were never finished.
            for other in arrived:
                self._taken.discard(other.id)
                await self._store.retry_timer(other, self._clock.time(), self._clock.time(),
                                              {"reason": "bundle_failed"}, "page.retry")
            raise

    async def _page(self, timer: Timer, arrived: list[Timer]) -> None:
        now = self._clock.time()
        order = timer.payload
        incident = await self._store.incident(timer.incident_id, timeline=False)
        if incident is None or not _wanted(incident, order):
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
        entry: dict[str, Any] = {"user": user.name, "method": method,
                                 "attempt": timer.attempts, "info": bool(order.get("info"))}
        notifier = self._notifiers.get(method)
        address = user.contacts.address(ContactMethod(method)) if method else None
        reason = ("method_not_configured" if notifier is None else "no_address"
                  if not address else "opted_out" if address in self._opted_out() else None)
        if reason or notifier is None or address is None:
            await self._release(arrived, now)
            await self._fail(timer, user, method, order, entry | {"reason": reason}, now)
            return
        if await self._defer_for_bundle(timer, user.name, method, incident["id"], now):
            await self._release(arrived, now)
            return
        await self._send(timer, incident, user, method, address, notifier, order, entry,
                         arrived)

    async def _release(self, timers: list[Timer], now: float) -> None:
        """Pages taken along that will not ride with this one: each goes on its own."""
        for other in timers:
            await self._store.retry_timer(other, now, now, {"reason": "not_bundled"},
                                          "page.retry")
        if timers:
            self._wake()

    async def _defer_for_bundle(self, timer: Timer, user: str, method: str, incident_id: int,
                                now: float) -> bool:
        """Wait for the bundle window when this person was just paged by this method."""
        window = self._settings().paging.bundle_window
        if window <= 0 or method == "webhook":
            return False
        last = await self._store.last_page(user=user, method=method)
        if last is None or incident_id in last["incidents"] or now - last["sent_at"] >= window:
            return False
        due = last["sent_at"] + window
        await self._store.retry_timer(timer, now, due, {"user": user, "method": method,
                                                        "until": due}, "page.bundling")
        return True

    async def _send(self, timer: Timer, incident: dict[str, Any], user: User, method: str,
                    address: str, notifier: PageNotifier, order: dict[str, Any],
                    entry: dict[str, Any], arrived: list[Timer]) -> None:
        now = self._clock.time()
        siblings = await self._siblings(timer, user.name, method, now, arrived)
        incidents = [incident] + [s for s, _ in siblings]
        items = tuple([await self._item(i, user.name, method, address, order) for i in incidents])
        page = Page(user=user.name, address=address, items=items,
                    idempotency_key=f"pagerd-page-{timer.id}-{timer.generation}")
        try:
            receipt = await notifier.send_page(page)
        except DeliveryError as exc:
            self._metrics.page_failures.labels(method, exc.reason).inc()
            for _, sibling in siblings:  # they go again on their own
                await self._store.retry_timer(sibling, now, now, {"reason": exc.reason},
                                              "page.retry")
            if exc.retryable:
                await self._store.retry_timer(timer, now, now + backoff(timer.attempts),
                                              entry | {"reason": exc.reason}, "page.retry")
                return
            await self._fail(timer, user, method, order, entry | {"reason": exc.reason}, now)
            return
        self._metrics.pages.labels(user.name, method).inc()
        if not BusinessHours(tz=user.time_zone.key).contains(now):
            self._metrics.pages_out_of_hours.labels(user.name).inc()
        ids = tuple(i["id"] for i in incidents)
        if receipt.provider_id:
            entry["provider_id"] = receipt.provider_id
        if len(ids) > 1:
            entry["bundle"] = list(ids)
        sent = {"provider_id": receipt.provider_id, "incidents": list(ids), "user": user.name,
                "method": method, "address": address, "step": order.get("step", "")}
        done = self._clock.time()
        await self._store.finish_page(timer, done, "page.sent", entry, sent=sent, incidents=ids)
        for _, sibling in siblings:
            await self._store.finish_page(sibling, done, "page.bundled",
                                          {"user": user.name, "into": timer.id})

    async def _siblings(self, timer: Timer, user: str, method: str, now: float,
                        arrived: list[Timer]) -> list[tuple[dict[str, Any], Timer]]:
        """Other pages to this person by this method due now: they ride along."""
        found = []
        claimed = await self._store.claim_pages(user, method, now, exclude=timer.id)
        for sibling in arrived + claimed:
            incident = await self._store.incident(sibling.incident_id, timeline=False)
            if incident is not None and _wanted(incident, sibling.payload):
                found.append((incident, sibling))
            else:
                await self._store.finish_page(sibling, now, "page.cancelled", {"user": user})
        return found

    async def _item(self, incident: dict[str, Any], user: str, method: str, address: str,
                    order: dict[str, Any]) -> PageItem:
        settings = self._settings()
        component = settings.components.get(incident["owner"] or "")
        code = ""
        if method == "sms":
            code = str(await self._store.assign_reply_code(address, incident["id"],
                                                           self._clock.time()))
        signer = self._signer()
        links: dict[str, str] = {
            action: f"{settings.external_url}/l/{signer.sign(incident['id'], action, user)}"
            for action in ACTIONS}
        # The incident page: opened many times over the incident's life, so it lives longer.
        view = signer.sign(incident["id"], "view", user, ttl=VIEW_TTL)
        links["view"] = f"{settings.external_url}/i/{view}/"
        title = incident["title"]
        if order.get("notice"):
            title = f"{order['notice']}: {title}"
        return PageItem(
            incident_id=incident["id"], severity=incident["severity"], title=title,
            owner=incident["owner"], reply_code=code, links=links,
            runbook_url=component.runbook_url if component else "",
            contacts=component.page_contacts() if component else (),
        )

    async def _fail(self, timer: Timer, user: User, method: str, order: dict[str, Any],
                    entry: dict[str, Any], now: float) -> None:
        """A permanent failure: record it and fail over to the person's next method."""
        failover = next_method(user, order, method, self._opted_out())
        if failover is not None:
            entry["failover"] = failover.method
        log.warning("page.failed", incident=timer.incident_id, user=user.name, method=method,
                    reason=entry.get("reason"), failover=entry.get("failover"))
        await self._store.finish_page(timer, now, "page.failed", entry, failover)
        if failover is not None:
            self._wake()


def next_method(user: User, order: Mapping[str, Any], failed: str,
                opted_out: set[str]) -> PageOrder | None:
    """The page to send instead when `failed` cannot reach the person."""
    tried = [*order.get("tried", []), failed]
    candidates = [r.method.value for r in rules_of(user)]
    candidates += [m.value for m in METHOD_PREFERENCE if user.contacts.address(m)]
    for method in candidates:
        address = user.contacts.address(ContactMethod(method))
        if method in tried or not address or address in opted_out:
            continue
        return PageOrder(user=user.name, method=method, delay=0.0,
                         step=str(order.get("step", "")), rule=1000 + len(tried),
                         info=bool(order.get("info")), notice=order.get("notice"),
                         tried=tuple(tried))
    return None


def _wanted(incident: Mapping[str, Any], order: Mapping[str, Any]) -> bool:
    """Whether a page is still worth sending for the incident's current state."""
    if order.get("notice"):
        return True  # telling people someone acted: sent whatever the state now
    if order.get("info"):
        return bool(incident["state"] != "resolved")
    return bool(incident["state"] == "triggered")
