"""Reruns and their verdicts: which failures are rerun, when, and what the attempts add up to.

A test's rerun budget comes from the most specific place that sets one: its
``reruns`` marker, then its batch line's ``reruns=``, then the run's
``--batchflow-reruns`` (benchmark batches take only the first two). A failed
attempt is rerun while budget is left and its error text passes the
patterns; the last attempt decides the outcome, and a failure followed by a
pass is ``flaky``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RerunPolicy", "budget_for", "final_outcome"]

#: pytest outcomes a later pass turns into ``flaky``.
_FAILURES = frozenset({"failed", "error"})


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
