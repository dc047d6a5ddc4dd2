"""The probe's statistics: intervals, the order test, verdicts, suspects."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.probe import (
    ALONE_RUNS,
    Alone,
    Run,
    fewer_failures_p,
    overall_outcome,
    suspects,
    verdict,
    wilson_interval,
)


@st.composite
def counts(draw: st.DrawFn) -> tuple[int, int]:
    runs = draw(st.integers(1, 500))
    return draw(st.integers(0, runs)), runs


class TestWilsonInterval:
    @given(counts())
    def test_it_holds_the_observed_rate_inside_zero_and_one(self, count: tuple[int, int]) -> None:
        failures, runs = count
        low, high = wilson_interval(failures, runs)
        assert 0.0 <= low <= failures / runs <= high <= 1.0
        assert low < high

    @given(counts())
    def test_it_is_symmetric_between_failures_and_passes(self, count: tuple[int, int]) -> None:
        failures, runs = count
        low, high = wilson_interval(failures, runs)
        mirror_low, mirror_high = wilson_interval(runs - failures, runs)
        assert math.isclose(low, 1 - mirror_high, abs_tol=1e-12)
        assert math.isclose(high, 1 - mirror_low, abs_tol=1e-12)

    @given(st.integers(1, 50), st.integers(2, 10))
    def test_more_runs_at_the_same_rate_narrow_it(self, runs: int, factor: int) -> None:
        failures = runs // 2
        low, high = wilson_interval(failures, runs)
        more_low, more_high = wilson_interval(failures * factor, runs * factor)
        assert more_high - more_low < high - low

    def test_known_values(self) -> None:
        # Wilson score interval, z = 1.96: the textbook figures.
        assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
        assert wilson_interval(5, 5) == (pytest.approx(0.5655, abs=1e-4), 1.0)
        assert wilson_interval(2, 10) == (
            pytest.approx(0.0567, abs=1e-4),
            pytest.approx(0.5098, abs=1e-4),
        )

    @pytest.mark.parametrize(("failures", "runs"), [(0, 0), (-1, 3), (4, 3)])
    def test_impossible_counts_are_refused(self, failures: int, runs: int) -> None:
        with pytest.raises(ValueError, match="must be"):
            wilson_interval(failures, runs)


class TestOrderTest:
    def test_a_test_failing_every_suite_run_and_no_alone_run(self) -> None:
        # 1 of the C(10, 5) = 252 ways to place 5 failures among 10 runs.
        assert fewer_failures_p(5, 5, 0, 5) == pytest.approx(1 / 252)

    @given(counts(), st.integers(1, 30))
    def test_p_is_a_probability_and_one_at_the_most_alone_failures(
        self, count: tuple[int, int], alone_runs: int
    ) -> None:
        failures, runs = count
        assert 0 < fewer_failures_p(failures, runs, 0, alone_runs) <= 1
        assert fewer_failures_p(failures, runs, alone_runs, alone_runs) == pytest.approx(1.0)

    @given(st.integers(2, 40), st.integers(1, 30))
    def test_more_failures_in_the_suite_is_stronger_evidence(
        self, runs: int, alone_runs: int
    ) -> None:
        ps = [fewer_failures_p(f, runs, 0, alone_runs) for f in range(runs + 1)]
        assert all(later <= earlier for earlier, later in pairwise(ps))
        assert ps[0] == 1.0

    def test_verdicts(self) -> None:
        assert verdict(5, 5, Alone(ALONE_RUNS, 0)) == ("order-dependent", pytest.approx(1 / 252))
        # Failing once in five is no evidence against chance.
        word, p = verdict(1, 5, Alone(ALONE_RUNS, 0))
        assert word == "inconclusive"
        assert p == pytest.approx(0.5)
        assert verdict(5, 5, Alone(ALONE_RUNS, 2)) == ("fails alone", None)
        assert verdict(5, 5, Alone(0, 0, problem="pytest exited with code 4")) == (
            "inconclusive",
            None,
        )


class TestSuspects:
    def test_the_test_before_every_failure_and_no_pass_ranks_first(self) -> None:
        runs = [
            # gw0: victim passes, then the polluter runs, then it fails.
            Run("victim", "gw0", 1.0, failed=False),
            Run("bystander", "gw0", 2.0, failed=False),
            Run("polluter", "gw0", 3.0, failed=False),
            Run("victim", "gw0", 4.0, failed=True),
            # gw1: the bystander ran before a pass, the polluter before a failure.
            Run("bystander", "gw1", 1.0, failed=False),
            Run("victim", "gw1", 2.0, failed=False),
            Run("polluter", "gw1", 3.0, failed=False),
            Run("victim", "gw1", 4.0, failed=True),
        ]
        # Its own earlier runs came before both failures, and before no pass, too:
        # as likely as the polluter on this evidence (the probe's runs alone of
        # suspect-then-victim tell them apart).
        assert suspects("victim", runs) == ["victim", "polluter", "bystander"]

    def test_only_the_failing_runs_worker_counts(self) -> None:
        runs = [
            Run("elsewhere", "gw1", 0.5, failed=False),
            Run("before", "gw0", 1.0, failed=False),
            Run("victim", "gw0", 2.0, failed=True),
            Run("after", "gw0", 3.0, failed=False),
        ]
        assert suspects("victim", runs) == ["before"]

    def test_ties_go_to_the_test_closest_before_a_failure(self) -> None:
        runs = [Run(name, "main", t, failed=False) for t, name in enumerate("abc")]
        runs.append(Run("victim", "main", 9.0, failed=True))
        assert suspects("victim", runs) == ["c", "b", "a"]

    def test_an_earlier_run_of_the_victim_itself_is_a_suspect(self) -> None:
        runs = [
            Run("victim", "main", 0.0, failed=False),
            Run("other", "main", 1.0, failed=False),
            Run("victim", "main", 2.0, failed=True),
        ]
        assert suspects("victim", runs) == ["victim", "other"]
        # Before its first run on a worker, it is no suspect of itself.
        assert suspects("victim", runs[1:]) == ["other"]

    def test_tests_before_the_last_pass_are_not_in_the_window(self) -> None:
        runs = [
            Run("early", "main", 0.0, failed=False),
            Run("victim", "main", 1.0, failed=False),
            Run("late", "main", 2.0, failed=False),
            Run("victim", "main", 3.0, failed=True),
        ]
        # What "early" left behind was there when the victim passed.
        assert suspects("victim", runs) == ["victim", "late", "early"]

    def test_a_test_that_never_failed_has_none(self) -> None:
        runs = [Run("a", "main", 0.0, False), Run("victim", "main", 1.0, False)]
        assert suspects("victim", runs) == []


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["passed", "passed"], "passed"),
        (["passed", "failed", "passed"], "failed"),
        (["error", "failed"], "failed"),
        (["passed", "error"], "error"),
        (["xfailed", "xfailed"], "xfailed"),
    ],
)
def test_a_probed_test_fails_when_any_run_failed(outcomes: list[str], expected: str) -> None:
    assert overall_outcome(outcomes) == expected
