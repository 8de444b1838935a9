"""Keeping what start-up (or a reload) built out of Python's later collections.

Modules, classes, the config and the routing tree live as long as the process (or until the
next reload). Every full collection of the cyclic garbage collector would walk them all:
about 25 ms with the main thread stopped, which under 100 alerts a request came about once
a second. Frozen (`gc.freeze`), they are left out, and a full collection walks only what came
after them (5-12 ms there). They are still freed when nothing refers to them; a cycle among
them would only be found after the next reload unfreezes them. That includes the few objects
in flight at the moment (a request, a send): a reload's settle freezes them too, so a cycle
of theirs waits for the next reload, a bounded cost.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then freeze the rest out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
