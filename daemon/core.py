"""The daemon's parts and their order: start-up steps, reload and shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from pagerd.clock import Clock
from pagerd.daemon import handoffs, heap, practice_watch
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.daemon.escalator import Escalator
from pagerd.daemon.intake import Intake, Router
from pagerd.daemon.intake_counters import CounterMerge
from pagerd.daemon.intake_gate import verifiers_for
from pagerd.daemon.intake_workers import IntakeWorkers, NotListening
from pagerd.daemon.journal_drain import JournalDrain
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.pager import Pager, next_method, rules_of
from pagerd.daemon.paging import build_notifiers, link_keys, link_signer
from pagerd.daemon.receiver_notify import ReceiverNotifications
from pagerd.daemon.statedir import StateDir, feed_secret
from pagerd.errors import ConfigErrors
from pagerd.links import LinkSigner
from pagerd.notifiers.base import DeliveryError, Page, PageItem, PageNotifier
from pagerd.oncall import override_codec
from pagerd.oncall.overrides import Override
from pagerd.oncall.users import ContactMethod, User
from pagerd.settings import (
    IntakeProcesses,
    Settings,
    load_settings,
    locate,
    next_port,
    split_listen,
)
from pagerd.store.base import PageOrder, Store
from pagerd.store.sqlite import SQLiteStore

if TYPE_CHECKING:  # loaded only when an integration takes Entra ID tokens
    from pagerd.receivers.entra import EntraVerifier

log = structlog.get_logger("pagerd.daemon")

# How long intake processes a reload replaces have to finish the requests inside them.
_INTAKE_STOP = 5.0


class Stopping(Exception):
    """The daemon is shutting down: a reload is not taken (senders of it may retry)."""


class StartupError(Exception):
    """A start-up step failed; the message names the step."""


@dataclass
class Options:
    """How `pagerd run` was asked to run."""

    config: str | None = None
    listen: str | None = None
    state_dir: Path | None = None


class Daemon:
    """Everything a running pagerd holds: config, store, intake, dispatcher, metrics."""

    def __init__(self, options: Options, state: StateDir, clock: Clock | None = None) -> None:
        self.options = options
        self.state = state
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.store: Store = SQLiteStore(state.database)
        self.settings: Settings
        self.intake: Intake
        self.dispatcher: Dispatcher
        self.tokens: dict[str, str] = {}
        self.verifiers: dict[str, EntraVerifier] = {}
        # Overrides in force by schedule, oldest first; this daemon is their only writer.
        self.overrides: dict[str, list[Override]] = {}
        self.user_tokens: dict[str, str] = {}
        self.settings_loaded_at = 0.0
        self._feed_key = ""
        self.signer: LinkSigner
        self.notifiers: dict[str, PageNotifier] = {}
        self._watch_tasks: list[asyncio.Task[None]] = []
        # Phones that sent STOP: SMS to them is skipped (the person fails over).
        self.opted_out: set[str] = set()
        self.admin_token = ""
        self.accepting = False
        self.ready = False
        self.stopping = False
        # The address this daemon serves on, fixed at start: `listen` takes effect at restart.
        self.listen = ""
        self._session: aiohttp.ClientSession | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self.intake_workers: IntakeWorkers | None = None
        self.journal_drain: JournalDrain | None = None
        self.counter_merge: CounterMerge | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        # The config file's name and the text this daemon accepted: what intake processes run.
        self.config_source = ("", "")

    async def start(self) -> None:
        """Run the labelled start-up steps in order; fail fast naming the step."""
        steps = [
            ("load config", self._load_config),
            ("prepare state dir", self._prepare_state),
            ("open store", self.store.open),
            ("load tokens", self._load_tokens),
            ("build routing", self._build_routing),
            ("load overrides", self.load_overrides),
            ("load opt-outs", self._load_opt_outs),
            ("start dispatcher", self._start_dispatcher),
            ("start intake processes", self._start_intake_processes),
        ]
        for name, step in steps:
            try:
                await step()
            except Exception as exc:
                raise StartupError(f"start-up step {name!r} failed: {exc}") from exc
            log.debug("startup.step_done", step=name)
        self.accepting = True
        self.ready = True

    async def _load_config(self) -> None:
        file, text = locate(self.options.config)
        self.settings = load_settings(file, text)
        self.listen = self.options.listen or self.settings.listen
        try:
            split_listen(self.listen)
        except ValueError:
            raise ValueError(f"listen address {self.listen!r}: must be HOST:PORT") from None
        self.config_source = (file, text)
        self.settings_loaded_at = time.time()
        self.user_tokens = _user_tokens(self.settings)
        self.metrics.set_config(self.settings.digest, time.time())
        log.info("config.loaded", file=file, digest=self.settings.digest)

    async def _prepare_state(self) -> None:
        self.state.ensure()
        self.state.lock()

    async def _load_tokens(self) -> None:
        self.admin_token = self.state.token("admin", self.settings.admin_token)
        self.tokens = {
            name: self.state.token(name, integration.token)
            for name, integration in self.settings.integrations.items()
        }
        self.verifiers = verifiers_for(self.settings.integrations.values())
        self._feed_key = self.state.token("ical", None)
        self._link_keys = link_keys(self.settings, self.state)
        self.signer = link_signer(self._link_keys, self.settings, self.clock.time)

    async def _load_opt_outs(self) -> None:
        self.opted_out = await self.store.opted_out()

    async def _build_routing(self) -> None:
        firing = await self.store.firing_alerts()
        self.intake = Intake(self.store, self.metrics, self.clock, Router(self.settings, firing))
        await self.refresh_gauges()

    async def _start_dispatcher(self) -> None:
        self._session = aiohttp.ClientSession()
        self.dispatcher = self.build_dispatcher(self._session)
        self._dispatch_task = asyncio.create_task(self.dispatcher.run(), name="dispatcher")
        self._watch_tasks = [
            asyncio.create_task(practice_watch.watch(self), name="targets"),
            asyncio.create_task(handoffs.watch(self), name="handoffs"),
        ]

    async def _start_intake_processes(self) -> None:
        # Journals left by an earlier run are drained even when no process is configured now.
        self.journal_drain = JournalDrain(
            self.state.path / "intake", self.store, self.metrics, lambda: self.intake,
            changed=lambda: self.dispatcher.wake(),
            before_ingest=lambda: self.dispatcher.claim_beside_next_write())
        self._drain_task = asyncio.create_task(self.journal_drain.run(), name="journal")
        await self._start_intake_workers()

    async def _start_intake_workers(self) -> None:
        processes = self.settings.intake.processes
        if not processes:
            return
        merge = self.counter_merge
        if merge is None:
            merge = self.counter_merge = CounterMerge(self.state.path / "intake", self.metrics)
            merge.forget_old()
        assert self.journal_drain is not None  # started first, in the same step
        workers = self.intake_workers = IntakeWorkers(
            processes, self.intake_listen(self.settings), lambda: self.config_source,
            self.state.path, self.metrics, poke=self.journal_drain.poke, exited=merge.merge)
        try:
            await workers.start()
        except NotListening:
            raise  # the set keeps starting them
        except Exception:
            # Anything else (the config copy not written, say) came before any process
            # started: no set runs, so none is kept, and the next reload makes one.
            self.intake_workers = None
            raise

    def intake_listen(self, settings: Settings) -> str:
        """Where the intake processes listen under `settings`: as configured, else the port
        after the daemon's own (the one it serves on, which a reload does not move)."""
        return next_port(self.listen) if settings.intake.derived else settings.intake.listen

    async def _restart_intake_workers(self, before: IntakeProcesses) -> None:
        """A reload changed the number of intake processes or their port: the old ones stop
        (what they accepted is journalled, and ingested as ever), then the new ones start.

        Meanwhile the intake port refuses connections or answers 503, which senders retry;
        the daemon's own port serves intake throughout. A shutdown meanwhile stops whichever
        set is there (the old one still stopping, or the new one starting).
        """
        listen = self.intake_listen(self.settings)
        log.info("intake_processes.restarting", processes_before=before.processes,
                 processes=self.settings.intake.processes, listen=listen)
        if self.intake_workers is not None:
            try:
                await self.intake_workers.stop(_INTAKE_STOP)
            finally:
                # Even if this reload is cancelled: a stopped set is no set, and the next
                # reload starts one.
                self.intake_workers = None
        if self.stopping:
            return
        try:
            await self._start_intake_workers()
        except Exception as exc:
            # Processes that started and then failed keep being started again by their
            # set; a set that could not be made at all is made again by the next reload.
            # Either way the daemon's own port serves intake meanwhile.
            log.error("intake_processes.restart_failed", error=str(exc),
                      processes=self.settings.intake.processes, listen=listen,
                      retry="by the set" if self.intake_workers is not None else "next reload")

    def build_dispatcher(self, session: aiohttp.ClientSession) -> Dispatcher:
        """The dispatcher with a handler for every kind of timer."""
        settings = lambda: self.settings  # noqa: E731 - always the config of the moment
        notifications = ReceiverNotifications(self.store, self.metrics, settings, session,
                                              self.clock)
        wake = lambda: self.dispatcher.wake()  # noqa: E731 - the dispatcher comes after
        escalator = Escalator(self.store, self.metrics, settings, self.clock, wake=wake,
                              overrides=lambda: self.overrides)
        self.notifiers = build_notifiers(self.settings, session, self.voice_action_url)
        pager = Pager(self.store, self.metrics, settings, self.clock, self.notifiers,
                      signer=lambda: self.signer, wake=wake, opted_out=lambda: self.opted_out)
        return Dispatcher(self.store, self.clock,
                          {"notify": notifications, "page": pager, **escalator.handlers(),
                           "action_due": practice_watch.ActionReminders(self)},
                          batch_handlers={"escalate": escalator.escalate_many})

    def voice_action_url(self, page: Page) -> str:
        """Where Twilio posts the key a callee presses: signed for the page's first incident."""
        token = self.signer.sign(page.items[0].incident_id, "view", page.user)
        return f"{self.settings.external_url}/api/v1/twilio/voice/{token}"

    async def refresh_gauges(self) -> None:
        """Recount open incidents by severity for /metrics."""
        counts = await self.store.open_counts()
        for level in self.settings.severities.levels:
            self.metrics.open_incidents.labels(level.name).set(counts.get(level.name, 0))
        self.metrics.open_escalations.set(await self.store.count_timers("escalate"))

    def actor_for(self, token: str | None) -> str | None:
        """Who a presented token speaks for: "admin", "user:NAME", or None (refused)."""
        if not token:
            return None
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return "admin"
        name = self.user_tokens.get(hashlib.sha256(token.encode()).hexdigest())
        return f"user:{name}" if name else None

    @staticmethod
    def named_actor(actor: str, by: object) -> str:
        """The audit name: a user acts as themself; the admin token names who it acts for."""
        if actor == "admin":
            return f"api:{by}" if isinstance(by, str) and by else "api:admin"
        return actor

    async def load_overrides(self) -> None:
        """Read the overrides in force from the store into memory."""
        users = self.settings.oncall.users
        loaded: dict[str, list[Override]] = {}
        for row in await self.store.overrides():
            try:
                override = override_codec.decode(row["kind"], row["data"], users)
            except ValueError as exc:
                # A user removed from config: the override cannot apply; say so, keep going.
                log.warning("override.skipped", override=row["id"], reason=str(exc))
                continue
            loaded.setdefault(row["schedule"], []).append(override)
        self.overrides = loaded

    async def add_override(self, schedule: str, override: Override, actor: str,
                           reason: str) -> int:
        """Store an override durably, then put it in force."""
        override_id = await self.store.add_override(
            schedule, override.kind, override_codec.encode(override), actor, reason,
            self.clock.time())
        self.overrides.setdefault(schedule, []).append(override)
        log.info("override.added", schedule=schedule, kind=override.kind, override=override_id,
                 user=actor)
        return override_id

    async def remove_override(self, override_id: int, actor: str) -> bool:
        """Retire an override; the audit keeps it."""
        removed = await self.store.remove_override(override_id, actor, self.clock.time())
        if removed:
            await self.load_overrides()
            log.info("override.removed", override=override_id, user=actor)
        return removed

    def ical_secret_ok(self, user: str, secret: str) -> bool:
        """Whether `secret` opens `user`'s feeds (and the user exists)."""
        if user not in self.settings.oncall.users:
            return False
        return hmac.compare_digest(feed_secret(self._feed_key, user), secret)

    def signer_key(self, kid: str) -> bytes:
        """An action-link key (also keys the CSRF value of the link's page)."""
        return self._link_keys[kid]

    def user_by_phone(self, phone: str) -> str | None:
        """The user whose SMS or voice number this is."""
        for user in self.settings.oncall.users.values():
            if phone in (user.contacts.sms, user.contacts.voice):
                return user.name
        return None

    async def set_opt_out(self, user: str, phone: str, out: bool) -> None:
        """STOP or START from a person's phone: SMS to it stops or resumes."""
        await self.store.set_opt_out(phone, out, self.clock.time())
        if out:
            self.opted_out.add(phone)
        else:
            self.opted_out.discard(phone)
        # A person who stopped SMS is paged by their other methods; their team should know.
        log.warning("sms.opted_out" if out else "sms.opted_in", user=user)
        self.metrics.sms_opt_outs.set(len(self.opted_out))
        if out:
            await self._tell_team(user, f"{user} stopped SMS from pagerd: unreachable by SMS "
                                        "until they text START")

    async def _tell_team(self, user: str, text: str) -> None:
        """A notice to the other members of the person's teams, by their first method."""
        teams = [t for t in self.settings.oncall.teams.values() if user in t.members]
        for member in sorted({m for t in teams for m in t.members} - {user}):
            person = self.settings.oncall.users.get(member)
            if person is not None:
                result = await self.test_page(person, None, title=text)
                log.info("team.notified", user=member, about=user,
                         delivered=result["delivered"])

    async def delivery_status(self, provider_id: str, status: str,
                              failure: str | None) -> None:
        """A provider's word on a page; an undelivered one fails over to the next method."""
        changed = await self.store.set_page_status(provider_id, status)
        page = await self.store.page_by_provider(provider_id)
        if not changed or page is None:
            return
        for incident_id in page["incidents"]:
            await self.store.append_timeline(
                incident_id, self.clock.time(), "page.delivery", "pagerd",
                {"user": page["user"], "method": page["method"], "status": status,
                 "reason": failure})
        if failure is None:
            return
        user = self.settings.oncall.users.get(page["user"])
        if user is None:
            return
        self.metrics.page_failures.labels(page["method"], failure).inc()
        order = next_method(user, {"step": "delivery"}, page["method"], self.opted_out)
        log.warning("page.undelivered", user=user.name, method=page["method"], reason=failure,
                    failover=order.method if order else None)
        if order is None:
            return
        for incident_id in page["incidents"]:
            await self.store.schedule_pages(incident_id, [order], self.clock.time())
        self.dispatcher.wake()

    async def act(self, incident_id: int, state: str, actor: str, note: str = "",
                  via: str = "api") -> bool:
        """A person acknowledges, resolves or escalates an incident.

        Acknowledge and resolve stop its escalation at once and tell the others already
        paged for it; escalate fires the next step now. False when nothing changed.
        """
        incident = await self.store.incident(incident_id, timeline=False)
        if incident is None:
            raise KeyError(incident_id)
        if state == "escalate":
            escalated = await self.store.escalate_now(incident_id, actor, self.clock.time())
            self.dispatcher.wake()
            log.info("incident.action", incident=incident_id, state=state, user=actor, via=via,
                     changed=escalated)
            return escalated
        policy = self.settings.oncall.policies.get(incident["escalation_policy"] or "")
        ack_timeout = policy.ack_timeout.total_seconds() if policy and policy.ack_timeout else None
        now = self.clock.time()
        changed = await self.store.set_state(incident_id, state, actor, now, note, ack_timeout,
                                             via)
        if changed:
            labels = (incident["severity"], incident["owner"] or "")
            histogram = {"acknowledged": self.metrics.time_to_ack,
                         "resolved": self.metrics.time_to_resolve}.get(state)
            if histogram is not None:
                histogram.labels(*labels).observe(max(0.0, now - incident["opened_at"]))
            await self._tell_others(incident_id, state, actor)
            self.dispatcher.wake()
        log.info("incident.action", incident=incident_id, state=state, user=actor, via=via,
                 changed=changed)
        return changed

    async def test_page(self, user: User, method: str | None,
                        title: str = "Test page from pagerd: no action needed"
                        ) -> dict[str, Any]:
        """Send a page that is about no incident (a test, a notice) to a person by one
        method (default: their first) and say how it went; nothing is stored."""
        rules = rules_of(user)
        method = method or (rules[0].method.value if rules else "")
        if method not in {m.value for m in ContactMethod}:
            raise ValueError(f"unknown method {method!r}")
        address = user.contacts.address(ContactMethod(method))
        notifier = self.notifiers.get(method)
        result: dict[str, Any] = {"user": user.name, "method": method, "delivered": False}
        if notifier is None or not address:
            return result | {"reason": "method_not_configured" if address else "no_address"}
        item = PageItem(incident_id=0, severity="INFO", title=title)
        page = Page(user=user.name, address=address, items=(item,),
                    idempotency_key=f"pagerd-test-{user.name}-{self.clock.time():.0f}")
        try:
            receipt = await notifier.send_page(page)
        except DeliveryError as exc:
            log.warning("test_page.failed", user=user.name, method=method, reason=exc.reason)
            return result | {"reason": exc.reason}
        log.info("test_page.sent", user=user.name, method=method)
        return result | {"delivered": True, "provider_id": receipt.provider_id}

    async def _tell_others(self, incident_id: int, state: str, actor: str) -> None:
        """Everyone already paged for the incident hears who acted (if configured)."""
        if not self.settings.paging.notify_others:
            return
        who = actor.partition(":")[2] or actor
        orders = [
            PageOrder(user=user, method=method, delay=0.0, step=f"notice:{state}",
                      notice=f"{state.capitalize()} by {who}")
            for user, method in await self.store.paged_for(incident_id)
            if user != who
        ]
        if orders:
            await self.store.schedule_pages(incident_id, orders, self.clock.time())

    async def reload(self) -> None:
        """Swap in the config on disk atomically; a bad one is refused and the old one runs.

        Raises ConfigErrors (already logged) when the new config is refused, and Stopping
        when the daemon has begun to shut down.
        """
        async with self._reload_lock:
            if self.stopping:
                log.info("config.reload_skipped", reason="shutting down")
                raise Stopping("shutting down")
            try:
                file, text = locate(self.options.config)
                settings = load_settings(file, text)
            except ConfigErrors as exc:
                self.metrics.config_last_reload_success.set(0)
                for error in exc.errors:
                    log.error("config.refused", position=str(error.position),
                              reason=error.reason)
                raise
            # A token changed in the config takes effect now, on every intake port.
            tokens = {name: self.state.token(name, integration.token)
                      for name, integration in settings.integrations.items()}
            firing = await self.store.firing_alerts()
            router = Router(settings, firing)
            old_verifiers, self.verifiers = self.verifiers, verifiers_for(
                settings.integrations.values())
            settings_before = self.settings
            intake_before = settings_before.intake
            # The swaps happen with no await between them: a request sees old or new.
            self.settings = settings
            self.tokens = tokens
            self.config_source = (file, text)
            self.settings_loaded_at = time.time()
            self.user_tokens = _user_tokens(settings)
            self.intake.router = router
            for verifier in old_verifiers.values():
                await verifier.close()
            self.metrics.set_config(settings.digest, time.time())
            log.info("config.reloaded", file=file, digest=settings.digest)
            if not self.options.listen and settings.listen != self.listen:
                log.warning("config.restart_needed", setting="server.listen",
                            serving=self.listen, configured=settings.listen)
            if (settings.intake.processes, self.intake_listen(settings)) != (
                    intake_before.processes, self.intake_listen(settings_before)) or (
                    settings.intake.processes and self.intake_workers is None):
                await self._restart_intake_workers(intake_before)
            elif self.intake_workers is not None:
                self.intake_workers.reload()
            heap.settle()  # the old config, now garbage, goes; the new one is frozen

    def begin_stop(self) -> None:
        """From here intake answers 503, /-/ready says not ready, and no reload is taken."""
        self.accepting = False
        self.ready = False
        self.stopping = True

    async def stop(self, deadline: float = 10.0) -> None:
        """Ordered shutdown: stop intake, drain sends, persist, close.

        Intake answers 503 first so senders retry elsewhere or later; sends in flight get
        most of the deadline, then are cancelled (their claims make them go out after
        restart); the store commits its queue last, so nothing acknowledged is lost.
        """
        self.begin_stop()
        await self._stop_intake_processes(deadline * 0.5)
        for task in self._watch_tasks:
            task.cancel()
        await asyncio.gather(*self._watch_tasks, return_exceptions=True)
        if self._dispatch_task is not None:
            await self.dispatcher.stop(grace=deadline * 0.7)
            self._dispatch_task.cancel()
            await asyncio.gather(self._dispatch_task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        for verifier in self.verifiers.values():
            await verifier.close()
        await self.store.close()
        self.state.unlock()

    async def _stop_intake_processes(self, deadline: float) -> None:
        # They answer 503 and commit what is inside; then what they journalled is ingested
        # while there is time (the rest waits in the journals for the next start).
        if self.intake_workers is not None:
            await self.intake_workers.stop(deadline * 0.6)
        if self.journal_drain is not None and self._drain_task is not None:
            self.journal_drain.stop()
            await asyncio.gather(self._drain_task, return_exceptions=True)
            try:
                await self.journal_drain.drain_all(deadline * 0.4)
            except Exception as exc:
                log.warning("journal.drain_failed", error=str(exc))
            self.journal_drain.close()


def _user_tokens(settings: Settings) -> dict[str, str]:
    """Users by the SHA-256 of their API token."""
    return {
        user.api_token_sha256: user.name
        for user in settings.oncall.users.values()
        if user.api_token_sha256
    }
