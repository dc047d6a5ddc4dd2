"""Reruns and their verdicts: which failures are rerun, when, and what the attempts add up to.

A test's rerun budget comes from the most specific place that sets one: its
``reruns`` marker, then its batch line's ``reruns=``, then the run's
``--batchflow-reruns`` (benchmark batches take only the first two). A failed
attempt is rerun while budget is left and its error text passes the
patterns; the last attempt decides the outcome, and a failure followed by a
pass is ``flaky``.

Across runs, :func:`flakiness` scores each test from its history.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_WINDOW",
    "Flakiness",
    "RerunPolicy",
    "RunRecord",
    "budget_for",
    "final_outcome",
    "flakiness",
    "is_infrastructure_failure",
    "is_infrastructure_run",
    "verdict_of",
]

#: pytest outcomes a later pass turns into ``flaky``.
_FAILURES = frozenset({"failed", "error"})
#: A run's final outcomes that are failures: a quarantined test's final
#: failure too (it fails nothing, but the test failed).
_FINAL_FAILURES = _FAILURES | {"quarantined"}


@dataclass(frozen=True)
class RerunPolicy:
    """What gets rerun and after how long, for one run.

    ``only``: rerun only failures whose error text matches; ``never``: never
    rerun failures whose error text matches (it wins over ``only``).
    ``delay``: seconds before the first rerun, doubled before each next one.
    """

    only: re.Pattern[str] | None = None
    never: re.Pattern[str] | None = None
    delay: float = 0.0

    def allows(self, error: str) -> bool:
        """Whether a failure with this error text may be rerun at all."""
        if self.never is not None and self.never.search(error):
            return False
        return self.only is None or self.only.search(error) is not None

    def delay_before(self, rerun: int) -> float:
        """Seconds to wait before the ``rerun``-th rerun (1 for the first)."""
        return self.delay * 2 ** (rerun - 1) if self.delay and rerun >= 1 else 0.0


def budget_for(
    marker: int | None, batch_line: int | None, run_default: int, *, benchmark: bool
) -> int:
    """A test's rerun budget: marker, else batch line, else the run's default.

    Benchmark batches are not rerun unless their line or the test asks.
    """
    if marker is not None:
        return marker
    if batch_line is not None:
        return batch_line
    return 0 if benchmark else run_default


def final_outcome(earlier: Sequence[str], last: str) -> str:
    """The test's outcome from its earlier (rerun) attempts and its last one.

    ``earlier`` holds the outcomes of attempts that were rerun (failed or
    error); a pass (or xpass) after any of them is ``flaky``, and a rerun that
    skipped leaves the failure before it standing.
    """
    failed_before = any(outcome in _FAILURES for outcome in earlier)
    if last in ("passed", "xpassed") and failed_before:
        return "flaky"
    if last == "skipped" and failed_before:
        return earlier[-1]
    return last


# -- the flakiness score across runs --------------------------------------------------

#: A run counts as an infrastructure failure (and against no single test) when at
#: least this share of its tests failed, and at least INFRASTRUCTURE_MIN of them.
INFRASTRUCTURE_SHARE = 0.5
INFRASTRUCTURE_MIN = 5
#: How many of a test's recent runs the score looks at, by default.
DEFAULT_WINDOW = 20

_PASSES = frozenset({"passed", "xpassed"})


def verdict_of(outcome: str) -> str | None:
    """A run's verdict from its last attempt's outcome: ``pass``, ``fail``, or
    None for skips and xfails (which tell nothing of flakiness)."""
    if outcome in _PASSES:
        return "pass"
    return "fail" if outcome in _FINAL_FAILURES else None


@dataclass(frozen=True)
class RunRecord:
    """One run of one test, from the history: its attempts' outcomes, in order."""

    run: int
    commit: str | None
    outcomes: tuple[str, ...]
    infrastructure: bool = False

    @property
    def verdict(self) -> str | None:
        """``pass`` or ``fail`` from the last attempt; None for skips and xfails."""
        return verdict_of(self.outcomes[-1]) if self.outcomes else None

    @property
    def flaky(self) -> bool:
        """A failure, then a pass, within the run."""
        failed = False
        for outcome in self.outcomes:
            failed = failed or outcome in _FAILURES
            if failed and outcome in _PASSES:
                return True
        return False


@dataclass(frozen=True)
class Flakiness:
    """A test's flakiness score and the evidence behind it.

    ``score = (flaky_runs + flips) / (runs + pairs)``, 0 with no runs: the share
    of chances to show flakiness that did. ``runs`` are the counted runs (the
    last ``window`` with a pass or fail outcome, infrastructure failures left
    out); ``flaky_runs`` those with a failure and then a pass; ``pairs`` each
    counted run with the previous counted run at the same commit (runs of
    other commits may come between; runs without a commit pair with none),
    ``flips`` those whose final outcomes differ. A test that always passes, or
    always fails, scores 0; one fixed (or broken) by a commit too.
    """

    score: float
    runs: int
    flaky_runs: int
    flips: int
    pairs: int
    excluded: int


def is_infrastructure_failure(failed: int, total: int) -> bool:
    """Whether a run failed too broadly for any single test to be blamed."""
    return failed >= INFRASTRUCTURE_MIN and failed >= INFRASTRUCTURE_SHARE * total


def is_infrastructure_run(last_outcomes: Collection[str]) -> bool:
    """:func:`is_infrastructure_failure` of a run, from each of its tests' last outcome."""
    # Quarantined failures are known ones: not a sign of broken surroundings.
    failed = sum(1 for outcome in last_outcomes if outcome in _FAILURES)
    return is_infrastructure_failure(failed, len(last_outcomes))


def flakiness(records: Sequence[RunRecord], window: int = DEFAULT_WINDOW) -> Flakiness:
    """The score over a test's runs (oldest first); see :class:`Flakiness`."""
    countable = [r for r in records if not r.infrastructure and r.verdict is not None]
    counted = countable[-window:] if window > 0 else []
    excluded = len(records) - len(countable)
    flaky_runs = sum(1 for record in counted if record.flaky)
    flips = pairs = 0
    last_at: dict[str, RunRecord] = {}
    for record in sorted(counted, key=lambda r: r.run):
        if record.commit is None:
            continue
        previous = last_at.get(record.commit)
        if previous is not None:
            pairs += 1
            flips += previous.verdict != record.verdict
        last_at[record.commit] = record
    chances = len(counted) + pairs
    return Flakiness(
        score=(flaky_runs + flips) / chances if chances else 0.0,
        runs=len(counted),
        flaky_runs=flaky_runs,
        flips=flips,
        pairs=pairs,
        excluded=excluded,
    )
