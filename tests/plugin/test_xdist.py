"""Batchflow's scheduler under pytest-xdist: every rule holds across workers.

Overlaps are read from the start and stop times in the JSON result, never
from wall-clock assertions.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from itertools import combinations
from pathlib import Path
from xml.etree import ElementTree

import pytest
from json_runs import by_name, overlap, run

from pytest_batchflow.orchestrator import _with_teardown_output
from pytest_batchflow.results import RunResult, TestResult

pytest.importorskip("xdist")


SLEEPY = "import time\nimport pytest\n\ndef nap():\n    time.sleep(0.4)\n"


def test_diamond_runs_its_middle_in_parallel_and_respects_every_edge(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_diamond=SLEEPY
        + """
def test_a(): nap()

@pytest.mark.depends_on("test_a")
def test_b(): nap()

@pytest.mark.depends_on("test_a")
def test_c(): nap()

@pytest.mark.depends_on("test_b", "test_c")
def test_d(): nap()
"""
    )
    result, data = run(pytester, "-n", "2")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["batchflow: 1 batch, 4 tests, 4 dependencies", "*= batchflow =*"])
    tests = by_name(data)
    assert overlap(tests["test_b"], tests["test_c"])
    assert {tests["test_b"].worker, tests["test_c"].worker} == {"gw0", "gw1"}
    assert tests["test_a"].stop <= min(tests["test_b"].start, tests["test_c"].start)
    assert max(tests["test_b"].stop, tests["test_c"].stop) <= tests["test_d"].start


def test_dependent_of_a_failure_is_skipped_and_never_sent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chain="""
import pytest

@pytest.fixture
def resource(request):
    with open("setups.txt", "a") as log:
        log.write(request.node.name + "\\n")

def test_create():
    assert False

@pytest.mark.depends_on("test_create")
def test_update(resource):
    pass

@pytest.mark.depends_on("test_update")
def test_delete(resource):
    pass

def test_other(resource):
    pass
"""
    )
    result, data = run(pytester, "-n", "2", "-rs")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*batchflow: depends on test_chain.py::test_create, which failed",
            "*batchflow: depends on test_chain.py::test_update, which was skipped",
        ]
    )
    assert (pytester.path / "setups.txt").read_text().split() == ["test_other"]
    tests = by_name(data)
    assert tests["test_update"].worker == tests["test_delete"].worker == "controller"


POLICY_INI = """
[pytest]
batchflow_batches =
    first:  paths=test_first.py
    later:  paths=test_later.py after=first
    one:    paths=test_one.py mode=serial
    alone:  paths=test_alone.py mode=exclusive
    capped: paths=test_capped.py workers=1
"""


def test_batch_modes_caps_after_and_locks_hold_on_three_workers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(POLICY_INI)
    body = SLEEPY + "".join(f"\ndef test_{n}(): nap()\n" for n in range(3))
    pytester.makepyfile(
        test_first=body,
        test_later=body,
        test_one=body,
        test_alone=body,
        test_capped=body,
        test_locked=SLEEPY
        + "".join(f'\n@pytest.mark.locks("db")\ndef test_lock{n}(): nap()\n' for n in range(3)),
    )
    result, data = run(pytester, "-n", "3")
    result.assert_outcomes(passed=18)
    tests = {test.nodeid: test for test in data.tests}

    def of(module: str) -> list[TestResult]:
        return [t for nodeid, t in tests.items() if nodeid.startswith(module)]

    assert max(t.stop for t in of("test_first.py")) <= min(t.start for t in of("test_later.py"))
    for module in ("test_one.py", "test_capped.py", "test_locked.py"):
        for a, b in combinations(of(module), 2):
            assert not overlap(a, b), (a.nodeid, b.nodeid)
    serial = of("test_one.py")
    assert [t.nodeid for t in sorted(serial, key=lambda t: t.start)] == [t.nodeid for t in serial]
    alone = of("test_alone.py")
    window = (min(t.start for t in alone), max(t.stop for t in alone))
    others = [t for t in data.tests if not t.nodeid.startswith("test_alone.py")]
    assert all(t.stop <= window[0] or t.start >= window[1] for t in others)
    assert len({t.worker for t in data.tests}) == 3


def test_maxfail_of_a_batch_holds_across_workers(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    fragile: maxfail=1 paths=test_f.py\n")
    pytester.makepyfile(
        test_f=SLEEPY
        + "\ndef test_0(): assert 0\n"
        + "".join(
            f"\n@pytest.mark.depends_on('test_0')\ndef test_{n}(): pass\n" for n in range(1, 3)
        )
        + "".join(f"\ndef test_free{n}(): nap()\n" for n in range(6))
    )
    result, data = run(pytester, "-n", "2", "-rs")
    outcomes = [t.outcome for t in data.tests]
    assert outcomes.count("failed") == 1
    # The failure's dependents and what had not started are skipped; what was
    # already running when the failure came in finishes.
    assert outcomes.count("skipped") >= 2
    result.stdout.fnmatch_lines(["*batch 'fragile' stopped after 1 failure (maxfail=1)*"])


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail=2"]], ids=["x", "maxfail"])
def test_x_stops_the_workers_soon_however_many_short_tests_they_hold(
    pytester: pytest.Pytester, stop: list[str]
) -> None:
    """Short tests go to a worker many at a time; when -x or --maxfail stops
    the session, those it had not started are taken back, as xdist's own
    modes hold few: the run ended with 21 to 30 failures of 30, not one."""
    pytester.makepyfile(
        test_x="""
import time
import pytest

@pytest.mark.parametrize("i", range(40))
def test_pass(i): time.sleep(0.01)

@pytest.mark.parametrize("i", range(30))
def test_fail(i): assert False

@pytest.mark.parametrize("i", range(40))
def test_after(i): time.sleep(0.01)
"""
    )
    result, data = run(pytester, "-n", "2", "-p", "no:randomly", *stop)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # as plain xdist's
    failed = [t.nodeid for t in data.tests if t.outcome == "failed"]
    # A few more than the limit: the failing worker runs on until it reads
    # the request (3 to 7 seen with --maxfail=2, on pytest 8.0 and 9.2).
    assert 1 <= len(failed) <= 10, failed
    assert not [t.nodeid for t in data.tests if "test_after" in t.nodeid]


CRASH_SUITE = """
import os
import pytest

def test_first():
    pass

def test_dies():
    os._exit(3)

@pytest.mark.depends_on("test_dies")
def test_dependent():
    pass

def test_after_1():
    pass

def test_after_2():
    pass
"""


def test_crashed_worker_fails_its_test_skips_dependents_and_keeps_the_rest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_crash=CRASH_SUITE)
    result, data = run(pytester, "-n", "2", "-rs")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*replacing crashed worker gw*",
            "*worker 'gw*' crashed while running 'test_crash.py::test_dies'*",
            "*depends on test_crash.py::test_dies, which failed",
        ]
    )
    tests = by_name(data)
    assert tests["test_dies"].outcome == "failed"
    assert "crashed" in (tests["test_dies"].longrepr or "")
    assert {t.outcome for n, t in tests.items() if n.startswith("test_after")} == {"passed"}
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        stored = dict(db.execute("SELECT nodeid, outcome FROM attempts").fetchall())
    assert stored["test_crash.py::test_dies"] == "failed"
    assert stored["test_crash.py::test_after_2"] == "passed"


#: pytest-rerunfailures' crash handler (16.x), as it runs on an xdist controller.
RERUNFAILURES_CRASH_HANDLER = """
def pytest_handlecrashitem(crashitem, report, sched):
    sched.mark_test_pending(crashitem)
    report.outcome = "rerun"
"""


@pytest.mark.parametrize("reruns", [0, 1], ids=["no-budget", "batchflow-reruns"])
def test_a_crash_another_plugin_asks_to_rerun_still_fails_the_run(
    pytester: pytest.Pytester, reruns: int
) -> None:
    # With pytest-rerunfailures' --reruns, its handler made the crash report
    # a rerun that never came: "1 passed, 1 rerun", exit code 0.
    pytester.makeconftest(RERUNFAILURES_CRASH_HANDLER)
    pytester.makepyfile(
        test_c="import os\ndef test_crash():\n    os._exit(1)\ndef test_ok(): pass\n"
    )
    result, data = run(pytester, "-n", "2", "-rf", f"--batchflow-reruns={reruns}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["passed"], outcomes.get("rerun", 0)) == (1, 1, reruns)
    note = (
        "batchflow: warning: a plugin asked to rerun the crashed test test_c.py::test_crash; "
        "batchflow's scheduler reruns crashed tests within their --batchflow-reruns budget only"
    )
    result.stdout.fnmatch_lines(
        [note, "FAILED test_c.py::test_crash*"]  # pytest 8.0 shows no message here
    )
    assert result.stdout.lines.count(note) == 1  # asked after each crash, said once
    result.stdout.no_fnmatch_line("*the run stopped before its rerun*")
    assert by_name(data)["test_crash"].outcome == "failed"
    assert data.exitstatus == pytest.ExitCode.TESTS_FAILED


#: Short tests (known from a first run) that, in the second, each take a
#: while; test_a fails at once, and a test run after that with no next item
#: (its worker's shutdown behind it) kills its worker.
CRASH_AFTER_STOP = {
    "conftest": """
import pytest

next_item = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    next_item[:] = [nextitem]
    yield
""",
    "test_stop": """
import os
import time

from conftest import next_item

SECOND = os.path.exists("second")

def test_a_fails():
    open("stopped", "w").close()
    assert not SECOND

def test_b():
    pass
"""
    + "".join(
        f"""
def test_b{n}():
    if SECOND:
        time.sleep(0.5)
        if os.path.exists("stopped") and next_item == [None]:
            os._exit(1)
"""
        for n in range(12)
    ),
}


def test_a_crash_after_x_stops_the_session_is_still_the_test_s(
    pytester: pytest.Pytester,
) -> None:
    # -x: xdist tells each worker to shut down and batchflow takes back all
    # but the 3 tests at the head of each queue (short tests go out
    # together), with nothing behind the last. A worker that died in that
    # last test was said to have crashed between tests: the crash named no
    # test, and the run reported the test as not run.
    pytester.makepyfile(**CRASH_AFTER_STOP)
    run(pytester, "-n", "2")[0].assert_outcomes(passed=14)  # the history
    (pytester.path / "second").touch()
    result, _ = run(pytester, "-n", "2", "-x")
    replaced = [line for line in result.stdout.lines if "replacing crashed worker" in line]
    # Each crash's failure section (pytest 8.0's short summary has no message).
    crashes = [line for line in result.stdout.lines if re.match(r"worker '.*' crashed while", line)]
    assert replaced
    assert len(crashes) == len(replaced), result.stdout.str()


def test_max_worker_restart_is_respected_and_nothing_hangs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash=CRASH_SUITE)
    result, _ = run(pytester, "-n", "2", "--max-worker-restart=0")
    result.stdout.fnmatch_lines(["*worker gw* crashed and worker restarting disabled*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_same_outcomes_as_the_serial_run(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    base: paths=test_base.py\n"
        "    top: paths=test_top.py after=base\n"
    )
    pytester.makepyfile(
        test_base="""
import pytest
def test_ok(): pass
def test_bad(): assert 0
@pytest.mark.depends_on("test_bad")
def test_after_bad(): pass
@pytest.mark.xfail(reason="known")
def test_xfail(): assert 0
@pytest.mark.parametrize("n", range(4))
def test_rows(n): assert n != 3
@pytest.mark.depends_on("test_rows")
def test_all_rows(): pass
""",
        test_top="def test_top(): pass",
    )
    outcomes = {}
    summaries = {}
    for workers in ("0", "2", "4"):
        result, data = run(pytester, "-n", workers, "-rs")
        outcomes[workers] = {t.nodeid: t.outcome for t in data.tests}
        summaries[workers] = sorted(
            line for line in result.outlines if line.startswith("SKIPPED [")
        )
    assert outcomes["0"] == outcomes["2"] == outcomes["4"]
    assert outcomes["0"]["test_top.py::test_top"] == "skipped"
    # The short summary too: a skipped test whose function carries marks is
    # named by its line, the others are folded by file, as pytest does.
    assert summaries["0"] == summaries["2"] == summaries["4"]
    assert summaries["0"] == [
        "SKIPPED [1] test_base.py:10: batchflow: depends on test_base.py::test_rows[3], "
        "which failed",
        "SKIPPED [1] test_base.py:4: batchflow: depends on test_base.py::test_bad, which failed",
        "SKIPPED [1] test_top.py: batchflow: upstream batch 'base' had 2 failures",
    ]


def test_a_skip_s_path_is_relative_to_where_pytest_was_started(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ini sits above the test directory; pytest is started inside it.
    pytester.makeini("[pytest]\n")
    sub = pytester.mkdir("sub")
    (sub / "test_top.py").write_text(
        "import pytest\n\n"
        "def test_bad(): assert 0\n\n"
        '@pytest.mark.depends_on("test_bad")\n'
        "def test_after(): pass\n"
    )
    monkeypatch.chdir(sub)
    lines = {}
    for workers in ("0", "2"):
        result = pytester.runpytest_subprocess(
            "--batchflow", "-p", "no:cacheprovider", "-rs", "-n", workers
        )
        lines[workers] = [line for line in result.outlines if line.startswith("SKIPPED [")]
    assert (
        lines["0"]
        == lines["2"]
        == [
            "SKIPPED [1] test_top.py:5: batchflow: depends on sub/test_top.py::test_bad, "
            "which failed"
        ]
    )


@pytest.mark.parametrize("verbosity", ["-q", "--no-header", "-v"])
def test_xdist_s_own_start_lines_are_printed(pytester: pytest.Pytester, verbosity: str) -> None:
    # xdist prints its status ("2 workers [3 items]") once every worker has
    # collected, and with -v the scheduler's name; batchflow adds its header.
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass")

    def start(*args: str) -> list[str]:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-n", "2", verbosity, *args
        )
        result.assert_outcomes(passed=3)
        lines = result.stdout.lines
        first = next(i for i, line in enumerate(lines) if line.startswith(("created", "bringing")))
        last = next(i for i, line in enumerate(lines) if "::test_" in line or line[:3] == "...")
        return lines[first:last]

    plain, batchflow = start(), start("--batchflow")
    header = "batchflow: 1 batch, 3 tests, 0 dependencies"
    assert [line.replace("LoadScheduling", "BatchflowScheduling") for line in plain] == [
        line for line in batchflow if line != header
    ]
    if verbosity != "-q":
        assert "2 workers [3 items]" in batchflow
        assert header in batchflow
    else:  # as xdist's status line, and pytest's "collected N items"
        assert header not in batchflow


def test_the_controller_s_hooks_see_every_object_as_without_batchflow(
    pytester: pytest.Pytester,
) -> None:
    # gc.get_referrers and gc.get_objects, from the controller's hooks during and
    # after the run: Hypothesis's register_random warns when it finds no referrer
    # (an error under filterwarnings = error), as trio's import makes it do.
    pytester.makeconftest(
        """
import gc

class Held:
    pass

HELD = Held()

def seen(when):
    referrers = len(gc.get_referrers(HELD))
    found = sum(isinstance(o, Held) for o in gc.get_objects())
    return f"{when}: {referrers} referrer, {found} found"

def pytest_runtest_logreport(report):
    if report.when == "teardown" and report.nodeid.endswith("test_b"):
        print(seen("logreport"))

def pytest_sessionfinish(session):
    print(seen("sessionfinish"))

def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(seen("terminal summary"))
"""
    )
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass")
    expected = [
        "logreport: 1 referrer, 1 found",
        "sessionfinish: 1 referrer, 1 found",
        "terminal summary: 1 referrer, 1 found",
    ]
    for args in ([], ["--batchflow"]):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "-n", "2", *args)
        result.assert_outcomes(passed=2)
        seen = re.findall(r"[a-z ]+: \d+ referrer, \d+ found", result.stdout.str())
        assert [line.strip(" ") for line in seen] == expected


LATE_WARNINGS = """
import warnings
import pytest

@pytest.fixture(scope="module")
def resource():
    yield
    warnings.warn("closing late", DeprecationWarning)
    warnings.warn("noisy", UserWarning)

def test_first(resource):
    pass

@pytest.mark.filterwarnings("error::DeprecationWarning", "ignore::UserWarning")
def test_last(resource):
    pass
"""


def test_a_module_finalizer_runs_under_the_last_test_s_marks(pytester: pytest.Pytester) -> None:
    # In a plain run the module's finalizer runs in test_last's teardown, under
    # its warning filters; so it does with batchflow.
    pytester.makepyfile(test_late=LATE_WARNINGS)
    for args in ([], ["--batchflow"]):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1", *args)
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(
            ["*ERROR at teardown of test_last*", "E *DeprecationWarning: closing late"]
        )
        assert "noisy" not in result.stdout.str()


def test_a_finalizer_left_to_the_release_item_runs_under_the_last_test_s_marks(
    pytester: pytest.Pytester,
) -> None:
    # test_later waits for a test of another module, which waits for
    # test_last: the module's fixtures stay up behind test_last, and its
    # release item ends them as the worker moves on, with test_last's marks.
    pytester.makepyfile(
        test_late=LATE_WARNINGS
        + """
@pytest.mark.depends_on("test_z.py::test_between")
@pytest.mark.filterwarnings("error::DeprecationWarning", "ignore::UserWarning")
def test_later(resource):
    pass
""",
        test_z="""
import pytest

@pytest.mark.depends_on("test_late.py::test_last")
def test_between():
    pass
""",
    )
    result, data = run(pytester, "-n", "1")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_last*",
            "E *DeprecationWarning: closing late",
            "*ERROR at teardown of test_later*",
            "E *DeprecationWarning: closing late",
        ]
    )
    assert "noisy" not in result.stdout.str()
    tests = by_name(data)
    assert tests["test_last"].stop <= tests["test_between"].start
    assert tests["test_between"].stop <= tests["test_later"].start
    assert tests["test_last"].outcome == tests["test_later"].outcome == "error"


def test_planning_error_found_by_a_worker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cycle="""
import pytest
@pytest.mark.depends_on("test_b")
def test_a(): pass
@pytest.mark.depends_on("test_a")
def test_b(): pass
"""
    )
    result = pytester.runpytest_subprocess("--batchflow", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: batchflow: dependency cycle: test_cycle.py::test_a -> *; remove one of these*"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_plan_shows_the_lower_bound_for_the_workers_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_p=SLEEPY + "".join(f"\ndef test_{n}(): nap()\n" for n in range(4)))
    first = ["--batchflow", "-p", "no:cacheprovider", "--batchflow-json=r.json"]
    pytester.runpytest_subprocess(*first)
    # From what the first run measured: a loaded machine stretches the naps.
    measured = json.loads((pytester.path / "r.json").read_text())["tests"]
    durations = [test["duration"] for test in measured]
    result = pytester.runpytest_subprocess("--batchflow-plan", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    line = next(line for line in result.stdout.lines if line.startswith("lower bound:"))
    shown = re.fullmatch(r"lower bound: ([\d.]+)s on 2 workers \(critical path ([\d.]+)s\)", line)
    assert shown is not None, line
    assert float(shown[1]) == pytest.approx(max(sum(durations) / 2, max(durations)), abs=0.011)
    assert float(shown[2]) == pytest.approx(max(durations), abs=0.011)


def test_different_collections_are_reported_as_xdist_does(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import os
def pytest_collection_modifyitems(items):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
        items.reverse()
"""
    )
    pytester.makepyfile(test_two="def test_a(): pass\ndef test_b(): pass\n")
    result = pytester.runpytest_subprocess("--batchflow", "-n", "2")
    result.stdout.fnmatch_lines(["*Different tests were collected between gw? and gw?*"])
    assert result.ret != pytest.ExitCode.OK


def test_workers_with_nothing_left_are_shut_down_and_the_run_ends_cleanly(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one=SLEEPY + "\ndef test_only(): nap()\n")
    result, data = run(pytester, "-n", "3")
    assert result.ret == pytest.ExitCode.OK
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*= batchflow =*", "default *1 *1 *0 *0 *passed"])
    assert [t.outcome for t in data.tests] == ["passed"]


def test_timeout_of_a_batch_holds_across_workers(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    slow: paths=test_slow.py timeout=1\n"
        "    other: paths=test_other.py\n"
    )
    # The batch's clock starts when its first test is sent. A slow test lasts
    # over 0.6 s and holds its worker, so each of the two workers is sent at
    # most two slow tests within the batch's second: at least two of the six
    # are left over however slow the machine is, and exact counts are not.
    nap = "import time\n\ndef nap():\n    time.sleep(0.6)\n"
    pytester.makepyfile(
        test_slow=nap
        + "".join(f"\ndef test_slow{n}():\n    nap()\n    assert {n} % 2\n" for n in range(6)),
        test_other=nap + "".join(f"\ndef test_other{n}(): nap()\n" for n in range(4)),
    )
    result, data = run(pytester, "-n", "2", "-rs")
    tests = by_name(data)
    slow = {name: t for name, t in tests.items() if name.startswith("test_slow")}
    ran = {name: t for name, t in slow.items() if t.outcome != "skipped"}
    skipped = {name: t for name, t in slow.items() if t.outcome == "skipped"}
    assert len(slow) == 6
    assert len(ran) >= 1
    assert len(skipped) >= 2
    # What started finishes as it would have: odd tests pass, even ones fail.
    assert {name: t.outcome for name, t in ran.items()} == {
        name: "passed" if int(name[-1]) % 2 else "failed" for name in ran
    }
    assert {t.worker for t in ran.values()} <= {"gw0", "gw1"}
    reason = "batchflow: batch 'slow' spent its timeout of 1s"
    assert {t.worker for t in skipped.values()} == {"controller"}
    assert all(t.longrepr is not None and reason in t.longrepr for t in skipped.values())
    assert {t.outcome for name, t in tests.items() if name.startswith("test_other")} == {"passed"}
    failed = sum(t.outcome == "failed" for t in ran.values())
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == len(ran) - failed + 4
    assert outcomes.get("failed", 0) == failed
    assert outcomes["skipped"] == len(skipped)
    result.stdout.fnmatch_lines(
        [
            f"slow *test *6 *{len(ran) - failed} *{failed} *{len(skipped)} *",
            "other *test *4 *4 *0 *0 *passed",
            f"SKIPPED * test_slow.py: {reason}",
        ]
    )


COSTLY_MODULES = {
    f"test_{name}": f"""
import os
import pathlib
import time
import pytest

@pytest.fixture(scope="module")
def {name}_service():
    time.sleep({cost})
    with pathlib.Path(__file__).with_name("setups.log").open("a") as log:
        log.write("{name} " + os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    yield

@pytest.mark.parametrize("n", range(6))
def test_uses(n, {name}_service):
    time.sleep(0.05)
"""
    for name, cost in (("costly", 1.0), ("cheap", 0), ("plain", 0))
}


def test_a_costly_module_fixture_is_measured_and_set_up_on_one_worker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**COSTLY_MODULES)
    log = pytester.path / "setups.log"
    _, first = run(pytester, "-p", "no:randomly")  # serially: measures, fills the history
    setups = [p.shared_setup for t in first.tests for p in t.phases if p.when == "setup"]
    costly = [s for t, s in zip(first.tests, setups, strict=True) if "costly" in t.nodeid]
    # The first test of the module paid for its fixture, the others nothing.
    assert costly[0] is not None
    assert costly[0] >= 1.0
    assert all(s is not None and s < 0.1 for s in costly[1:])
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        stored = db.execute("SELECT MAX(shared_setup) FROM attempts").fetchone()[0]
    assert stored >= 1.0
    log.unlink()
    _, second = run(pytester, "-n", "2")
    setups_of = Counter(log.read_text().split()[0::2])
    # The costly fixture is set up on one worker only; free ones may be on both.
    assert setups_of["costly"] == 1
    assert {"cheap", "plain"} <= set(setups_of)
    assert len(second.tests) == 18


CHEAP_FIXTURE_MODULE = """
import os
import pathlib
import time

import pytest

@pytest.fixture(scope="module")
def service():
    time.sleep(0.004)
    with pathlib.Path(__file__).with_name("setups.log").open("a") as log:
        log.write(__name__ + "\\n")
    yield

@pytest.mark.parametrize("n", range(40))
def test_uses(n, service):
    pass
"""


def test_a_cheap_module_fixture_of_fast_tests_is_not_set_up_again_and_again(
    pytester: pytest.Pytester,
) -> None:
    # A 4 ms module fixture is cheap, but each of these tests takes a tenth of
    # a millisecond: with the history's durations (noise, for such tests) as
    # priorities, the workers would hop from module to module and set the
    # fixture up again at each return, dozens of times a module.
    pytester.makepyfile(**{f"test_cheap_{m}": CHEAP_FIXTURE_MODULE for m in range(4)})
    log = pytester.path / "setups.log"
    run(pytester, "-n", "2")  # fills the history
    log.unlink()
    _, second = run(pytester, "-n", "2")
    setups = Counter(log.read_text().split())
    assert len(second.tests) == 160
    # Each worker leaves a module only when it runs out of its tests.
    assert sum(setups.values()) <= 12, setups


WAIT_WATCH = """
import json
import os

from xdist import workermanage

seen = []
wait_for_workers = workermanage.NodeManager.teardown_nodes


def teardown_nodes(self):
    seen.append(os.path.exists("result.json"))
    with open("wait_seen.json", "w") as out:
        json.dump(seen, out)
    wait_for_workers(self)


workermanage.NodeManager.teardown_nodes = teardown_nodes
"""


def test_the_run_is_summed_up_while_xdist_waits_for_its_finished_workers(
    pytester: pytest.Pytester,
) -> None:
    # xdist's pytest_sessionfinish waits for the workers' processes to end;
    # when every worker has finished, batchflow's results are written first,
    # so that the two happen at once.
    pytester.makeconftest(WAIT_WATCH)
    pytester.makepyfile(test_some="def test_a(): pass\n\ndef test_b(): assert 0\n")
    result, data = run(pytester, "-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    assert json.loads((pytester.path / "wait_seen.json").read_text()) == [True]
    assert {test.nodeid.split("::")[-1]: test.outcome for test in data.tests} == {
        "test_a": "passed",
        "test_b": "failed",
    }


def test_an_interrupted_run_is_summed_up_after_xdist_waited_for_its_workers(
    pytester: pytest.Pytester,
) -> None:
    # Ctrl-C while a worker still runs a test: batchflow sums up once xdist
    # has waited for that worker, and keeps the result that arrived.
    pytester.makeconftest(
        WAIT_WATCH
        + """

import pytest

@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid):
    if nodeid.endswith("test_quick"):
        raise KeyboardInterrupt
"""
    )
    pytester.makepyfile(
        test_some="""
import time

def test_slow():
    time.sleep(2)

def test_quick():
    time.sleep(0.5)
"""
    )
    result, data = run(pytester, "-n", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert json.loads((pytester.path / "wait_seen.json").read_text()) == [False]
    assert {test.nodeid.split("::")[-1]: test.outcome for test in data.tests} == {
        "test_quick": "passed"
    }


def test_an_error_while_summing_up_early_still_lets_xdist_wait_for_its_workers(
    pytester: pytest.Pytester,
) -> None:
    # The error ends pytest as it did before batchflow summed up early (a
    # traceback and exit status 1), but only once xdist has waited.
    pytester.makeconftest(
        WAIT_WATCH
        + """

def pytest_batchflow_report_sections(config, result):
    raise RuntimeError("a broken report hook")
"""
    )
    pytester.makepyfile(test_some="def test_a(): pass\n")
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider", "-n", "2")
    assert result.ret == 1
    result.stderr.fnmatch_lines(["RuntimeError: a broken report hook"])
    assert json.loads((pytester.path / "wait_seen.json").read_text()) == [False]


GC_STATE = """
import gc
import json
import os

import pytest

if os.environ.get("USER_GC_OFF"):
    gc.disable()
seen = {"planning": [], "tests": []}


def pytest_deselected(items):
    seen["planning"].append(gc.isenabled())


def pytest_runtest_setup(item):
    seen["tests"].append(gc.isenabled())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    name = getattr(config, "workerinput", {}).get("workerid", "main")
    with open(f"gc_{name}.json", "w") as out:
        json.dump(seen, out)
"""


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
@pytest.mark.parametrize("user_gc_off", [False, True], ids=["gc-on", "gc-off"])
def test_the_collector_is_paused_while_planning_and_left_as_the_user_set_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: int, user_gc_off: bool
) -> None:
    # Planning allocates objects that all live on: the garbage collector is
    # paused while batchflow plans (here: while it deselects a batch), and the
    # tests run with it as the suite left it.
    if user_gc_off:
        monkeypatch.setenv("USER_GC_OFF", "1")
    pytester.makeconftest(GC_STATE)
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n"
        "    fast: paths=test_fast.py\n    slow: paths=test_slow.py\n"
    )
    pytester.makepyfile(
        test_fast="def test_a(): pass\n\ndef test_b(): pass\n",
        test_slow="def test_c(): pass\n",
    )
    args = ["--batchflow", "--batchflow-batches=fast"]
    result = pytester.runpytest_subprocess(*args, *(["-n", str(workers)] if workers else []))
    result.assert_outcomes(passed=2)
    seen: dict[str, list[bool]] = {"planning": [], "tests": []}
    for path in pytester.path.glob("gc_*.json"):
        for key, values in json.loads(path.read_text(encoding="utf-8")).items():
            seen[key] += values
    assert seen["planning"]
    assert not any(seen["planning"])
    assert len(seen["tests"]) == 2  # the tests' setups: batchflow's idle items meet no hook
    assert set(seen["tests"]) == {not user_gc_off}


HOOKS_SEE = """
import json

import pytest

seen = []


def pytest_runtest_setup(item):
    seen.append(("setup", item.nodeid, "db" in item.fixturenames))


def pytest_runtest_teardown(item, nextitem):
    seen.append(("teardown", item.nodeid, None))


@pytest.fixture(scope="module")
def service():
    yield
    print("service stopped")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    name = getattr(config, "workerinput", {}).get("workerid", "main")
    with open(f"seen_{name}.json", "w") as out:
        json.dump(seen, out)
"""


def test_hooks_and_marks_meet_only_the_tests(pytester: pytest.Pytester) -> None:
    # Where batchflow tears a module down between two tests (an idle item on
    # xdist workers), no hook of the suite meets anything but its tests: not
    # a conftest's (reading
    # item.fixturenames), not the skipping plugin (a skipif of the module or
    # class, an xfail(run=False)). Found on attrs' suite: -n 2 lost 260 tests
    # to an INTERNALERROR.
    pytester.makeconftest(HOOKS_SEE)
    pytester.makepyfile(
        test_a="""
import pytest
pytestmark = pytest.mark.skipif(True, reason="needs a tool")

def test_skipped(): pass
""",
        test_b="""
import pytest

@pytest.mark.xfail(run=False, reason="would crash")
class TestNotRun:
    def test_one(self): pass

def test_two(service): pass
def test_three(service): pass
""",
    )

    def hooks_saw() -> Counter[tuple[str, str, bool | None]]:
        found: Counter[tuple[str, str, bool | None]] = Counter()
        for path in pytester.path.glob("seen_*.json"):
            found.update(tuple(entry) for entry in json.loads(path.read_text(encoding="utf-8")))
            path.unlink()
        return found

    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2").assert_outcomes(
        passed=2, skipped=1, xfailed=1
    )
    without = hooks_saw()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--batchflow", "-n", "2")
    result.assert_outcomes(passed=2, skipped=1, xfailed=1)
    assert result.ret == 0
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert hooks_saw() == without
    assert {nodeid for _, nodeid, _ in without} == {
        "test_a.py::test_skipped",
        "test_b.py::TestNotRun::test_one",
        "test_b.py::test_two",
        "test_b.py::test_three",
    }


#: SQLAlchemy's test plugin, in short: its per-class set-up (the tables a class
#: needs) starts with a class's first test on a process and ends in a test's
#: teardown hook when the next item is in another class.
CLASS_STATE = """
import pytest

current = [None]


def pytest_runtest_setup(item):
    if current[0] is None:
        current[0] = item.getparent(pytest.Class)


def pytest_runtest_teardown(item, nextitem):
    if nextitem is None or nextitem.getparent(pytest.Class) is not current[0]:
        current[0] = None


@pytest.fixture
def set_up_class():
    return current[0].name
"""


def test_a_plugin_that_follows_the_next_item_sees_each_class_end(
    pytester: pytest.Pytester,
) -> None:
    # A release item under a class that still had tests to send told the
    # plugin that the worker went on in that class; when the worker's next
    # test came from another class, that test ran with the first class's
    # set-up (SQLAlchemy's suite under -n 2: up to 18 failures and 17 errors,
    # "no such table", in 4 runs).
    pytester.makeconftest(CLASS_STATE)
    body = "".join(
        f"    def test_{n}(self, set_up_class):\n        nap()\n"
        f"        assert set_up_class == {{name!r}}\n"
        for n in range(3)
    )
    pytester.makepyfile(
        test_classes=SLEEPY.replace("0.4", "0.1")
        + "".join(f"\n\nclass {name}:\n" + body.format(name=name) for name in ("TestA", "TestB"))
    )
    for _ in range(2):  # without a history, then with one
        result, data = run(pytester, "-n", "2")
        result.assert_outcomes(passed=6)
        assert {test.worker for test in data.tests} == {"gw0", "gw1"}
    result.stdout.fnmatch_lines(
        ["batchflow: conftest.py reads the next item of a test: a worker that waits*"]
    )


#: A module fixture that notes each of its setups, in a file per worker.
MODULE_SERVICE = """
import os

import pytest


@pytest.fixture(scope="module")
def service():
    with open(f"setup_{os.environ['PYTEST_XDIST_WORKER']}", "a") as out:
        out.write("set up;")
    yield
"""
#: pytest-rerunfailures' teardown hook (14.0 and later), in short: it keeps
#: the next item, only to hand it on to pytest's teardown after a rerun.
RERUNFAILURES_TEARDOWN = (
    MODULE_SERVICE
    + """

class RerunFailures:
    def pytest_runtest_teardown(self, item, nextitem):
        item._teardown_nextitem = nextitem


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("rerunfailures"):
        config.pluginmanager.register(RerunFailures(), "rerunfailures")
"""
)
#: A teardown hook with pytest's whole signature that reads only ``item`` (Pygments').
UNREAD_NEXT_ITEM = (
    MODULE_SERVICE
    + """

def pytest_runtest_teardown(item, nextitem):
    item.torn_down = True
"""
)


def run_module_with_service(pytester: pytest.Pytester, conftest: str) -> pytest.RunResult:
    """Six tests of a module that share its fixture, run on two workers; the
    fixture is set up once on each (a release item kept it up)."""
    pytester.makeconftest(conftest)
    pytester.makepyfile(
        test_module=SLEEPY + "".join(f"\ndef test_{n}(service):\n    nap()\n" for n in range(6))
    )
    result, _ = run(pytester, "-n", "2")
    result.assert_outcomes(passed=6)
    setups = [
        path.read_text(encoding="utf-8").count("set up") for path in pytester.path.glob("setup_gw*")
    ]
    assert setups == [1, 1]
    return result


def test_pytest_rerunfailures_does_not_count_as_following_the_next_item(
    pytester: pytest.Pytester,
) -> None:
    # Its teardown hook takes nextitem only to pass it on to pytest: counted
    # as a plugin that reads it, release items went under the session, and
    # every test sent alone (any test before the run knows how long tests
    # take, a long one, one with rules) tore its module's fixtures down.
    result = run_module_with_service(pytester, RERUNFAILURES_TEARDOWN)
    result.stdout.no_fnmatch_line("*reads the next item*")


def test_a_teardown_hook_that_takes_the_next_item_and_never_reads_it_does_not_count(
    pytester: pytest.Pytester,
) -> None:
    # Pygments' conftest has ``def pytest_runtest_teardown(item, nextitem):``
    # and uses only ``item``: counted as following the next item, its header
    # line said so, and every test sent alone tore its module's fixtures down.
    result = run_module_with_service(pytester, UNREAD_NEXT_ITEM)
    result.stdout.no_fnmatch_line("*reads the next item*")
    # The same hook reading it counts.
    pytester.makeconftest(UNREAD_NEXT_ITEM.replace("torn_down = True", "torn_down = nextitem"))
    result, _ = run(pytester, "-n", "2")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["batchflow: conftest.py reads the next item of a test: *"])


#: pytest-testmon, in short: it saves what a worker's tests ran when a test
#: has no next item (the worker's last one).
LAST_TESTS = """
import json

import pytest

last = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    yield
    if nextitem is None:
        last.append(item.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    name = getattr(config, "workerinput", {}).get("workerid", "main")
    with open(f"last_{name}.json", "w") as out:
        json.dump(last, out)
"""


@pytest.mark.parametrize("tests", [2, 6, 40])
def test_a_worker_s_last_test_has_no_next_item(pytester: pytest.Pytester, tests: int) -> None:
    # As in a plain xdist run: the worker's shutdown follows its last test.
    # A release item followed it instead, so pytest-testmon never saved the
    # data of each worker's last tests, and selected them again next time.
    # 6 tests: each of unknown length (a first run measures 8 before it
    # knows); the conftest reads the next item, so each gets a test behind it.
    pytester.makeconftest(LAST_TESTS)
    pytester.makepyfile(test_many="".join(f"def test_{n}():\n    pass\n\n" for n in range(tests)))
    result, data = run(pytester, "-n", "2")
    result.assert_outcomes(passed=tests)
    last_on = {}
    for test in sorted(data.tests, key=lambda test: test.start):
        last_on[test.worker] = test.nodeid
    seen = {
        path.stem.removeprefix("last_"): json.loads(path.read_text(encoding="utf-8"))
        for path in pytester.path.glob("last_*.json")
    }
    assert seen == {"main": [], **{worker: [nodeid] for worker, nodeid in last_on.items()}}


#: pytest-testmon's data path, in short: its protocol wrapper notes each item
#: a worker runs, a test's teardown report carries what was noted since the
#: last one (``nodes_files_lines``), and the controller reads each test's file
#: from its node id.
NOTED_ITEMS = """
import json

import pytest

noted = []
arrived = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    noted.append(item.nodeid)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "teardown":
        outcome.get_result().nodes_files_lines = dict.fromkeys(noted, {})
        noted.clear()


def pytest_runtest_logreport(report):
    arrived.extend(getattr(report, "nodes_files_lines", {}))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        with open("arrived.json", "w") as out:
            json.dump(arrived, out)
"""


def test_testmon_s_data_from_a_worker_names_only_tests(pytester: pytest.Pytester) -> None:
    # Release items run through testmon's protocol wrapper, which noted them
    # as tests; one under the session named no file, and testmon's controller
    # failed on it (IsADirectoryError, an internal error).
    pytester.makeconftest(NOTED_ITEMS)
    pytester.makepyfile(test_few="def test_a(): pass\n\ndef test_b(): pass\n\ndef test_c(): pass\n")
    result, _ = run(pytester, "-n", "2", "--batchflow-reruns=1")
    result.assert_outcomes(passed=3)
    arrived = json.loads((pytester.path / "arrived.json").read_text(encoding="utf-8"))
    assert sorted(arrived) == [f"test_few.py::test_{name}" for name in "abc"]


BROKEN_FINALIZERS = """
import pytest

@pytest.fixture(scope="module")
def service():
    yield
    raise RuntimeError("the service did not stop")

@pytest.fixture(scope="class")
def door():
    yield
    raise RuntimeError("the door stuck")
"""


def junit_cases(path: Path) -> list[tuple[str, list[str]]]:
    """pytest's JUnit XML: each test case's name and what it holds, sorted."""
    suite = ElementTree.parse(path).getroot().find("testsuite")
    assert suite is not None
    return sorted(
        (f"{case.get('classname')}.{case.get('name')}", [child.tag for child in case])
        for case in suite.iter("testcase")
    )


def test_pytest_s_junit_xml_has_each_test_once_when_a_finalizer_raises(
    pytester: pytest.Pytester,
) -> None:
    # A class's and a module's finalizer raise after their last test, as the
    # worker moves on: pytest reports each error in that test's teardown, and
    # so does batchflow, whose release item behind the test sits above the
    # class or module once none of its tests is left to send. Before, the
    # release item ran the finalizers: the error came after the test's
    # passing teardown, and pytest's --junitxml listed the test twice.
    pytester.makeconftest(BROKEN_FINALIZERS)
    pytester.makepyfile(
        test_f="""
class TestRoom:
    def test_in(self, door, service): pass
    def test_out(self, door, service): pass

def test_after(service): pass
""",
        test_g="def test_other(): pass\n",
    )
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1", "--junitxml=p.xml")
    plain.assert_outcomes(passed=4, errors=2)
    ours = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "1", "--batchflow", "--junitxml=ours.xml"
    )
    ours.assert_outcomes(passed=4, errors=2)
    ours.stdout.fnmatch_lines(
        [
            "ERROR test_f.py::TestRoom::test_out - RuntimeError: the door stuck",
            "ERROR test_f.py::test_after - RuntimeError: the service did not stop",
        ]
    )
    cases = junit_cases(pytester.path / "ours.xml")
    assert cases == junit_cases(pytester.path / "p.xml")
    assert cases == [
        ("test_f.TestRoom.test_in", []),
        ("test_f.TestRoom.test_out", ["error"]),
        ("test_f.test_after", ["error"]),
        ("test_g.test_other", []),
    ]


def test_a_module_outside_the_rootdir_keeps_its_fixtures_between_its_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest gives such a module the session's node id, "": the release item
    # behind its first tests must still sit under the module, not above it.
    project = pytester.mkdir("project")
    pytester.mkdir("other").joinpath("test_o.py").write_text(
        """
import pytest

SETUPS = []

@pytest.fixture(scope="module")
def resource():
    SETUPS.append(1)
    yield

def test_o1(resource): assert len(SETUPS) == 1
def test_o2(resource): assert len(SETUPS) == 1
def test_o3(resource): assert len(SETUPS) == 1
"""
    )
    monkeypatch.chdir(project)
    for workers in ("1", "2"):  # the module is set up once on each worker
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-n", workers, "--rootdir=.", "--batchflow",
            "../other/test_o.py",
        )  # fmt: skip
        result.assert_outcomes(passed=3)


def test_a_module_left_for_a_later_test_is_torn_down_when_the_worker_moves_on(
    pytester: pytest.Pytester,
) -> None:
    # test_two waits for a test of another module, which waits for test_one:
    # the worker moves on with test_two still to come, and the module's
    # fixtures end in its release item. Their error is told at test_one's
    # teardown, as pytest tells an error of the last test's teardown; it
    # comes after test_one's passing teardown report (pytest's --junitxml
    # then lists test_one twice: documented).
    pytester.makeconftest(BROKEN_FINALIZERS)
    pytester.makepyfile(
        test_f="""
import pytest

def test_one(service): pass

@pytest.mark.depends_on("test_g.py::test_other")
def test_two(service): pass
""",
        test_g="""
import pytest

@pytest.mark.depends_on("test_f.py::test_one")
def test_other(): pass
""",
    )
    result, data = run(pytester, "-n", "1")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_one _*",
            "*_ ERROR at teardown of test_two _*",
        ]
    )
    assert "batchflow-idle" not in result.stdout.str()
    tests = by_name(data)
    assert tests["test_other"].start >= tests["test_one"].stop
    assert tests["test_two"].start >= tests["test_other"].stop
    assert {name: test.outcome for name, test in tests.items()} == {
        "test_one": "error",
        "test_other": "passed",
        "test_two": "error",
    }


QUIET_FINALIZER = """
import logging

import pytest

@pytest.fixture(scope="module")
def service():
    yield
    print("stopping the service")
    logging.getLogger("service").warning("service stopped")
    with open("stops.txt", "a") as stops:
        stops.write("stop\\n")

@pytest.fixture
def handle():
    yield
    print("handle closed")
    logging.getLogger("handle").warning("handle closed")
"""

#: test_one's module fixture is left up for test_two, which waits for a test of
#: another module: its release item ends it as the worker moves on to that test.
MOVES_ON = {
    "test_f": """
import pytest

def test_one(service, handle): pass

@pytest.mark.depends_on("test_g.py::test_other")
def test_two(service, handle): pass
""",
    "test_g": """
import pytest

@pytest.mark.depends_on("test_f.py::test_one")
def test_other(): pass
""",
}
#: test_a fails, so test_b is never sent: the worker ends with test_a's module
#: up, and its last release item ends it after its last report.
ENDS = {
    "test_f": """
import pytest

def test_a(service, handle): assert 0

@pytest.mark.depends_on("test_a")
def test_b(service, handle): pass
""",
}


@pytest.mark.parametrize(
    ("suite", "outcomes", "carriers"),
    [
        (MOVES_ON, {"passed": 3}, ["test_one", "test_two"]),
        (ENDS, {"failed": 1, "skipped": 1}, ["test_a"]),
    ],
    ids=["worker-moves-on", "worker-ends"],
)
def test_what_a_passing_finalizer_prints_as_a_worker_moves_on_is_kept(
    pytester: pytest.Pytester, suite: dict[str, str], outcomes: dict[str, int], carriers: list[str]
) -> None:
    # pytest shows a finalizer's output at the teardown of the test it ran
    # after (-rP, -rA), in one section with the test's own teardown output:
    # for each time it ran, once, also when batchflow's release item ran it
    # after that test's teardown report.
    pytester.makeconftest(QUIET_FINALIZER)
    pytester.makepyfile(**suite)
    result, data = run(pytester, "-n", "1", "-rA")
    result.assert_outcomes(**outcomes)
    runs = (pytester.path / "stops.txt").read_text().count("stop")
    assert runs == len(carriers)
    text = result.stdout.str()
    assert text.count("- Captured stdout teardown -") == runs
    assert text.count("- Captured log teardown -") == runs
    # As one teardown captures it: stdout, then the log, a record a line.
    teardown = re.compile(
        r"- Captured stdout teardown -+\nhandle closed\nstopping the service\n"
        r"-+ Captured log teardown -+\n"
        r"WARNING  handle:conftest\.py:\d+ handle closed\n"
        r"WARNING  service:conftest\.py:\d+ service stopped\n"
    )
    assert len(teardown.findall(text)) == runs
    tests = by_name(data)
    for name, test in tests.items():
        if name in carriers:
            assert test.stdout.endswith("handle closed\nstopping the service\n")
            assert re.search(r"handle closed\nWARNING  service:\S+ service stopped$", test.log)
        else:
            assert "stopping" not in test.stdout


def test_a_release_item_run_again_reports_only_its_own_run_s_output(
    pytester: pytest.Pytester,
) -> None:
    # test_f's tests alternate with test_g's through their dependencies: the
    # worker's release item under test_f ends the module twice, after test_one
    # (passing) and after test_two (raising). Each run's output goes with it.
    pytester.makeconftest(
        """
import pytest

STOPS = []

@pytest.fixture(scope="module")
def service():
    yield
    STOPS.append(1)
    print(f"stop {len(STOPS)}")
    if len(STOPS) == 2:
        raise RuntimeError("the service did not stop")
"""
    )
    pytester.makepyfile(
        test_f="""
import pytest

def test_one(service): pass

@pytest.mark.depends_on("test_g.py::test_other1")
def test_two(service): pass

@pytest.mark.depends_on("test_g.py::test_other2")
def test_three(service): pass
""",
        test_g="""
import pytest

@pytest.mark.depends_on("test_f.py::test_one")
def test_other1(): pass

@pytest.mark.depends_on("test_f.py::test_two")
def test_other2(): pass
""",
    )
    result, data = run(pytester, "-n", "1", "-rA")
    result.assert_outcomes(passed=5, errors=1)
    errors = result.stdout.str().split("= ERRORS =")[1].split("= PASSES =")[0]
    assert "_ ERROR at teardown of test_two _" in errors
    assert "stop 2" in errors
    assert "stop 1" not in errors
    tests = by_name(data)
    assert [tests[name].stdout for name in ("test_one", "test_two", "test_three")] == [
        "stop 1\n",
        "stop 2\n",
        "stop 3\n",
    ]


def test_with_teardown_output_joins_as_one_teardown_would() -> None:
    sections = [
        ("Captured stdout call", "call\n"),
        ("Captured stdout teardown", "own\n"),
        ("Captured log teardown", "WARNING  a:x.py:1 own"),
    ]
    added = [
        ("Captured stderr teardown", "late err\n"),
        ("Captured stdout teardown", "late\n"),
        ("Captured log teardown", "WARNING  b:y.py:2 late"),
    ]
    assert _with_teardown_output(sections, added) == [
        ("Captured stdout call", "call\n"),
        ("Captured stdout teardown", "own\nlate\n"),
        ("Captured stderr teardown", "late err\n"),
        ("Captured log teardown", "WARNING  a:x.py:1 own\nWARNING  b:y.py:2 late"),
    ]
    # A teardown that captured nothing of its own: the sections in pytest's order.
    assert _with_teardown_output([("Captured log teardown", "L")], added[1:2]) == [
        ("Captured stdout teardown", "late\n"),
        ("Captured log teardown", "L"),
    ]


def test_a_finalizer_that_raises_as_a_worker_moves_on_is_reported_as_pytest_does(
    pytester: pytest.Pytester,
) -> None:
    # A module fixture's finalizer runs after the module's last test: pytest
    # reports its error, its warnings and an exception of a thread it ran at
    # the teardown of that test (here a skipped one), with the fixture's code
    # and what it printed; so does batchflow.
    # That test is an error in the JSON result and the history.
    pytester.makeconftest(
        """
import threading
import warnings

import pytest

@pytest.fixture(scope="module")
def service():
    yield
    print("stopping the service")
    warnings.warn("the service stops late", UserWarning)
    helper = threading.Thread(target=lambda: 1 / 0, name="stopper")
    helper.start()
    helper.join()
    raise RuntimeError("the service did not stop")
"""
    )
    pytester.makepyfile(
        test_f="""
import pytest

def test_one(service): pass
def test_two(service): pass

@pytest.mark.skip(reason="not today")
def test_three(): pass
""",
        test_g="def test_other(): pass\n",
    )
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1")
    plain.assert_outcomes(passed=3, skipped=1, errors=1, warnings=2)
    result, data = run(pytester, "-n", "1")
    result.assert_outcomes(passed=3, skipped=1, errors=1, warnings=2)
    expected = [
        "*_ ERROR at teardown of test_three _*",
        '>       raise RuntimeError("the service did not stop")',
        "E       RuntimeError: the service did not stop",
        "conftest.py:14: RuntimeError",
        "*- Captured stdout teardown -*",
        "stopping the service",
        "*= warnings summary =*",
        "test_f.py::test_three",
        "*UserWarning: the service stops late",
        "*PytestUnhandledThreadExceptionWarning*stopper*",
        "ERROR test_f.py::test_three - RuntimeError: the service did not stop",
    ]
    plain.stdout.fnmatch_lines(expected)
    result.stdout.fnmatch_lines(expected)
    assert "batchflow-idle" not in result.stdout.str()
    # The traceback is cut as pytest cuts it: no frame of pytest's, pluggy's or ours.
    errors = result.stdout.str().split("= ERRORS =")[1].split("= warnings summary =")[0]
    for frame in ("_pytest/", "pluggy/", "orchestrator.py"):
        assert frame not in errors
    outcomes = {test.nodeid: test.outcome for test in data.tests}
    assert outcomes == {
        "test_f.py::test_one": "passed",
        "test_f.py::test_two": "passed",
        "test_f.py::test_three": "error",
        "test_g.py::test_other": "passed",
    }
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        stored = dict(db.execute("SELECT nodeid, outcome FROM attempts"))
    assert stored["test_f.py::test_three"] == "error"
    assert stored["test_f.py::test_two"] == "passed"


def test_pytest_django_s_transactional_tests_run_after_the_others_on_every_worker(
    pytester: pytest.Pytester,
) -> None:
    """A transactional test empties its worker's test database when it ends, so
    pytest-django runs them after the others (as Django's runner does); the
    scheduler must not send one ahead of them, whatever the history says."""
    pytest.importorskip("pytest_django")
    pytester.makepyfile(
        settings="""
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
""",
        conftest="""
import pytest

@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from django.contrib.auth.models import User
    with django_db_blocker.unblock():
        User.objects.create(username="seed")
""",
        test_a="""
import time

def test_a_db(db):
    from django.contrib.auth.models import User
    assert User.objects.filter(username="seed").exists()

def test_a_transactional(transactional_db):
    time.sleep(0.05)  # the longest test: the history sends it first
""",
        test_b="""
import pytest

@pytest.mark.parametrize("i", range(8))
def test_b_db(db, i):
    from django.contrib.auth.models import User
    assert User.objects.filter(username="seed").exists()
""",
    )
    args = ("-n", "2", "--ds=settings", "--rootdir", str(pytester.path))
    for _ in range(3):  # the second and third run plan from the history
        result, data = run(pytester, *args)
        result.assert_outcomes(passed=10)
        tests = by_name(data)
        last = tests["test_a_transactional"]
        assert all(
            test.stop <= last.start
            for test in data.tests
            if test.worker == last.worker and test is not last
        )


def test_a_failure_s_text_is_the_same_serially_and_on_a_worker(
    pytester: pytest.Pytester,
) -> None:
    """xdist puts '[gw0] linux -- Python ...' before a worker's failure: the
    results keep the text a serial run gives."""
    pytester.makepyfile(
        test_f="""
def test_x():
    assert 6 * 7 == 41, "a distinctive message"

def test_ok(): pass
"""
    )
    texts = []
    for args in ((), ("-n", "2")):
        _, data = run(pytester, *args)
        texts.append(by_name(data)["test_x"].longrepr)
    assert texts[0] == texts[1]
    assert texts[0] is not None
    assert texts[0].startswith("def test_x():")
    assert "a distinctive message" in texts[0]


def _worker_orders(data: RunResult) -> list[list[str]]:
    """Each worker's tests by name, in the order they started there."""
    workers: dict[str, list[TestResult]] = {}
    for test in data.tests:
        workers.setdefault(test.worker, []).append(test)
    return [
        [test.nodeid.split("::")[-1] for test in sorted(tests, key=lambda t: t.start)]
        for tests in workers.values()
    ]


def test_keep_order_sends_tests_in_the_plan_s_order_whatever_the_history(
    pytester: pytest.Pytester,
) -> None:
    # The last test is the slowest: with history, longest-first sends it first.
    pytester.makepyfile(
        test_order="import time\n\n"
        + "".join(f"def test_{n}():\n    pass\n\n" for n in range(6))
        + "def test_slow():\n    time.sleep(0.3)\n"
    )
    run(pytester, "-n", "2")  # the history learns the durations
    _, longest_first = run(pytester, "-n", "2")
    assert [order[0] for order in _worker_orders(longest_first)].count("test_slow") == 1
    _, kept = run(pytester, "-n", "2", "--batchflow-keep-order")
    names = [f"test_{n}" for n in range(6)] + ["test_slow"]
    for order in _worker_orders(kept):
        assert order == sorted(order, key=names.index)
    assert "test_slow" not in [order[0] for order in _worker_orders(kept)]


FAILING_MODIFYITEMS = """
import os

def pytest_collection_modifyitems(items):
    if os.environ.get("PYTEST_XDIST_WORKER") in os.environ["BOOM_ON"].split(","):
        raise RuntimeError("boom in another plugin's modifyitems")
"""


@pytest.mark.parametrize("failing", ["gw0", "gw0,gw1"])
def test_another_plugin_s_collection_error_on_a_worker_is_shown_as_without_batchflow(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    pytester.makeconftest(FAILING_MODIFYITEMS)
    pytester.makepyfile(test_x="def test_a(): pass\ndef test_b(): pass\n")
    monkeypatch.setenv("BOOM_ON", failing)
    result = pytester.runpytest("--batchflow", "-n", "2")
    # The worker's own error, not batchflow's missing analysis of its collection
    # (plain xdist too ends with it, though at times with exit code 0).
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*RuntimeError: boom in another plugin's modifyitems"])
    assert "batchflow" not in "\n".join(line for line in result.stdout.lines if "Error" in line)


def test_a_run_folder_removed_under_the_run_ends_it_with_a_line_saying_so(
    pytester: pytest.Pytester,
) -> None:
    # The controller hears of the first collection: the folder is gone by then.
    pytester.makeconftest(
        """
import shutil

def pytest_xdist_node_collection_finished(node, ids):
    shutil.rmtree(node.workerinput["batchflow_rundir"], ignore_errors=True)
"""
    )
    pytester.makepyfile(test_x="def test_a(): pass\n")
    result = pytester.runpytest("--batchflow", "-n", "2")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(
        ["*batchflow: the run's folder */batchflow-run-* was removed while the run went on*"]
    )
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_worker_lost_while_the_others_collect_does_not_start_the_run_early(
    pytester: pytest.Pytester,
) -> None:
    # gw1 collects first; gw0 dies a second later, before xdist has asked for
    # tests: the run ends as without batchflow, not with tests sent early.
    pytester.makeconftest(
        """
import os, time

def pytest_collection_modifyitems(items):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        time.sleep(1)
        os._exit(1)
"""
    )
    pytester.makepyfile(test_x="def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n")
    plain = pytester.runpytest("-n", "2", "--max-worker-restart=0")
    result = pytester.runpytest("--batchflow", "-n", "2", "--max-worker-restart=0")
    assert result.parseoutcomes().get("passed", 0) == plain.parseoutcomes().get("passed", 0) == 0
    assert result.ret == plain.ret
    result.stdout.fnmatch_lines(["*worker gw0 crashed and worker restarting disabled*"])
