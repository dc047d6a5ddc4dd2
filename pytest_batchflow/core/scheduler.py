"""Run-time decisions: what may still run, and why a test is skipped instead.

The state follows the run as tests finish. The serial runner asks it before
each test; the dispatch loop for several workers builds on the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Literal

from .plan import Plan

__all__ = ["FAILING_OUTCOMES", "SATISFYING_OUTCOMES", "Outcome", "RunState"]

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]

#: A dependency is met only by these outcomes (as in pytest-dependency).
SATISFYING_OUTCOMES: frozenset[str] = frozenset({"passed", "xpassed"})
#: These count as failures of a batch (for maxfail and its downstream batches).
FAILING_OUTCOMES: frozenset[str] = frozenset({"failed", "error"})

_OUTCOME_WORDS = {
    "failed": "failed",
    "error": "errored",
    "skipped": "was skipped",
    "xfailed": "xfailed",
}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class RunState:
    """Outcomes so far, batch clocks and failure counts, for one run.

    ``external_reasons`` gives, for a dependency outside the planned tests, why
    it is missing (``None`` when it is known to have passed, e.g. earlier in a
    CI pipeline at the same commit). ``unresolved`` maps a test to a target
    that matched no test, when such tests are to be skipped rather than refused.
    """

    def __init__(
        self,
        plan: Plan,
        nodeids: Mapping[int, str],
        external_reasons: Mapping[int, str | None],
        unresolved: Mapping[int, str],
    ) -> None:
        self.plan = plan
        self.nodeids = nodeids
        self.external_reasons = external_reasons
        self.unresolved = unresolved
        self.outcomes: dict[int, str] = {}
        self.batch_started: dict[str, float] = {}
        self.batch_failures: Counter[str] = Counter()
        self.blocked: dict[str, str] = {}
        self._policies = {batch.name: batch.policy for batch in plan.batches}

    def skip_reason(self, index: int, now: float) -> str | None:
        """Why the test must not run now, or None when it may start."""
        batch = self.plan.batch_of[index]
        policy = self._policies[batch]
        blocked = self.upstream_block(batch)
        if blocked is not None:
            return blocked
        if index in self.unresolved:
            return f"depends on {self.unresolved[index]!r}, which matches no collected test"
        for pred in self.plan.predecessors.get(index, ()):
            reason = self._dependency_reason(pred)
            if reason is not None:
                return reason
        if policy.maxfail is not None and self.batch_failures[batch] >= policy.maxfail:
            return (
                f"batch {batch!r} stopped after {_plural(self.batch_failures[batch], 'failure')}"
                f" (maxfail={policy.maxfail})"
            )
        started = self.batch_started.get(batch)
        if policy.timeout is not None and started is not None and now - started >= policy.timeout:
            return f"batch {batch!r} spent its timeout of {policy.timeout:g}s"
        return None

    def upstream_block(self, batch: str) -> str | None:
        """Why a whole batch is skipped because of its ``after`` batches, if it is."""
        if batch in self.blocked:
            return self.blocked[batch]
        policy = self._policies[batch]
        if policy.on_upstream_failure == "run":
            return None
        for upstream in policy.after:
            if upstream not in self._policies:
                continue  # left out of this run's selection
            if self.batch_failures[upstream]:
                failures = _plural(self.batch_failures[upstream], "failure")
                self.blocked[batch] = f"upstream batch {upstream!r} had {failures}"
            elif self.upstream_block(upstream) is not None:
                self.blocked[batch] = f"upstream batch {upstream!r} was skipped"
            else:
                continue
            return self.blocked[batch]
        return None

    def _dependency_reason(self, pred: int) -> str | None:
        nodeid = self.nodeids[pred]
        if pred in self.external_reasons:
            reason = self.external_reasons[pred]
            return None if reason is None else f"depends on {nodeid}, which {reason}"
        outcome = self.outcomes.get(pred)
        if outcome is None:
            return f"depends on {nodeid}, which has not run"
        if outcome in SATISFYING_OUTCOMES:
            return None
        return f"depends on {nodeid}, which {_OUTCOME_WORDS[outcome]}"

    def test_started(self, index: int, now: float) -> None:
        self.batch_started.setdefault(self.plan.batch_of[index], now)

    def test_finished(self, index: int, outcome: str) -> None:
        self.outcomes[index] = outcome
        if outcome in FAILING_OUTCOMES:
            self.batch_failures[self.plan.batch_of[index]] += 1
