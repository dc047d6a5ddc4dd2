"""The garbage collector kept away from objects that are going to live on.

Two uses: paused around code whose allocations all live on
(``collector_paused``), and kept off the objects still alive when the
interpreter exits (``register_fast_exit``).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator

__all__ = ["FREEZE_WORKS", "collector_paused", "register_fast_exit"]


def _free_threaded() -> bool:
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


#: Whether ``gc.freeze`` exists (not on PyPy) and is safe: on free-threaded
#: CPython 3.13.0 a collection after it could corrupt reference counts
#: (CPython gh-126312, fixed in 3.13.1).
FREEZE_WORKS = hasattr(gc, "freeze") and not (
    sys.version_info[:3] == (3, 13, 0) and _free_threaded()
)

_fast_exit = False
_fast_exit_vetoed = False


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


def register_fast_exit(wanted: bool = True) -> None:
    """Leave the objects alive at interpreter exit to the operating system.

    Python's shutdown collects garbage over every object still alive, then
    frees them: after a run of 5,000 tests that is some 0.4 s of CPU in each
    process (the controller waits for its workers' share). An exit handler
    freezes them instead (``gc.freeze``), so that the shutdown's collections
    pass them by. The other exit handlers, ``weakref.finalize`` callbacks,
    the flushing of stdout and stderr and the clearing of the globals of
    modules in ``sys.modules`` happen as before. What is skipped are the
    finalizers of objects that only a collection would free: objects in, or
    reachable only from, reference cycles (pytest's config, its plugins and
    nodes are such a cycle), which Python does not promise to run at exit.

    The handler belongs to the process: registered by the first session that
    wants it, however many run in the process; a session that does not
    (``wanted=False``, ``--batchflow-no-fast-exit``) vetoes it for the
    process. Nothing is frozen in Python's development mode (``-X dev``,
    which reports unclosed resources from those finalizers) or where
    freezing is not safe (:data:`FREEZE_WORKS`).
    """
    global _fast_exit, _fast_exit_vetoed
    if not wanted:
        _fast_exit_vetoed = True
    elif not _fast_exit and FREEZE_WORKS and not sys.flags.dev_mode:
        atexit.register(_freeze_at_exit)
        _fast_exit = True


def _freeze_at_exit() -> None:
    if not _fast_exit_vetoed:
        gc.freeze()
