"""Shared test set-up: a bounded hypothesis profile for CI, and paths to shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
# ../shared/fixtures beside the clone, as CI lays it out; PAGERD_FIXTURES overrides.
FIXTURES = Path(os.environ.get("PAGERD_FIXTURES", ROOT.parent / "shared" / "fixtures"))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
