"""Sizes, budgets, leaks and ``-n auto``'s worker count (core/resources.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.resources import (
    KEPT_PER_TEST,
    MIN_KEPT,
    Budget,
    Needs,
    ResourceSample,
    find_leaks,
    format_size,
    parse_memory_budget,
    parse_size,
    workers_for_memory,
)

MIB = 1024**2
GIB = 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2_000_000_000),
        ("2GiB", 2 * GIB),
        ("512MiB", 512 * MIB),
        ("1.5 GiB", 3 * GIB // 2),
        ("500mb", 500_000_000),
        ("1048576", 1048576),
        ("10 B", 10),
        ("1TiB", 1024**4),
    ],
)
def test_sizes_follow_si_and_iec_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "2 GBs", "-1MB", "1.2.3GB", "GB"])
def test_what_is_not_a_size_says_which_units_are(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size: a number and a unit among B, KB"):
        parse_size(text)


def test_a_budget_is_a_size_or_a_share_of_what_is_available() -> None:
    assert parse_memory_budget("75%", available=8 * GIB) == 6 * GIB
    assert parse_memory_budget("512MiB", available=8 * GIB) == 512 * MIB
    for bad, words in [("0%", "above 0"), ("101%", "at most 100"), ("x%", "percentage")]:
        with pytest.raises(ValueError, match=words):
            parse_memory_budget(bad, available=GIB)
    with pytest.raises(ValueError, match="above 0"):
        parse_memory_budget("0MB", available=GIB)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (200 * MIB, "200 MiB"), (3 * GIB, "3 GiB")],
)
def test_sizes_print_in_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(0, 1024**5))
def test_a_printed_size_reads_back_within_its_three_figures(size: int) -> None:
    printed = format_size(size).replace(" ", "")
    assert abs(parse_size(printed) - size) <= max(0.005 * size, 1)


class TestBudget:
    budget = Budget(memory=1000 * MIB, cpus=4)

    def test_small_tests_do_not_count(self) -> None:
        assert self.budget.light(Needs(memory=9 * MIB))
        assert not self.budget.light(Needs(memory=11 * MIB))
        assert not self.budget.light(Needs(memory=0, cpus=2))

    def test_a_test_fits_beside_what_leaves_it_room(self) -> None:
        needs = Needs(memory=400 * MIB)
        assert self.budget.fits(needs, 600 * MIB, 1, alone=False)
        assert not self.budget.fits(needs, 601 * MIB, 1, alone=False)
        assert not self.budget.fits(Needs(cpus=2), 0, 3, alone=False)

    def test_a_test_larger_than_the_budget_fits_only_alone(self) -> None:
        huge = Needs(memory=2000 * MIB)
        assert self.budget.exceeds(huge)
        assert not self.budget.fits(huge, 0, 1, alone=False)
        assert self.budget.fits(huge, 0, 0, alone=True)
        assert Budget(memory=None, cpus=2).exceeds(Needs(cpus=3))


def samples(*kept: tuple[str, int, int]) -> list[ResourceSample]:
    return [ResourceSample(nodeid, start, end) for nodeid, start, end in kept]


def test_a_growing_worker_is_named_with_the_tests_that_kept_most() -> None:
    series = {
        "gw0": samples(
            ("a", 60 * MIB, 61 * MIB),
            ("tiny", 61 * MIB, 61 * MIB + 4096),
            ("b", 61 * MIB + 4096, 141 * MIB),
            ("c", 141 * MIB, 140 * MIB),
            ("d", 140 * MIB, 200 * MIB),
        ),
        "gw1": samples(("e", 60 * MIB, 80 * MIB), ("f", 80 * MIB, 70 * MIB)),
    }
    (leak,) = find_leaks(series, threshold=100 * MIB)
    assert leak.worker == "gw0"
    assert leak.growth == 140 * MIB
    assert leak.tests == 5
    assert leak.culprits == (("b", 80 * MIB - 4096), ("d", 60 * MIB), ("a", 1 * MIB))
    assert find_leaks(series, threshold=141 * MIB) == []


def test_a_rerun_test_counts_once_among_a_leaking_worker_s_tests() -> None:
    # "b" ran twice (a rerun) on gw0: 3 tests, whose 4 runs the allowance
    # counts as 3 tests; b's two runs kept 50 MiB together.
    series = {
        "gw0": samples(
            ("a", 60 * MIB, 61 * MIB),
            ("b", 61 * MIB, 91 * MIB),
            ("c", 91 * MIB, 100 * MIB),
            ("b", 100 * MIB, 120 * MIB),
        )
    }
    (leak,) = find_leaks(series, threshold=50 * MIB)
    assert leak.tests == 3
    assert leak.culprits == (("b", 50 * MIB), ("c", 9 * MIB), ("a", 1 * MIB))


def test_what_pytest_keeps_of_each_test_is_no_leak() -> None:
    # pytest keeps every test's reports: a few KiB a test, 117 MiB over 30,000
    # tests, spread evenly, is below the allowance of KEPT_PER_TEST a test.
    def steady(grown_per_test: int, tests: int) -> list[ResourceSample]:
        return [
            ResourceSample(
                f"t{n}", 60 * MIB + n * grown_per_test, 60 * MIB + (n + 1) * grown_per_test
            )
            for n in range(tests)
        ]

    assert find_leaks({"main": steady(4096, 30_000)}, threshold=100 * MIB) == []
    # A test that keeps 12 KiB each time is a leak over as many tests: 351 MiB.
    (leak,) = find_leaks({"main": steady(12 * 1024, 30_000)}, threshold=100 * MIB)
    assert leak.growth == 30_000 * 12 * 1024


RSS = st.one_of(
    st.integers(0, 64 * KEPT_PER_TEST // 1024).map(lambda k: k * 1024), st.integers(0, 10**9)
)


@given(
    st.dictionaries(
        st.sampled_from(["gw0", "gw1", "gw2"]),
        st.lists(st.tuples(st.sampled_from("abc"), RSS, RSS), max_size=20),
    ),
    st.one_of(st.integers(1, 320).map(lambda k: k * 1024), st.integers(1, 10**30)),
)
def test_leaks_are_exactly_the_workers_that_grew_past_the_threshold(
    raw: dict[str, list[tuple[str, int, int]]], threshold: int
) -> None:
    # Node ids repeat (reruns): the allowance counts distinct tests. Sizes are
    # near the allowance (whole KiB up to 64 tests' worth) or anywhere.
    series = {
        worker: [ResourceSample(nodeid, start, end) for nodeid, start, end in runs]
        for worker, runs in raw.items()
    }
    leaks = find_leaks(series, threshold)
    grown = {
        w
        for w, s in series.items()
        if s
        and s[-1].rss_end - s[0].rss_start
        >= threshold + KEPT_PER_TEST * len({sample.nodeid for sample in s})
    }
    assert {leak.worker for leak in leaks} == grown
    assert [leak.growth for leak in leaks] == sorted((leak.growth for leak in leaks), reverse=True)
    for leak in leaks:
        assert all(kept >= MIN_KEPT for _, kept in leak.culprits)
        assert len(leak.culprits) <= 3


@pytest.mark.parametrize(
    ("runs", "grown", "named"),
    [
        (["a"], KEPT_PER_TEST, True),  # exactly one test's allowance past the threshold
        (["a"], KEPT_PER_TEST - 1, False),
        (["a", "a", "a"], KEPT_PER_TEST, True),  # one test run three times: one allowance
        (["a", "b"], 2 * KEPT_PER_TEST - 1, False),
        (["a", "b"], 2 * KEPT_PER_TEST, True),
    ],
)
def test_the_allowance_counts_each_test_once_at_the_boundary(
    runs: list[str], grown: int, named: bool
) -> None:
    threshold = 100 * MIB
    end = 60 * MIB + threshold + grown
    series = {"gw0": [ResourceSample(nodeid, 60 * MIB, end) for nodeid in runs]}
    assert [leak.worker for leak in find_leaks(series, threshold)] == (["gw0"] if named else [])


def test_n_auto_takes_the_smaller_of_cpus_and_what_memory_holds() -> None:
    resting = [60 * MIB] * 10
    peaks = [1 * MIB] * 89 + [500 * MIB] * 11  # the 90th percentile is a heavy test
    count = workers_for_memory(8, 2 * GIB, resting, peaks)
    assert count.per_worker == 560 * MIB
    assert count.by_memory == 3
    assert count.workers == 3
    assert workers_for_memory(2, 2 * GIB, resting, peaks).workers == 2
    assert workers_for_memory(8, 100 * MIB, resting, peaks).workers == 1
    # Without history, or without a budget, the CPUs decide.
    assert workers_for_memory(8, 2 * GIB, [], []).workers == 8
    assert workers_for_memory(8, None, resting, peaks).workers == 8
