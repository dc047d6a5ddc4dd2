"""Benchmark batches: the bench fixture, exclusivity, baselines, gates, compatibility.

No assertion here is about speed (these machines are shared): they check
what a user sees. Slowdowns are made large (a function that sleeps ten times
longer) so that the verdict cannot be noise; timing accuracy and the gate's
false alarm rate are measured in ``benchmarks/bench_gate.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from contextlib import closing
from itertools import product

import pytest
from frozen_clock import FROZEN_MODULE

from pytest_batchflow.results import RunResult

INI = """
[pytest]
batchflow_batches =
    unit: paths=test_unit.py
    perf: kind=benchmark paths=test_perf.py after=unit
"""

PERF = """
import time

def test_sum(bench):
    assert bench(sum, range(1000)) == 499500

def test_noop(bench):
    assert bench(lambda: None) is None
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, RunResult]:
    result = pytester.runpytest(
        "--batchflow", "--batchflow-json=result.json", "--batchflow-bench-max-time=0.2", *args
    )
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    return result, data


def test_bench_times_calibrated_rounds_and_returns_the_result(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_unit="def test_one(): pass", test_perf=PERF)
    result, data = run(pytester)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= batchflow benchmarks =*",
            "benchmark * median * iqr * mean * stddev * min * ops/s * rounds",
            "test_perf.py::test_sum *",
            "test_perf.py::test_noop *",
        ]
    )
    by_name = {b.nodeid.split("::")[1]: b for b in data.benchmarks}
    assert set(by_name) == {"test_sum", "test_noop"}
    for bench in by_name.values():
        assert bench.batch == "perf"
        assert bench.rounds == len(bench.samples) >= 5
        assert bench.min <= bench.q1 <= bench.median <= bench.q3 <= bench.max
        assert bench.ops == pytest.approx(1 / bench.mean)
        assert set(bench.fingerprint) >= {"cpu", "cores", "python", "os"}
    # Calibration: a round of the no-op lasts well above the timer's resolution.
    noop = by_name["test_noop"]
    assert noop.iterations > 100
    assert noop.median * noop.iterations >= 5e-5
    # The benchmark batch's defaults: alone, no coverage, no reruns.
    perf = next(b for b in data.batches if b.name == "perf")
    assert (perf.kind, perf.mode, perf.cov, perf.reruns) == ("benchmark", "exclusive", False, 0)


class _Item:
    """What the bench fixture reads of its test item."""

    nodeid = "test_perf.py::test_noop"

    def __init__(self) -> None:
        self.stash = pytest.Stash()


def test_a_calibration_round_that_a_preemption_stretched_does_not_end_calibration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a busy machine one round of the calibration can last far longer than
    its calls (the process waited for a CPU): that round alone said the round
    was long enough, and a 100 ns function was timed in rounds of 71 calls
    (7 microseconds) instead of the 100 microseconds a round must last."""
    from pytest_batchflow import bench as bench_module

    now = [0]
    calls = [0]

    def clock() -> int:
        return now[0]

    def function() -> None:
        calls[0] += 1
        # The first call is cold (1.4 us); the 10th, in the first round, waits
        # 1 ms for a CPU.
        now[0] += 1400 if calls[0] == 1 else 1_000_000 if calls[0] == 10 else 100

    monkeypatch.setattr(bench_module, "monotonic_ns", clock)
    monkeypatch.setattr(bench_module, "timer_resolution", lambda: 1e-8)
    options = bench_module.BenchOptions(max_time=0.01, min_rounds=5, warmup=False)
    bench = bench_module.Bench(_Item(), options, active=True)  # type: ignore[arg-type]
    bench(function)
    # 100 ns a call: 1,000 calls make the 100 us a round must last.
    assert bench.iterations >= 1000
    assert min(bench.samples) == pytest.approx(1e-7)


@pytest.mark.parametrize("warmup", [True, False])
def test_a_slow_function_is_called_once_per_round_and_once_more(
    monkeypatch: pytest.MonkeyPatch, warmup: bool
) -> None:
    """A 0.5 s function: its first call is the calibration and the warm-up,
    then the rounds. It was called 8 times for 5 rounds (a calibration round
    and a warm-up round more), 1.5 s of calls thrown away a test."""
    from pytest_batchflow import bench as bench_module

    now = [0]
    calls = [0]

    def function() -> None:
        calls[0] += 1
        now[0] += 500_000_000

    monkeypatch.setattr(bench_module, "monotonic_ns", lambda: now[0])
    monkeypatch.setattr(bench_module, "timer_resolution", lambda: 1e-8)
    options = bench_module.BenchOptions(max_time=1.0, min_rounds=5, warmup=warmup)
    bench = bench_module.Bench(_Item(), options, active=True)  # type: ignore[arg-type]
    bench(function)
    assert (calls[0], len(bench.samples), bench.iterations) == (6, 5, 1)
    assert bench.samples == [0.5] * 5


def test_a_slow_first_call_alone_does_not_make_a_function_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cold start (an import in the first call: 0.2 s) then 650 ns calls: the
    rounds are calibrated from the second call, not 5 rounds of one call each."""
    from pytest_batchflow import bench as bench_module

    now = [0]
    calls = [0]

    def function() -> None:
        calls[0] += 1
        now[0] += 200_000_000 if calls[0] == 1 else 650

    monkeypatch.setattr(bench_module, "monotonic_ns", lambda: now[0])
    monkeypatch.setattr(bench_module, "timer_resolution", lambda: 1e-8)
    options = bench_module.BenchOptions(max_time=0.5, min_rounds=5, warmup=True)
    bench = bench_module.Bench(_Item(), options, active=True)  # type: ignore[arg-type]
    bench(function)
    assert bench.iterations >= 100  # a round of at least 0.1 ms
    assert len(bench.samples) >= 100
    assert max(bench.samples) == pytest.approx(650e-9)


def test_without_batchflow_the_function_runs_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_perf="""
        calls = []

        def test_once(bench):
            assert bench(calls.append, 1) is None
            assert calls == [1]
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_pedantic_rounds_iterations_and_setup(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_unit="def test_one(): pass",
        test_perf="""
        made = []

        def test_pedantic(bench):
            def setup():
                made.append(1)
                return (list(range(100)),), {}
            result = bench.pedantic(sorted, setup=setup, rounds=7, warmup_rounds=2)
            assert result == list(range(100))
            assert len(made) == 9

        def test_iterations(bench):
            bench.pedantic(sum, args=([1, 2],), rounds=3, iterations=4)

        def test_twice(bench):
            bench(sum, [1])
            bench(sum, [1])
        """,
    )
    result, data = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*the bench fixture measures one function per test; split the test, or parametrize it"]
    )
    shapes = {b.nodeid.split("::")[1]: (b.rounds, b.iterations) for b in data.benchmarks}
    assert shapes == {"test_pedantic": (7, 1), "test_iterations": (3, 4)}


SLEEPY = """
import time
import pytest

@pytest.mark.parametrize("i", range(6))
def test_nap(i):
    time.sleep(0.15)
"""


@pytest.mark.parametrize("workers", ["2", "4"])
def test_benchmark_batch_runs_alone_under_xdist(pytester: pytest.Pytester, workers: str) -> None:
    pytest.importorskip("xdist")
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    perf: kind=benchmark paths=test_perf.py\n"
        "    unit: paths=test_unit.py\n"
    )
    pytester.makepyfile(test_unit=SLEEPY, test_perf=PERF)
    result = pytester.runpytest_subprocess(
        "--batchflow",
        "--batchflow-json=result.json",
        "--batchflow-bench-max-time=0.2",
        "-n",
        workers,
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=8)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    perf = [t for t in data.tests if t.batch == "perf"]
    unit = [t for t in data.tests if t.batch == "unit"]
    assert len(perf) == 2
    assert len(data.benchmarks) == 2  # really measured on the workers
    for a, b in product(perf, data.tests):
        if a is not b:
            assert not (a.start < b.stop and b.start < a.stop), (a.nodeid, b.nodeid)
    # The unit tests did run in parallel with each other: the lanes were not all idle.
    assert len({t.worker for t in unit}) > 1


GATED = """
import pathlib
import time

def naps():
    return float(pathlib.Path(__file__).with_name("nap").read_text())

def test_sleepy(bench):
    bench(time.sleep, naps())
"""


def gated_run(
    pytester: pytest.Pytester, nap: float, *args: str
) -> tuple[pytest.RunResult, RunResult]:
    (pytester.path / "nap").write_text(str(nap))
    return run(pytester, "--batchflow-bench-min-rounds=10", *args)


def fast_history(pytester: pytest.Pytester, ini: str, line: str, runs: int, *args: str) -> None:
    """A project of GATED in a benchmark batch (``line`` its options; ``ini`` more
    of pytest.ini), and ``runs`` runs of it at 1 ms a call."""
    pytester.makeini(
        f"[pytest]\n{ini}\nbatchflow_batches =\n"
        f"    perf: kind=benchmark paths=test_perf.py {line}\n"
    )
    pytester.makepyfile(test_perf=GATED)
    for _ in range(runs):
        gated_run(pytester, 0.001, *args)


def test_a_significant_slowdown_beyond_the_gate_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "batchflow_bench_fail = median:10%\n")
    pytester.makepyfile(test_unit="def test_one(): pass", test_perf=GATED)
    first, data = gated_run(pytester, 0.001)
    assert first.ret == 0
    first.stdout.fnmatch_lines(["test_perf.py::test_sleepy: not compared: no baseline: *"])
    assert data.benchmarks[0].comparison is None
    # Until 3 earlier runs show how much runs differ, the gate does not apply.
    for earlier in (1, 2):
        result, data = gated_run(pytester, 0.001)
        assert result.ret == 0
        result.stdout.fnmatch_lines(
            [
                f"test_perf.py::test_sleepy: median * vs run {earlier} *, gate 10%: not applied "
                f"({earlier} earlier run* on this machine; the gate needs 3 to know how much "
                "runs differ)"
            ]
        )
    # Ten times slower: the whole interval is far beyond 10%.
    slow, data = gated_run(pytester, 0.01)
    assert slow.ret == 1
    slow.assert_outcomes(passed=2)
    (bench,) = data.benchmarks
    assert bench.comparison is not None
    assert bench.comparison.baseline_runs == [1, 2, 3]
    assert bench.comparison.verdict == "slower"
    assert bench.comparison.failed
    assert bench.comparison.low > 0.10
    assert data.failed_by == ["benchmarks"]
    slow.stdout.fnmatch_lines(
        [
            "test_perf.py::test_sleepy: median +* vs run 3 [[]+*, +*[]] slower, gate 10%: FAILED",
            "batchflow: benchmarks failed the run (a significant slowdown beyond a gate, not a "
            "test); a slowdown you meant: run once with --batchflow-bench-fail=accept",
        ]
    )
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert "benchmarks: test_perf.py::test_sleepy median +" in html
    assert "gate 10%: FAILED" in html
    assert '<svg class="trend"' in html
    assert "Machine: cores " in html  # each value named, not "AMD EPYC, 2, CPython"
    # Not fixed: run 4, which failed its gate, is no baseline, so the same
    # slowdown fails again (it widened the runs' spread until it read "same").
    still, data = gated_run(pytester, 0.01)
    assert still.ret == 1
    (bench,) = data.benchmarks
    assert bench.comparison is not None
    assert bench.comparison.baseline_runs == [1, 2, 3]
    assert (bench.comparison.verdict, bench.comparison.failed) == ("slower", True)
    # Back to the old speed: passes against runs 1 to 3; the trend shows every run.
    again, data = gated_run(pytester, 0.001)
    assert again.ret == 0
    (bench,) = data.benchmarks
    assert bench.comparison is not None
    assert bench.comparison.baseline_runs == [1, 2, 3]
    assert not bench.comparison.failed
    assert [run for run, _ in bench.trend] == [1, 2, 3, 4, 5, 6]


def test_a_slowdown_is_accepted_by_a_run_that_says_so(pytester: pytest.Pytester) -> None:
    """--batchflow-bench-fail=accept (over a batch line's gate too): the run's
    timings are the new baseline, the runs before no baseline any more; with
    10 earlier runs a run with the gate off alone left the median at the old
    speed, and every later run failed."""
    quick = "--batchflow-bench-max-time=0.05"
    fast_history(pytester, "batchflow_bench_fail = median:10%", "bench_fail=min:50%", 10, quick)
    assert gated_run(pytester, 0.01, quick)[0].ret == 1
    assert gated_run(pytester, 0.01, quick, "--batchflow-bench-fail=OFF")[0].ret == 0
    assert gated_run(pytester, 0.01, quick)[0].ret == 1  # off is no acceptance
    unrecorded, _ = gated_run(
        pytester, 0.01, quick, "--batchflow-bench-fail=accept", "--batchflow-no-history"
    )
    unrecorded.stdout.fnmatch_lines(
        ["batchflow: --batchflow-bench-fail=accept: accepted nothing: this run is not recorded*"]
    )
    accepted, data = gated_run(pytester, 0.01, quick, "--batchflow-bench-fail=accept")
    assert accepted.ret == 0
    assert data.benchmarks[0].comparison is None
    accepted.stdout.fnmatch_lines(
        ["batchflow: --batchflow-bench-fail=accept: the timings of 1 benchmark are their new *"]
    )
    for run in (15, 16, 17):
        after, data = gated_run(pytester, 0.01, quick)
        assert after.ret == 0
        comparison = data.benchmarks[0].comparison
        assert comparison is not None
        assert comparison.baseline_runs == list(range(14, run))
        assert not comparison.failed
    # The gate applies again, against the accepted speed.
    assert comparison.ungated is None


def test_a_batch_lines_gate_off_leaves_its_batch_ungated(pytester: pytest.Pytester) -> None:
    fast_history(pytester, "batchflow_bench_fail = median:10%", "bench_fail=off", 3)
    slow, data = gated_run(pytester, 0.01)
    assert slow.ret == 0
    assert data.benchmarks[0].comparison is None


def test_a_baseline_from_another_machine_is_flagged_and_never_gates(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_unit="def test_one(): pass", test_perf=GATED)
    gated_run(pytester, 0.001)
    store = pytester.path / ".batchflow" / "history.sqlite"
    with closing(sqlite3.connect(store)) as db, db:
        other = {"cpu": "Some Other CPU", "cores": "64", "python": "CPython 3.99", "os": "x"}
        db.execute("UPDATE benchmarks SET fingerprint = ?", (json.dumps(other),))
    result, data = gated_run(pytester, 0.01, "--batchflow-bench-fail=median:10%")
    assert result.ret == 0
    (bench,) = data.benchmarks
    assert bench.comparison is not None
    assert bench.comparison.verdict == "slower"
    assert not bench.comparison.failed
    assert bench.comparison.other_machine == ["cores", "cpu", "python"] or set(
        bench.comparison.other_machine
    ) >= {"cpu", "cores"}
    result.stdout.fnmatch_lines(
        ["*gate 10%: not applied (baseline from another machine: * differ)"]
    )
    assert bench.comparison.ungated is not None


def test_a_batch_line_gate_and_an_explicit_baseline_run(pytester: pytest.Pytester) -> None:
    fast_history(pytester, "", "bench_fail=min:50%", 4)
    # Against run 3 by number, with the runs before it; the batch line's gate applies.
    result, data = gated_run(pytester, 0.01, "--batchflow-bench-compare=3")
    assert result.ret == 1
    # A pinned baseline is not one that accepting a slowdown replaces.
    result.stdout.fnmatch_lines(
        [
            "*a slowdown you meant: compare with a run that measured it "
            "(--batchflow-bench-compare=RUN)"
        ]
    )
    comparison = data.benchmarks[0].comparison
    assert comparison is not None
    assert (comparison.baseline_run, comparison.statistic, comparison.threshold) == (3, "min", 0.5)
    assert comparison.baseline_runs == [1, 2, 3]


def test_bad_gate_and_baseline_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_perf="def test_one(bench): bench(sum, [1])")
    result = pytester.runpytest("--batchflow", "--batchflow-bench-fail=p99:10%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # One example, the option's (the gate's own message repeated another).
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-bench-fail (command line): 'p99:10%': invalid "
            "benchmark gate 'p99:10%': unknown statistic 'p99' (use min, mean or median); "
            "e.g. --batchflow-bench-fail=median:10%"
        ]
    )
    result = pytester.runpytest("--batchflow", "--batchflow-bench-compare=yesterday")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-bench-compare (command line): 'yesterday': the "
            "baseline is 'last' or a run id, a whole number from 1 (the run column of batchflow "
            "history); e.g. --batchflow-bench-compare=last"
        ]
    )
    # 10 without its %: a 1,000% gate, surely a slip.
    result = pytester.runpytest("--batchflow", "--batchflow-bench-fail=median:10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'10' without % is a fraction (10 = 1000%); write 10% *"])


COMPAT = """
import pytest

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def test_fib(benchmark):
    assert benchmark(fib, 15) == 610
    assert benchmark.stats["mean"] > 0
    assert benchmark.stats.stats.mean == benchmark.stats["mean"]

def test_pedantic(benchmark):
    benchmark.extra_info["size"] = 10
    assert benchmark.pedantic(fib, args=(10,), rounds=4, iterations=3) == 55
    # Counts are whole numbers, as pytest-benchmark's are.
    assert (benchmark.stats["rounds"], benchmark.stats.iterations) == (4, 3)
    assert type(benchmark.stats["rounds"]) is int

def test_teardown(benchmark):
    # As pytest-benchmark: after every round, warm-up ones too, with its arguments.
    calls = []
    made = iter(range(100))
    def setup():
        return (next(made),), {"k": 1}
    def teardown(x, k):
        calls.append((x, k))
    benchmark.pedantic(lambda x, k: x, setup=setup, teardown=teardown, rounds=5, warmup_rounds=1)
    assert calls == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]

def test_teardown_positional(benchmark):
    # pytest-benchmark's order: target, args, kwargs, setup, teardown, rounds.
    calls = []
    benchmark.pedantic(len, ([1],), None, None, lambda x: calls.append(x), 2)
    assert calls == [[1], [1]]

@pytest.mark.benchmark(min_rounds=12, max_time=0.01)
def test_marker(benchmark):
    benchmark(sum, range(10))

@pytest.mark.benchmark(min_rounds=5000, max_time=0.01)
def test_marker_over_the_most_kept(benchmark):
    benchmark(sum, range(10))
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_pytest_benchmark_suite_is_measured_in_compat_mode(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    if args:
        pytest.importorskip("xdist")
    pytester.makeini("[pytest]\nbatchflow_batches =\n    perf: kind=benchmark\n")
    pytester.makepyfile(test_compat=COMPAT)
    result = pytester.runpytest_subprocess(
        "--batchflow",
        "--batchflow-bench-compat",
        "--batchflow-json=result.json",
        "--batchflow-bench-max-time=0.1",
        "--strict-markers",
        "-p",
        "no:cacheprovider",
        *args,
    )
    result.assert_outcomes(passed=6)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    shapes = {b.nodeid.split("::")[1]: b for b in data.benchmarks}
    assert set(shapes) == {
        "test_fib",
        "test_pedantic",
        "test_teardown",
        "test_teardown_positional",
        "test_marker",
        "test_marker_over_the_most_kept",
    }
    assert (shapes["test_pedantic"].rounds, shapes["test_pedantic"].iterations) == (4, 3)
    assert shapes["test_teardown"].rounds == 5
    assert shapes["test_marker"].rounds >= 12
    assert shapes["test_marker_over_the_most_kept"].rounds == 2000
    assert shapes["test_fib"].rounds >= 5


def test_without_compat_mode_there_is_no_benchmark_fixture(pytester: pytest.Pytester) -> None:
    if importlib.util.find_spec("pytest_benchmark") is not None:
        pytest.skip("pytest-benchmark is installed: its fixture exists")
    pytester.makepyfile(test_compat="def test_fib(benchmark): benchmark(sum, [1])")
    result = pytester.runpytest("--batchflow", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'benchmark' not found*"])


def test_a_frozen_clock_neither_hangs_nor_zeroes_the_timings(pytester: pytest.Pytester) -> None:
    """freezegun freezes perf_counter for the module: the bench fixture times
    its rounds on the system's clock all the same (it waited for that clock
    to move, for ever, before)."""
    pytest.importorskip("freezegun")
    pytester.makeini(INI)
    pytester.makepyfile(
        test_perf=FROZEN_MODULE
        + "def test_sum(bench):\n    assert bench(sum, range(1000)) == 499500\n"
    )
    result = pytester.runpytest_subprocess(
        "--batchflow",
        "--batchflow-json=result.json",
        "--batchflow-bench-max-time=0.2",
        "-p",
        "no:cacheprovider",
        timeout=120,
    )
    result.assert_outcomes(passed=1)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    [benchmark] = [b for b in data.benchmarks if b.nodeid.endswith("test_sum")]
    assert 0 < benchmark.median < 0.01
