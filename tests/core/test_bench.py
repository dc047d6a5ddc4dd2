"""Benchmark statistics: summaries, round sizes, gates, bootstrap comparisons, fingerprints."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.bench import (
    BOOTSTRAP_VALUES,
    MIN_COMPARABLE_ROUNDS,
    STATISTICS,
    Gate,
    _Resampler,
    compare,
    compare_with_history,
    fingerprint_mismatch,
    iterations_for,
    parse_gate,
    rounds_for,
    summarize,
)

# Down to a picosecond: below, the variance of the rounds underflows to 0.
times = st.just(0.0) | st.floats(min_value=1e-12, max_value=1e3)
positive_times = st.floats(min_value=1e-9, max_value=1e3)


def statistic_of(statistic: str, values: Sequence[float]) -> float:
    """The statistic as the standard library computes it."""
    if statistic == "min":
        return min(values)
    if statistic == "mean":
        return statistics.mean(values)
    return statistics.median(values)


def rounds(
    seed: int, count: int, scale: float = 1e-3, sigma: float = 0.05, seed_offset: int = 0
) -> list[float]:
    """``count`` rounds of about ``scale`` seconds per call, with lognormal noise."""
    rng = random.Random(seed * 1000 + seed_offset)
    return [scale * rng.lognormvariate(0, sigma) for _ in range(count)]


class TestSummarize:
    def test_known_data(self) -> None:
        data = [1.0, 2.0, 3.0, 4.0, 100.0]
        stats = summarize(data, 10)
        assert (stats.rounds, stats.iterations) == (5, 10)
        assert (stats.min, stats.max, stats.median) == (1.0, 100.0, 3.0)
        assert stats.mean == statistics.mean(data) == 22.0
        assert stats.stddev == statistics.stdev(data)
        # pytest-benchmark's quartiles for 4n + 1 rounds: 0.25 x[n-1] + 0.75 x[n], ...
        assert (stats.q1, stats.q3, stats.iqr) == (1.75, 28.0, 26.25)
        # 100 is beyond both q3 + 1.5 iqr = 67.375 and mean + stddev = 65.6.
        assert (stats.outliers_iqr, stats.outliers_stddev) == (1, 1)
        assert stats.ops == pytest.approx(1 / 22)
        assert stats.total == 1100.0

    @pytest.mark.parametrize(
        ("data", "q1", "q3"),
        [
            ([4.0, 1.0, 3.0, 2.0], 1.5, 3.5),  # even: the medians of the two halves
            ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 2.25, 5.75),  # 4n + 3
            ([1.0, 2.0, 3.0], 1.25, 2.75),
            ([1.0, 2.0], 1.0, 2.0),
        ],
    )
    def test_quartiles_are_pytest_benchmarks(self, data: list[float], q1: float, q3: float) -> None:
        stats = summarize(data, 1)
        assert (stats.q1, stats.q3) == (q1, q3)

    def test_one_round(self) -> None:
        stats = summarize([0.002], 50)
        assert stats.rounds == 1
        assert stats.min == stats.max == stats.mean == stats.median == 0.002
        assert stats.q1 == stats.q3 == 0.002
        assert (stats.stddev, stats.iqr) == (0.0, 0.0)
        assert (stats.outliers_iqr, stats.outliers_stddev) == (0, 0)
        assert stats.ops == pytest.approx(500.0)
        assert stats.total == pytest.approx(0.1)

    def test_rounds_too_fast_to_measure_have_infinite_ops(self) -> None:
        assert summarize([0.0, 0.0], 1).ops == math.inf

    def test_integers_come_back_as_floats(self) -> None:
        stats = summarize([1, 2, 3], 1)
        assert all(type(value) is float for value in (stats.min, stats.mean, stats.median))

    @pytest.mark.parametrize(
        ("data", "iterations", "message"),
        [
            ([], 1, "at least one round"),
            ([1.0], 0, "iterations must be at least 1"),
            ([1.0, -0.5], 1, "not negative"),
            ([0.5, math.nan, 1.0], 1, "finite"),
            ([math.inf], 1, "finite"),
        ],
    )
    def test_impossible_input_is_refused(
        self, data: list[float], iterations: int, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            summarize(data, iterations)

    @given(st.lists(times, min_size=1, max_size=60), st.integers(1, 10_000))
    def test_the_figures_are_in_order(self, data: list[float], iterations: int) -> None:
        stats = summarize(data, iterations)
        assert stats.min <= stats.q1 <= stats.median <= stats.q3 <= stats.max
        assert stats.iqr == stats.q3 - stats.q1
        assert stats.min <= stats.mean <= stats.max
        assert stats.stddev >= 0
        # Some round is always within the quartiles, and within a stddev of the mean.
        assert 0 <= stats.outliers_iqr < stats.rounds
        assert 0 <= stats.outliers_stddev < stats.rounds
        assert stats.total == math.fsum(data) * iterations

    @given(st.lists(times, min_size=1, max_size=30), st.randoms(use_true_random=False))
    def test_the_order_of_rounds_does_not_matter(
        self, data: list[float], rng: random.Random
    ) -> None:
        shuffled = data[:]
        rng.shuffle(shuffled)
        assert summarize(shuffled, 3) == summarize(data, 3)


class TestIterationsFor:
    def test_a_fast_call_is_repeated_to_fill_the_minimum_round(self) -> None:
        # 1e-4 / 1e-6 calls, and one more: 100 * 1e-6 falls short of 1e-4 in floats.
        assert iterations_for(1e-6, 1e-9) == 101
        assert iterations_for(2.5e-5, 1e-9) == 4

    def test_a_coarse_clock_makes_rounds_longer(self) -> None:
        # A 1 µs tick: a round lasts 1000 ticks, 1 ms.
        assert iterations_for(1e-5, 1e-6) == 100
        assert iterations_for(1e-5, 1e-6, precision=10_000) == 1000

    def test_a_slow_call_runs_once_per_round(self) -> None:
        assert iterations_for(0.5, 1e-9) == 1

    @pytest.mark.parametrize("one_call", [0.0, -1e-9, math.nan])
    def test_an_unmeasurable_call_costs_a_tick(self, one_call: float) -> None:
        assert iterations_for(one_call, 1e-6) == iterations_for(1e-6, 1e-6)

    @pytest.mark.parametrize("resolution", [0.0, -1e-9, math.nan])
    def test_a_clock_without_resolution_is_refused(self, resolution: float) -> None:
        with pytest.raises(ValueError, match="resolution must be positive"):
            iterations_for(1e-6, resolution)

    @given(
        positive_times,
        st.floats(min_value=1e-10, max_value=1e-3),
        st.floats(min_value=0.0, max_value=1.0),
        st.integers(1, 100_000),
    )
    def test_a_round_lasts_the_target_and_no_call_longer(
        self, one_call: float, resolution: float, min_round: float, precision: int
    ) -> None:
        iterations = iterations_for(one_call, resolution, min_round, precision)
        target = max(min_round, resolution * precision)
        assert iterations >= 1
        assert iterations * one_call >= target
        # At most one call more than ceil(), which float rounding can ask for.
        assert iterations == 1 or (iterations - 2) * one_call < target


class TestRoundsFor:
    def test_rounds_fill_the_time_budget(self) -> None:
        assert rounds_for(0.01, 1.0, 5, 2000) == 100

    def test_a_slow_benchmark_still_gets_the_minimum(self) -> None:
        assert rounds_for(0.5, 1.0, 5, 2000) == 5
        assert rounds_for(3.0, 1.0, 1, 2000) == 1

    def test_a_fast_benchmark_stops_at_the_maximum(self) -> None:
        assert rounds_for(1e-6, 1.0, 5, 2000) == 2000
        assert rounds_for(1e-300, 1e300, 5, 2000) == 2000

    def test_an_unmeasured_round_fits_any_number(self) -> None:
        assert rounds_for(0.0, 1.0, 5, 2000) == 2000

    @pytest.mark.parametrize(("min_rounds", "max_rounds"), [(0, 10), (11, 10), (-1, -1)])
    def test_impossible_bounds_are_refused(self, min_rounds: int, max_rounds: int) -> None:
        with pytest.raises(ValueError, match="min_rounds <= max_rounds"):
            rounds_for(0.01, 1.0, min_rounds, max_rounds)

    @given(
        positive_times,
        st.floats(min_value=0.0, max_value=1e4),
        st.integers(1, 50),
        st.integers(0, 5000),
    )
    def test_rounds_are_within_bounds_and_fit_unless_the_minimum_says(
        self, round_time: float, max_time: float, min_rounds: int, extra: int
    ) -> None:
        max_rounds = min_rounds + extra
        count = rounds_for(round_time, max_time, min_rounds, max_rounds)
        assert min_rounds <= count <= max_rounds
        assert count == min_rounds or count * round_time <= max_time
        assert count == max_rounds or (count + 1) * round_time >= max_time


class TestParseGate:
    @pytest.mark.parametrize(
        ("text", "gate"),
        [
            ("median:10%", Gate("median", 0.10)),
            ("mean:5.5%", Gate("mean", 0.055)),
            ("min:0.1", Gate("min", 0.1)),
            ("median:0%", Gate("median", 0.0)),
            (" median : 10 % ", Gate("median", 0.10)),
            ("mean:150%", Gate("mean", 1.5)),
            ("mean:1", Gate("mean", 1.0)),
        ],
    )
    def test_good_gates(self, text: str, gate: Gate) -> None:
        assert parse_gate(text) == gate

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("median", "no ':'"),
            ("median 10%", "no ':'"),
            ("mode:10%", "unknown statistic 'mode'"),
            ("Median:10%", "unknown statistic 'Median'"),
            (":10%", "unknown statistic ''"),
            ("median:-5%", "'-5%' must be a finite number, 0 or more"),
            ("median:inf", "must be a finite number"),
            ("median:nan%", "must be a finite number"),
            ("median:ten%", "'ten%' is not a number"),
            ("median:", "'' is not a number"),
            ("median:10%%", "is not a number"),
            # 10 without its % sign is a fraction: 1,000%, surely a slip.
            ("median:10", "'10' without % is a fraction (10 = 1000%); write 10% for 10 percent"),
        ],
    )
    def test_bad_gates_name_the_text_and_the_problem(self, text: str, problem: str) -> None:
        with pytest.raises(ValueError, match="invalid benchmark gate") as raised:
            parse_gate(text)
        message = str(raised.value)
        assert repr(text) in message
        assert problem in message

    @given(st.sampled_from(STATISTICS), st.floats(min_value=0, max_value=1000))
    def test_a_percentage_is_a_hundredth(self, statistic: str, percent: float) -> None:
        gate = parse_gate(f"{statistic}:{percent!r}%")
        assert gate.statistic == statistic
        assert gate.threshold == percent / 100

    @given(st.text(max_size=20))
    def test_any_text_is_a_gate_or_a_one_line_error(self, text: str) -> None:
        try:
            gate = parse_gate(text)
        except ValueError as error:
            message = str(error)
            assert repr(text) in message
            assert "\n" not in message
        else:
            assert gate.statistic in STATISTICS
            assert 0 <= gate.threshold < math.inf


class TestCompare:
    @pytest.mark.parametrize("statistic", STATISTICS)
    def test_the_same_rounds_are_the_same(self, statistic: str) -> None:
        baseline = rounds(1, 40)
        comparison = compare(baseline, list(reversed(baseline)), statistic, threshold=0.10)
        assert comparison.change == 0.0
        assert comparison.low <= 0.0 <= comparison.high
        assert comparison.verdict == "same"
        assert not comparison.failed

    @pytest.mark.parametrize("statistic", STATISTICS)
    def test_fifty_percent_slower_fails_a_ten_percent_gate(self, statistic: str) -> None:
        baseline = rounds(2, 40)
        current = [1.5 * value for value in rounds(3, 40)]
        comparison = compare(baseline, current, statistic, threshold=0.10)
        assert comparison.statistic == statistic
        assert comparison.change == pytest.approx(0.5, abs=0.05)
        assert comparison.change == comparison.current / comparison.baseline - 1
        assert 0.10 < comparison.low <= comparison.change <= comparison.high
        assert comparison.verdict == "slower"
        assert comparison.threshold == 0.10
        assert comparison.failed

    @pytest.mark.parametrize("statistic", STATISTICS)
    def test_thirty_percent_faster(self, statistic: str) -> None:
        baseline = rounds(4, 40)
        current = [0.7 * value for value in rounds(5, 40)]
        comparison = compare(baseline, current, statistic, threshold=0.10)
        assert comparison.change == pytest.approx(-0.3, abs=0.05)
        assert comparison.low <= comparison.change <= comparison.high < 0
        assert comparison.verdict == "faster"
        assert not comparison.failed

    def test_a_significant_slowdown_below_the_threshold_passes_the_gate(self) -> None:
        baseline = rounds(6, 300, sigma=0.02)
        current = [1.03 * value for value in rounds(7, 300, sigma=0.02)]
        comparison = compare(baseline, current, threshold=0.10)
        assert comparison.verdict == "slower"
        assert 0 < comparison.low < comparison.high < 0.10
        assert not comparison.failed

    def test_without_a_threshold_nothing_fails(self) -> None:
        comparison = compare(rounds(8, 20), [2 * value for value in rounds(9, 20)])
        assert comparison.verdict == "slower"
        assert comparison.threshold is None
        assert not comparison.failed

    def test_the_same_seed_gives_the_same_comparison(self) -> None:
        baseline, current = rounds(10, 30, sigma=0.2), rounds(11, 30, sigma=0.2)
        assert compare(baseline, current, seed=7) == compare(baseline, current, seed=7)
        assert compare(baseline, current, seed=7) != compare(baseline, current, seed=8)

    def test_a_wider_confidence_gives_a_wider_interval(self) -> None:
        baseline, current = rounds(12, 30, sigma=0.2), rounds(13, 30, sigma=0.2)
        narrow = compare(baseline, current, confidence=0.80)
        wide = compare(baseline, current, confidence=0.99)
        assert wide.low < narrow.low < narrow.high < wide.high

    @pytest.mark.parametrize("statistic", STATISTICS)
    def test_many_rounds_use_every_round_for_the_figures(self, statistic: str) -> None:
        # Beyond BOOTSTRAP_VALUES rounds the interval comes from a subsample;
        # the reported statistics still come from all of them.
        baseline = rounds(14, 1000, sigma=0.1)
        current = [1.2 * value for value in rounds(15, 1000, sigma=0.1)]
        comparison = compare(baseline, current, statistic)
        assert comparison.baseline == statistic_of(statistic, baseline)
        assert comparison.current == statistic_of(statistic, current)
        assert comparison.verdict == "slower"
        assert comparison.low < comparison.change < comparison.high

    def test_too_few_rounds_claim_nothing(self) -> None:
        few = rounds(16, MIN_COMPARABLE_ROUNDS - 1)
        many = [3 * value for value in rounds(17, 100)]
        comparison = compare(few, many, threshold=0.10)
        assert comparison.change == pytest.approx(2.0, abs=0.1)
        assert (comparison.low, comparison.high) == (-math.inf, math.inf)
        assert comparison.verdict == "same"
        assert not comparison.failed
        assert compare(rounds(18, MIN_COMPARABLE_ROUNDS), many).verdict == "slower"

    @pytest.mark.parametrize(
        ("baseline", "current", "options", "message"),
        [
            ([], [1.0], {}, "at least one round on each side"),
            ([1.0], [], {}, "at least one round on each side"),
            ([1.0], [1.0], {"statistic": "max"}, "unknown statistic 'max'"),
            ([1.0, 0.0], [1.0], {}, "positive and finite"),
            ([1.0], [math.nan], {}, "positive and finite"),
            ([1.0], [1.0], {"confidence": 1.0}, "confidence must be between 0 and 1"),
            ([1.0], [1.0], {"resamples": 0}, "resamples must be at least 1"),
        ],
    )
    def test_impossible_comparisons_are_refused(
        self,
        baseline: list[float],
        current: list[float],
        options: dict[str, Any],
        message: str,
    ) -> None:
        with pytest.raises(ValueError, match=message):
            compare(baseline, current, **options)

    @pytest.mark.parametrize("statistic", STATISTICS)
    def test_equal_distributions_rarely_fail_a_gate(self, statistic: str) -> None:
        # A/A trials: both sides drawn from one noisy distribution (about 25%
        # spread per round). A 95% interval says "slower" in about 2.5% of
        # them; the bootstrap of 30 rounds is a little optimistic, the more so
        # for the minimum, hence the slack.
        trials, slower, failed = 200, 0, 0
        for trial in range(trials):
            baseline = rounds(trial, 30, sigma=0.25, seed_offset=1)
            current = rounds(trial, 30, sigma=0.25, seed_offset=2)
            comparison = compare(baseline, current, statistic, threshold=0.10, seed=trial)
            slower += comparison.verdict == "slower"
            failed += comparison.failed
        assert failed <= 0.05 * trials
        assert slower <= 0.08 * trials

    @settings(max_examples=30, deadline=None)
    @given(
        st.lists(positive_times, min_size=MIN_COMPARABLE_ROUNDS, max_size=40),
        st.lists(positive_times, min_size=MIN_COMPARABLE_ROUNDS, max_size=40),
        st.sampled_from(STATISTICS),
        st.floats(min_value=0, max_value=1),
    )
    def test_the_verdict_and_the_gate_follow_the_interval(
        self, baseline: list[float], current: list[float], statistic: str, threshold: float
    ) -> None:
        comparison = compare(baseline, current, statistic, threshold, resamples=200)
        assert -1 < comparison.low <= comparison.high
        expected = "slower" if comparison.low > 0 else "faster" if comparison.high < 0 else "same"
        assert comparison.verdict == expected
        assert comparison.failed == (comparison.low > threshold)


class TestResampler:
    """The index trick that keeps a comparison fast is the plain bootstrap."""

    @given(
        st.lists(positive_times, min_size=1, max_size=BOOTSTRAP_VALUES),
        st.sampled_from(STATISTICS),
        st.data(),
    )
    def test_a_resamples_statistic_is_that_of_the_values_drawn(
        self, samples: list[float], statistic: str, data: st.DataObject
    ) -> None:
        resampler = _Resampler(samples, statistic)
        ordered = sorted(samples)
        size = len(samples)
        indices = data.draw(st.lists(st.integers(0, size - 1), min_size=size, max_size=size))
        drawn = [ordered[index] for index in indices]
        expected = statistic_of(statistic, drawn)
        assert resampler._statistic(bytes(indices)) == pytest.approx(expected, rel=1e-12)

    @pytest.mark.parametrize("size", [7, 129, BOOTSTRAP_VALUES])
    def test_every_value_is_drawn_about_as_often(self, size: int) -> None:
        resampler = _Resampler([float(value) for value in range(1, size + 1)], "mean")
        rng = random.Random(0)
        draws = 20_000 // size + 1
        # The mean of many resample means is the mean of the values, for a
        # uniform draw; the spread of that figure is known, so 5 sigma is safe.
        means = [resampler(rng) for _ in range(draws)]
        expected = (size + 1) / 2
        sigma = math.sqrt((size * size - 1) / 12 / size / draws)
        assert abs(statistics.fmean(means) - expected) < 5 * sigma

    def test_a_large_set_is_cut_to_evenly_spaced_values(self) -> None:
        resampler = _Resampler([float(value) for value in range(1000, 0, -1)], "min")
        values = resampler._values
        assert len(values) == BOOTSTRAP_VALUES
        assert (values[0], values[-1]) == (1.0, 1000.0)
        gaps = {b - a for a, b in pairwise(values)}
        assert gaps <= {4.0, 5.0}


MACHINE = {"cpu": "Xeon E5", "cores": "2", "python": "CPython 3.11.7", "os": "Linux 6.1"}


class TestFingerprintMismatch:
    def test_the_same_machine_kind(self) -> None:
        assert fingerprint_mismatch(MACHINE, dict(MACHINE)) == []
        assert fingerprint_mismatch({}, {}) == []

    def test_differences_are_named_in_order(self) -> None:
        other = {**MACHINE, "python": "CPython 3.12.1", "cpu": "EPYC 7763"}
        assert fingerprint_mismatch(MACHINE, other) == ["cpu", "python"]

    def test_a_key_on_one_side_only_differs(self) -> None:
        older = {key: value for key, value in MACHINE.items() if key != "cores"}
        assert fingerprint_mismatch(older, MACHINE) == ["cores"]
        assert fingerprint_mismatch(MACHINE, {**older, "gpu": "none"}) == ["cores", "gpu"]


# -- compare_with_history: runs differ as a whole, not only round by round -----------


def _run(rng: random.Random, scale: float, rounds: int = 30) -> list[float]:
    """One run's rounds: the run's own speed times small round-to-round noise."""
    return [scale * 1e-5 * rng.lognormvariate(0, 0.03) for _ in range(rounds)]


def test_history_with_one_run_is_the_plain_comparison() -> None:
    rng = random.Random(3)
    baseline, current = _run(rng, 1.0), _run(rng, 1.2)
    assert compare_with_history([baseline], current, threshold=0.1) == compare(
        baseline, current, threshold=0.1
    )


def test_whole_run_shifts_fail_the_plain_gate_but_not_the_history_gate() -> None:
    """A/A trials on a machine whose speed varies by run (sd 8%), as shared CI machines do."""
    plain = pooled = 0
    trials = 200
    for trial in range(trials):
        rng = random.Random(trial)
        runs = [_run(rng, rng.lognormvariate(0, 0.08)) for _ in range(6)]
        *earlier, current = runs
        plain += compare(earlier[-1], current, threshold=0.1, resamples=300).failed
        pooled += compare_with_history(earlier, current, threshold=0.1, resamples=300).failed
    assert plain > trials * 0.05  # the within-run interval cannot see the shifts
    assert pooled <= trials * 0.05


def test_a_real_slowdown_still_fails_against_a_steady_history() -> None:
    rng = random.Random(11)
    earlier = [_run(rng, rng.lognormvariate(0, 0.02)) for _ in range(5)]
    result = compare_with_history(earlier, _run(rng, 1.5), threshold=0.1)
    assert result.verdict == "slower"
    assert result.failed
    assert 0.3 < result.change < 0.7
    assert result.low < result.change < result.high
    # The baseline is the median of the earlier runs' medians.
    assert result.baseline == statistics.median(statistics.median(run) for run in earlier)


def test_history_comparison_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one earlier run"):
        compare_with_history([], [1.0] * 10)
