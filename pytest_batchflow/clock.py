"""batchflow's clocks: the system's, whatever the tests do to ``time``.

freezegun replaces ``time.time``, ``time.monotonic`` and ``time.perf_counter``,
in the ``time`` module and in every module that imported them by name (pytest's
own timing included); time-machine moves ``time.time`` and
``clock_gettime(CLOCK_REALTIME)``. A test or fixture that freezes the clock
across its phases would then give batchflow's timings (batch timeouts, a
test's wall time, the times it records) frozen or travelling values. Neither
touches ``clock_gettime`` with the monotonic clocks, read here. Where there
is none (Windows), ``perf_counter`` as it was at import. No pytest import here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

__all__ = ["monotonic", "monotonic_ns", "wall"]

_GET = getattr(time, "clock_gettime", None)
_MONOTONIC: int | None = getattr(time, "CLOCK_MONOTONIC", None)
#: Counts a suspended machine's sleep too, as the time of day does (Linux).
_SINCE_BOOT: int | None = getattr(time, "CLOCK_BOOTTIME", _MONOTONIC)
#: Held in tuples: freezegun replaces module attributes that are time's functions.
_FALLBACK = (time.perf_counter,)
_FALLBACK_NS = (time.perf_counter_ns,)
_GET_NS = getattr(time, "clock_gettime_ns", None)

# Chosen once, here: partials of clock_gettime, not functions of ours, so that
# a call costs no test of what the platform has (the meter reads the clock at
# every test) and no frame (one call less between a bench round's readings).
monotonic: Callable[[], float]
monotonic_ns: Callable[[], int]
_since_boot: Callable[[], float]
if _GET is not None and _GET_NS is not None and _MONOTONIC is not None:
    #: Seconds of a clock that only goes forward, for durations.
    monotonic = partial(_GET, _MONOTONIC)
    #: Nanoseconds of that clock, for the ``bench`` fixture's rounds.
    monotonic_ns = partial(_GET_NS, _MONOTONIC)
    _since_boot = partial(_GET, _SINCE_BOOT if _SINCE_BOOT is not None else _MONOTONIC)
else:  # Windows
    monotonic = _since_boot = lambda: _FALLBACK[0]()
    monotonic_ns = lambda: _FALLBACK_NS[0]()  # noqa: E731


_EPOCH_AT_IMPORT = time.time()
_SINCE_BOOT_AT_IMPORT = _since_boot()


def wall() -> float:
    """Seconds since the epoch, as ``time.time()`` gives them when no test moved it."""
    return _EPOCH_AT_IMPORT + (_since_boot() - _SINCE_BOOT_AT_IMPORT)
