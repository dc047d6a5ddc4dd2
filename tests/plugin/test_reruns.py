"""Reruns: budgets, where and when a failed test runs again, and what the user sees.

Flaky tests here are deterministic: each counts its attempts in a file next to
it and fails the ones it is told to.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

import pytest
from json_runs import by_name, run

FLAKY = """
import os
import pathlib
import pytest

def attempt(name):
    '''The number of this attempt of test ``name`` (1 for the first).'''
    path = pathlib.Path(__file__).with_name(f".attempts-{name}")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count
"""


#: A test whose behaviour a file next to it sets: flaky, broken, or fine.
WOBBLY = """
MODE = pathlib.Path(__file__).with_name("mode")

def test_wobbly():
    if MODE.read_text() == "flaky":
        assert attempt("wobbly") % 2 == 0, "odd attempt"
    elif MODE.read_text() == "broken":
        assert 0, "broken now"
"""


def xdist(*args: str) -> tuple[str, ...]:
    pytest.importorskip("xdist")
    return ("-n", "2", *args)


SUITE = (
    FLAKY
    + """
def test_flaky():
    assert attempt("flaky") >= 2, "fails the first time"

def test_broken():
    raise ValueError("always broken")

def test_fine():
    pass
"""
)


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_flaky_test_is_rerun_and_reported_flaky(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result, data = run(pytester, "--batchflow-reruns=2", *(xdist() if workers else ()))
    # test_broken: two reruns, then failed; test_flaky: one rerun, then flaky.
    assert result.parseoutcomes() == {"failed": 1, "passed": 1, "rerun": 3, "flaky": 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # test_broken; flaky alone would not
    result.stdout.fnmatch_lines(
        [
            "*= flaky tests (failed, then passed on a rerun) =*",
            "FLAKY test_suite.py::test_flaky: passed at attempt 2",
            "  attempt 1 (failed on *): AssertionError: fails the first time",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_suite.py::test_broken - ValueError: always broken"])
    tests = by_name(data)
    assert tests["test_flaky"].outcome == "flaky"
    assert [a.outcome for a in tests["test_flaky"].attempts] == ["failed"]
    assert "fails the first time" in (tests["test_flaky"].attempts[0].longrepr or "")
    assert tests["test_broken"].outcome == "failed"
    assert len(tests["test_broken"].attempts) == 2
    assert tests["test_fine"].outcome == "passed"
    assert tests["test_fine"].attempts == []
    assert data.batches[0].outcomes == {"failed": 1, "flaky": 1, "passed": 1}
    result.stdout.fnmatch_lines(
        ["batch * tests * passed * flaky * failed * skipped *", "default * 3 * 1 * 1 * 1 * 0 *"]
    )


def test_a_batch_s_duration_spans_its_tests_earlier_attempts_too(
    pytester: pytest.Pytester,
) -> None:
    # The first test fails, the second runs, then the first's rerun at the
    # batch's end: its first attempt began the batch.
    pytester.makepyfile(
        test_span=FLAKY
        + """
import time

def test_first():
    time.sleep(0.3)
    assert attempt("first") == 2, "first attempt"

def test_second():
    time.sleep(0.3)
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 1, "flaky": 1, "rerun": 1}
    tests = by_name(data)
    first = tests["test_first"]
    (attempt,) = first.attempts
    assert attempt.start < tests["test_second"].start < first.start
    span = first.stop - attempt.start
    assert span >= 0.9
    (batch,) = data.batches
    assert batch.duration == pytest.approx(span)
    assert data.makespan == pytest.approx(span)


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_report_shows_its_own_attempt_s_output_and_a_flaky_test_its_pass(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    """With -rA: the failure's captured output is its last attempt's alone (it
    piled up attempt after attempt on one item, on whichever worker), and a
    flaky test is listed as passed, with its passing attempt's output."""
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_broken():
    print(f"output of attempt {attempt('broken')}")
    assert 0

def test_flaky():
    number = attempt("flaky")
    print(f"flaky attempt {number}")
    assert number >= 2
"""
    )
    result, _ = run(pytester, "--batchflow-reruns=2", "-rA", *(xdist() if workers else ()))
    assert result.parseoutcomes() == {"failed": 1, "rerun": 3, "flaky": 1}
    out = result.stdout.str()
    assert out.count("Captured stdout call") == 2, out
    assert "output of attempt 3" in out
    assert "output of attempt 1" not in out
    assert "output of attempt 2" not in out
    assert "flaky attempt 2" in out
    assert "flaky attempt 1" not in out
    result.stdout.fnmatch_lines(
        [
            "*= PASSES =*",
            "*_ test_flaky _*",
            "*- Captured stdout call -*",
            "flaky attempt 2",
            "*= short test summary info =*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        ["PASSED test_suite.py::test_flaky", "FAILED test_suite.py::test_broken - assert 0"]
    )


def test_without_rp_a_flaky_test_is_not_among_the_passed_other_plugins_count(
    pytester: pytest.Pytester,
) -> None:
    """Only -rp/-rP list a flaky test as PASSED: otherwise a conftest counting
    pytest's stats at the summary sees each test once, as before."""
    pytester.makeconftest(
        """
def pytest_terminal_summary(terminalreporter):
    counts = (f"{k}={len(v)}" for k, v in sorted(terminalreporter.stats.items()) if k)
    terminalreporter.write_line("conftest counts " + " ".join(counts))
"""
    )
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_fine():
    pass

def test_flaky():
    assert attempt("flaky") >= 2
"""
    )
    result, _ = run(pytester, "--batchflow-reruns=1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1, "flaky": 1}
    result.stdout.fnmatch_lines(["conftest counts flaky=1 passed=1 rerun=1"])


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_teardown_output_shows_for_the_attempt_that_stands(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    """pytest shows a failed or passed test's teardown output from the passed
    teardowns it filed: those of the attempts that were rerun stay out."""
    pytester.makepyfile(
        test_suite=FLAKY
        + """
@pytest.fixture
def told(request):
    number = attempt(request.node.name)
    yield number
    print(f"{request.node.name} torn down after attempt {number}")

def test_broken(told):
    assert 0

def test_flaky(told):
    assert told >= 2
"""
    )
    result, _ = run(pytester, "--batchflow-reruns=2", "-rA", *(xdist() if workers else ()))
    assert result.parseoutcomes() == {"failed": 1, "rerun": 3, "flaky": 1}
    out = result.stdout.str()
    assert out.count("torn down after attempt") == 2, out
    result.stdout.fnmatch_lines(
        [
            "*= FAILURES =*",
            "*- Captured stdout teardown -*",
            "test_broken torn down after attempt 3",
            "*= PASSES =*",
            "*- Captured stdout teardown -*",
            "test_flaky torn down after attempt 2",
        ]
    )


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_test_whose_teardown_always_errors_is_not_called_flaky(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_teardown_error(bad_teardown):
    pass

def test_flaky():
    assert attempt("flaky") >= 2, "fails the first time"
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", "-v", *(xdist() if workers else ()))
    # Its call passes on the rerun, but its teardown fails again: an error, not
    # flaky. The first attempt's call counts as passed, as pytest counts it.
    assert result.parseoutcomes() == {"passed": 1, "errors": 1, "rerun": 2, "flaky": 1}
    flaky = [line for line in result.stdout.lines if "FLAKY" in line and "::test_" in line]
    assert len(flaky) == 2  # its status line and its line in the flaky tests section
    assert all("test_suite.py::test_flaky" in line for line in flaky), flaky
    tests = by_name(data)
    assert tests["test_teardown_error"].outcome == "error"
    assert tests["test_flaky"].outcome == "flaky"


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_failure_whose_rerun_a_stopped_run_never_ran_is_named(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_stopped():
    if attempt("stopped") == 2:
        raise KeyboardInterrupt  # what Ctrl-C raises while the rerun starts
    assert 0, "first failure"

def test_fine():
    pass
"""
    )
    result, data = run(pytester, "--batchflow-reruns=2", *(xdist() if workers else ()))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # pytest counted the failure as a rerun; batchflow says that it stands.
    result.stdout.fnmatch_lines(
        [
            "batchflow: test_suite.py::test_stopped failed and the run stopped before its "
            "rerun: *first failure*"
        ]
    )
    assert by_name(data)["test_stopped"].outcome == "failed"


#: With one rerun, 0.2 s apart: test_a's rerun fails and -x stops the run
#: while test_b waits for its own.
CUT_OFF = """
import time

def test_a():
    assert 0, "a fails"

def test_b():
    time.sleep(0.5)
    assert 0, "b fails"

def test_c():
    pass
"""
CUT_OFF_ARGS = ("--batchflow-reruns=1", "--batchflow-reruns-delay=0.2", "-x")


def junit_failures(pytester: pytest.Pytester) -> str | None:
    """The failures pytest's ``--junitxml=junit.xml`` counted."""
    suite = ElementTree.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    return suite.get("failures")


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_rerun_that_x_cut_off_is_a_failure_pytest_counts(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_suite=CUT_OFF)
    args = (*CUT_OFF_ARGS, "--junitxml=junit.xml")
    result, data = run(pytester, *args, *(xdist() if workers else ()))
    # xdist stops a run at -x as an interruption, with or without batchflow.
    stopped = pytest.ExitCode.INTERRUPTED if workers else pytest.ExitCode.TESTS_FAILED
    assert result.ret == stopped
    # Each failure that stands is one pytest counted, in its line and its XML.
    assert result.parseoutcomes()["failed"] == 2
    result.stdout.fnmatch_lines(
        [
            "*_ test_b _*",
            "batchflow: the rerun of this failure did not run: the run stopped (stopping after "
            "1 failures)",
        ]
    )
    # (pytest 8.0's short summary leaves the message out.)
    result.stdout.fnmatch_lines(["FAILED test_suite.py::test_b*"])
    result.stdout.fnmatch_lines(["*! stopping after 1 failures !*"])  # what stopped it
    result.stdout.no_fnmatch_line("*the run stopped before its rerun*")
    assert junit_failures(pytester) == "2"
    tests = by_name(data)
    assert tests["test_b"].outcome == "failed"
    assert tests["test_b"].longrepr is not None
    assert "b fails" in tests["test_b"].longrepr


CRASHES = """
import os
import time

def test_crashes():
    os._exit(3)

def test_other():
    time.sleep(0.5)
"""


def test_a_rerun_that_xdists_worker_restart_limit_cut_off_is_a_failure(
    pytester: pytest.Pytester,
) -> None:
    """--max-worker-restart=0 ends xdist's loop as if the run had finished: the
    crash waiting for its rerun exited 0, missing from --junitxml."""
    pytester.makepyfile(test_suite=CRASHES)
    args = ("--batchflow-reruns=1", "--max-worker-restart=0", "--junitxml=junit.xml")
    result, data = run(pytester, *args, *xdist())
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes()["failed"] == 1
    result.stdout.fnmatch_lines(
        [
            "batchflow: the rerun of this failure did not run: the run stopped (worker gw* "
            "crashed and worker restarting disabled)",
        ]
    )
    assert junit_failures(pytester) == "1"
    assert (data.exitstatus, data.failed_by) == (1, ["tests"])
    crashed = by_name(data)["test_crashes"]
    assert crashed.outcome == "failed"
    # Of the worker its attempt ran on (the report's lane), not the controller.
    assert crashed.worker == crashed.attempts[-1].worker
    assert crashed.worker.startswith("gw")


def test_stepwise_keeps_the_failure_that_stopped_it_when_x_cuts_reruns_off(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=CUT_OFF)
    result = pytester.runpytest_subprocess("--batchflow", *CUT_OFF_ARGS, "--sw")
    assert result.parseoutcomes() == {"failed": 1, "passed": 1, "rerun": 2}
    # --sw resumes from test_a next time: it still fails, and is not skipped.
    stepwise = json.loads((pytester.path / ".pytest_cache/v/cache/stepwise").read_text())
    # pytest 8.3 and later keep a record; before, the node id alone.
    last = stepwise if isinstance(stepwise, str) else stepwise["last_failed"]
    assert last == "test_suite.py::test_a"
    result.stdout.fnmatch_lines(
        ["batchflow: test_suite.py::test_b failed and the run stopped before its rerun: *"]
    )


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_chain_waits_behind_a_rerun_down_to_its_last_test(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_a():
    assert attempt("a") >= 2, "fails the first time"

@pytest.mark.depends_on("test_a")
def test_b():
    pass

@pytest.mark.depends_on("test_b")
def test_c():
    pass

def test_other():
    pass
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", *(xdist() if workers else ()))
    # test_c waited behind test_b, which waited for test_a's rerun.
    assert result.parseoutcomes() == {"passed": 3, "rerun": 1, "flaky": 1}
    tests = by_name(data)
    assert (tests["test_b"].outcome, tests["test_c"].outcome) == ("passed", "passed")
    assert tests["test_a"].stop <= tests["test_b"].start <= tests["test_c"].start


def test_serially_the_rerun_comes_at_the_end_of_the_batch(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n"
        "    first: paths=test_a.py reruns=1\n"
        "    second: paths=test_b.py after=first\n"
    )
    pytester.makepyfile(
        test_a=FLAKY
        + """
def test_one():
    assert attempt("one") == 2

def test_two():
    pass

@pytest.mark.depends_on("test_one")
def test_three():
    pass

def test_four():
    pass
""",
        test_b="def test_later():\n    pass\n",
    )
    result, data = run(pytester, "-v")
    result.stdout.fnmatch_lines(
        [
            "test_a.py::test_one RERUN*",
            "test_a.py::test_two PASSED*",
            "test_a.py::test_four PASSED*",
            # The rerun at the end of its batch, its dependent behind it, then the next batch.
            "test_a.py::test_one FLAKY*",
            "test_a.py::test_three PASSED*",
            "test_b.py::test_later PASSED*",
        ]
    )
    tests = by_name(data)
    assert tests["test_three"].start >= tests["test_one"].stop
    assert result.ret == pytest.ExitCode.OK


def test_under_xdist_the_rerun_goes_to_another_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
import time

def test_flaky():
    assert attempt("flaky") == 2

@pytest.mark.depends_on("test_flaky")
def test_dependent():
    pass

@pytest.mark.parametrize("n", range(6))
def test_filler(n):
    time.sleep(0.1)
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", *xdist())
    assert result.parseoutcomes() == {"passed": 7, "rerun": 1, "flaky": 1}
    tests = by_name(data)
    flaky = tests["test_flaky"]
    assert flaky.outcome == "flaky"
    assert flaky.worker != flaky.attempts[0].worker
    assert {flaky.worker, flaky.attempts[0].worker} == {"gw0", "gw1"}
    # Its dependent waited for the final outcome, not the first attempt.
    assert tests["test_dependent"].outcome == "passed"
    assert tests["test_dependent"].start >= flaky.stop


def test_a_crashed_worker_s_test_is_rerun_within_its_budget(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_dies_once():
    if attempt("dies") == 1:
        os._exit(3)

@pytest.mark.parametrize("n", range(4))
def test_other(n):
    pass
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", *xdist())
    assert result.parseoutcomes() == {"passed": 4, "rerun": 1, "flaky": 1}
    tests = by_name(data)
    dies = tests["test_dies_once"]
    assert dies.outcome == "flaky"
    assert dies.attempts[0].worker != dies.worker
    assert {dies.attempts[0].worker, dies.worker} <= {"gw0", "gw1", "gw2"}
    assert "crashed" in (dies.attempts[0].longrepr or "")
    assert all(tests[f"test_other[{n}]"].outcome == "passed" for n in range(4))


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_strict_flaky_fails_the_run(pytester: pytest.Pytester, workers: tuple[str, ...]) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_flaky():
    assert attempt("flaky") >= 2

def test_fine():
    pass
"""
    )
    args = ("--batchflow-reruns=1", *(xdist() if workers else ()))
    result, data = run(pytester, *args, "--batchflow-strict-flaky")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1, "flaky": 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data.exitstatus == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["batchflow: 1 flaky test fails the run (--batchflow-strict-flaky)"]
    )
    assert [batch.status for batch in data.batches] == ["failed"]
    (pytester.path / ".attempts-flaky").unlink()
    relaxed, data = run(pytester, *args)
    assert relaxed.ret == pytest.ExitCode.OK
    assert [batch.status for batch in data.batches] == ["passed"]


def test_budget_precedence_marker_then_batch_line_then_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    lined: paths=test_lined.py reruns=1\n")
    pytester.makepyfile(
        test_default="""
import pytest

def test_option():
    assert 0

@pytest.mark.reruns(0)
def test_marker_none():
    assert 0

@pytest.mark.reruns(3)
def test_marker_three():
    assert 0
""",
        test_lined="def test_line():\n    assert 0\n",
    )
    _, data = run(pytester, "--batchflow-reruns=2")
    attempts = {name: len(test.attempts) + 1 for name, test in by_name(data).items()}
    assert attempts == {
        "test_option": 3,
        "test_marker_none": 1,
        "test_marker_three": 4,
        "test_line": 2,
    }
    assert {batch.name: batch.reruns for batch in data.batches} == {"lined": 1, "default": 2}


def test_benchmark_batches_are_not_rerun_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n"
        "    perf: kind=benchmark paths=test_perf.py\n"
        "    perf2: kind=benchmark paths=test_perf2.py reruns=1\n"
    )
    pytester.makepyfile(
        test_perf="def test_speed():\n    assert 0\n",
        test_perf2="def test_speed2():\n    assert 0\n",
    )
    _, data = run(pytester, "--batchflow-reruns=2")
    tests = by_name(data)
    assert len(tests["test_speed"].attempts) == 0
    assert len(tests["test_speed2"].attempts) == 1


def test_patterns_pick_which_failures_are_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
def test_network():
    raise ConnectionError("peer reset")

def test_logic():
    assert 1 == 2

def test_network_but_known():
    raise ConnectionError("known outage")
"""
    )
    _, data = run(
        pytester,
        "--batchflow-reruns=1",
        "--batchflow-reruns-only=ConnectionError",
        "--batchflow-reruns-except=known outage",
    )
    attempts = {name: len(test.attempts) for name, test in by_name(data).items()}
    assert attempts == {"test_network": 1, "test_logic": 0, "test_network_but_known": 0}


def test_skips_and_xfails_are_never_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
import pytest

def test_skip():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0

@pytest.mark.xfail(reason="fixed?")
def test_xpass():
    pass

@pytest.mark.xfail(reason="fixed?", strict=True)
def test_strict_xpass():
    pass  # fails as [XPASS(strict)]: a rerun would only pass again

def test_failing():
    assert 0

@pytest.mark.depends_on("test_failing")
def test_dependent():
    pass
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1")
    assert result.parseoutcomes() == {
        "failed": 2,
        "skipped": 2,
        "xfailed": 1,
        "xpassed": 1,
        "rerun": 1,
    }
    attempts = {name: len(test.attempts) for name, test in by_name(data).items()}
    assert attempts == {
        "test_skip": 0,
        "test_xfail": 0,
        "test_xpass": 0,
        "test_strict_xpass": 0,
        "test_failing": 1,
        "test_dependent": 0,
    }
    assert by_name(data)["test_dependent"].longrepr == (
        "batchflow: depends on test_suite.py::test_failing, which failed"
    )


def test_a_failing_teardown_is_rerun_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
@pytest.fixture
def resource():
    yield
    assert attempt("teardown") >= 2, "teardown failed"

def test_uses_resource(resource):
    pass
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1, "flaky": 1}
    attempt = by_name(data)["test_uses_resource"].attempts[0]
    assert attempt.outcome == "error"
    assert [p.when for p in attempt.phases if p.outcome == "rerun"] == ["teardown"]


def test_fixtures_are_set_up_and_torn_down_around_a_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a=FLAKY
        + """
LOG = pathlib.Path(__file__).with_name("fixtures.log")

@pytest.fixture(scope="module")
def module_resource():
    with LOG.open("a") as log:
        log.write("setup a\\n")
    yield
    with LOG.open("a") as log:
        log.write("teardown a\\n")

def test_flaky(module_resource):
    assert attempt("flaky") == 2

def test_fine(module_resource):
    pass
""",
        test_b="""
import pathlib
import pytest

LOG = pathlib.Path(__file__).with_name("fixtures.log")

@pytest.fixture(scope="module")
def other_resource():
    with LOG.open("a") as log:
        log.write("setup b\\n")
    yield
    with LOG.open("a") as log:
        log.write("teardown b\\n")

def test_b(other_resource):
    pass
""",
    )
    result, _ = run(pytester, "--batchflow-reruns=1")
    assert result.parseoutcomes() == {"passed": 2, "rerun": 1, "flaky": 1}
    # The rerun (at the end of the only batch, after test_b.py) sets test_a.py's
    # module fixture up again, and every setup has its teardown.
    assert (pytester.path / "fixtures.log").read_text().splitlines() == [
        "setup a",
        "teardown a",
        "setup b",
        "teardown b",
        "setup a",
        "teardown a",
    ]


def test_a_dependent_waiting_behind_a_rerun_does_not_keep_fixtures_up(
    pytester: pytest.Pytester,
) -> None:
    # test_one ran expecting test_two (same module) next; test_two must wait
    # for test_one's rerun, so test_b.py runs first: test_a.py's fixture is
    # torn down before test_b.py's is set up, as pytest would.
    pytester.makepyfile(
        test_a=FLAKY
        + """
LOG = pathlib.Path(__file__).with_name("fixtures.log")

@pytest.fixture(scope="module")
def module_resource():
    with LOG.open("a") as log:
        log.write("setup a\\n")
    yield
    with LOG.open("a") as log:
        log.write("teardown a\\n")

def test_one(module_resource):
    assert attempt("one") == 2

@pytest.mark.depends_on("test_one")
def test_two(module_resource):
    pass
""",
        test_b="""
import pathlib

def test_b():
    with pathlib.Path(__file__).with_name("fixtures.log").open("a") as log:
        log.write("test b\\n")
""",
    )
    result, _ = run(pytester, "--batchflow-reruns=1", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 2, "rerun": 1, "flaky": 1}
    assert (pytester.path / "fixtures.log").read_text().splitlines() == [
        "setup a",
        "teardown a",
        "test b",
        "setup a",
        "teardown a",
    ]


def test_the_delay_is_waited_and_doubles(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_flaky():
    assert attempt("flaky") == 3
"""
    )
    _, data = run(pytester, "--batchflow-reruns=2", "--batchflow-reruns-delay=0.3")
    test = by_name(data)["test_flaky"]
    first, second = test.attempts
    assert second.start - first.stop >= 0.3
    assert test.start - second.stop >= 0.6


def test_a_rerun_the_batch_stopped_for_leaves_the_failure(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    x: paths=test_suite.py maxfail=1\n")
    pytester.makepyfile(
        test_suite=FLAKY
        + """
@pytest.mark.reruns(1)
def test_flaky():
    assert attempt("flaky") == 2, "first attempt"

def test_broken():
    assert 0, "broken"
"""
    )
    result, data = run(pytester, "-p", "no:randomly")
    assert result.parseoutcomes() == {"failed": 2, "rerun": 1}
    test = by_name(data)["test_flaky"]
    assert test.outcome == "failed"
    assert test.longrepr is not None
    assert "first attempt" in test.longrepr
    assert test.longrepr.startswith(
        "batchflow: the rerun of this failure did not run: "
        "batch 'x' stopped after 1 failure (maxfail=1)\n"
    )
    # The short summary shows the reason (as far as the terminal is wide): pytest >= 9.0
    # shows a plain-text longrepr there, earlier ones only the node id.
    if pytest.version_tuple >= (9, 0):
        result.stdout.fnmatch_lines(["FAILED test_suite.py::test_flaky - batchflow: the rerun of*"])
    else:
        result.stdout.fnmatch_lines(["FAILED test_suite.py::test_flaky"])
    assert (pytester.path / ".attempts-flaky").read_text() == "1"  # never rerun


# -- quarantine ---------------------------------------------------------------------


QUARANTINE_SUITE = (
    FLAKY
    + """
def test_known_bug():
    assert 0, "ticket 12"

def test_fine():
    pass

@pytest.mark.depends_on("test_known_bug")
def test_after_bug():
    pass
"""
)


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_listed_test_s_failure_is_quarantined_and_fails_nothing(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_suite=QUARANTINE_SUITE)
    (pytester.path / "quarantine.txt").write_text(
        "# known failures\ntest_suite.py::test_known_bug  # ticket 12\n"
    )
    result, data = run(
        pytester, "--batchflow-quarantine=quarantine.txt", *(xdist() if workers else ())
    )
    assert result.ret == pytest.ExitCode.OK
    assert result.parseoutcomes() == {"passed": 1, "skipped": 1, "quarantined": 1}
    result.stdout.fnmatch_lines(
        [
            "*= quarantined tests (failures that do not fail the run) =*",
            "QUARANTINED test_suite.py::test_known_bug (listed in quarantine.txt): "
            "AssertionError: ticket 12",
        ]
    )
    tests = by_name(data)
    assert tests["test_known_bug"].outcome == "quarantined"
    # It still failed: what depends on it is skipped.
    assert tests["test_after_bug"].longrepr == (
        "batchflow: depends on test_suite.py::test_known_bug, which failed"
    )
    assert data.batches[0].status == "passed"


def test_a_quarantined_failure_counts_as_a_failure_in_the_history(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite="def test_known_bug():\n    assert 0\n")
    (pytester.path / "quarantine.txt").write_text("test_suite.py::test_known_bug\n")
    for _ in range(3):
        result, data = run(pytester, "--batchflow-quarantine=quarantine.txt")
        assert result.ret == pytest.ExitCode.OK
    # Before, its failures were "skipped" here and left out of its score.
    test = by_name(data)["test_known_bug"]
    assert (test.outcome, test.recent, test.flakiness) == (
        "quarantined",
        ["failed", "failed", "failed"],
        0.0,
    )
    flaky = pytester.run(sys.executable, "-m", "pytest_batchflow.cli", "flaky", "--all")
    rows = [line.split() for line in flaky.stdout.lines if "test_known_bug" in line]
    # Three counted runs, none excluded.
    assert rows == [["0.00", "3", "0", "0/0", "0", "test_suite.py::test_known_bug"]]


def test_auto_quarantine_enters_on_score_and_leaves_after_clean_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=FLAKY + WOBBLY + "\ndef test_fine():\n    pass\n")
    mode = pytester.path / "mode"
    args = ("--batchflow-reruns=1", "--batchflow-quarantine=auto:0.5")
    args += ("--batchflow-quarantine-release=2",)
    mode.write_text("flaky")
    first, _ = run(pytester, *args)  # flaky once: score 1.0 from now on
    first.stdout.no_fnmatch_line("*enters quarantine*")
    mode.write_text("broken")
    second, data = run(pytester, *args)
    second.stdout.fnmatch_lines(
        ["batchflow: test_suite.py::test_wobbly enters quarantine (flakiness score 1.00 >= 0.5)"]
    )
    assert by_name(data)["test_wobbly"].outcome == "quarantined"
    assert second.ret == pytest.ExitCode.OK
    mode.write_text("fixed")
    third, _ = run(pytester, *args)
    third.stdout.no_fnmatch_line("*leaves quarantine*")
    fourth, _ = run(pytester, *args)
    fourth.stdout.fnmatch_lines(
        ["batchflow: test_suite.py::test_wobbly leaves quarantine after 2 clean runs"]
    )
    # Out of quarantine, its old flakiness does not put it back; a failure fails again.
    mode.write_text("broken")
    fifth, data = run(pytester, *args)
    fifth.stdout.no_fnmatch_line("*enters quarantine*")
    assert by_name(data)["test_wobbly"].outcome == "failed"
    assert fifth.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(
    ("where", "spec"),
    [("command line", "Auto"), ("command line", "AUTO:0.5"), ("ini file", " Auto:0.5")],
)
def test_auto_quarantine_is_the_word_in_any_case(
    pytester: pytest.Pytester, where: str, spec: str
) -> None:
    # Like every other choice word; before, Auto was read as a file's name.
    pytester.makepyfile(test_suite=FLAKY + WOBBLY)
    mode = pytester.path / "mode"
    mode.write_text("flaky")
    run(pytester, "--batchflow-reruns=1")  # a score of 1.0 from now on
    mode.write_text("broken")
    if where == "ini file":
        pytester.makeini(f"[pytest]\nbatchflow_quarantine = quarantine.txt,{spec}\n")
        (pytester.path / "quarantine.txt").write_text("")
        args: tuple[str, ...] = ()
    else:
        args = (f"--batchflow-quarantine={spec}",)
    result, data = run(pytester, *args)
    result.stdout.fnmatch_lines(["batchflow: test_suite.py::test_wobbly enters quarantine *"])
    assert by_name(data)["test_wobbly"].outcome == "quarantined"
    assert result.ret == pytest.ExitCode.OK


def test_a_quarantine_file_named_auto_is_given_as_a_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite="def test_known_bug():\n    assert 0\n")
    (pytester.path / "Auto").write_text("test_suite.py::test_known_bug\n")
    result, data = run(pytester, "--batchflow-quarantine=./Auto")
    assert by_name(data)["test_known_bug"].outcome == "quarantined"
    result.stdout.fnmatch_lines(["QUARANTINED test_suite.py::test_known_bug (listed in Auto)*"])
    assert result.ret == pytest.ExitCode.OK


def test_x_under_xdist_stops_at_a_real_failure_not_a_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_flaky():
    assert attempt("flaky") == 2

@pytest.mark.parametrize("n", range(4))
def test_fine(n):
    pass
"""
    )
    result, _ = run(pytester, "--batchflow-reruns=1", "-x", *xdist())
    assert result.parseoutcomes() == {"passed": 4, "rerun": 1, "flaky": 1}
    assert result.ret == pytest.ExitCode.OK


def test_the_flaky_window_limits_which_runs_the_score_counts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=FLAKY + WOBBLY)
    mode = pytester.path / "mode"
    args = ("--batchflow-reruns=1", "--batchflow-quarantine=auto:0.3")
    mode.write_text("flaky")
    run(pytester, "--batchflow-reruns=1")  # no quarantine yet: just history
    mode.write_text("fixed")
    run(pytester, "--batchflow-reruns=1")
    mode.write_text("broken")
    # The last run alone was clean: a window of 1 sees a score of 0.
    narrow, data = run(pytester, *args, "--batchflow-flaky-window=1")
    narrow.stdout.no_fnmatch_line("*enters quarantine*")
    assert by_name(data)["test_wobbly"].outcome == "failed"
    # The default window sees the flaky run too.
    wide, data = run(pytester, *args)
    wide.stdout.fnmatch_lines(["batchflow: test_suite.py::test_wobbly enters quarantine *"])
    assert by_name(data)["test_wobbly"].outcome == "quarantined"


def test_a_serial_run_keeps_what_a_finalizer_prints_when_the_next_test_changes(
    pytester: pytest.Pytester,
) -> None:
    # test_z fails; its rerun was due at the batch's end, after test_x, so
    # test_x ran promising it as the next item and kept the module up. The
    # batch's timeout gives the rerun up: the module ends after test_x's
    # teardown report, and what its finalizer printed joins that teardown.
    # (A timeout of a second, which test_z's failure stays within on a busy
    # machine: at 0.3 s the test failed once under load.)
    pytester.makeini("[pytest]\nbatchflow_batches =\n    default: paths=. timeout=1 reruns=1\n")
    pytester.makeconftest(
        """
import logging
import pytest

@pytest.fixture(scope="module")
def service():
    yield
    print("stopping the service")
    logging.getLogger("service").warning("service stopped")
"""
    )
    pytester.makepyfile(
        test_b="""
import time

def test_z():
    assert 0

def test_x(service):
    time.sleep(1.5)
"""
    )
    result, data = run(pytester, "-rA")
    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "rerun": 1}
    result.stdout.fnmatch_lines(
        [
            "batchflow: the rerun of this failure did not run: batch 'default' spent its "
            "timeout of 1s"
        ]
    )
    result.stdout.re_match_lines(
        [
            r"-+ Captured stdout teardown -+",
            "stopping the service",
            r"-+ Captured log teardown -+",
            r"WARNING  service:conftest\.py:\d+ service stopped",
        ],
        consecutive=True,
    )
    tests = by_name(data)
    assert tests["test_x"].stdout == "stopping the service\n"
    assert tests["test_x"].log.endswith("service stopped")


#: pytest-rerunfailures' protocol, for one rerun: a failed attempt's failing
#: reports are logged with the outcome "rerun", then the test runs again at
#: once, each attempt between its own logstart and logfinish.
IN_PLACE_RERUNS = """
import pytest
from _pytest.runner import runtestprotocol

def pytest_runtest_protocol(item, nextitem):
    for attempt in (1, 2):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        again = attempt == 1 and any(report.failed for report in reports)
        for report in reports:
            if again and report.failed:
                report.outcome = "rerun"
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if not again:
            return True
"""


def test_a_batchflow_rerun_after_another_plugin_s_keeps_its_output(
    pytester: pytest.Pytester,
) -> None:
    """The other plugin's attempts ran in an earlier protocol of the item: the
    output they ended with is no prefix of the batchflow rerun's own, which
    starts afresh (a test printing the same line each time lost it)."""
    pytester.makeconftest(IN_PLACE_RERUNS)
    pytester.makepyfile(
        test_in_place=FLAKY
        + """
def test_third_time():
    number = attempt("third")
    print("the same line every attempt")
    assert number >= 3
"""
    )
    result, data = run(pytester, "--batchflow-reruns=2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 2}
    assert by_name(data)["test_third_time"].stdout == "the same line every attempt\n"


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_another_plugin_s_rerun_is_an_earlier_attempt(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makeconftest(IN_PLACE_RERUNS)
    pytester.makepyfile(
        test_in_place=FLAKY
        + """
def test_flaky():
    assert attempt("flaky") == 2, "first attempt"

def test_broken():
    print("broken output")
    assert 0, "always"

@pytest.mark.depends_on("test_flaky")
def test_after_flaky():
    pass

@pytest.mark.depends_on("test_broken")
def test_after_broken():
    pass
"""
    )
    result, data = run(pytester, "-rA", *workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # pytest's counts and status are the plugin's, as without batchflow: the
    # test that passed on its rerun passed; batchflow's outputs call it flaky.
    assert result.parseoutcomes() == {"failed": 1, "passed": 2, "skipped": 1, "rerun": 2}
    result.stdout.fnmatch_lines(["PASSED test_in_place.py::test_flaky"])
    result.stdout.fnmatch_lines(["FLAKY test_in_place.py::test_flaky: passed at attempt 2"])
    tests = by_name(data)
    outcomes = {name: test.outcome for name, test in tests.items()}
    assert outcomes == {
        "test_flaky": "flaky",
        "test_broken": "failed",
        "test_after_flaky": "passed",
        "test_after_broken": "skipped",
    }
    assert [a.outcome for a in tests["test_flaky"].attempts] == ["failed"]
    assert "first attempt" in (tests["test_flaky"].attempts[0].longrepr or "")
    assert [a.outcome for a in tests["test_broken"].attempts] == ["failed"]
    # The plugin's rerun ran on the same item: the result keeps its last
    # attempt's output alone, as batchflow's own reruns do.
    assert tests["test_broken"].stdout == "broken output\n"


@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_test_failing_by_its_subtests_is_rerun_and_can_be_flaky(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if not hasattr(pytest, "Subtests"):
        pytest.skip("pytest's subtests fixture needs pytest 9")
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_sub_only(subtests):
    n = attempt("sub_only")
    with subtests.test(n=n):
        assert n >= 2, "first attempt"

def test_sub_and_main(subtests):
    n = attempt("sub_and_main")
    with subtests.test(n=n):
        assert n >= 2, "first attempt"
    assert n >= 2

def test_sub_broken(subtests):
    with subtests.test():
        assert 0, "always"
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", *(xdist() if workers else ()))
    tests = by_name(data)
    assert tests["test_sub_only"].outcome == "flaky"
    assert tests["test_sub_and_main"].outcome == "flaky"
    assert tests["test_sub_broken"].outcome == "failed"
    assert len(tests["test_sub_broken"].attempts) == 1
    # The subtest's error, not only pytest's "contains 1 failed subtest".
    assert "AssertionError: always" in (tests["test_sub_broken"].longrepr or "")
    assert "first attempt" in (tests["test_sub_only"].attempts[0].longrepr or "")
    # The first attempts' failed subtests are reruns, not failures of the run.
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2  # test_sub_broken: its subtest and itself
    result.stdout.fnmatch_lines(
        ["FAILED test_suite.py::test_sub_broken - contains 1 failed subtest"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data.failed_by == ["tests"]


SUBTESTS_NEEDED = pytest.mark.skipif(
    not hasattr(pytest, "Subtests"), reason="pytest's subtests fixture needs pytest 9"
)


@SUBTESTS_NEEDED
@pytest.mark.parametrize("verbosity", ["", "-q", "-v"], ids=["default", "quiet", "verbose"])
@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_pytest_s_tally_counts_each_rerun_once_and_only_the_last_attempt_s_subtests(
    pytester: pytest.Pytester, workers: tuple[str, ...], verbosity: str
) -> None:
    """As pytest-rerunfailures counts: one rerun an attempt, however many of its
    subtests failed, and the subtests of the attempt that stands (a rerun runs
    them all again)."""
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_sub(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i != 1

def test_flaky_sub(subtests):
    n = attempt("flaky_sub")
    with subtests.test(case="a"):
        pass
    with subtests.test(case="b"):
        assert n >= 2
    with subtests.test(case="c"):
        assert n >= 2

def test_sub_then_skip(subtests):
    n = attempt("sub_then_skip")
    with subtests.test(n=n):
        assert n >= 2
    if n == 1:
        pytest.skip("the attempt is over: no skip to count")

def test_ok(): pass
"""
    )
    args = ["--batchflow-reruns=2", *([verbosity] if verbosity else [])]
    result, data = run(pytester, *args, *(xdist() if workers else ()))
    # test_sub: two reruns, then its subtest i=1 and itself fail, 2 subtests
    # pass; test_flaky_sub: one rerun, then its 3 subtests pass and it is
    # flaky; test_sub_then_skip: one rerun, then its subtest passes.
    expected = {"failed": 2, "passed": 1, "rerun": 4, "flaky": 2}
    if verbosity:  # "6 subtests passed": pytest counts them when told -q or -v
        expected["subtests"] = 6
    assert result.parseoutcomes() == expected
    assert [len(test.attempts) for test in data.tests] == [2, 1, 1, 0]


@SUBTESTS_NEEDED
@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_a_quarantined_test_failing_by_a_subtest_fails_nothing(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_suite="""
def test_known(subtests):
    with subtests.test(case=1):
        assert 0, "ticket 7"

def test_fine(): pass
"""
    )
    (pytester.path / "quarantine.txt").write_text("test_suite.py::test_known\n")
    result, data = run(
        pytester, "--batchflow-quarantine=quarantine.txt", *(xdist() if workers else ())
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "failed" not in result.parseoutcomes()
    assert by_name(data)["test_known"].outcome == "quarantined"


@SUBTESTS_NEEDED
def test_a_rerun_that_skips_is_not_flaky_and_an_attempt_failed_by_a_subtest_is_failed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_gone():
    if attempt("gone") == 1:
        assert 0, "first attempt"
    pytest.skip("service gone")

def test_sub_then_skip(subtests):
    n = attempt("sub_then_skip")
    with subtests.test(n=n):
        assert n >= 2, "first attempt"
    if n == 1:
        pytest.skip("after the subtest")

def test_many(subtests):
    for i in range(15):
        with subtests.test(i=i):
            assert 0, f"case {i}"
"""
    )
    result, data = run(pytester, "--batchflow-reruns=1", "-rs")
    tests = by_name(data)
    # A rerun that skips leaves the failure standing; pytest shows the skip.
    assert tests["test_gone"].outcome == "failed"
    result.stdout.no_fnmatch_line("*test_gone*flaky*")
    result.stdout.no_fnmatch_line("*FLAKY*test_gone*")
    result.stdout.fnmatch_lines(["SKIPPED * service gone"])
    # The first attempt failed by its subtest, though its call then skipped.
    assert [a.outcome for a in tests["test_sub_then_skip"].attempts] == ["failed"]
    assert tests["test_sub_then_skip"].outcome == "flaky"
    assert result.parseoutcomes()["flaky"] == 1
    # Ten failed subtests' errors are kept, the rest counted.
    text = tests["test_many"].longrepr or ""
    assert text.count("SUBFAILED") == 10
    assert text.endswith("... and 5 more failed subtests")


@SUBTESTS_NEEDED
@pytest.mark.parametrize("workers", [(), ("xdist",)], ids=["serial", "xdist"])
def test_an_attempt_with_a_failure_not_to_rerun_is_not_rerun_for_a_later_one(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    """With --batchflow-reruns-only, an attempt whose first failed subtest is
    not to be rerun stands, though a later subtest fails in a way that would be."""
    pytester.makepyfile(
        test_suite=FLAKY
        + """
def test_mixed(subtests):
    n = attempt("mixed")
    with subtests.test(case="bug"):
        assert n >= 2, "a real bug"
    with subtests.test(case="network"):
        if n == 1:
            raise ConnectionError("the network blinked")

def test_fine(): pass
"""
    )
    result, data = run(
        pytester,
        "--batchflow-reruns=1",
        "--batchflow-reruns-only=ConnectionError",
        *(xdist() if workers else ()),
    )
    test = by_name(data)["test_mixed"]
    assert test.outcome == "failed"
    assert test.attempts == []
    assert "flaky" not in result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


#: The flaky package's protocol: the item's whole protocol again, each attempt
#: between its own logstart and logfinish, while its setup or call fails and
#: runs are left; the report of a setup or call to be run again is kept back,
#: the others are logged.
WITHHELD_RERUNS = """
import pytest
from _pytest import runner

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    runs = 2
    original = runner.call_and_report
    held = []

    def call_and_report(item, when, log=True, **kwds):
        report = original(item, when, log=False, **kwds)
        if when in ("setup", "call") and report.failed and len(held) + 1 < runs:
            held.append(report)
        elif log:
            item.ihook.pytest_runtest_logreport(report=report)
        return report

    runner.call_and_report = call_and_report
    try:
        while True:
            before = len(held)
            runner.pytest_runtest_protocol(item, nextitem)
            if len(held) == before:
                return True
    finally:
        runner.call_and_report = original
"""


@pytest.fixture(params=[(), ("-n", "2")], ids=["serial", "xdist"])
def held_back(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> tuple[str, ...]:
    """A project whose conftest keeps reports back as the flaky package does
    (WITHHELD_RERUNS); the arguments of a serial run or of one on two workers."""
    workers: tuple[str, ...] = request.param
    if workers:
        pytest.importorskip("xdist")
    pytester.makeconftest(WITHHELD_RERUNS)
    return workers


HELD_BACK = (
    FLAKY
    + """
def test_broken():
    assert 0, "always"

@pytest.mark.depends_on("test_broken")
def test_after_broken():
    pass

def test_second_time():
    assert attempt("second") == 2, "first attempt"

@pytest.mark.depends_on("test_second_time")
def test_after_second():
    pass
"""
)


def test_an_attempt_whose_call_another_plugin_kept_back_is_not_the_test_s_end(
    pytester: pytest.Pytester, held_back: tuple[str, ...]
) -> None:
    """The flaky package runs a failed test again at once and logs only the last
    attempt's call. Each attempt before it, setup and teardown passed and no
    call, read as a pass: the test's dependents ran after a test that failed,
    and its failure came late, as an error."""
    pytester.makepyfile(test_held=HELD_BACK)
    result, data = run(pytester, "-rA", *held_back)
    assert result.parseoutcomes() == {"failed": 1, "passed": 2, "skipped": 1}
    tests = by_name(data)
    assert tests["test_broken"].outcome == "failed"
    assert "always" in (tests["test_broken"].longrepr or "")
    assert tests["test_after_broken"].outcome == "skipped"
    assert tests["test_second_time"].outcome == "passed"
    assert tests["test_after_second"].outcome == "passed"
    # The result is the last attempt: one setup, one call, one teardown.
    assert [phase.when for phase in tests["test_broken"].phases] == ["setup", "call", "teardown"]
    assert tests["test_broken"].attempts == []
    assert "flaky's reruns are on too" not in result.stdout.str()  # no batchflow reruns


def test_a_teardown_error_of_a_kept_back_attempt_stays_the_test_s(
    pytester: pytest.Pytester, held_back: tuple[str, ...]
) -> None:
    """The plugin logs a kept-back attempt's teardown, and pytest counts its
    error: the test's result has it too, as a teardown error."""
    pytester.makepyfile(
        test_held=FLAKY
        + """
@pytest.fixture
def breaks_once():
    yield
    if attempt("teardown") == 1:
        raise RuntimeError("teardown of the first attempt")

def test_second_time(breaks_once):
    assert attempt("second") == 2, "first attempt"
"""
    )
    result, data = run(pytester, *held_back)
    assert result.parseoutcomes() == {"passed": 1, "errors": 1}
    (test,) = data.tests
    assert test.outcome == "error"
    assert "teardown of the first attempt" in (test.longrepr or "")
    assert [(p.when, p.outcome) for p in test.phases][-1] == ("teardown", "failed")


def test_batchflow_reruns_a_test_after_another_plugin_s_kept_back_attempts(
    pytester: pytest.Pytester, held_back: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_held=HELD_BACK)
    result, data = run(pytester, "--batchflow-reruns=1", *held_back)
    assert result.parseoutcomes() == {"failed": 1, "passed": 2, "skipped": 1, "rerun": 1}
    tests = by_name(data)
    assert tests["test_broken"].outcome == "failed"
    assert [attempt.outcome for attempt in tests["test_broken"].attempts] == ["failed"]
    assert tests["test_after_broken"].outcome == "skipped"
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: flaky's reruns (its @flaky decorator or marker) are on too: "
            "it reruns a failure at once, before batchflow's reruns see it; use one plugin's "
            "reruns, e.g. -p no:flaky with --batchflow-reruns"
        ]
    )


def test_an_attempt_whose_setup_another_plugin_kept_back_is_not_the_test_s_end(
    pytester: pytest.Pytester, held_back: tuple[str, ...]
) -> None:
    """The flaky package keeps a failed setup's report back too: the attempt
    logs only its teardown. It is no pass, and the test's result is its last
    attempt's."""
    pytester.makepyfile(
        test_held=FLAKY
        + """
@pytest.fixture
def shaky():
    assert attempt("fixture") == 2, "the fixture fails the first time"

def test_fails_after_its_setup(shaky):
    assert 0, "the call fails"

@pytest.mark.depends_on("test_fails_after_its_setup")
def test_after():
    pass
"""
    )
    result, data = run(pytester, *held_back)
    assert result.parseoutcomes() == {"failed": 1, "skipped": 1}
    tests = by_name(data)
    test = tests["test_fails_after_its_setup"]
    assert test.outcome == "failed"
    assert [phase.when for phase in test.phases] == ["setup", "call", "teardown"]
    assert "the call fails" in (test.longrepr or "")
    assert tests["test_after"].outcome == "skipped"


#: A plugin that keeps a failed call's report back and does not run the test again.
WITHHELD_FOR_GOOD = """
import pytest
from _pytest import runner

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    original = runner.call_and_report

    def call_and_report(item, when, log=True, **kwds):
        report = original(item, when, log=False, **kwds)
        if not (when == "call" and report.failed):
            item.ihook.pytest_runtest_logreport(report=report)
        return report

    runner.call_and_report = call_and_report
    try:
        runner.pytest_runtest_protocol(item, nextitem)
    finally:
        runner.call_and_report = original
    return True
"""


@pytest.mark.parametrize(
    "args", [(), ("--batchflow-reruns=1",), ("-n", "2")], ids=["serial", "reruns", "xdist"]
)
def test_an_attempt_whose_call_was_kept_back_for_good_is_the_test_s_last(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    """Without batchflow's reruns pytest's own loop runs the tests: the test is
    done before the next one's setup, which may depend on it."""
    if "-n" in args:
        pytest.importorskip("xdist")
    pytester.makeconftest(WITHHELD_FOR_GOOD)
    pytester.makepyfile(
        test_gone="""
import pytest

def test_gone():
    assert 0

@pytest.mark.depends_on("test_gone")
def test_after():
    pass
"""
    )
    result, data = run(pytester, *args)
    assert result.parseoutcomes() == {"passed": 1}
    tests = by_name(data)
    assert [phase.when for phase in tests["test_gone"].phases] == ["setup", "teardown"]
    assert tests["test_after"].outcome == "passed"


#: What batchflow reads of pytest-rerunfailures: its plugin name, --reruns and
#: --force-reruns (the plugin itself where it is installed).
RERUNFAILURES_OPTIONS = """
def pytest_addoption(parser):
    for flag in ("--reruns", "--force-reruns"):
        try:
            parser.addoption(flag, type=int, default=None)
        except ValueError:  # pytest-rerunfailures is installed: its own
            pass

def pytest_configure(config):
    config.addinivalue_line("markers", "flaky(reruns=1): pytest-rerunfailures' marker")
    if not config.pluginmanager.has_plugin("rerunfailures"):
        config.pluginmanager.register(object(), "rerunfailures")
"""

MARKED = """
import pytest

@pytest.mark.flaky(reruns=1)
def test_theirs(): pass

@pytest.mark.reruns(1)
def test_ours(): pass
"""


@pytest.mark.parametrize(
    ("args", "tests", "warned"),
    [
        (("--reruns=1", "--batchflow-reruns=1"), "test_one.py", True),
        (("--force-reruns=1", "--batchflow-reruns=1"), "test_one.py", True),
        (("--batchflow-reruns=1",), "test_marked.py::test_theirs", True),
        (("--reruns=1",), "test_marked.py::test_ours", True),
        (("--reruns=1",), "test_one.py", False),
        (("--batchflow-reruns=1",), "test_one.py", False),
        ((), "test_marked.py::test_theirs", False),
        # Each plugin's marker on a test of its own: no test is rerun by both.
        ((), "test_marked.py", False),
    ],
    ids=[
        "both",
        "force",
        "their-marker",
        "our-marker",
        "theirs-only",
        "ours-only",
        "marker-only",
        "markers-apart",
    ],
)
def test_both_plugins_reruns_on_get_a_warning_line(
    pytester: pytest.Pytester, args: tuple[str, ...], tests: str, warned: bool
) -> None:
    pytester.makeconftest(RERUNFAILURES_OPTIONS)
    pytester.makepyfile(test_one="def test_one(): pass", test_marked=MARKED)
    result = pytester.runpytest("--batchflow", *args, tests)
    assert result.ret == pytest.ExitCode.OK
    line = (
        "batchflow: warning: pytest-rerunfailures' reruns are on too: it reruns a failure at "
        "once, before batchflow's reruns see it; use one plugin's reruns, e.g. "
        "-p no:rerunfailures with --batchflow-reruns"
    )
    assert (line in result.stdout.lines) is warned


#: pytest-retry's and the flaky package's switches, and their plugin names.
OTHER_PLUGINS_OPTIONS = """
def pytest_addoption(parser):
    for flag, kind in (("--retries", int), ("--force-flaky", None)):
        try:
            if kind is None:
                parser.addoption(flag, action="store_true", dest="force_flaky")
            else:
                parser.addoption(flag, type=kind, default=None)
        except ValueError:  # the plugin is installed: its own
            pass
    try:
        parser.addini("retries", "pytest-retry's", default=0)
    except ValueError:
        pass

def pytest_configure(config):
    config.addinivalue_line("markers", "flaky: their marker")
    for name in ("pytest-retry", "flaky"):
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(object(), name)
"""


@pytest.mark.parametrize(
    ("args", "ini", "named"),
    [
        (("--retries=1", "--batchflow-reruns=1", "test_one.py"), "", ["pytest-retry's retries"]),
        (("--batchflow-reruns=1", "test_one.py"), "retries = 2", ["pytest-retry's retries"]),
        # pytest-retry reads "--retries or retries": 0 leaves the ini setting on.
        (
            ("--retries=0", "--batchflow-reruns=1", "test_one.py"),
            "retries = 2",
            ["pytest-retry's retries"],
        ),
        (("--retries=0", "--batchflow-reruns=1", "test_one.py"), "", []),
        (("--force-flaky", "--batchflow-reruns=1", "test_one.py"), "", ["flaky's reruns"]),
        (("--batchflow-reruns=1", "test_marked.py"), "", ["pytest-retry's", "flaky's"]),
        (("--retries=1", "--force-flaky", "test_one.py"), "", []),
    ],
    ids=[
        "retries",
        "retries-ini",
        "retries-0-ini",
        "retries-off",
        "force-flaky",
        "marker",
        "not-ours",
    ],
)
def test_pytest_retry_s_and_flaky_s_reruns_on_too_get_a_warning_line(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, named: list[str]
) -> None:
    pytester.makeconftest(OTHER_PLUGINS_OPTIONS)
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(
        test_one="def test_one(): pass",
        test_marked="import pytest\n\n@pytest.mark.flaky\ndef test_marked(): pass\n",
    )
    result = pytester.runpytest("--batchflow", *args)
    assert result.ret == pytest.ExitCode.OK
    warnings = [line for line in result.stdout.lines if "are on too" in line]
    assert len(warnings) == len(named), warnings
    for line, what in zip(warnings, named, strict=True):
        assert line.startswith(f"batchflow: warning: {what}"), line
        assert "it reruns a failure at once, before batchflow's reruns see it" in line


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_runs_on_other_edits_are_not_runs_of_the_same_commit(pytester: pytest.Pytester) -> None:
    def git(*arguments: str) -> str:
        identity = ("-c", "user.name=t", "-c", "user.email=t@example.com")
        command = ["git", *identity, *arguments]
        return subprocess.run(command, cwd=pytester.path, check=True, capture_output=True).stdout

    source = pytester.path / "test_calc.py"
    source.write_text("def test_calc():\n    assert 1 + 1 == 2\n")
    # The run's outputs, and pytester's, ignored as a project would.
    (pytester.path / ".gitignore").write_text("result.json\nstdout\nstderr\nrunpytest-*\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD").decode().strip()
    args = ("--batchflow-quarantine=auto",)
    outcomes = []
    # Edited, put back, edited again: before, all four runs were at HEAD, so
    # three flips made the broken test "flaky" and the fourth run quarantined it
    # and passed.
    for expected in ("2", "3", "2", "3"):
        source.write_text(f"def test_calc():\n    assert 1 + 1 == {expected}\n")
        result, data = run(pytester, *args)
        outcomes.append((data.environment.git_commit, by_name(data)["test_calc"].outcome))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*enters quarantine*")
    commits = [commit for commit, _ in outcomes]
    assert [outcome for _, outcome in outcomes] == ["passed", "failed", "passed", "failed"]
    # The file as committed is HEAD itself; each edit is HEAD and a fingerprint of its own.
    assert commits[0] == commits[2] == head
    assert commits[1] != commits[3]
    assert all(re.fullmatch(rf"{head}\+[0-9a-f]{{12}}", c) for c in commits[1::2])
