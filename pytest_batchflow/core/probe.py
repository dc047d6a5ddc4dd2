"""The probe's statistics: failure rates with intervals, order dependence, suspects.

``--batchflow-probe=N`` runs every test N times and then asks two questions of
each test that failed: how often does it fail (a rate with a 95% Wilson score
interval), and does it fail only after other tests (it passes when run alone,
in a fresh process). Pure functions, no pytest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALONE_RUNS",
    "MAX_ALONE_TESTS",
    "SIGNIFICANCE",
    "Alone",
    "Run",
    "fewer_failures_p",
    "overall_outcome",
    "suspects",
    "verdict",
    "wilson_interval",
]

#: How many times a test that failed in the suite runs alone.
ALONE_RUNS = 5
#: At most this many failing tests are run alone (those failing most often first).
MAX_ALONE_TESTS = 20
#: The p-value below which "fails in the suite, passes alone" counts as order dependence.
SIGNIFICANCE = 0.05
_Z95 = 1.959963984540054  # the normal distribution's 97.5th percentile


def wilson_interval(failures: int, runs: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval for a failure rate of ``failures`` in ``runs``.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at
    0 or ``runs`` failures: 0 failures in 10 runs gives (0, 0.278).
    """
    if runs <= 0:
        raise ValueError("runs must be positive")
    if not 0 <= failures <= runs:
        raise ValueError("failures must be between 0 and runs")
    rate = failures / runs
    denominator = 1 + z * z / runs
    centre = (rate + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs)) / denominator
    # Exact at the edges, whatever the rounding.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == runs else min(1.0, centre + half)
    return low, high


def fewer_failures_p(
    suite_failures: int, suite_runs: int, alone_failures: int, alone_runs: int
) -> float:
    """One-sided Fisher exact test: how likely so few failures alone, were runs alike.

    The p-value of seeing ``alone_failures`` or fewer among the alone runs if
    every run, in the suite or alone, failed with the same probability (the
    hypergeometric tail). Small when the test fails clearly more often in the
    suite than alone.
    """
    total_runs = suite_runs + alone_runs
    total_failures = suite_failures + alone_failures
    possible = math.comb(total_runs, total_failures)
    tail = sum(
        math.comb(alone_runs, k) * math.comb(suite_runs, total_failures - k)
        for k in range(alone_failures + 1)
    )
    return tail / possible


@dataclass(frozen=True)
class Alone:
    """A test's runs alone, each in a fresh process: how many ran and failed."""

    runs: int
    failures: int
    #: Why no verdict could be reached (the process could not run the test), if so.
    problem: str | None = None


def verdict(suite_failures: int, suite_runs: int, alone: Alone) -> tuple[str, float | None]:
    """What the alone runs say of a test that failed in the suite, and the p-value.

    ``order-dependent``: it passed every time alone, and it failed in the suite
    significantly more often than that (:func:`fewer_failures_p` below
    :data:`SIGNIFICANCE`). ``fails alone``: it failed alone too, so order is
    not (the whole) cause. ``inconclusive``: it passed alone, but it failed
    too rarely in the suite to tell chance from order; or it could not run alone.
    """
    if alone.problem is not None or alone.runs == 0:
        return "inconclusive", None
    if alone.failures:
        return "fails alone", None
    p = fewer_failures_p(suite_failures, suite_runs, 0, alone.runs)
    return ("order-dependent" if p < SIGNIFICANCE else "inconclusive"), p


@dataclass(frozen=True)
class Run:
    """One attempt of one test, as the probe saw it: where, when, and whether it failed."""

    test: str
    worker: str
    start: float
    failed: bool


def suspects(victim: str, runs: Sequence[Run]) -> list[str]:
    """Tests that ran before the victim's failing attempts on the same worker, likeliest first.

    Pollution lasts, so the culprit of a failure ran on its worker after the
    victim's last pass there (or since the worker started): in the failure's
    *window*. The victim's own passing run opens the next window: a test that
    fails when run again in the same process is its own suspect. Ranked by
    how many windows a test is in, then how many failures it ran before, then
    how few passes (what it leaves behind did not make the victim fail then),
    the victim itself first on a tie, then how close before a failure it ran.
    """
    by_worker: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.start):
        by_worker.setdefault(run.worker, []).append(run)
    in_windows: dict[str, int] = {}
    before_failures: dict[str, int] = {}
    before_passes: dict[str, int] = {}
    closeness: dict[str, int] = {}
    for worker_runs in by_worker.values():
        earlier: list[str] = []
        window: set[str] = set()
        last_failed = False
        for run in worker_runs:
            if run.test == victim:
                counts = before_failures if run.failed else before_passes
                for test in set(earlier):
                    counts[test] = counts.get(test, 0) + 1
                if run.failed and not last_failed:
                    for test in window:
                        in_windows[test] = in_windows.get(test, 0) + 1
                if run.failed:
                    for distance, test in enumerate(reversed(earlier)):
                        closeness[test] = min(distance, closeness.get(test, distance))
                else:
                    window = set()
                last_failed = run.failed
            window.add(run.test)
            earlier.append(run.test)
    return sorted(
        before_failures,
        key=lambda test: (
            -in_windows.get(test, 0),
            -before_failures[test],
            before_passes.get(test, 0),
            test != victim,  # a test not meant to run twice: the likeliest on a tie
            closeness.get(test, math.inf),
            test,
        ),
    )


def overall_outcome(outcomes: Sequence[str]) -> str:
    """A probed test's outcome from its runs' outcomes, oldest first.

    Any failure makes it fail (``failed`` before ``error``, as a call failure
    says more than a setup one); otherwise its last run's outcome.
    """
    for word in ("failed", "error"):
        if word in outcomes:
            return word
    return outcomes[-1]
