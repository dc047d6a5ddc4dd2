"""``batchflow report``: merging JSON results (CI shards, stages) and rendering them.

The rules of :func:`merge_results` are tested on hand-built results; the
command on results of real runs, each a "shard" selecting part of a suite.
"""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from results_factory import environment

from pytest_batchflow.cli import main
from pytest_batchflow.report.merge import ResultFileError, labels_for, merge_results, read_result
from pytest_batchflow.results import (
    AttemptResult,
    BatchResult,
    BenchmarkComparison,
    BenchmarkResult,
    CollectionProblem,
    CoverageResult,
    PhaseResult,
    ProbeResult,
    ReportSection,
    ResourceLeak,
    ResourceResult,
    ResourcesResult,
    RunResult,
    TestResult,
)

FAILING = ("failed", "error")


def a_test(
    nodeid: str,
    outcome: str = "passed",
    *,
    batch: str = "unit",
    start: float = 100.0,
    duration: float = 1.0,
    worker: str = "main",
    attempts: int = 0,
) -> TestResult:
    stop = start + duration
    phase = PhaseResult(when="call", outcome=outcome, duration=duration, start=start, stop=stop)
    earlier = AttemptResult(
        outcome="failed", worker=worker, duration=0.5, start=start - 1, stop=start - 0.5, phases=[]
    )
    return TestResult(
        nodeid=nodeid,
        batch=batch,
        outcome=outcome,
        duration=duration,
        start=start,
        stop=stop,
        worker=worker,
        phases=[phase],
        attempts=[earlier] * attempts,
    )


def a_batch(name: str, tests: Sequence[TestResult], **fields: Any) -> BatchResult:
    """A batch of ``tests``; its status follows from them unless given."""
    outcomes: dict[str, int] = {}
    for test in tests:
        outcomes[test.outcome] = outcomes.get(test.outcome, 0) + 1
    if not tests:
        status = "empty"
    elif any(outcome in outcomes for outcome in FAILING):
        status = "failed"
    else:
        status = "incomplete" if fields.get("not_run") else "passed"
    values: dict[str, Any] = {
        "name": name,
        "kind": "test",
        "mode": "parallel",
        "after": [],
        "priority": 0,
        "reruns": 0,
        "maxfail": None,
        "cov": True,
        "on_upstream_failure": "skip",
        "status": status,
        "tests": len(tests) + fields.get("not_run", 0),
        "outcomes": outcomes,
        "duration": sum(test.duration for test in tests),
    }
    return BatchResult(**{**values, **fields})


def a_run(*tests: TestResult, **fields: Any) -> RunResult:
    """A run of ``tests``: one batch per batch name, exit status 1 if one failed, else 0.

    Given ``deselected_nodeids`` it is of schema 8: its batches list their tests
    not run, none; else of schema 7, without node ids.
    """
    names = list(dict.fromkeys(test.batch for test in tests))
    ids = {} if fields.get("deselected_nodeids") is None else {"not_run_nodeids": []}
    failing = any(test.outcome in FAILING for test in tests)
    values: dict[str, Any] = {
        "started": min((test.start for test in tests), default=100.0) - 1,
        "stopped": max((test.stop for test in tests), default=100.0) + 1,
        "duration": 0.0,
        "exitstatus": 1 if failing else 0,
        "failed_by": ["tests"] if failing else [],
        "environment": environment(fields.pop("workers", 1)),
        "batches": [a_batch(name, [t for t in tests if t.batch == name], **ids) for name in names],
        "tests": list(tests),
    }
    values.update(fields)
    return RunResult(**values)


def merged_of(*runs: RunResult) -> tuple[RunResult, list[str]]:
    return merge_results([(f"shard{number}", run) for number, run in enumerate(runs, 1)])


def test_one_result_is_returned_as_it_is() -> None:
    run = a_run(a_test("t.py::test_a", worker="gw0"), lower_bound=3.0)
    assert merge_results([("only", run)]) == (run, [])


def test_the_tests_are_united_and_each_shard_keeps_its_own_workers() -> None:
    first = a_run(
        a_test("a.py::test_one", worker="gw0", attempts=1, start=100),
        a_test("a.py::test_two", worker="gw1", start=101),
        workers=2,
    )
    second = a_run(a_test("b.py::test_three", start=90, duration=30), workers=1)
    merged, notes = merged_of(first, second)
    assert notes == []
    assert [(t.nodeid, t.worker) for t in merged.tests] == [
        ("a.py::test_one", "shard1/gw0"),
        ("a.py::test_two", "shard1/gw1"),
        ("b.py::test_three", "shard2/main"),
    ]
    assert [a.worker for a in merged.tests[0].attempts] == ["shard1/gw0"]
    assert merged.shards == ["shard1", "shard2"]
    assert (merged.started, merged.stopped, merged.duration) == (89.0, 121.0, 32.0)
    assert merged.environment.workers == 3
    assert merged.environment.hostname == "ci"
    assert (merged.exitstatus, merged.failed_by) == (0, [])


def test_a_test_in_two_results_keeps_the_later_result_and_says_so() -> None:
    first = a_run(a_test("t.py::test_x", "failed"), a_test("t.py::test_y"))
    second = a_run(a_test("t.py::test_x", start=200))
    merged, notes = merged_of(first, second)
    assert [(t.nodeid, t.outcome, t.worker) for t in merged.tests] == [
        ("t.py::test_x", "passed", "shard2/main"),
        ("t.py::test_y", "passed", "shard1/main"),
    ]
    assert merged.tests[0].notes == ["also in shard1 (failed); this is shard2's result"]
    assert notes == [
        "1 test is in more than one result; the later result's is kept: "
        "t.py::test_x (shard1, then shard2)"
    ]
    [batch] = merged.batches
    assert (batch.tests, batch.outcomes, batch.status) == (2, {"passed": 2}, "passed")
    # shard1 exited 1 for a test that shard2 then passed: the merged run passed.
    assert (merged.exitstatus, merged.failed_by) == (0, [])


def test_collection_problems_are_united_and_an_error_fails_the_merged_run() -> None:
    def problem(nodeid: str, outcome: str, text: str) -> CollectionProblem:
        return CollectionProblem(nodeid=nodeid, outcome=outcome, longrepr=text)

    first = a_run(
        a_test("a.py::test_one"),
        collection=[
            problem("bad.py", "error", "E   ImportError: old"),
            problem("x.py", "skipped", "X"),
        ],
        exitstatus=1,
        failed_by=["collection"],
    )
    second = a_run(
        a_test("b.py::test_two"),
        collection=[
            problem("y.py", "skipped", "Y"),
            problem("bad.py", "error", "E   ImportError: new"),
        ],
    )
    merged, _ = merged_of(first, second)
    # In order of first appearance; the later result's problem for a node id.
    assert [(c.nodeid, c.outcome, c.longrepr) for c in merged.collection] == [
        ("bad.py", "error", "E   ImportError: new"),
        ("x.py", "skipped", "X"),
        ("y.py", "skipped", "Y"),
    ]
    assert (merged.exitstatus, merged.failed_by) == (1, ["collection"])
    skipped_only = a_run(a_test("c.py::test_three"), collection=[problem("z.py", "skipped", "Z")])
    merged, _ = merged_of(skipped_only, a_run(a_test("d.py::test_four")))
    assert [c.nodeid for c in merged.collection] == ["z.py"]
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    # A later stage that collected the file (or the directory) ran its tests: fixed.
    broken = a_run(
        a_test("a.py::test_one"),
        collection=[problem("bad.py", "error", "E   X"), problem("pkg", "error", "E   Y")],
        exitstatus=1,
        failed_by=["collection"],
    )
    fixed = a_run(a_test("bad.py::test_x"), a_test("pkg/test_p.py::test_y"))
    merged, _ = merged_of(broken, fixed)
    assert merged.collection == []
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    merged, _ = merged_of(fixed, broken)  # the other way round it stays broken
    assert [c.nodeid for c in merged.collection] == ["bad.py", "pkg"]
    assert (merged.exitstatus, merged.failed_by) == (1, ["collection"])


def test_a_run_stopped_by_a_collection_error_a_later_run_fixed_is_replaced() -> None:
    # pytest stops at a collection error (exit code 2) before any test: the
    # batch planned test_ok and never ran it. The run again after the fix
    # replaces it; before, the merge exited 2, "failed by tests", and counted
    # test_ok twice, once as not run ("incomplete").
    error = CollectionProblem(nodeid="t_new.py", outcome="error", longrepr="E   SyntaxError")
    stopped = a_run(
        exitstatus=2,
        failed_by=["collection"],
        collection=[error],
        batches=[a_batch("unit", [], not_run=1, status="incomplete")],
    )
    fixed = a_run(a_test("t_ok.py::test_ok"), a_test("t_new.py::test_new"))
    merged, _ = merged_of(stopped, fixed)
    assert (merged.exitstatus, merged.failed_by, merged.collection) == (0, [], [])
    (batch,) = merged.batches
    assert (batch.tests, batch.not_run, batch.status) == (2, 0, "passed")
    # Run again in two shards by path: together they planned the batch.
    shard = a_run(a_test("t_ok.py::test_ok"))
    merged, _ = merged_of(stopped, shard, a_run(a_test("t_new.py::test_new")))
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    assert [(b.tests, b.not_run, b.status) for b in merged.batches] == [(2, 0, "passed")]
    # Another stage that collected the file replaces nothing: batch unit of
    # the stopped stage never ran.
    stage = a_run(a_test("t_new.py::test_new", batch="other"))
    merged, _ = merged_of(stopped, stage)
    assert merged.exitstatus == 2
    assert [b.status for b in merged.batches] == ["incomplete", "passed"]
    # A collection error no later result fixed still stops the merged run.
    merged, _ = merged_of(fixed, stopped)
    assert (merged.exitstatus, merged.failed_by) == (1, ["collection"])
    assert merged.batches[0].status == "incomplete"


def test_the_note_on_repeated_tests_names_five_of_them() -> None:
    tests = [a_test(f"t.py::test_{n}") for n in range(7)]
    _, notes = merged_of(a_run(*tests), a_run(*tests))
    assert notes[0].startswith("7 tests are in more than one result; ")
    assert notes[0].endswith("t.py::test_4 (shard1, then shard2) and 2 more")


def test_batches_of_the_same_name_are_combined() -> None:
    unit_one = a_test("u.py::test_one", start=100, duration=1)
    first = a_run(
        unit_one, batches=[a_batch("unit", [unit_one], reruns=2, not_run=1, estimated=5.0)]
    )
    unit_two = a_test("u.py::test_two", "skipped", start=200, duration=2)
    integration = a_test("i.py::test_api", batch="integration", start=150, duration=4)
    second = a_run(
        unit_two,
        integration,
        batches=[
            a_batch("integration", [integration]),
            a_batch("unit", [unit_two], estimated=7.0),
        ],
    )
    merged, _ = merged_of(first, second)
    unit, other = merged.batches
    assert (unit.name, other.name) == ("unit", "integration")
    # The policy is the first result's; the counts are summed.
    assert unit.reruns == 2
    assert (unit.tests, unit.not_run) == (3, 1)
    assert unit.outcomes == {"passed": 1, "skipped": 1}
    # From the first test's start to the last one's stop, across the shards.
    assert unit.duration == 102.0
    assert unit.estimated == 12.0
    assert unit.status == "incomplete"
    assert (other.tests, other.duration, other.estimated) == (1, 4.0, None)


def test_a_combined_batchs_cpu_and_peak_memory_are_of_all_its_tests() -> None:
    """Summed and the largest over the shards' tests (the first part's alone were
    kept: None where the first shard had no test in the batch)."""

    def used(test: TestResult, cpu: float, memory: int) -> TestResult:
        figures = ResourceResult(
            peak_rss=memory, memory=memory, rss_start=0, rss_end=0, cpu=cpu, wall=1.0, pid=1
        )
        return test.model_copy(update={"resources": figures})

    first = a_run(used(a_test("u.py::test_one"), 0.25, 2**20), a_test("u.py::test_bare"))
    api = used(a_test("a.py::test_api", batch="api"), 0.5, 2**22)
    second = a_run(used(a_test("u.py::test_two"), 1.0, 2**21), api)
    unit, api_batch = merged_of(first, second)[0].batches
    assert (unit.cpu, unit.peak_memory) == (1.25, 2**21)
    assert (api_batch.cpu, api_batch.peak_memory) == (0.5, 2**22)
    unmeasured = merged_of(a_run(a_test("x.py::test_x")), a_run(a_test("y.py::test_y")))[0]
    assert (unmeasured.batches[0].cpu, unmeasured.batches[0].peak_memory) == (None, None)


def a_shard(status: str, number: int) -> RunResult:
    """A run whose one batch, unit, ended with ``status``."""
    nodeid = f"t{number}.py::test_it"
    if status == "empty":
        return a_run(batches=[a_batch("unit", [])])
    if status == "skipped":
        test = a_test(nodeid, "skipped")
        batch = a_batch("unit", [test], status="skipped", skip_reason=f"setup failed ({number})")
        return a_run(test, batches=[batch])
    if status == "strict-flaky":
        test = a_test(nodeid, "flaky", attempts=1)
        return a_run(test, batches=[a_batch("unit", [test], status="failed")], exitstatus=1)
    test = a_test(nodeid, "failed" if status == "failed" else "passed")
    not_run = 1 if status == "incomplete" else 0
    return a_run(test, batches=[a_batch("unit", [test], not_run=not_run)])


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["passed", "failed"], "failed"),
        (["strict-flaky", "passed"], "failed"),
        (["incomplete", "passed"], "incomplete"),
        (["failed", "incomplete"], "failed"),
        (["skipped", "skipped"], "skipped"),
        (["skipped", "passed"], "passed"),
        (["skipped", "empty"], "skipped"),
        (["empty", "passed"], "passed"),
        (["empty", "empty"], "empty"),
        (["passed", "passed"], "passed"),
    ],
)
def test_the_status_of_a_combined_batch(statuses: list[str], expected: str) -> None:
    merged, _ = merged_of(*(a_shard(status, n) for n, status in enumerate(statuses)))
    [batch] = merged.batches
    assert batch.status == expected
    assert batch.skip_reason == ("setup failed (0)" if expected == "skipped" else None)


def test_a_strict_flaky_failure_fails_the_merged_run() -> None:
    merged, _ = merged_of(a_shard("strict-flaky", 1), a_shard("passed", 2))
    assert (merged.exitstatus, merged.failed_by) == (1, ["tests"])


PASSED = a_test("p.py::test_passes")


@pytest.mark.parametrize(
    ("runs", "exitstatus", "failed_by"),
    [
        pytest.param([a_run(PASSED), a_run(PASSED)], 0, [], id="all passed"),
        pytest.param(
            [a_run(PASSED), a_run(a_test("f.py::test_fails", "error"))],
            1,
            ["tests"],
            id="a test errored",
        ),
        pytest.param([a_run(PASSED), a_run(exitstatus=2)], 2, ["tests"], id="interrupted"),
        pytest.param(
            [a_run(exitstatus=3), a_run(exitstatus=2), a_run(PASSED, exitstatus=4)],
            4,
            ["tests"],
            id="the highest status",
        ),
        pytest.param(
            [a_run(exitstatus=3), a_run(a_test("f.py::test_fails", "failed"))],
            1,
            ["tests"],
            id="failed tests outrank an internal error",
        ),
        pytest.param(
            [a_run(PASSED), a_run(exitstatus=1, failed_by=["coverage"])],
            1,
            ["coverage"],
            id="a coverage gate",
        ),
        pytest.param(
            [a_run(exitstatus=2), a_run(exitstatus=1, failed_by=["coverage"])],
            2,
            ["tests", "coverage"],
            id="interrupted and a coverage gate",
        ),
        pytest.param(
            [a_run(exitstatus=5, failed_by=["tests"]), a_run(PASSED)],
            0,
            [],
            id="a shard collected nothing",
        ),
        pytest.param([a_run(exitstatus=5), a_run(exitstatus=5)], 5, ["tests"], id="no tests"),
    ],
)
def test_the_merged_exit_status(
    runs: list[RunResult], exitstatus: int, failed_by: list[str]
) -> None:
    merged, _ = merged_of(*runs)
    assert (merged.exitstatus, merged.failed_by) == (exitstatus, failed_by)


def a_benchmark(nodeid: str, median: float, *, failed: bool | None = None) -> BenchmarkResult:
    """A benchmark of 5 rounds at ``median``; compared with a 10% gate unless ``failed`` is None."""
    comparison = None
    if failed is not None:
        change = 1.0 if failed else 0.0
        comparison = BenchmarkComparison(
            baseline_run=1,
            baseline_runs=[1],
            statistic="median",
            baseline=median / (1 + change),
            current=median,
            change=change,
            low=change - 0.1,
            high=change + 0.1,
            verdict="slower" if failed else "same",
            threshold=0.1,
            failed=failed,
        )
    return BenchmarkResult(
        nodeid=nodeid,
        batch="perf",
        worker="main",
        rounds=5,
        iterations=1,
        min=median,
        max=median,
        mean=median,
        stddev=0.0,
        median=median,
        q1=median,
        q3=median,
        iqr=0.0,
        outliers_iqr=0,
        outliers_stddev=0,
        ops=1 / median,
        total=5 * median,
        gc_disabled=False,
        samples=[median] * 5,
        fingerprint={},
        comparison=comparison,
    )


def test_benchmarks_are_merged_and_a_failed_gate_fails_the_merged_run() -> None:
    """Each test's benchmark comes from the result its test is kept from; a gate
    that failed there fails the merged run (it was lost: the first result's
    benchmarks only, and exit status 0)."""
    fib, sort = a_test("b.py::test_fib", batch="perf"), a_test("b.py::test_sort", batch="perf")
    slow = a_run(
        fib,
        benchmarks=[a_benchmark(fib.nodeid, 2.0, failed=True)],
        exitstatus=1,
        failed_by=["benchmarks"],
    )
    other = a_run(sort, benchmarks=[a_benchmark(sort.nodeid, 1.0, failed=False)])
    merged, _ = merged_of(other, slow)
    assert [(b.nodeid, b.median, b.worker) for b in merged.benchmarks] == [
        ("b.py::test_sort", 1.0, "shard1/main"),
        ("b.py::test_fib", 2.0, "shard2/main"),
    ]
    assert (merged.exitstatus, merged.failed_by) == (1, ["benchmarks"])
    # Run again after the fix: the later result's benchmark is kept, and passes.
    fixed = a_run(fib, benchmarks=[a_benchmark(fib.nodeid, 1.0, failed=False)])
    merged, _ = merged_of(slow, fixed)
    assert [(b.nodeid, b.median) for b in merged.benchmarks] == [("b.py::test_fib", 1.0)]
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    # The later result's test measured nothing (it failed): no benchmark for it.
    broken = a_run(a_test(fib.nodeid, "failed", batch="perf"))
    merged, _ = merged_of(slow, broken)
    assert (merged.benchmarks, merged.exitstatus, merged.failed_by) == ([], 1, ["tests"])


def resources_of(worker: str, cpu: float, **fields: Any) -> ResourcesResult:
    values: dict[str, Any] = {
        "budget": 2**30,
        "cpus": 2,
        "leak_threshold": 2**20,
        "cpu": cpu,
        "timeline": {worker: [(100.0, 2**20), (101.0, 2**21)]},
    }
    return ResourcesResult(**{**values, **fields})


def test_resources_of_several_results_are_merged_under_their_shards() -> None:
    """Each shard's memory lines and leaks under LABEL/WORKER, as its tests' workers
    (the first result's figures alone were kept, under names no merged test had)."""
    leak = ResourceLeak(worker="gw1", pid=7, growth=2**21, tests=2, culprits=[("b.py::t", 2**21)])
    first = a_run(
        a_test("a.py::test_a", worker="gw0"),
        resources=resources_of("gw0", 1.5, over_limit=["a.py::test_a"]),
    )
    second = a_run(
        a_test("b.py::test_b", worker="gw1"),
        resources=resources_of("gw1", 2.25, leaks=[leak], alone=["b.py::test_b"]),
    )
    merged, _ = merged_of(first, second, a_run(a_test("c.py::test_c")))
    resources = merged.resources
    assert resources is not None
    assert set(resources.timeline) == {"shard1/gw0", "shard2/gw1"}
    assert {t.worker for t in merged.tests} >= {"shard1/gw0", "shard2/gw1"}
    assert [(leak.worker, leak.pid) for leak in resources.leaks] == [("shard2/gw1", 7)]
    assert (resources.cpu, resources.cpus, resources.budget) == (3.75, 4, None)
    assert (resources.over_limit, resources.alone) == (["a.py::test_a"], ["b.py::test_b"])
    # No result measured anything: none.
    assert merged_of(a_run(PASSED), a_run(PASSED))[0].resources is None


def test_stages_that_each_deselect_the_others_tests_deselect_nothing_together() -> None:
    # Stage a ran 2 of 5 tests, stage b the other 3: before, "5 deselected".
    stage_a = a_run(a_test("a.py::test_1"), a_test("a.py::test_2"), deselected=3)
    stage_b = a_run(*(a_test(f"b.py::test_{n}") for n in range(3)), deselected=2)
    merged, _ = merged_of(stage_a, stage_b)
    assert merged.deselected == 0
    # The same stage twice: its own deselected tests stay deselected.
    merged, _ = merged_of(stage_a, stage_a)
    assert merged.deselected == 3
    # Shards by path collected different tests: what each deselected adds up.
    shard_1 = a_run(*(a_test(f"a.py::test_{n}") for n in range(3)), deselected=1)
    shard_2 = a_run(a_test("b.py::test_1"), a_test("b.py::test_2"))
    assert merged_of(shard_1, shard_2)[0].deselected == 1
    # Shards by path of equal size, each deselecting one: 6 tests seen, 4 each.
    shard_3 = a_run(a_test("c.py::test_1"), a_test("c.py::test_2"), deselected=1)
    shard_4 = a_run(a_test("d.py::test_1"), a_test("d.py::test_2"), deselected=1)
    assert merged_of(shard_3, shard_4)[0].deselected == 2


def test_a_run_stopped_by_x_and_the_full_run_after_it_merge_to_the_full_run() -> None:
    # With the node ids (schema 8) the counts are exact. Before, the batch had
    # 6 tests, 2 "not run" ("incomplete"), and 2 deselected: the stopped run's
    # tests seen looked like more than one collection of 5.
    ids = [f"t.py::test_{n}" for n in range(1, 5)]
    ran = [a_test(ids[0]), a_test(ids[1], "failed")]
    stopped = a_run(
        *ran,
        batches=[a_batch("unit", ran, not_run=2, not_run_nodeids=ids[2:])],
        deselected=1,
        deselected_nodeids=["t.py::test_slow"],
    )
    tests = [a_test(nodeid, start=200) for nodeid in ids]
    full = a_run(*tests, deselected=1, deselected_nodeids=["t.py::test_slow"])
    merged, _ = merged_of(stopped, full)
    [batch] = merged.batches
    assert (batch.tests, batch.not_run, batch.not_run_nodeids) == (4, 0, [])
    assert (batch.status, batch.outcomes) == ("passed", {"passed": 4})
    assert (merged.deselected, merged.deselected_nodeids) == (1, ["t.py::test_slow"])
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    # The other way round, the tests the stopped run did not run still ran.
    merged, _ = merged_of(full, stopped)
    assert [(b.tests, b.not_run, b.status) for b in merged.batches] == [(4, 0, "failed")]


def test_an_interrupted_run_and_the_full_run_after_it_merge_to_the_full_run() -> None:
    # -x under -n, or Ctrl-C: exit status 2 without a collection error. Before,
    # the merge kept the 2 ("interrupted") while every merged test passed.
    ids = [f"t.py::test_{n}" for n in range(1, 4)]
    ran = [a_test(ids[0])]
    stopped = a_run(
        *ran,
        batches=[a_batch("unit", ran, not_run=2, not_run_nodeids=ids[1:], status="incomplete")],
        exitstatus=2,
        deselected_nodeids=[],
    )
    full = a_run(*(a_test(nodeid, start=200) for nodeid in ids), deselected_nodeids=[])
    merged, _ = merged_of(stopped, full)
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    assert [(b.tests, b.not_run, b.status) for b in merged.batches] == [(3, 0, "passed")]
    # A later result that did not run the interrupted run's missing test
    # (another stage) replaces nothing: the run is still interrupted.
    other = a_run(a_test("u.py::test_other", start=200), deselected_nodeids=[])
    merged, _ = merged_of(stopped, other)
    assert merged.exitstatus == 2
    # Nor does the interrupted run given last.
    merged, _ = merged_of(full, stopped)
    assert merged.exitstatus == 2


def test_uneven_shards_by_path_deselect_what_no_shard_ran() -> None:
    # Before, 4 tests run and 4 collected looked like one suite: 0 deselected.
    shard_a = a_run(
        *(a_test(f"a.py::test_{n}") for n in range(3)),
        deselected=1,
        deselected_nodeids=["a.py::test_slow"],
    )
    shard_b = a_run(a_test("b.py::test_0"), deselected=1, deselected_nodeids=["b.py::test_slow"])
    merged, _ = merged_of(shard_a, shard_b)
    assert (merged.deselected, merged.deselected_nodeids) == (
        2,
        ["a.py::test_slow", "b.py::test_slow"],
    )
    # Stages by -k: each deselects the tests the other ran.
    stage_a = a_run(a_test("a.py::test_0"), deselected=1, deselected_nodeids=["a.py::test_1"])
    stage_b = a_run(a_test("a.py::test_1"), deselected=1, deselected_nodeids=["a.py::test_0"])
    assert merged_of(stage_a, stage_b)[0].deselected == 0


def test_a_stopped_run_is_replaced_only_by_results_that_planned_its_tests() -> None:
    # Stopped at t_new.py's collection error before test_ok ran; a later run
    # of t_new.py alone put as many tests in batch unit, but not test_ok,
    # which no result ran: the merged run is still interrupted.
    error = CollectionProblem(nodeid="t_new.py", outcome="error", longrepr="E   SyntaxError")
    stopped = a_run(
        exitstatus=2,
        failed_by=["collection"],
        collection=[error],
        batches=[
            a_batch(
                "unit", [], not_run=1, not_run_nodeids=["t_ok.py::test_ok"], status="incomplete"
            )
        ],
        deselected_nodeids=[],
    )
    new = a_test("t_new.py::test_new")
    alone = a_run(new, deselected_nodeids=[])
    merged, _ = merged_of(stopped, alone)
    assert merged.exitstatus == 2
    [batch] = merged.batches
    assert (batch.tests, batch.not_run_nodeids, batch.status) == (
        2,
        ["t_ok.py::test_ok"],
        "incomplete",
    )
    # The whole suite again replaces it.
    ok = a_test("t_ok.py::test_ok")
    again = a_run(ok, new, deselected_nodeids=[])
    merged, _ = merged_of(stopped, again)
    assert (merged.exitstatus, [(b.tests, b.not_run, b.status) for b in merged.batches]) == (
        0,
        [(2, 0, "passed")],
    )


def test_run_figures_that_add_up_and_those_that_do_not() -> None:
    sections = [ReportSection(title=f"s{n}", html="<p>") for n in (1, 2)]
    first = a_run(PASSED, estimated=3.0, lower_bound=2.0, deselected=4, sections=sections[:1])
    second = a_run(estimated=4.5, lower_bound=1.0, deselected=1, sections=sections[1:])
    merged, _ = merged_of(first, second)
    # The one test fits in the collection of 5: one suite, 4 of it not run.
    assert (merged.estimated, merged.lower_bound, merged.deselected) == (7.5, None, 4)
    assert [s.title for s in merged.sections] == ["s1", "s2"]
    merged, _ = merged_of(first, a_run())
    assert merged.estimated is None


def test_coverage_and_probes_of_single_runs_are_left_out_with_a_note() -> None:
    coverage = CoverageResult(
        sources=["pkg"],
        context="batch",
        branch=False,
        statements=10,
        covered=5,
        percent=50.0,
        files=[],
        batches=[],
        gates=[],
        failed=False,
    )
    merged, notes = merged_of(
        a_run(PASSED, coverage=coverage, probe=ProbeResult(runs=3, tests=[])), a_run()
    )
    assert (merged.coverage, merged.probe) == (None, None)
    assert notes == [
        "coverage of several results cannot be combined from their percentages; give their "
        "data files with --coverage-data",
        "probe results (--batchflow-probe) are left out: a probe's figures are of one run",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{bad", "not JSON (key must be a string at line 1 column 2)"),
        ("[1, 2]", "not a batchflow result: the JSON is not an object"),
        (
            '{"schema_version": 4, "tests": []}',
            "a result of schema version 4; this batchflow reads versions 7 and 8 (render it "
            "with the batchflow that wrote it)",
        ),
        (
            '{"schema_version": 9, "tests": []}',
            "a result of schema version 9; this batchflow reads versions 7 and 8 (render it "
            "with the batchflow that wrote it)",
        ),
        (
            '{"name": "coverage"}',
            "not a batchflow result: no started, stopped, duration and 4 more",
        ),
        # It said "a result of schema version '7'; this batchflow reads version 7".
        (
            '{"schema_version": "7", "tests": []}',
            "not a batchflow result: schema_version is '7', not the number 7",
        ),
        (
            '{"schema_version": "8", "tests": []}',
            "not a batchflow result: schema_version is '8', not the number 8",
        ),
    ],
)
def test_a_file_that_is_not_a_result_is_named_with_what_is_wrong(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(ResultFileError) as caught:
        read_result(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_a_result_with_a_bad_field_names_the_field(tmp_path: Path) -> None:
    data = a_run(PASSED).model_dump(mode="json")
    del data["tests"][0]["outcome"]
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError) as caught:
        read_result(path)
    assert str(caught.value) == f"{path}: not a batchflow result: tests.0.outcome: Field required"


def test_labels_are_parent_directories_for_one_stem_else_stems() -> None:
    assert labels_for([Path("ci/shard1/result.json"), Path("ci/shard2/result.json")]) == [
        "shard1",
        "shard2",
    ]
    assert labels_for([Path("out/unit.json"), Path("out/integration.json")]) == [
        "unit",
        "integration",
    ]
    paths = [Path("x/unit.json"), Path("y/unit.json"), Path("z/x/unit.json"), Path("x/unit.json")]
    assert labels_for(paths) == ["x", "y", "x-2", "x-3"]


# -- the command, on real runs ---------------------------------------------------

SUITE = """
import os

def test_alpha():
    pass

def test_beta():
    pass

def test_gamma():
    pass

def test_delta():
    assert os.environ.get("BREAK_DELTA") != "1", "delta is broken"
"""


def run_shards(pytester: pytest.Pytester) -> None:
    """Two shards of SUITE: alpha and beta in shard1, gamma and delta in shard2."""
    pytester.makepyfile(test_suite=SUITE)
    for shard, selection in (("shard1", "alpha or beta"), ("shard2", "gamma or delta")):
        pytester.runpytest(
            "--batchflow",
            "--batchflow-no-history",
            f"--batchflow-json={shard}/result.json",
            "-k",
            selection,
        )


@pytest.fixture
def shards(pytester: pytest.Pytester) -> pytest.Pytester:
    run_shards(pytester)
    return pytester


def test_report_merges_shards_into_one_report(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "shard1/result.json", "shard2/result.json", "-o", "merged.html"]
    assert main([*args, "--json", "merged.json"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "batchflow: HTML report: merged.html",
        "batchflow: JSON result: merged.json",
    ]
    merged = RunResult.model_validate_json((shards.path / "merged.json").read_text())
    assert {(t.nodeid, t.worker) for t in merged.tests} == {
        ("test_suite.py::test_alpha", "shard1/main"),
        ("test_suite.py::test_beta", "shard1/main"),
        ("test_suite.py::test_gamma", "shard2/main"),
        ("test_suite.py::test_delta", "shard2/main"),
    }
    assert merged.shards == ["shard1", "shard2"]
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    assert sum(batch.tests for batch in merged.batches) == 4
    html = (shards.path / "merged.html").read_text()
    for name in ("test_alpha", "test_beta", "test_gamma", "test_delta", "shard2/main"):
        assert name in html
    # Each shard's memory line, as its tests' worker is named.
    assert merged.resources is not None
    assert set(merged.resources.timeline) == {"shard1/main", "shard2/main"}
    for worker in ("shard1/main", "shard2/main"):
        assert f'class="worker-memory" data-worker="{worker}"' in html


def test_a_failure_in_one_shard_fails_the_report_with_exit_code_1(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREAK_DELTA", "1")
    run_shards(pytester)
    assert main(["report", "shard1/result.json", "shard2/result.json", "--junit", "j.xml"]) == 1
    assert (pytester.path / "report.html").is_file()
    assert "delta is broken" in (pytester.path / "j.xml").read_text()


def test_one_result_renders_as_it_is(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "shard1/result.json", "--json", "again.json"]) == 0
    again = (shards.path / "again.json").read_text()
    assert RunResult.model_validate_json(again) == read_result(shards.path / "shard1/result.json")
    assert capsys.readouterr().out.startswith("batchflow: HTML report: report.html\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "test_suite.py"],
            "-o/--output: test_suite.py exists and is not an HTML report that batchflow wrote, "
            "so batchflow will not replace it; delete it or name another file",
        ),
        (
            ["--json", "merged.html", "-o", "merged.html"],
            "--json: merged.html is also the file of -o/--output; give each output a file of its "
            "own",
        ),
        (["--junit", "shard1"], "--junit: shard1 is a folder; name a file in it"),
        (
            ["--json", "shard1/result.json"],
            "--json: shard1/result.json is also an input; write the outputs to other files",
        ),
        (["shard1/./result.json"], "shard1/result.json is given twice; give each result once"),
    ],
    ids=["not-ours", "shared", "folder", "an-input", "input-twice"],
)
def test_an_output_the_report_may_not_write_is_refused_before_reading(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    source = (shards.path / "test_suite.py").read_bytes()
    assert main(["report", "shard1/result.json", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"batchflow: {message}"]
    assert captured.out == ""
    assert (shards.path / "test_suite.py").read_bytes() == source
    assert not (shards.path / "report.html").exists()


def test_a_result_without_a_schema_version_is_no_batchflow_result(shards: pytest.Pytester) -> None:
    data = json.loads((shards.path / "shard1" / "result.json").read_text())
    del data["schema_version"]  # all else a result's: the model's default would take it
    path = shards.path / "other.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError) as raised:
        read_result(path)
    assert str(raised.value) == (
        f"{path}: not a batchflow result: it has no schema_version (every result written by "
        "pytest --batchflow-json has one)"
    )


def test_an_output_that_cannot_be_written_costs_the_others_nothing(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the report imports it: the shards' in-process runs took the module
    # they imported out of sys.modules again.
    html = importlib.import_module("pytest_batchflow.report.html")

    def refused(result: RunResult, path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path.with_name(f".{path.name}.x1")))

    monkeypatch.setattr(html, "write_html", refused)
    args = ["report", "shard1/result.json", "--json", "m.json", "--junit", "m.xml"]
    assert main(args) == 2
    captured = capsys.readouterr()
    # The temporary file the write made beside it is no news to the user.
    assert captured.err.splitlines() == [
        "batchflow: cannot write the HTML report to report.html: Permission denied"
    ]
    assert captured.out.splitlines() == [
        "batchflow: JSON result: m.json",
        "batchflow: JUnit XML: m.xml",
    ]
    assert read_result(shards.path / "m.json").tests
    assert (shards.path / "m.xml").is_file()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read it: No such file or directory"),
        ("{", "not JSON (EOF while parsing an object at line 1 column 1)"),
    ],
)
def test_a_bad_input_is_exit_code_2_and_one_line_naming_it(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    bad = Path("bad", "result.json")
    if content is not None:
        bad.parent.mkdir()
        bad.write_text(content)
    assert main(["report", "shard1/result.json", str(bad), "-o", "out.html"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"batchflow: {bad}: {problem}\n"
    assert captured.out == ""
    assert not (shards.path / "out.html").exists()


def test_a_file_that_is_not_coverage_data_is_exit_code_2(
    shards: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("not.coverage").write_text("hello")
    args = ["report", "shard1/result.json", "shard2/result.json", "--coverage-data=not.coverage"]
    assert main(args) == 2
    assert capsys.readouterr().err == "batchflow: not.coverage: not a coverage.py data file\n"
    assert Path("not.coverage").read_text() == "hello"


STOPPING_SUITE = """
import os

def test_first():
    pass

def test_breaks():
    assert os.environ.get("BREAK") != "1", "broken"

def test_third():
    pass

def test_fourth():
    pass

def test_slow():
    pass
"""


def test_a_run_stopped_by_x_then_a_full_run_report_as_the_full_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_suite=STOPPING_SUITE)
    args = ["--batchflow", "--batchflow-no-history", "-k", "not slow"]
    monkeypatch.setenv("BREAK", "1")
    stopped = pytester.runpytest(*args, "-x", "--batchflow-json=stopped/result.json")
    stopped.assert_outcomes(passed=1, failed=1, deselected=1)
    monkeypatch.delenv("BREAK")
    full = pytester.runpytest(*args, "--batchflow-json=full/result.json")
    full.assert_outcomes(passed=4, deselected=1)
    paths = ["stopped/result.json", "full/result.json"]
    assert main(["report", *paths, "-o", "merged.html", "--json", "merged.json"]) == 0
    merged = read_result(pytester.path / "merged.json")
    [batch] = merged.batches
    assert (batch.tests, batch.not_run, batch.status) == (4, 0, "passed")
    assert (merged.deselected, merged.deselected_nodeids) == (1, ["test_suite.py::test_slow"])
    html = (pytester.path / "merged.html").read_text()
    assert "<b>1</b> deselected" in html
    assert "not run)" not in html


def test_uneven_shards_by_path_report_what_each_deselected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="def test_1(): pass\ndef test_2(): pass\ndef test_3(): pass\ndef test_slow(): pass",
        test_b="def test_1(): pass\ndef test_slow(): pass",
    )
    for shard in ("a", "b"):
        pytester.runpytest(
            "--batchflow",
            "--batchflow-no-history",
            f"--batchflow-json=shard_{shard}/result.json",
            f"test_{shard}.py",
            "-k",
            "not slow",
        ).assert_outcomes(passed=3 if shard == "a" else 1, deselected=1)
    paths = ["shard_a/result.json", "shard_b/result.json"]
    assert main(["report", *paths, "-o", "merged.html", "--json", "merged.json"]) == 0
    merged = read_result(pytester.path / "merged.json")
    assert merged.deselected == 2
    assert "<b>2</b> deselected" in (pytester.path / "merged.html").read_text()


def test_a_result_of_schema_7_merges_with_the_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Schema 7 has no node ids: the count-based merge of before. Two stages
    # that each deselect the other's tests, one written by an older batchflow.
    monkeypatch.chdir(tmp_path)
    older = a_run(a_test("a.py::test_1"), a_test("a.py::test_2"), deselected=3)
    data = older.model_dump(mode="json")
    data["schema_version"] = 7
    del data["deselected_nodeids"]
    for batch in data["batches"]:
        del batch["not_run_nodeids"]
    Path("stage_a.json").write_text(json.dumps(data))
    deselected = ["a.py::test_1", "a.py::test_2"]
    newer = a_run(
        *(a_test(f"b.py::test_{n}") for n in range(3)), deselected=2, deselected_nodeids=deselected
    )
    newer.write(Path("stage_b.json"))
    assert read_result(Path("stage_a.json")).deselected_nodeids is None
    assert main(["report", "stage_a.json", "stage_b.json", "--json", "merged.json"]) == 0
    merged = read_result(Path("merged.json"))
    assert (merged.schema_version, len(merged.tests), merged.deselected) == (8, 5, 0)
    assert merged.deselected_nodeids is None
    assert [(b.tests, b.not_run, b.not_run_nodeids) for b in merged.batches] == [(5, 0, None)]


# -- coverage, recomputed from the shards' data files ------------------------------

PACKAGE = """\
def add(a, b):
    return a + b


def sign(x):
    if x > 0:
        return 1
    return -1


def total(values):
    result = 0
    for value in values:
        result = add(result, value)
    return result
"""

COVERAGE_INI = """\
[pytest]
pythonpath = src
batchflow_batches =
    unit: paths=tests/unit
    api: paths=tests/api after=unit
"""

UNIT_TESTS = """\
from pkg import add, sign

def test_add():
    assert add(1, 2) == 3

def test_sign():
    assert sign(5) == 1
"""

API_TESTS = """\
from pkg import total

def test_total():
    assert total([1, 2, 3]) == 6
"""


def run_measured(pytester: pytest.Pytester, json_path: str, *args: str) -> RunResult:
    pytester.runpytest_subprocess(
        "--batchflow",
        "--batchflow-no-history",
        "--batchflow-cov=pkg",
        f"--batchflow-json={json_path}",
        "-p",
        "no:cacheprovider",
        *args,
    )
    return read_result(pytester.path / json_path)


def test_coverage_of_shards_is_recomputed_from_their_data_files(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    (pytester.path / "src" / "pkg").mkdir(parents=True)
    (pytester.path / "src" / "pkg" / "__init__.py").write_text(PACKAGE)
    (pytester.path / "pytest.ini").write_text(COVERAGE_INI)
    for folder, source in (("unit", UNIT_TESTS), ("api", API_TESTS)):
        (pytester.path / "tests" / folder).mkdir(parents=True)
        (pytester.path / "tests" / folder / f"test_{folder}.py").write_text(source)
    data_file = pytester.path / ".batchflow" / "coverage" / ".coverage"
    whole = run_measured(pytester, "whole.json")
    assert whole.coverage is not None
    # Each shard alone misses the other's lines and fails the 80% gate.
    for shard, selection in (("shard1", "test_add or test_sign"), ("shard2", "test_total")):
        result = run_measured(
            pytester, f"{shard}/result.json", "--batchflow-cov-fail-under=80", "-k", selection
        )
        assert result.failed_by == ["coverage"]
        shutil.copyfile(data_file, pytester.path / shard / ".coverage")
    args = ["report", "shard1/result.json", "shard2/result.json", "-o", "merged.html"]
    data = ["--coverage-data", "shard1/.coverage", "shard2/.coverage"]
    assert main([*args, "--json", "merged.json", *data]) == 0
    out = capsys.readouterr().out
    merged = read_result(pytester.path / "merged.json")
    assert merged.coverage is not None
    assert (merged.exitstatus, merged.failed_by) == (0, [])
    figures = ("statements", "covered", "percent", "files", "batches", "branch")
    assert merged.coverage.model_dump(include=set(figures)) == whole.coverage.model_dump(
        include=set(figures)
    )
    [gate] = merged.coverage.gates
    assert (gate.batch, gate.threshold, gate.passed) == (None, 80.0, True)
    assert f"batchflow: coverage {whole.coverage.percent:.2f}% of" in out
    assert "no data for batch" not in out
    assert (pytester.path / "merged-coverage" / "html" / "index.html").is_file()
    assert (pytester.path / "shard1" / ".coverage").is_file()
    # A shard's data file left out: its batch reads 0% and fails the gate, and
    # a note says which batch has no data and what to give.
    assert main([*args, "--coverage-data", "shard1/.coverage"]) == 1
    assert (
        "batchflow: note: coverage: no data for batch 'api' (run by shard2) in the data "
        "files given: give each run's .batchflow/coverage/.coverage with --coverage-data"
    ) in capsys.readouterr().out.splitlines()
    # Without the data files the shards' own gates stand, and a note says why.
    assert main(args) == 1
    assert "batchflow: note: coverage of several results cannot be combined" in (
        capsys.readouterr().out
    )
