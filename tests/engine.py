"""An escalation engine for tests: store, intake, escalator, pager and dispatcher on one
SQLite file, driven by a fake clock; and a recording fake phone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pagerd.clock import FakeClock
from pagerd.daemon.dispatcher import Dispatcher
from pagerd.daemon.escalator import Escalator
from pagerd.daemon.intake import Intake, Router
from pagerd.daemon.metrics import Metrics
from pagerd.daemon.pager import Pager
from pagerd.links import LinkSigner
from pagerd.models import Alert, AlertStatus
from pagerd.notifiers.base import DeliveryError, Page, PageNotifier, Receipt
from pagerd.settings import Settings
from pagerd.store.sqlite import SQLiteStore

# Monday 2026-03-02 10:00 UTC: inside the first week of the test rotations.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()


@dataclass
class Phone:
    """A fake contact method: records pages, can be told to fail permanently."""

    kind: str
    pages: list[tuple[float, str, int]] = field(default_factory=list)
    broken: bool = False
    clock: FakeClock | None = None

    async def send_page(self, page: Page) -> Receipt:
        if self.broken:
            raise DeliveryError("twilio_21211", retryable=False)
        assert self.clock is not None
        for item in page.items:
            self.pages.append((self.clock.time() - T0, page.user, item.incident_id))
        return Receipt(provider_id=f"SM{len(self.pages)}")


@dataclass
class Engine:
    """Store, intake and dispatcher on one SQLite file, driven by a fake clock."""

    path: Path
    clock: FakeClock
    settings: Settings
    phones: Mapping[str, PageNotifier]
    store: SQLiteStore | None = None
    dispatcher: Dispatcher | None = None
    intake: Intake | None = None

    async def start(self) -> None:
        self.store = SQLiteStore(self.path)
        await self.store.open()
        metrics = Metrics()
        escalator = Escalator(self.store, metrics, lambda: self.settings, self.clock,
                              wake=lambda: None)
        signer = LinkSigner({"k1": b"0123456789abcdef"}, "k1", clock=self.clock.time)
        pager = Pager(self.store, metrics, lambda: self.settings, self.clock, self.phones,
                      signer=lambda: signer, wake=lambda: None)
        self.dispatcher = Dispatcher(self.store, self.clock,
                                     {"page": pager, **escalator.handlers()},
                                     batch_handlers={"escalate": escalator.escalate_many})
        self.intake = Intake(self.store, metrics, self.clock, Router(self.settings))

    async def stop(self) -> None:
        assert self.store is not None
        await self.store.close()

    async def fire(self, name: str = "Down", **labels: str) -> int:
        assert self.intake is not None
        labels = {"alertname": name, **labels}
        alert = Alert(fingerprint=f"{abs(hash(name + str(labels))):016x}"[:16],
                      status=AlertStatus.FIRING, labels=labels, integration="test")
        result = await self.intake.accept([alert], "test")
        await self.run()
        return result.opened[0]

    async def run(self) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.run_due()

    async def advance(self, minutes: float) -> None:
        """Move time minute by minute, running what falls due, as a live daemon would."""
        for _ in range(int(minutes)):
            self.clock.advance(60)
            await self.run()

    def paged(self) -> list[tuple[float, str, str]]:
        """(minute, user, method) of every page so far, in order (recording phones only)."""
        sent = [(t / 60, user, kind) for kind, phone in self.phones.items()
                if isinstance(phone, Phone) for t, user, _ in phone.pages]
        return sorted(sent)
