"""Handing free heap memory back to the system once the daemon is at rest.

glibc's malloc keeps what a burst freed, in the middle of its heaps, for the next burst; a
daemon that sits holding its open alerts for hours should not also hold the high-water mark
of the last burst. `malloc_trim(0)` returns every free page of every arena. Elsewhere
(musl, macOS) there is no such call, and this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import structlog

log = structlog.get_logger("pagerd.store")

_trim: Callable[[int], int] | None = None
_looked = False


def trim_heap() -> bool:
    """Return malloc's free pages to the system; False where libc has no malloc_trim."""
    global _trim, _looked
    if not _looked:
        _looked = True
        try:
            _trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        except OSError as exc:
            log.debug("store.trim_unavailable", error=str(exc))
    if _trim is None:
        return False
    _trim(0)
    return True
