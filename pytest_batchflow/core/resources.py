"""Memory and CPU: sizes, what a test needs, budgets, leaks and worker counts.

Pure: the figures come in as plain numbers (bytes, seconds, counts) measured
elsewhere (``pytest_batchflow.resources``) or read from the history, and
decisions go out. Sizes follow the IEC and SI conventions: ``KiB``, ``MiB``,
``GiB``, ``TiB`` are powers of 1024, ``KB``, ``MB``, ``GB``, ``TB`` powers of
1000, a bare number is bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "KEPT_PER_TEST",
    "LIGHT_SHARE",
    "MIN_KEPT",
    "Budget",
    "Leak",
    "Needs",
    "ResourceSample",
    "WorkerCount",
    "budget_share",
    "find_leaks",
    "format_size",
    "parse_memory_budget",
    "parse_size",
    "workers_for_memory",
]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

#: A test that kept less memory than this is never named as growing a worker.
MIN_KEPT = 1024**2

#: What a worker may grow by for each test it ran, beyond the leak threshold,
#: without being named: pytest keeps every test's reports to the end of the
#: run (3.4 KiB a test on packaging 24.2's 26,921 tests, more for tests with
#: captured output) and batchflow its results (0.4 KiB). Without it, that
#: suite's serial run grew by 100 MiB and was named, with two culprits of 2 and
#: 1.25 MiB: a false alarm.
KEPT_PER_TEST = 8 * 1024

#: Tests whose memory is below this share of the budget count as needing none
#: (they may wait in a worker's queue); at most one such share per worker is
#: left uncounted.
LIGHT_SHARE = 0.01


def parse_size(text: str) -> int:
    """Bytes in ``"2GB"``, ``"512MiB"``, ``"1.5 GiB"`` or ``"1048576"``; ValueError if not."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"{text!r} is not a size: a number and a unit among B, KB, MB, GB, TB, "
            "KiB, MiB, GiB, TiB"
        )
    return round(float(match.group(1)) * _UNITS[unit])


def budget_share(text: str) -> str | None:
    """The percentage a budget setting asks for (``"75%"``), or None for a size."""
    stripped = text.strip()
    return stripped if stripped.endswith("%") else None


def parse_memory_budget(text: str, available: int) -> int:
    """A budget: a size, or a percentage of ``available`` bytes (``"75%"``)."""
    stripped = text.strip()
    if budget_share(stripped) is not None:
        try:
            share = float(stripped[:-1])
        except ValueError:
            raise ValueError(f"{text!r} is not a percentage") from None
        if not 0 < share <= 100:
            raise ValueError(f"{text!r}: the percentage must be above 0 and at most 100")
        return max(1, round(available * share / 100))
    size = parse_size(stripped)
    if size <= 0:
        raise ValueError(f"{text!r}: the budget must be above 0")
    return size


def format_size(size: float) -> str:
    """``212 MiB``, ``1.5 GiB``, ``800 KiB``, ``12 B``: binary units, 3 figures."""
    value = float(abs(size))
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    step = 0
    while value >= 1024 and step < len(units) - 1:
        value /= 1024
        step += 1
    unit = units[step]
    sign = "-" if size < 0 else ""
    if unit == "B" or value >= 100:
        return f"{sign}{value:.0f} {unit}"
    return f"{sign}{value:.3g} {unit}"


@dataclass(frozen=True)
class Needs:
    """What a test needs while it runs: bytes of memory above its worker's, CPUs."""

    memory: int = 0
    cpus: int = 1


@dataclass(frozen=True)
class Budget:
    """What the running tests may use together, on all workers at once.

    ``memory`` (bytes) is the sum of the memory of the tests running at one
    moment (None: no memory budget); ``cpus`` the sum of their CPUs.
    """

    memory: int | None
    cpus: int

    def light(self, needs: Needs) -> bool:
        """Whether the test is too small to count (see :data:`LIGHT_SHARE`)."""
        return needs.cpus <= 1 and (self.memory is None or needs.memory < LIGHT_SHARE * self.memory)

    def exceeds(self, needs: Needs) -> bool:
        """Whether the test needs more than the whole budget: it can only run alone."""
        return (self.memory is not None and needs.memory > self.memory) or needs.cpus > self.cpus

    def fits(self, needs: Needs, memory_in_use: int, cpus_in_use: int, alone: bool) -> bool:
        """Whether the test may start beside tests using this much.

        A test larger than the budget starts only when nothing else runs
        (``alone``), and then always: the run must not wait forever.
        """
        if self.exceeds(needs):
            return alone
        memory_fits = self.memory is None or memory_in_use + needs.memory <= self.memory
        return memory_fits and cpus_in_use + needs.cpus <= self.cpus


@dataclass(frozen=True)
class ResourceSample:
    """One test's measurement on one worker process, in the order the worker ran them.

    ``rss_start`` and ``rss_end``: the process's resident memory before the
    test's setup and after its teardown (bytes); the difference is what the
    test left behind.
    """

    nodeid: str
    rss_start: int
    rss_end: int


@dataclass(frozen=True)
class Leak:
    """A worker whose memory grew across its tests, and the tests that grew it most."""

    worker: str
    growth: int
    tests: int
    culprits: tuple[tuple[str, int], ...]


def find_leaks(
    series: Mapping[str, Sequence[ResourceSample]], threshold: int, culprits: int = 3
) -> list[Leak]:
    """Workers whose resident memory grew by ``threshold`` bytes or more, beyond
    :data:`KEPT_PER_TEST` for each of their tests, from their first test's start
    to their last test's end, largest growth first.

    Each names the ``culprits`` tests that kept the most memory (end minus start
    of the test, summed over its runs there: a rerun test is one test), largest
    first; a test that kept less than :data:`MIN_KEPT` is noise (the
    allocator's own growth), not a culprit.
    """
    leaks = []
    for worker, samples in series.items():
        if not samples:
            continue
        growth = samples[-1].rss_end - samples[0].rss_start
        if growth < threshold + KEPT_PER_TEST:
            # Below the allowance of a single test: no leak, whatever the count of
            # tests (the usual case, decided without reading every sample).
            continue
        by_test: dict[str, int] = {}
        for s in samples:
            by_test[s.nodeid] = by_test.get(s.nodeid, 0) + s.rss_end - s.rss_start
        if growth < threshold + KEPT_PER_TEST * len(by_test):
            continue
        kept = sorted(
            (
                (nodeid, bytes_kept)
                for nodeid, bytes_kept in by_test.items()
                if bytes_kept >= MIN_KEPT
            ),
            key=lambda pair: (-pair[1], pair[0]),
        )
        leaks.append(
            Leak(
                worker=worker,
                growth=growth,
                tests=len(by_test),
                culprits=tuple(kept[:culprits]),
            )
        )
    return sorted(leaks, key=lambda leak: (-leak.growth, leak.worker))


@dataclass(frozen=True)
class WorkerCount:
    """How many workers ``-n auto`` starts, and the figures behind it."""

    workers: int
    cpus: int
    by_memory: int | None
    per_worker: int | None


def workers_for_memory(
    cpus: int, budget: int | None, resting: Iterable[int], peaks: Iterable[int]
) -> WorkerCount:
    """The smaller of ``cpus`` and the workers the memory budget holds.

    A worker needs its resting memory (the median of the ``resting`` RSS its
    processes had in earlier runs) plus room for a heavy test (the 90th
    percentile of the tests' historical ``peaks`` above their worker's
    memory). Without a budget or history, the CPU count stands. Never fewer
    than one worker.
    """
    resting_values = sorted(resting)
    peak_values = sorted(peaks)
    cpus = max(cpus, 1)
    if budget is None or not resting_values:
        return WorkerCount(cpus, cpus, None, None)
    base = resting_values[len(resting_values) // 2]
    heavy = (
        peak_values[min(len(peak_values) - 1, math.ceil(0.9 * len(peak_values)) - 1)]
        if (peak_values)
        else 0
    )
    per_worker = max(base + max(heavy, 0), 1)
    by_memory = max(budget // per_worker, 1)
    return WorkerCount(min(cpus, by_memory), cpus, by_memory, per_worker)
