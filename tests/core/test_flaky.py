"""Rerun decisions, verdicts and the flakiness score (``core/flaky.py``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.flaky import (
    Flakiness,
    RerunPolicy,
    RunRecord,
    budget_for,
    final_outcome,
    flakiness,
    is_infrastructure_failure,
    is_infrastructure_run,
)

OUTCOMES = ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]


# -- reruns ------------------------------------------------------------------------------


def test_budget_comes_from_the_most_specific_place() -> None:
    assert budget_for(0, 3, 5, benchmark=False) == 0
    assert budget_for(None, 3, 5, benchmark=False) == 3
    assert budget_for(None, None, 5, benchmark=False) == 5
    assert budget_for(None, None, 5, benchmark=True) == 0
    assert budget_for(None, 2, 5, benchmark=True) == 2
    assert budget_for(1, None, 5, benchmark=True) == 1


def test_patterns_only_and_never() -> None:
    policy = RerunPolicy(only=re.compile("Connection"), never=re.compile("refused"))
    assert policy.allows("ConnectionError: reset by peer")
    assert not policy.allows("ConnectionError: refused")  # never wins
    assert not policy.allows("AssertionError")
    assert RerunPolicy().allows("anything")


def test_delay_doubles() -> None:
    policy = RerunPolicy(delay=0.5)
    assert [policy.delay_before(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert RerunPolicy().delay_before(3) == 0.0


@pytest.mark.parametrize(
    ("earlier", "last", "verdict"),
    [
        ([], "passed", "passed"),
        (["failed"], "passed", "flaky"),
        (["error", "failed"], "xpassed", "flaky"),
        (["failed"], "failed", "failed"),
        (["failed"], "skipped", "failed"),  # a skipped rerun leaves the failure
        ([], "skipped", "skipped"),
    ],
)
def test_final_outcome(earlier: list[str], last: str, verdict: str) -> None:
    assert final_outcome(earlier, last) == verdict


# -- the score ----------------------------------------------------------------------------


def record(run: int, *outcomes: str, commit: str | None = "c1", infra: bool = False) -> RunRecord:
    return RunRecord(run, commit, outcomes, infra)


def test_a_stable_test_scores_zero() -> None:
    passing = [record(n, "passed") for n in range(10)]
    failing = [record(n, "failed") for n in range(10)]
    assert flakiness(passing).score == 0.0
    assert flakiness(failing).score == 0.0


def test_flips_count_only_at_the_same_commit() -> None:
    # Broken at c1, fixed at c2: a fix, not flakiness.
    fixed = [record(1, "failed", commit="c1"), record(2, "passed", commit="c2")]
    assert flakiness(fixed) == Flakiness(0.0, runs=2, flaky_runs=0, flips=0, pairs=0, excluded=0)
    # The same code passes, fails, passes: two flips in two pairs, over 3 runs.
    wobbly = [record(1, "passed"), record(2, "failed"), record(3, "passed")]
    assert flakiness(wobbly) == Flakiness(0.4, runs=3, flaky_runs=0, flips=2, pairs=2, excluded=0)


def test_in_run_pass_after_fail_counts() -> None:
    runs = [record(1, "failed", "passed", commit=None), record(2, "passed", commit=None)]
    assert flakiness(runs) == Flakiness(0.5, runs=2, flaky_runs=1, flips=0, pairs=0, excluded=0)


def test_infrastructure_runs_and_skips_are_left_out() -> None:
    runs = [
        record(1, "passed"),
        record(2, "failed", infra=True),
        record(3, "skipped"),
        record(4, "passed"),
    ]
    assert flakiness(runs) == Flakiness(0.0, runs=2, flaky_runs=0, flips=0, pairs=1, excluded=2)


def test_the_window_keeps_the_most_recent_runs() -> None:
    runs = [record(n, "failed", "passed", commit=None) for n in range(5)]
    runs += [record(n, "passed", commit=None) for n in range(5, 10)]
    assert flakiness(runs, window=5).score == 0.0
    assert flakiness(runs, window=10).score == 0.5


def test_infrastructure_threshold() -> None:
    assert is_infrastructure_failure(5, 10)
    assert not is_infrastructure_failure(4, 10)  # a share, but too few tests
    assert not is_infrastructure_failure(5, 11)
    assert is_infrastructure_failure(50, 100)


runs_strategy = st.lists(
    st.builds(
        RunRecord,
        run=st.integers(0, 10_000),
        commit=st.sampled_from([None, "a", "b", "c"]),
        outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=4).map(tuple),
        infrastructure=st.booleans(),
    ),
    max_size=30,
).map(lambda records: sorted(records, key=lambda r: r.run))


@settings(max_examples=300, deadline=None)
@given(runs_strategy, st.integers(1, 40))
def test_score_is_a_share_of_chances(records: list[RunRecord], window: int) -> None:
    result = flakiness(records, window)
    assert 0.0 <= result.score <= 1.0
    assert result.runs <= window
    assert result.flips <= result.pairs < max(result.runs, 1)
    assert result.flaky_runs <= result.runs


@settings(max_examples=300, deadline=None)
@given(runs_strategy, runs_strategy)
def test_infrastructure_runs_never_change_the_score(
    records: list[RunRecord], noise: list[RunRecord]
) -> None:
    infra = [RunRecord(r.run, r.commit, r.outcomes, infrastructure=True) for r in noise]
    mixed = sorted(records + infra, key=lambda r: r.run)
    clean = [r for r in records if not r.infrastructure]
    # Sorting is stable: the clean runs keep their order among themselves.
    before, after = flakiness(clean), flakiness(mixed)
    assert (before.score, before.runs, before.flips) == (after.score, after.runs, after.flips)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["passed", "failed"]), max_size=20), st.booleans())
def test_a_test_whose_outcome_never_changes_at_a_commit_scores_zero(
    verdicts: list[str], stable: bool
) -> None:
    # Each run at its own commit: outcome changes between commits are fixes or breaks.
    records = [RunRecord(n, f"c{n}", (v,)) for n, v in enumerate(verdicts)]
    assert flakiness(records).score == 0.0
    if stable:
        same = [RunRecord(n, "c", ("passed",)) for n in range(len(verdicts))]
        assert flakiness(same).score == 0.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30))
def test_flaky_in_every_run_scores_at_least_half(count: int) -> None:
    records = [RunRecord(n, "c", ("failed", "passed")) for n in range(count)]
    assert flakiness(records).score >= 0.5


def test_a_quarantined_failure_is_a_failure() -> None:
    # A quarantined test's final failure fails nothing, but the test failed.
    runs = [record(1, "quarantined"), record(2, "passed"), record(3, "quarantined")]
    assert flakiness(runs) == Flakiness(0.4, runs=3, flaky_runs=0, flips=2, pairs=2, excluded=0)
    # Known failures do not make a run an infrastructure failure: five quarantined
    # tests would have left every test's outcome in the run out of its score.
    assert not is_infrastructure_run(["quarantined"] * 5 + ["passed"] * 2)
    assert is_infrastructure_run(["failed"] * 5 + ["passed"] * 2)
