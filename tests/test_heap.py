"""What start-up or a reload built is frozen out of later collections, and a reload frees
the frozen garbage of the one before."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from pagerd.daemon import heap

from helpers import config_text, running_daemon


class Node:
    """One half of a reference cycle, as a route and its parent make."""

    other: Node | None = None


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def test_settle_freezes_what_lives_and_the_next_one_frees_what_died() -> None:
    kept = [cycle()]
    alive = weakref.ref(kept[0])
    heap.settle()
    assert gc.get_freeze_count() > 0

    kept.clear()  # garbage now, but a cycle, and frozen: no collection sees it
    gc.collect()
    assert alive() is not None

    heap.settle()
    assert alive() is None


async def test_a_reload_settles_the_heap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settled: list[None] = []
    monkeypatch.setattr(heap, "settle", lambda: settled.append(None))
    async with running_daemon(tmp_path, config_text("http://127.0.0.1:9/hook")) as (daemon, *_):
        await daemon.reload()
    assert len(settled) == 1
