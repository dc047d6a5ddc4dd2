"""What other plugins, odd command lines and broken surroundings must not break."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from test_batches import run_order

from pytest_batchflow.results import RunResult

CHAIN = """
import os
import pytest

def test_make():
    pass

@pytest.mark.depends_on("test_make")
def test_use():
    assert os.environ.get("BREAK_USE") != "1"

def test_other():
    pass
"""


#: SQLAlchemy's plugin: its pytest_collection_modifyitems collects the test
#: classes again and puts the new items in place of pytest's; this one also
#: adds an item pytest never collected.
ITEMS_PUT_IN = """
import pytest

def pytest_collection_modifyitems(items):
    fresh = [
        pytest.Function.from_parent(item.parent, name=item.name, callobj=item.obj)
        for item in items
    ]
    extra = pytest.Function.from_parent(
        items[0].parent, name="test_added", callobj=items[0].module.added
    )
    items[:] = [*fresh, extra]
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_items_another_plugin_puts_in_are_run_as_collected_ones(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makeconftest(ITEMS_PUT_IN)
    pytester.makepyfile(
        test_put="""
import pytest

def added():
    pass

def test_make():
    pass

@pytest.mark.depends_on("test_make")
def test_use():
    pass

def test_broken():
    assert 0

@pytest.mark.depends_on("test_broken")
def test_after_broken():
    pass
"""
    )
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    plain.assert_outcomes(passed=4, failed=1)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--batchflow", "--batchflow-json=result.json", *workers
    )
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    outcomes = {test.nodeid.split("::")[-1]: test.outcome for test in data.tests}
    assert outcomes == {
        "test_make": "passed",
        "test_use": "passed",
        "test_broken": "failed",
        "test_after_broken": "skipped",
        "test_added": "passed",
    }
    assert data.deselected_nodeids == []


#: A plugin that runs a test twice: a copy of it, the same node id, appended.
#: The copy's setup and teardown are slow and the worker that ran the
#: original is slow to say the original finished, so that the controller
#: hears of the copy's setup between the original's teardown and its end, and
#: of the copy's end after the original's.
SAME_ID_COPY = """
import time
import pytest

def pytest_collection_modifyitems(items):
    first = items[0]
    copy = pytest.Function.from_parent(first.parent, name=first.name, callobj=first.obj)
    copy.add_marker("the_copy")
    items.append(copy)

RAN_THE_ORIGINAL = []

@pytest.fixture(autouse=True)
def slow_copy(request):
    copy = request.node.get_closest_marker("the_copy") is not None
    if copy:
        time.sleep(0.5)
    elif request.node.name == "test_a":
        RAN_THE_ORIGINAL.append(True)
    yield
    if copy:
        time.sleep(1.5)

@pytest.hookimpl(tryfirst=True)  # before xdist's worker sends it on
def pytest_runtest_logfinish(nodeid):
    if RAN_THE_ORIGINAL and RAN_THE_ORIGINAL.pop():
        time.sleep(1.0)
"""


def test_two_copies_of_one_node_id_on_two_workers_each_end_as_themselves(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(SAME_ID_COPY)
    pytester.makeini("[pytest]\nmarkers = the_copy\n")
    pytester.makepyfile(
        test_d="""
import pytest

def test_a():
    pass

@pytest.mark.depends_on("test_a")
def test_b():
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--batchflow", "--batchflow-json=result.json", "-n", "2"
    )
    result.assert_outcomes(passed=3)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    assert sorted((test.nodeid, test.outcome) for test in data.tests) == [
        ("test_d.py::test_a", "passed"),
        ("test_d.py::test_a", "passed"),
        ("test_d.py::test_b", "passed"),
    ]
    # Each copy's own phases: one setup, call and teardown each.
    for test in data.tests:
        assert [phase.when for phase in test.phases] == ["setup", "call", "teardown"]


#: SQLAlchemy's other shape: a test class collected again under another name
#: (``TestX`` as ``TestX_sqlite``), the original items gone without being
#: deselected.
RENAMED = """
import pytest

def pytest_collection_modifyitems(config, items):
    kept = [item for item in items if item.name != "test_other"]
    config.hook.pytest_deselected(items=[item for item in items if item.name == "test_other"])
    items[:] = [
        pytest.Function.from_parent(item.parent, name=item.name + "_sqlite", callobj=item.obj)
        if item.name == "test_one"
        else item
        for item in kept
    ]
"""


def test_items_put_in_under_other_node_ids_are_not_counted_deselected(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RENAMED)
    pytester.makepyfile(
        test_renamed="def test_one(): pass\ndef test_two(): pass\ndef test_other(): pass\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--batchflow", "--batchflow-json=result.json"
    )
    result.assert_outcomes(passed=2, deselected=1)
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    assert sorted(test.nodeid for test in data.tests) == [
        "test_renamed.py::test_one_sqlite",
        "test_renamed.py::test_two",
    ]
    # As pytest counts: only the test another plugin deselected.
    assert data.deselected_nodeids == ["test_renamed.py::test_other"]


def test_duplicate_node_ids_keep_every_result(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_d="""
import pytest
def test_first(): pass
@pytest.mark.depends_on("test_first")
def test_second(): pass
"""
    )
    result = pytester.runpytest(
        "--batchflow", "--keep-duplicates", "test_d.py", "test_d.py", "--batchflow-json=r.json"
    )
    result.assert_outcomes(passed=4)
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    assert [t.outcome for t in data.tests] == ["passed"] * 4


def test_failed_first_keeps_dependencies_first(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    monkeypatch.setenv("BREAK_USE", "1")
    pytester.runpytest("-p", "cacheprovider", "--batchflow").assert_outcomes(passed=2, failed=1)
    monkeypatch.delenv("BREAK_USE")
    result = pytester.runpytest("-p", "cacheprovider", "--batchflow", "--ff", "-v")
    result.assert_outcomes(passed=3)
    assert run_order(result) == [
        "test_chain.py::test_make",
        "test_chain.py::test_use",
        "test_chain.py::test_other",
    ]


PICKED_NOTE = (
    "batchflow: warning: running 1 test without dependencies that the selection (a node id, "
    "--lf or --sw) left out: test_chain.py::test_use (needs *test_make*)"
)


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_last_failed_reruns_a_failed_test_without_its_dependency_as_without_batchflow(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_chain=CHAIN)
    monkeypatch.setenv("BREAK_USE", "1")
    first = pytester.runpytest("-p", "cacheprovider", "--batchflow", *workers)
    first.assert_outcomes(passed=2, failed=1)
    # --lf collects only the failed test: it runs, and still fails, as without
    # batchflow (skipping it made a failing suite pass and emptied --lf's record).
    for _ in range(2):
        again = pytester.runpytest("-p", "cacheprovider", "--batchflow", "--lf", *workers)
        again.assert_outcomes(failed=1)
        assert again.ret == pytest.ExitCode.TESTS_FAILED
        again.stdout.fnmatch_lines([PICKED_NOTE])
    monkeypatch.delenv("BREAK_USE")
    fixed = pytester.runpytest("-p", "cacheprovider", "--batchflow", "--lf", *workers)
    fixed.assert_outcomes(passed=1)


KEPT_BACK = """
import os
import pytest

def test_make():
    if os.environ.get("SKIP_MAKE") == "1":
        pytest.skip("not on this platform")
    assert os.environ.get("BREAK_MAKE") != "1"

@pytest.mark.depends_on("test_make")
def test_use():
    assert os.environ.get("BREAK_USE") != "1"

@pytest.mark.depends_on("test_use")
def test_use_more():
    pass

def test_other():
    pass
"""


def _last_failed(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    return sorted(json.loads(path.read_text())) if path.exists() else []


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_last_failed_reruns_the_tests_a_failure_kept_from_running(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_chain=KEPT_BACK)
    args = ("-p", "cacheprovider", "--batchflow", *workers)
    monkeypatch.setenv("BREAK_MAKE", "1")
    monkeypatch.setenv("BREAK_USE", "1")
    pytester.runpytest(*args).assert_outcomes(passed=1, failed=1, skipped=2)
    # The skipped dependents are in --lf's record: nothing is known of them.
    kept = ["test_chain.py::test_make", "test_chain.py::test_use", "test_chain.py::test_use_more"]
    assert _last_failed(pytester) == kept
    # test_make fixed: --lf runs it and the tests it held back, and test_use's
    # own failure shows (before, --lf ran test_make alone and passed).
    monkeypatch.delenv("BREAK_MAKE")
    again = pytester.runpytest(*args, "--lf")
    again.assert_outcomes(passed=1, failed=1, skipped=1)
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    assert _last_failed(pytester) == kept[1:]
    monkeypatch.delenv("BREAK_USE")
    pytester.runpytest(*args, "--lf").assert_outcomes(passed=2)
    assert _last_failed(pytester) == []


def _last_failure_line(result: pytest.RunResult) -> str:
    return next(line for line in result.stdout.lines if line.startswith("run-last-failure:"))


def test_last_failed_counts_the_tests_a_failure_held_back_apart_from_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest counts every test in its record as a failure: before, one failed
    # test and the two it held back read "rerun previous 3 failures".
    pytester.makepyfile(test_chain=KEPT_BACK)
    args = ("-p", "cacheprovider", "--batchflow")
    monkeypatch.setenv("BREAK_MAKE", "1")
    pytester.runpytest(*args).assert_outcomes(passed=1, failed=1, skipped=2)
    again = pytester.runpytest(*args, "--lf")
    again.assert_outcomes(failed=1, skipped=2)
    assert _last_failure_line(again) == (
        "run-last-failure: rerun previous 1 failure and 2 tests it held back"
    )
    first = pytester.runpytest(*args, "--ff")
    assert _last_failure_line(first) == (
        "run-last-failure: rerun previous 1 failure and 2 tests it held back first"
    )
    other = pytester.runpytest(*args, "--lf", "-k", "other")
    assert _last_failure_line(other) == (
        "run-last-failure: 1 known failure and 2 tests it held back not in selected tests"
    )
    # Only held-back tests selected: no failure among them.
    held = pytester.runpytest(*args, "--lf", "-k", "use")
    held.assert_outcomes(skipped=2, deselected=1)
    assert _last_failure_line(held) == "run-last-failure: rerun 2 tests a failure held back"
    # test_make fixed; test_use runs and fails itself: a failure now, and it
    # holds test_use_more back.
    monkeypatch.delenv("BREAK_MAKE")
    monkeypatch.setenv("BREAK_USE", "1")
    pytester.runpytest(*args, "--lf").assert_outcomes(passed=1, failed=1, skipped=1)
    last = pytester.runpytest(*args, "--lf")
    assert _last_failure_line(last) == (
        "run-last-failure: rerun previous 1 failure and 1 test it held back"
    )


def test_the_last_failed_line_counts_what_batch_selection_leaves(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest counts its record before batchflow selects batches: the tests a
    # failure held back in a batch left out were counted as failures.
    pytester.makepyfile(
        test_chain="""
        import os
        import pytest

        @pytest.mark.batch("make")
        def test_make():
            assert os.environ.get("BREAK_MAKE") != "1"

        @pytest.mark.batch("use")
        @pytest.mark.depends_on("test_make")
        def test_use():
            pass

        @pytest.mark.batch("use")
        @pytest.mark.depends_on("test_make")
        def test_use_more():
            pass
        """
    )
    pytester.makeini("[pytest]\nbatchflow_batches =\n    make:\n    use: after=make\n")
    args = ("-p", "cacheprovider", "--batchflow")
    monkeypatch.setenv("BREAK_MAKE", "1")
    pytester.runpytest(*args).assert_outcomes(failed=1, skipped=2)
    only_make = pytester.runpytest(*args, "--lf", "--batchflow-batches=make")
    only_make.assert_outcomes(failed=1)
    assert _last_failure_line(only_make) == "run-last-failure: rerun previous 1 failure"


def test_tests_skipped_behind_a_skipped_test_stay_out_of_last_failed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_chain=KEPT_BACK)
    monkeypatch.setenv("SKIP_MAKE", "1")
    result = pytester.runpytest("-p", "cacheprovider", "--batchflow")
    result.assert_outcomes(passed=1, skipped=3)
    assert _last_failed(pytester) == []


def test_a_failure_stays_in_last_failed_while_its_dependency_is_deselected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_chain=KEPT_BACK)
    args = ("-p", "cacheprovider", "--batchflow")
    monkeypatch.setenv("BREAK_USE", "1")
    pytester.runpytest(*args).assert_outcomes(passed=2, failed=1, skipped=1)
    kept = ["test_chain.py::test_use", "test_chain.py::test_use_more"]
    assert _last_failed(pytester) == kept
    # -k leaves test_make out: test_use did not get its turn, its failure stays.
    pytester.runpytest(*args, "-k", "use").assert_outcomes(skipped=2, deselected=2)
    assert _last_failed(pytester) == kept
    # test_make now skips itself: test_use is skipped for good, and forgotten,
    # as pytest forgets any skipped test.
    monkeypatch.setenv("SKIP_MAKE", "1")
    pytester.runpytest(*args).assert_outcomes(passed=1, skipped=3)
    assert _last_failed(pytester) == []


def test_a_skip_before_a_batch_reached_maxfail_is_not_called_held_back(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_chain=KEPT_BACK,
        test_late="import os\ndef test_late():\n    assert os.environ.get('BREAK') != '1'\n",
    )
    monkeypatch.setenv("SKIP_MAKE", "1")
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    smoke: paths=test_chain.py,test_late.py maxfail=1\n"
    )
    monkeypatch.setenv("BREAK", "1")
    result = pytester.runpytest("-p", "cacheprovider", "--batchflow")
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    # test_use was skipped behind test_make's own skip before test_late failed.
    assert _last_failed(pytester) == ["test_late.py::test_late"]


def test_stepwise_runs_the_test_it_stopped_at_without_its_dependency(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    monkeypatch.setenv("BREAK_USE", "1")
    first = pytester.runpytest("-p", "cacheprovider", "--batchflow", "--sw")
    first.assert_outcomes(passed=1, failed=1)
    # --sw deselects the tests before the one it stopped at, test_make among them.
    again = pytester.runpytest("-p", "cacheprovider", "--batchflow", "--sw")
    again.assert_outcomes(failed=1, deselected=1)
    again.stdout.fnmatch_lines([PICKED_NOTE])


def test_selecting_one_test_by_node_id_runs_it_without_its_uncollected_dependency(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    result = pytester.runpytest("--batchflow", "test_chain.py::test_use")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([PICKED_NOTE])


MARKED_CHAIN = """
import pytest

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.depends_on("test_slow")
def test_after_slow():
    pass

def test_other():
    pass
"""


@pytest.mark.parametrize(
    "args",
    [
        ("--sw",),  # no stepwise record yet: --sw narrows nothing
        ("-p", "cacheprovider", "--lf"),  # no failures recorded: --lf runs everything
        ("test_m.py::test_slow", "test_m.py::test_after_slow"),
    ],
    ids=["sw-first-run", "lf-without-record", "node-ids"],
)
def test_a_pick_does_not_keep_dependents_of_tests_that_m_deselected_from_being_skipped(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    pytester.makeini("[pytest]\nmarkers = slow\n")
    pytester.makepyfile(test_m=MARKED_CHAIN)
    result = pytester.runpytest("--batchflow", "-m", "not slow", "-rs", *args)
    result.stdout.fnmatch_lines(["*depends on test_m.py::test_slow, which was deselected"])
    result.stdout.no_fnmatch_line("*without dependencies that the selection*")


def test_without_the_skipping_plugin_dependents_are_still_skipped(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_s="""
import pytest
def test_a(): assert 0
@pytest.mark.depends_on("test_a")
def test_b(): pass
"""
    )
    # At the test's location (its decorator's line), as with the skipping
    # plugin, not where batchflow raised the skip.
    for plugins in (["-p", "no:skipping"], []):
        result = pytester.runpytest("--batchflow", *plugins, "-rs")
        result.assert_outcomes(failed=1, skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED [[]1] test_s.py:3: batchflow: depends on *test_a*"])


def _errors_section(result: pytest.RunResult) -> list[str]:
    """The ERRORS section's lines, object addresses masked."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if " ERRORS " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("===="))
    return [re.sub(r"0x[0-9a-f]+", "0x...", line) for line in lines[start:end]]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_fixture_s_error_has_the_traceback_it_has_without_batchflow(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    # A fixture in another file than the test: pytest shows its frames and
    # none of pytest's or pluggy's; batchflow's timing of shared fixtures
    # showed its own frame above the fixture's.
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")

@pytest.fixture(scope="module")
def broken_module():
    raise RuntimeError("module fixture exploded")
"""
    )
    pytester.makepyfile(test_f="def test_func(broken): pass\n\ndef test_mod(broken_module): pass\n")
    args = ["-p", "no:cacheprovider", "-rE", "--tb=long", *workers]
    plain = pytester.runpytest_subprocess(*args)
    result = pytester.runpytest_subprocess("--batchflow", "--batchflow-no-history", *args)
    result.assert_outcomes(errors=2)
    section = _errors_section(result)
    assert "fixture exploded" in "\n".join(section)
    assert "pytest_batchflow" not in result.stdout.str()
    if not workers:  # under xdist the two errors come in either order
        assert section == _errors_section(plain)


@pytest.mark.parametrize("quiet", ["-q", "-qq"])
def test_collect_only_quiet_lists_what_it_lists_without_batchflow(
    pytester: pytest.Pytester, quiet: str
) -> None:
    # Scripts read node ids from `pytest --co -q`: no plan line among them.
    pytester.makepyfile(test_a="def test_a(): pass\ndef test_b(): pass\n")
    plain = pytester.runpytest("-p", "no:cacheprovider", "--co", quiet)
    result = pytester.runpytest("-p", "no:cacheprovider", "--batchflow", "--co", quiet)

    def lines(run: pytest.RunResult) -> list[str]:
        return [re.sub(r" in [0-9.]+s$", "", line) for line in run.stdout.lines]

    assert lines(result) == lines(plain)
    assert "test_a.py::test_b" in result.stdout.lines or quiet == "-qq"
    # Without -q the line is there, after pytest's own.
    verbose = pytester.runpytest("-p", "no:cacheprovider", "--batchflow", "--co")
    verbose.stdout.fnmatch_lines(
        ["collected 2 items", "batchflow: 1 batch, 2 tests, 0 dependencies"]
    )


@pytest.mark.parametrize(
    "option", ["--collect-only", "--setup-plan", "--fixtures"], ids=lambda o: o.strip("-")
)
def test_runs_that_execute_no_test_leave_no_results(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_one="def test_one(): assert 0")
    pytester.runpytest("--batchflow", "--batchflow-json=r.json", option)
    assert not (pytester.path / "r.json").exists()
    assert not (pytester.path / ".batchflow").exists()


def test_a_json_path_that_stops_being_writable_is_a_warning_not_a_crash(
    pytester: pytest.Pytester,
) -> None:
    # Writable at the start; a test then puts a file where the folder goes.
    pytester.makepyfile(
        test_one="""
        def test_one(request):
            (request.config.rootpath / "blocker").write_text("a file where a folder should be")
        """
    )
    result = pytester.runpytest("--batchflow", "--batchflow-json=blocker/r.json")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["batchflow: warning: could not write the JSON result to */blocker/r.json: *: */blocker"]
    )
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        assert db.execute("SELECT exitstatus FROM runs").fetchall() == [(0,)]


def test_a_batchflow_folder_that_exists_gets_no_gitignore_from_the_outputs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / ".batchflow").mkdir()
    args = ("--batchflow", "--batchflow-no-history", "--batchflow-json=.batchflow/r.json")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    assert sorted(p.name for p in (pytester.path / ".batchflow").iterdir()) == [
        "r.json",
        "report.html",
    ]


def test_a_custom_history_folder_that_exists_gets_no_gitignore(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    pytester.runpytest("--batchflow", "--batchflow-history=h.sqlite").assert_outcomes(passed=1)
    assert not (pytester.path / ".gitignore").exists()
    assert (pytester.path / "h.sqlite").exists()


def test_concurrent_runs_share_one_store_without_damage(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass\ndef test_two(): pass\n")
    command = [sys.executable, "-m", "pytest", "--batchflow", "-q", "-p", "no:cacheprovider"]
    runs = [
        subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 6, outputs
    assert not any("warning" in output for output in outputs), outputs
    assert not list((pytester.path / ".batchflow").glob("*.corrupt-*"))
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM attempts").fetchone() == (12,)


def test_stopping_early_marks_batches_incomplete(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    one: paths=test_one.py\n"
        "    two: paths=test_two.py after=one on_upstream_failure=run\n"
    )
    pytester.makepyfile(test_one="def test_fail(): assert 0", test_two="def test_x(): pass")
    pytester.runpytest("--batchflow", "-x", "--batchflow-json=r.json")
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    statuses = {batch.name: (batch.status, batch.not_run) for batch in data.batches}
    assert statuses["one"] == ("failed", 0)
    assert statuses["two"] == ("incomplete", 1)
    not_run = {batch.name: batch.not_run_nodeids for batch in data.batches}
    assert (not_run["one"], not_run["two"]) == ([], ["test_two.py::test_x"])


def test_a_skipped_batch_the_run_stopped_before_says_its_tests_did_not_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    one: paths=test_one.py\n"
        "    two: paths=test_two.py after=one\n"
    )
    pytester.makepyfile(
        test_one="def test_fail(): assert 0\ndef test_pass(): pass", test_two="def test_x(): pass"
    )
    result = pytester.runpytest("--batchflow", "-x")
    result.assert_outcomes(failed=1)
    # Its skipped column is 0: -x stopped the run before its test was skipped.
    result.stdout.fnmatch_lines(
        [
            "one    test      2       0       1        0 * failed (1 not run)",
            "two    test      1       0       0        0 * skipped: upstream batch 'one' had 1"
            " failure (1 not run)",
        ]
    )


@pytest.mark.parametrize("reruns", ["0", "1"])
def test_a_test_whose_teardown_ctrl_c_cut_short_keeps_what_pytest_counted(
    pytester: pytest.Pytester, reruns: str
) -> None:
    """Ctrl-C during a slow cleanup (a KeyboardInterrupt in the teardown): pytest
    counts the failed call; so do the JSON result and the history. A rerun it
    was due never comes: its failure stands."""
    pytester.makepyfile(
        test_cut="""
            import pytest

            @pytest.fixture
            def container():
                yield
                raise KeyboardInterrupt  # what Ctrl-C raises during the cleanup

            def test_first(): pass
            def test_fails(container): assert 0, "real failure"
            def test_never(): pass
        """
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=r.json", "-rA", f"--batchflow-reruns={reruns}"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "default  test      3       1       1        0 * failed (1 not run)",
            "*KeyboardInterrupt*",
        ]
    )
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    assert [(t.nodeid, t.outcome, t.attempts) for t in data.tests] == [
        ("test_cut.py::test_first", "passed", []),
        ("test_cut.py::test_fails", "failed", []),
    ]
    assert "real failure" in (data.tests[1].longrepr or "")
    assert data.exitstatus == pytest.ExitCode.INTERRUPTED
    report = (pytester.path / ".batchflow" / "report.html").read_text()
    assert "interrupted (pytest exit code 2): 1 test not run" in report
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        assert db.execute("SELECT nodeid, outcome FROM attempts ORDER BY id").fetchall() == [
            ("test_cut.py::test_first", "passed"),
            ("test_cut.py::test_fails", "failed"),
        ]


def test_a_killed_run_s_folder_is_removed_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL leaves a run's temporary folder behind, its lock free: the next
    run sweeps it, and leaves alone a folder whose lock a living run holds."""
    pytest.importorskip("fcntl")
    from pytest_batchflow.files import remove_run_directory, run_directory

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = run_directory("batchflow-run-")
    living = tmp_path / "batchflow-run-living"
    living.mkdir()
    (living / ".batchflow-run.lock").touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(living / ".batchflow-run.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        unlocked = tmp_path / "batchflow-run-other-batchflow"  # no lock file: not ours to judge
        unlocked.mkdir()
        other = tmp_path / "batchflow-cov-abandoned"
        other.mkdir()
        (other / ".batchflow-run.lock").touch()
        # The killed run's lock goes with its process: here, given back by hand.
        from pytest_batchflow import files

        os.close(files._held.pop(killed))
        made = run_directory("batchflow-run-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [made.name, living.name, unlocked.name, other.name]
        )
        remove_run_directory(made)
        assert not made.exists()
        assert made not in files._held
    finally:
        holder.kill()
        holder.communicate()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_the_batch_table_accounts_for_what_was_skipped_or_failed_while_collecting(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(
        test_a="def test_a(): pass",
        test_b="import pytest\npytest.importorskip('no_such_module_xyz')",
        test_c="import no_such_module_abc",
    )
    result = pytester.runpytest("--batchflow", "--continue-on-collection-errors", *workers)
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "default  test      1       1       0        0 * passed",
            "while collecting: 1 skipped, 1 could not be collected (not in the table)",
        ]
    )


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_hypothesis_s_failing_example_and_statistics_are_as_without_batchflow(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    """Hypothesis's pytest plugin (which the other scenarios leave out, see
    tests/conftest.py) reports a failing example and, with
    ``--hypothesis-show-statistics``, each test's phases, under batchflow too."""
    pytest.importorskip("hypothesis")
    if workers:
        pytest.importorskip("xdist")
    monkeypatch.setenv("PYTEST_ADDOPTS", "")  # Hypothesis's plugin back in
    pytester.makepyfile(
        test_props="""
        from hypothesis import given, strategies as st

        @given(st.integers())
        def test_small(n):
            assert n < 1000

        @given(st.text())
        def test_text(s):
            assert isinstance(s, str)
        """
    )
    args = ("--hypothesis-show-statistics", "-p", "no:randomly", *workers)
    plain = pytester.runpytest_subprocess(*args)
    ours = pytester.runpytest_subprocess("--batchflow", *args)
    for result in (plain, ours):
        assert result.parseoutcomes() == {"failed": 1, "passed": 1}
        result.stdout.fnmatch_lines(
            [
                "*: test_small(",  # "Falsifying example", later "Failing test case"
                "*n=1000,*",
                "*= Hypothesis Statistics =*",
            ]
        )
        text = result.stdout.str()
        assert "test_props.py::test_small:" in text
        assert "test_props.py::test_text:" in text
