"""Intake processes' refusal counters, carried into the daemon's own /metrics.

An intake process counts what it refuses (bad credentials, invalid payloads, 503s) in its
own registry, which nobody scrapes: the port it serves is load-balanced, so a scrape would
reach one process at random. It writes those counters to a file beside its journal; the
daemon adds what grew since it last looked to its own counters of the same names, so
`pagerd_invalid_payloads_total` means the same with intake processes as without.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from pagerd.daemon.metrics import Metrics


def _counters(metrics: Metrics) -> dict[str, Counter]:
    """The counters an intake process keeps, by family name (without `_total`)."""
    return {"pagerd_invalid_payloads": metrics.invalid_payloads,
            "pagerd_unknown_payloads": metrics.unknown_payloads,
            "pagerd_auth_failures": metrics.auth_failures,
            "pagerd_unavailable": metrics.unavailable}


def counters_file(directory: Path, index: int) -> Path:
    """Where intake process `index` keeps its counters."""
    return directory / f"counters-{index}.json"


def counters_text(metrics: Metrics, run: str) -> str:
    """An intake process's side: its refusal counters, as the file holds them, with the
    process run they belong to (`run` differs for each start)."""
    families = _counters(metrics)
    samples = []
    for family in metrics.registry.collect():
        if family.name not in families:
            continue
        samples += [[family.name, sample.labels, sample.value] for sample in family.samples
                    if sample.name.endswith("_total")]
    return json.dumps({"run": run, "samples": samples})


def write_counters(text: str, path: Path) -> None:
    """Replace the file whole: the daemon reads either the old counters or the new."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    fresh.replace(path)


class CounterMerge:
    """The daemon's side: adds what each process counted since the last look."""

    def __init__(self, directory: Path, metrics: Metrics) -> None:
        self.directory = directory
        self._counters = _counters(metrics)
        self._seen: dict[tuple[str, str, str], float] = {}
        self._runs: dict[str, str] = {}

    def forget_old(self) -> None:
        """At start: counters of an earlier run were reported by that run."""
        for path in self.directory.glob("counters-*.json"):
            path.unlink(missing_ok=True)

    def merge(self) -> None:
        """Add every counter's growth since the last look, per process run."""
        for path in self.directory.glob("counters-*.json"):
            content: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                content = json.loads(path.read_text())
            run = content.get("run", "")
            if self._runs.get(path.name) != run:
                # A process started anew under this index: its counts start from zero.
                self._runs[path.name] = run
                self._seen = {key: value for key, value in self._seen.items()
                              if key[0] != path.name}
            for family, labels, value in content.get("samples", []):
                counter = self._counters.get(family)
                if counter is None:
                    continue
                key = (path.name, family, json.dumps(labels, sort_keys=True))
                grown = value - self._seen.get(key, 0.0)
                self._seen[key] = value
                if grown > 0:
                    counter.labels(**labels).inc(grown)
