"""Shared test set-up: a bounded hypothesis profile for CI, paths to shared fixtures, and a
fresh SQLite store; no test leaves the heap frozen."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pagerd.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
# ../shared/fixtures beside the clone, as CI lays it out; PAGERD_FIXTURES overrides.
FIXTURES = Path(os.environ.get("PAGERD_FIXTURES", ROOT.parent / "shared" / "fixtures"))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """A daemon's start or reload freezes the heap (daemon/heap.py): in a test that is the
    test process's, which later tests would then keep uncollected."""
    yield
    gc.unfreeze()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "pagerd.db")
    await s.open()
    yield s
    await s.close()
