"""The garbage collector kept away from objects that are going to live on.

Two uses: paused around code whose allocations all live on
(``collector_paused``), and kept off the objects still alive when the
interpreter exits (``skip_collection_at_exit``).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused", "skip_collection_at_exit"]

_skipping_at_exit = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector paused (if it ran), for code whose allocations all
    live on: the collections they would trigger walk the whole heap and find
    nothing to free."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def skip_collection_at_exit() -> None:
    """Leave the objects alive at interpreter exit to the operating system.

    Python's shutdown collects garbage over every object still alive, then
    frees them one by one: after a run of 5,000 tests that is some 0.4 s of
    CPU in each process (the controller waits for its workers' share). An
    exit handler freezes them instead (``gc.freeze``), so that the shutdown's
    collections pass them by. The other exit handlers, ``weakref.finalize``
    callbacks, the flushing of stdout and stderr and the clearing of module
    globals happen as before; what is skipped are the finalizers of objects
    in reference cycles that are still alive at exit, which Python does not
    promise to run. Registered once a process, however many sessions run in it.
    """
    global _skipping_at_exit
    if not _skipping_at_exit:
        atexit.register(gc.freeze)
        _skipping_at_exit = True
