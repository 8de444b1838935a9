"""Handing free heap memory back to the system once the daemon is at rest.

glibc's malloc keeps what a burst freed, in the middle of its heaps, for the next burst; a
daemon that sits holding its open alerts for hours should not also hold the high-water mark
of the last burst. `malloc_trim(0)` returns every free page of every arena. Elsewhere
(musl, macOS) there is no such call, and this does nothing.
"""

from __future__ import annotations

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
            # Imported here, and any failure taken: importing ctypes makes a callback, which
            # a sandbox that denies writable code (systemd's MemoryDenyWriteExecute) may
            # refuse where libffi has no static trampolines, and the daemon must run anyway.
            import ctypes

            trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
            if trim is not None:
                trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
            _trim = trim
        except Exception as exc:
            log.info("store.trim_unavailable", error=str(exc))
    if _trim is None:
        return False
    _trim(0)
    return True
