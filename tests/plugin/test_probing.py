"""``--batchflow-probe=N``: every test N times, failure rates, order dependence.

The order-dependent case is a real polluter and victim: one test leaves state
behind in a shared module, another fails when it finds it. A batch line puts
the polluter's batch first, so every run of the victim comes after it, on any
number of workers.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from pytest_batchflow.core.probe import ALONE_RUNS, wilson_interval
from pytest_batchflow.results import RunResult, TestResult

POLLUTED = {
    "shared": "STATE = {}\n",
    "test_a": """
import shared

def test_polluter():
    shared.STATE["dirty"] = True

def test_bystander():
    pass
""",
    "test_b": """
import shared

def test_victim():
    assert not shared.STATE, "state left behind"
""",
}
#: Runs alone go side by side: the count is taken under a lock.
COUNTER = '''
import fcntl
import os
import pathlib

def next_count():
    """This run's number, 1 for the first, across processes."""
    path = pathlib.Path(__file__).with_name("count")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        count = int(os.read(descriptor, 32) or b"0") + 1
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, str(count).encode())
        return count
    finally:
        os.close(descriptor)
'''
ORDERED = """[pytest]
batchflow_batches =
    first: paths=test_a.py
    then: paths=test_b.py after=first
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, RunResult]:
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=result.json", "-p", "no:randomly", *args
    )
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    return result, data


def by_name(tests: list[TestResult]) -> dict[str, TestResult]:
    return {test.nodeid.split("::")[-1]: test for test in tests}


WORKERS = [pytest.param((), id="serial"), pytest.param(("-n", "2"), id="xdist")]


@pytest.mark.parametrize("workers", WORKERS)
def test_a_victim_is_flagged_order_dependent_and_its_polluter_confirmed(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makeini(ORDERED)
    pytester.makepyfile(**POLLUTED)
    result, data = run(pytester, "--batchflow-probe=4", *workers)
    assert result.parseoutcomes() == {"failed": 4, "passed": 8}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data.probe is not None
    probed = {test.nodeid: test for test in data.probe.tests}
    victim = probed["test_b.py::test_victim"]
    assert (victim.runs, victim.failures, victim.rate) == (4, 4, 1.0)
    assert (victim.low, victim.high) == pytest.approx(wilson_interval(4, 4))
    assert (victim.alone_runs, victim.alone_failures) == (ALONE_RUNS, 0)
    assert victim.verdict == "order-dependent"
    assert victim.p_value == pytest.approx(1 / 126)  # 4 of 4 failed, 0 of 5 alone
    assert victim.confirmed == ["test_a.py::test_polluter"]
    # Its own earlier runs on the same worker are suspects too; confirmed ones first.
    assert set(victim.suspects) == {
        "test_a.py::test_polluter",
        "test_a.py::test_bystander",
        "test_b.py::test_victim",
    }
    assert victim.suspects[0] == "test_a.py::test_polluter"
    for clean in ("test_a.py::test_polluter", "test_a.py::test_bystander"):
        assert (probed[clean].failures, probed[clean].verdict) == (0, None)
    result.stdout.fnmatch_lines(
        [
            "*= probe: every test run 4 times =*",
            "test_b.py::test_victim: failed 4 of 4 runs, 100% (95% interval 51% to 100%)",
            "  ORDER-DEPENDENT: passes alone (alone: failed 0 of 5, p=0.00794)",
            "  fails right after: test_a.py::test_polluter (confirmed alone)",
            "  suspects: test_a.py::test_polluter, *",
            "batchflow: probe: 3 tests run up to 4 times each; 2 never failed",
        ]
    )
    tests = by_name(data.tests)
    assert tests["test_victim"].outcome == "failed"
    assert [a.outcome for a in tests["test_victim"].attempts] == ["failed"] * 3
    if workers:
        # The runs spread over both workers.
        runs = [*tests["test_polluter"].attempts, tests["test_polluter"]]
        assert {run.worker for run in runs} == {"gw0", "gw1"}


@pytest.mark.parametrize("workers", WORKERS)
def test_each_run_keeps_its_own_output_on_any_worker(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    # Every run of a test prints the same; its result has the last run's output
    # once. A run in the same process starts with the earlier runs' output,
    # which is left out; a run on another worker printed it afresh, and keeps it.
    pytester.makepyfile(
        test_p="""
import time
import pytest

@pytest.mark.parametrize("n", range(4))
def test_p(n):
    time.sleep(0.05)
    print(f"hello {n}")
"""
    )
    _, data = run(pytester, "--batchflow-probe=2", *workers)
    assert {test.nodeid: test.stdout for test in data.tests} == {
        f"test_p.py::test_p[{n}]": f"hello {n}\n" for n in range(4)
    }
    if workers:  # the case this is about: the last run on another worker than the one before
        assert any(test.attempts[-1].worker != test.worker for test in data.tests)


def test_the_runs_come_in_rounds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_order="def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result, data = run(pytester, "--batchflow-probe=3")
    assert result.ret == pytest.ExitCode.OK
    runs = sorted(
        (run.start, test.nodeid.split("::")[1])
        for test in data.tests
        for run in [*test.attempts, test]
    )
    assert [name for _, name in runs] == ["test_one", "test_two"] * 3
    result.stdout.fnmatch_lines(
        ["batchflow: probe: 2 tests run up to 3 times each; 2 never failed"]
    )
    result.stdout.no_fnmatch_line("*running * alone*")


def test_a_test_failing_alone_too_is_not_order_dependent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        counter=COUNTER,
        test_suite="""
from counter import next_count

def test_every_other():
    count = next_count()
    assert count % 2 == 0, f"odd run {count}"

def test_fine():
    pass
""",
    )
    result, data = run(pytester, "--batchflow-probe=4")
    assert result.parseoutcomes() == {"failed": 2, "passed": 6}
    assert data.probe is not None
    wobbly = {t.nodeid: t for t in data.probe.tests}["test_suite.py::test_every_other"]
    # Runs 1 and 3 failed in the suite; of the five alone (runs 5 to 9), 5, 7 and 9.
    assert (wobbly.failures, wobbly.runs, wobbly.rate) == (2, 4, 0.5)
    assert (wobbly.alone_runs, wobbly.alone_failures) == (ALONE_RUNS, 3)
    assert wobbly.verdict == "fails alone"
    assert by_name(data.tests)["test_every_other"].longrepr is not None
    result.stdout.fnmatch_lines(
        [
            "test_suite.py::test_every_other: failed 2 of 4 runs, 50% (95% interval 15% to 85%)",
            "  fails alone too (alone: failed 3 of 5): not (only) the order",
        ]
    )


def test_reruns_are_off_and_skips_and_benchmarks_run_once(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    perf: kind=benchmark paths=test_perf.py\n")
    pytester.makepyfile(
        test_suite="""
import pytest

def test_broken():
    assert 0

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
""",
        test_perf="def test_speed():\n    pass\n",
    )
    result, data = run(pytester, "--batchflow-probe=3", "--batchflow-reruns=2")
    assert result.parseoutcomes() == {"failed": 3, "skipped": 1, "passed": 1}
    tests = by_name(data.tests)
    assert [len(tests[name].attempts) for name in ("test_broken", "test_skipped")] == [2, 0]
    assert len(tests["test_speed"].attempts) == 0


def test_the_runs_alone_leave_no_history_and_no_outputs(pytester: pytest.Pytester) -> None:
    # Switched on in the ini file, batchflow would be on in the processes that
    # run a test alone too, but for the variable the probe sets there.
    pytester.makeini("[pytest]\nbatchflow = true\naddopts = --batchflow-json=alone.json\n")
    pytester.makepyfile(test_suite="def test_broken():\n    assert 0\n")
    result, data = run(pytester, "--batchflow-probe=2")
    result.stdout.fnmatch_lines(["batchflow: probe: running 1 failing test alone, 5 times each"])
    assert data.probe is not None
    assert data.probe.tests[0].alone_runs == ALONE_RUNS
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        (runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
    assert runs == 1
    assert not (pytester.path / "alone.json").exists()


def test_a_rare_failure_that_passes_alone_is_inconclusive(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        counter=COUNTER,
        test_suite="""
from counter import next_count

def test_first_run_fails():
    assert next_count() > 1
""",
    )
    result, data = run(pytester, "--batchflow-probe=3")
    assert data.probe is not None
    (test,) = data.probe.tests
    assert (test.failures, test.alone_failures, test.verdict) == (1, 0, "inconclusive")
    # 1 failure among 8 runs, in the 3 of the suite: 3/8.
    assert test.p_value == pytest.approx(3 / 8)
    why = "it failed too rarely in the suite to tell (p=0.38)"
    result.stdout.fnmatch_lines([f"  inconclusive (alone: failed 0 of 5): {why}"])


def test_after_ctrl_c_no_test_is_run_alone(pytester: pytest.Pytester) -> None:
    """The probe's alone runs start pytest again per failing test: not once the
    user has interrupted the run."""
    pytester.makepyfile(
        test_cut="""
            def test_a(): pass
            def test_b(): assert 0
            def test_c(): raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-probe=3", "--batchflow-json=r.json"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "failing test alone" not in result.stdout.str()
    data = json.loads((pytester.path / "r.json").read_text())
    assert [(t["nodeid"], t["outcome"]) for t in data["tests"]] == [
        ("test_cut.py::test_a", "passed"),
        ("test_cut.py::test_b", "failed"),
    ]
    assert [t["alone_runs"] for t in data["probe"]["tests"]] == [0, 0]


def test_the_runs_alone_do_not_share_the_suite_s_resources(pytester: pytest.Pytester) -> None:
    """A test that holds a fixed resource while it runs (a file here;
    pytest-django's test database, a port) passes alone as long as it is alone:
    runs alone side by side would fail for each other, not for the order."""
    pytester.makeini(ORDERED)
    polluted = dict(POLLUTED)
    polluted["test_b"] = """
import os
import time
import shared

def test_victim():
    descriptor = os.open("resource.lock", os.O_CREAT | os.O_EXCL)  # taken: fails
    try:
        time.sleep(0.3)
        assert not shared.STATE, "state left behind"
    finally:
        os.close(descriptor)
        os.unlink("resource.lock")
"""
    pytester.makepyfile(**polluted)
    _, data = run(pytester, "--batchflow-probe=4")
    assert data.probe is not None
    victim = {test.nodeid: test for test in data.probe.tests}["test_b.py::test_victim"]
    assert (victim.alone_runs, victim.alone_failures) == (ALONE_RUNS, 0)
    assert victim.verdict == "order-dependent"


@pytest.mark.parametrize("verbosity", [(), ("-q",)], ids=["default", "quiet"])
@pytest.mark.parametrize("workers", WORKERS)
def test_the_probe_s_line_starts_a_line_of_its_own(
    pytester: pytest.Pytester, workers: tuple[str, ...], verbosity: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_suite="def test_broken():\n    assert 0\n")
    result, _ = run(pytester, "--batchflow-probe=2", *verbosity, *workers)
    # Under -n, xdist's progress ends without a newline ("[100%]"); serially
    # the line after the module's is no blank one.
    result.stdout.fnmatch_lines(
        ["*[[]100%[]]", "batchflow: probe: running 1 failing test alone, 5 times each"],
        consecutive=True,
    )
