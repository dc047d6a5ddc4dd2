"""What a run leaves behind: the plan, the JSON result and the history store."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from xml.etree import ElementTree

import pytest
from frozen_clock import FROZEN_MODULE

from pytest_batchflow.history import SCHEMA_VERSION
from pytest_batchflow.results import RunResult

SUITE = {
    "test_shop": """
        import pytest

        @pytest.fixture
        def cart():
            print("cart ready")
            return []

        def test_add(cart):
            print("adding")
            cart.append(1)
            assert cart == [1]

        @pytest.mark.depends_on("test_add")
        def test_checkout(cart):
            assert cart == ["paid"], "checkout lost the cart"

        @pytest.mark.depends_on("test_checkout")
        def test_receipt():
            pass

        @pytest.mark.xfail(reason="known")
        def test_known_bug():
            assert 0
    """
}
INI = "[pytest]\nbatchflow_batches =\n    shop: paths=test_shop.py maxfail=3 reruns=1\n"


def test_json_result_holds_every_test_with_phases_and_output(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    result = pytester.runpytest("--batchflow", "--batchflow-json=out/result.json")
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([f"batchflow: JSON result: {pytester.path}/out/result.json"])
    data = RunResult.model_validate_json((pytester.path / "out/result.json").read_text())
    assert data.schema_version == 8
    assert (data.deselected, data.deselected_nodeids) == (0, [])
    assert data.exitstatus == 1
    assert data.environment.pytest == pytest.__version__
    assert data.environment.python == ".".join(map(str, sys.version_info[:3]))
    tests = {test.nodeid.split("::")[1]: test for test in data.tests}
    assert [test.nodeid.split("::")[1] for test in data.tests] == [
        "test_add",
        "test_checkout",
        "test_receipt",
        "test_known_bug",
    ]
    assert {name: test.outcome for name, test in tests.items()} == {
        "test_add": "passed",
        "test_checkout": "failed",
        "test_receipt": "skipped",
        "test_known_bug": "xfailed",
    }
    add = tests["test_add"]
    assert [phase.when for phase in add.phases] == ["setup", "call", "teardown"]
    assert add.stdout == "cart ready\nadding\n"
    assert add.worker == "main"
    assert add.batch == "shop"
    assert add.start <= add.stop
    checkout = tests["test_checkout"]
    assert checkout.dependencies == ["test_shop.py::test_add"]
    assert checkout.longrepr is not None
    assert "checkout lost the cart" in checkout.longrepr
    receipt = tests["test_receipt"]
    assert receipt.longrepr == "batchflow: depends on test_shop.py::test_checkout, which failed"
    assert [phase.when for phase in receipt.phases] == ["setup", "teardown"]
    (batch,) = [b for b in data.batches if b.name == "shop"]
    assert (batch.status, batch.tests, batch.maxfail, batch.reruns) == ("failed", 4, 3, 1)
    assert batch.outcomes == {"failed": 1, "passed": 1, "skipped": 1, "xfailed": 1}


def test_plan_prints_batches_tests_and_estimates_and_runs_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        **SUITE, test_sentinel="def test_touch():\n    open('ran.txt', 'w').close()\n"
    )
    first = pytester.runpytest("--batchflow-plan")
    assert first.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines(
        [
            "batchflow plan: 2 batches, 5 tests, 2 dependencies",
            "[[]1[]] shop (test, parallel, reruns=1, maxfail=3): 4 tests",
            "    test_shop.py::test_add",
            "    test_shop.py::test_checkout  <- test_shop.py::test_add",
            "    test_shop.py::test_receipt  <- test_shop.py::test_checkout",
            "    test_shop.py::test_known_bug",
            "[[]2[]] default (test, parallel): 1 test",
            "    test_sentinel.py::test_touch",
            "estimated duration: unknown (no durations in the history yet: a test is timed when it"
            " passes)",
        ]
    )
    # The plan's first line, not the same line twice.
    first.stdout.no_fnmatch_line("batchflow: 2 batches, 5 tests, 2 dependencies")
    assert not (pytester.path / "ran.txt").exists()
    assert not (pytester.path / ".batchflow").exists()

    pytester.runpytest("--batchflow")
    (pytester.path / "ran.txt").unlink()
    second = pytester.runpytest("--batchflow", "--batchflow-plan")
    assert second.ret == pytest.ExitCode.OK
    second.stdout.fnmatch_lines(
        [
            "[[]1[]] shop (*): 4 tests, est. *s",
            "    test_shop.py::test_add  *s",
            "    test_shop.py::test_checkout  *s (average)  <- test_shop.py::test_add",
            "estimated duration: *s (history for 2 of 5 tests; 3 counted at the average)",
            "lower bound: *s on 1 worker (critical path *s)",
        ]
    )
    assert not (pytester.path / "ran.txt").exists()


def history_rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def test_history_stores_every_attempt_with_commit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    monkeypatch.setenv("BATCHFLOW_COMMIT", "c0ffee")
    pytester.runpytest("--batchflow")
    pytester.runpytest("--batchflow")
    store = pytester.path / ".batchflow" / "history.sqlite"
    assert (pytester.path / ".batchflow" / ".gitignore").read_text().endswith("*\n")
    assert history_rows(store, "SELECT COUNT(*), MIN(exitstatus) FROM runs") == [(2, 1)]
    rows = history_rows(
        store,
        "SELECT nodeid, batch, outcome, phase, worker, git_commit, error_digest IS NOT NULL"
        " FROM attempts WHERE run_id = 2 ORDER BY id",
    )
    # reruns=1: test_checkout's first attempt is stored as it happens; its rerun
    # comes at the end of the batch, and test_receipt waits behind it.
    assert rows == [
        ("test_shop.py::test_add", "shop", "passed", None, "main", "c0ffee", 0),
        ("test_shop.py::test_checkout", "shop", "failed", "call", "main", "c0ffee", 1),
        ("test_shop.py::test_known_bug", "shop", "xfailed", None, "main", "c0ffee", 0),
        ("test_shop.py::test_checkout", "shop", "failed", "call", "main", "c0ffee", 1),
        ("test_shop.py::test_receipt", "shop", "skipped", None, "main", "c0ffee", 0),
    ]
    assert history_rows(store, "PRAGMA journal_mode") == [("wal",)]


def test_no_history_and_custom_history_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    pytester.runpytest("--batchflow", "--batchflow-no-history").assert_outcomes(passed=1)
    # The report is there; the store is not.
    assert sorted(p.name for p in (pytester.path / ".batchflow").iterdir()) == [
        ".gitignore",
        "report.html",
    ]
    pytester.runpytest("--batchflow", "--batchflow-history=store/h.db").assert_outcomes(passed=1)
    assert history_rows(pytester.path / "store/h.db", "SELECT COUNT(*) FROM attempts") == [(1,)]


@pytest.mark.parametrize(
    "damage",
    [
        b"SQLite format 3\x00" + b"this is not a database" * 100,  # pages overwritten
        bytes(4096),  # zero-filled by a power loss: the header is gone too
    ],
    ids=["garbage", "zeros"],
)
def test_corrupt_history_is_moved_aside_and_the_run_goes_on(
    pytester: pytest.Pytester, damage: bytes
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    store = pytester.path / ".batchflow" / "history.sqlite"
    store.parent.mkdir()
    store.write_bytes(damage)
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"batchflow: warning: history store {store} was unreadable (file is not a database);"
            " moved it to history.sqlite.corrupt-* and started a fresh one",
        ]
    )
    aside = list(store.parent.glob("history.sqlite.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == damage
    assert history_rows(store, "SELECT COUNT(*) FROM attempts") == [(1,)]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_history_path_naming_a_file_that_is_no_store_leaves_it_alone(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    # A slip of the keyboard: the history option names a test module.
    pytester.makepyfile(test_one="def test_one(): pass", test_two="def test_two(): pass")
    module = pytester.path / "test_two.py"
    before = module.read_bytes()
    args = ["--batchflow", "--batchflow-history=test_two.py", *workers]
    for _ in range(2):  # the file is not taken on the first run or the next
        result = pytester.runpytest(*args)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(
            [
                f"batchflow: warning: running without history: {module} is not a SQLite file,"
                " so not a history store; batchflow left it as it is (give the history store"
                " another path)",
            ]
        )
        assert module.read_bytes() == before
    assert sorted(p.name for p in pytester.path.iterdir() if p.name.startswith("test_two")) == [
        "test_two.py"
    ]


def test_an_empty_file_or_a_folder_named_as_the_history_is_left_alone(
    pytester: pytest.Pytester,
) -> None:
    # SQLite takes an empty file for an empty database: an empty __init__.py
    # would become one, and its package would no longer import.
    pytester.makepyfile(test_one="import pkg\ndef test_one(): pass")
    init = pytester.mkpydir("pkg") / "__init__.py"
    init.write_text("")
    result = pytester.runpytest("--batchflow", "--batchflow-history=pkg/__init__.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*running without history: {init} is not a SQLite file*"])
    assert init.read_bytes() == b""
    folder = pytester.path / "pkg"
    result = pytester.runpytest("--batchflow", "--batchflow-history=pkg")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"batchflow: warning: running without history: {folder} is a folder, not a history"
            f" store; name a file in it, e.g. {folder / 'history.sqlite'}"
        ]
    )


@pytest.mark.skipif(not os.path.exists(os.devnull), reason="needs a null device")
def test_a_history_path_to_the_null_device_says_it_is_no_regular_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / ".batchflow").mkdir()
    store = pytester.path / ".batchflow" / "history.sqlite"
    store.symlink_to(os.devnull)
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=1)
    # SQLite said "cannot rollback - no transaction is active".
    result.stdout.fnmatch_lines(
        [
            f"batchflow: warning: running without history: {store} is not a regular file (a "
            "device, a pipe or a socket), so not a history store; give --batchflow-history a "
            "file, or use --batchflow-no-history"
        ]
    )


def test_unusable_history_location_runs_without_history(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / "blocker").write_text("a file where a folder should be")
    result = pytester.runpytest("--batchflow", "--batchflow-history=blocker/h.sqlite")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["batchflow: warning: running without history: cannot create the folder of *"]
    )


def _run_unable_to_write(
    args: list[str], cwd: Path, owner: bool = False
) -> subprocess.CompletedProcess[str]:
    """pytest in ``cwd`` as a user who may not write what is read-only there
    (root may write anything: root runs it as ``nobody``), or as the ``owner``."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    env = {**os.environ, "HOME": str(cwd), "BATCHFLOW_COMMIT": "c0ffee"}
    env.pop("PYTEST_ADDOPTS", None)
    if owner or os.geteuid() != 0:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    setpriv = shutil.which("setpriv")  # util-linux; Python's user= fails to exec in some sandboxes
    if setpriv is None:
        pytest.skip("running as root without setpriv to become another user")
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*nobody, sys.executable, "-c", "import pytest_batchflow"], check=False)
    if probe.returncode:
        pytest.skip("user nobody cannot run this Python")
    return subprocess.run([*nobody, *command], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_a_read_only_history_store_is_read_and_left_as_it_was(read_only: str) -> None:
    """A CI cache restored read-only: the plan has its durations, a later stage
    its dependencies met at this commit; nothing is written to it."""
    project = Path(tempfile.mkdtemp(prefix="batchflow-ro-"))
    try:
        project.chmod(0o755)
        (project / "pytest.ini").write_text(
            "[pytest]\nbatchflow_batches =\n"
            "    smoke: paths=test_smoke.py\n    unit: paths=test_unit.py after=smoke\n"
        )
        (project / "test_smoke.py").write_text(
            "import time\ndef test_login():\n    time.sleep(0.2)\n"
        )
        (project / "test_unit.py").write_text(
            "import pytest\n"
            "@pytest.mark.depends_on('test_smoke.py::test_login')\n"
            "def test_order(): pass\n"
        )
        first = _run_unable_to_write(["--batchflow"], project, owner=True)
        assert first.returncode == 0, first.stdout
        folder = project / ".batchflow"
        store = folder / "history.sqlite"
        assert not list(folder.glob("history.sqlite-*"))  # closed cleanly: no log left
        written = store.read_bytes()
        for path in project.rglob("*"):
            path.chmod(path.stat().st_mode & ~0o222)
        if read_only == "file":  # the folder stays writable: SQLite may make its log index
            folder.chmod(0o777)

        plan = _run_unable_to_write(["--batchflow", "--batchflow-plan"], project)
        stage = _run_unable_to_write(["--batchflow", "--batchflow-batches=unit", "-rA"], project)

        warning = (
            f"batchflow: warning: history store {store} is read-only: this run reads it and is "
            "not recorded in it (make the file and its folder writable to record runs)"
        )
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "(history for 2 of 2 tests)" in plan.stdout, plan.stdout
        assert stage.returncode == 0, stage.stdout + stage.stderr
        assert "PASSED test_unit.py::test_order" in stage.stdout, stage.stdout
        assert warning in stage.stdout.splitlines()
        assert store.read_bytes() == written
    finally:
        for path in [project, *project.rglob("*")]:
            path.chmod(0o700)
        shutil.rmtree(project)


def test_interrupted_run_keeps_the_attempts_that_finished(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="""
            import os
            def test_first(): pass
            def test_second(): pass
            def test_dies(): os._exit(3)
            def test_never(): pass
        """
    )
    result = pytester.runpytest_subprocess("--batchflow")
    assert result.ret == 3
    path = pytester.path / ".batchflow" / "history.sqlite"
    # Each stored as it finished, staged: the run never got to move them.
    assert history_rows(path, "SELECT nodeid, outcome FROM staged_attempts") == [
        ("test_crash.py::test_first", "passed"),
        ("test_crash.py::test_second", "passed"),
    ]
    # The next run moves them where the plan reads, under the run that made them.
    pytester.makepyfile(test_crash="def test_first(): pass\n")
    pytester.runpytest_subprocess("--batchflow").assert_outcomes(passed=1)
    assert history_rows(path, "SELECT run_id, nodeid, outcome FROM attempts") == [
        (1, "test_crash.py::test_first", "passed"),
        (1, "test_crash.py::test_second", "passed"),
        (2, "test_crash.py::test_first", "passed"),
    ]
    assert history_rows(path, "SELECT COUNT(*) FROM staged_attempts") == [(0,)]


def test_json_schema_in_docs_matches_the_model() -> None:
    """docs/conf.py regenerates it; this catches a model change without a docs build."""
    from pytest_batchflow.results import json_schema

    schema = json.loads(json_schema())
    assert schema["title"] == "RunResult"
    assert {"schema_version", "environment", "batches", "tests"} <= set(schema["properties"])


def test_failed_subtest_fails_the_test_and_skips_its_dependents(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sub="""
            import unittest
            import pytest

            class TestRows(unittest.TestCase):
                def test_rows(self):
                    for n in range(3):
                        with self.subTest(n=n):
                            self.assertNotEqual(n, 1)

            @pytest.mark.depends_on("test_sub.py::TestRows::test_rows")
            def test_after_rows():
                pass
        """
    )
    result = pytester.runpytest("--batchflow", "--batchflow-json=r.json", "-rs")
    result.stdout.fnmatch_lines(["*depends on test_sub.py::TestRows::test_rows, which failed"])
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    assert [test.outcome for test in data.tests] == ["failed", "skipped"]
    assert all(test.start > 0 for test in data.tests)


def test_store_of_a_newer_batchflow_is_left_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    store = pytester.path / ".batchflow" / "history.sqlite"
    store.parent.mkdir()
    with closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, later_column TEXT)")
        db.execute("PRAGMA user_version = 99")
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: running without history: history store "
            "*/.batchflow/history.sqlite has schema version 99, newer than this batchflow's "
            f"{SCHEMA_VERSION}; upgrade pytest-batchflow or use another --batchflow-history"
        ]
    )
    assert history_rows(store, "PRAGMA user_version") == [(99,)]
    assert not list(store.parent.glob("*.corrupt-*"))


def test_every_output_survives_a_lone_surrogate_and_keeps_the_xfail_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_odd="""
        import pytest

        def test_surrogate():
            assert 0, "bad byte \\udcff here"

        @pytest.mark.xfail(reason="issue 12")
        def test_known():
            assert 0
        """
    )
    result = pytester.runpytest(
        "--batchflow", "--batchflow-json=result.json", "--batchflow-junit=junit.xml"
    )
    result.assert_outcomes(failed=1, xfailed=1)
    assert "could not write" not in result.stdout.str()
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    surrogate, known = data.tests
    assert surrogate.longrepr is not None
    assert "bad byte \\udcff here" in surrogate.longrepr
    assert known.longrepr == "xfail: issue 12"
    assert "bad byte" in (pytester.path / ".batchflow" / "report.html").read_text()
    assert "bad byte" in (pytester.path / "junit.xml").read_text()


def test_a_rerun_test_keeps_only_its_last_attempts_output(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_again="""
        import pathlib

        def test_again():
            path = pathlib.Path(__file__).with_name("count")
            count = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(count))
            print(f"attempt {count}")
            assert count == 2
        """
    )
    result = pytester.runpytest("--batchflow", "--batchflow-reruns=1", "--batchflow-json=r.json")
    assert result.parseoutcomes() == {"flaky": 1, "rerun": 1}
    (test,) = RunResult.model_validate_json((pytester.path / "r.json").read_text()).tests
    assert test.stdout == "attempt 2\n"


def test_the_batchflow_section_comes_after_other_plugins_summaries(
    pytester: pytest.Pytester,
) -> None:
    """Just before pytest's short test summary: another plugin's section (a
    pytest-benchmark table) does not read as part of batchflow's."""
    pytester.makeconftest(
        """
        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_sep("-", "another plugin's table")
        """
    )
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("--batchflow", "-rA")
    result.stdout.fnmatch_lines(
        ["*- another plugin's table -*", "*= batchflow =*", "*= short test summary info =*"]
    )


COLLECTION_SUITE = {
    "test_ok": "def test_ok():\n    pass\n",
    "test_broken": "import not_installed_anywhere\n\ndef test_never():\n    pass\n",
    "test_needs_x": (
        "import pytest\n\npytest.skip('needs X', allow_module_level=True)\n\n"
        "def test_x():\n    pass\n"
    ),
    # Reported by each xdist worker (its text is not a plain string): kept once.
    "test_bad_params": (
        "import pytest\n\n@pytest.mark.parametrize('x', [1])\ndef test_p(y):\n    pass\n"
    ),
    # The exception is named after its source lines.
    "test_syntax": "def test_s(:\n    pass\n",
}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_what_could_not_be_collected_is_in_every_output(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workers: list[str],
) -> None:
    if workers:
        pytest.importorskip("xdist")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(**COLLECTION_SUITE)
    args = ["--continue-on-collection-errors", "-p", "no:cacheprovider", *workers]
    plain = pytester.runpytest_subprocess(*args).parseoutcomes()
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=out/result.json", "--batchflow-junit=out/junit.xml", *args
    )
    assert result.parseoutcomes() == plain  # pytest's counts, as without batchflow
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = RunResult.model_validate_json((pytester.path / "out/result.json").read_text())
    assert [t.nodeid for t in data.tests] == ["test_ok.py::test_ok"]
    assert sorted((c.nodeid, c.outcome) for c in data.collection) == [
        ("test_bad_params.py", "error"),
        ("test_broken.py", "error"),
        ("test_needs_x.py", "skipped"),
        ("test_syntax.py", "error"),
    ]
    problems = {c.nodeid: c.longrepr for c in data.collection}
    assert (
        "ModuleNotFoundError: No module named 'not_installed_anywhere'"
        in problems["test_broken.py"]
    )
    assert problems["test_needs_x.py"] == "needs X"
    assert (data.exitstatus, data.failed_by) == (1, ["collection"])
    html = (pytester.path / ".batchflow/report.html").read_text()
    assert "<title>batchflow: failed, 1 test, 3 collection errors</title>" in html
    assert "<b>3</b> collection errors</a>" in html
    assert "<b>1</b> skipped while collecting</a>" in html
    assert '<dd id="why-failed">collection: 3 could not be collected</dd>' in html
    assert '<tr><td class="mono">test_broken.py</td><td class="o-error">error</td>' in html
    junit = ElementTree.parse(pytester.path / "out/junit.xml").getroot()
    assert (junit.get("tests"), junit.get("errors"), junit.get("skipped")) == ("5", "3", "1")
    (suite,) = [s for s in junit.iter("testsuite") if s.get("name") == "pytest collection"]
    cases = {c.get("name"): (c.get("classname"), c[0].tag, c[0].get("message")) for c in suite}
    assert cases == {
        "test_bad_params": (
            "",
            "error",
            # pytest >= 9.1 names the test by its node id, earlier ones by its name.
            f"In {'test_bad_params.py::' if pytest.version_tuple >= (9, 1) else ''}test_p:"
            " function uses no argument 'x'",
        ),
        "test_broken": (
            "",
            "error",
            "ModuleNotFoundError: No module named 'not_installed_anywhere'",
        ),
        "test_needs_x": ("", "skipped", "needs X"),
        "test_syntax": ("", "error", "SyntaxError: invalid syntax"),
    }
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("\n## ❌ batchflow: failed by collection\n")
    assert "**1 test**: 1 passed, 3 collection errors, 1 skipped while collecting  " in text
    assert "### Collection errors (3)" in text
    assert "- <code>test&#95;syntax.py</code>: <code>SyntaxError&#58; invalid syntax</code>" in text
    result.stdout.fnmatch_lines(
        ["::error file=test_broken.py,title=batchflow%3A test_broken.py could not be collected::*"]
    )


def test_an_interrupted_collection_is_in_the_json_result(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ok=COLLECTION_SUITE["test_ok"], test_broken=COLLECTION_SUITE["test_broken"]
    )
    result = pytester.runpytest("--batchflow", "--batchflow-json=out/result.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = RunResult.model_validate_json((pytester.path / "out/result.json").read_text())
    assert data.tests == []
    assert [(c.nodeid, c.outcome) for c in data.collection] == [("test_broken.py", "error")]
    assert (data.exitstatus, data.failed_by) == (2, ["collection"])
    html = (pytester.path / ".batchflow/report.html").read_text()
    assert '<dd id="why-failed">collection: 1 could not be collected</dd>' in html


def test_a_collection_error_with_undecodable_text_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_odd="raise ImportError('bad \\udcff name')\n")
    result = pytester.runpytest(
        "--batchflow", "--batchflow-json=out/result.json", "--continue-on-collection-errors"
    )
    result.assert_outcomes(errors=1)
    data = RunResult.model_validate_json((pytester.path / "out/result.json").read_text())
    assert "ImportError: bad \\udcff name" in data.collection[0].longrepr


def test_the_history_keeps_the_command_line_as_a_shell_would_take_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass\ndef test_two(): pass\n")
    pytester.runpytest("--batchflow", "-k", "one or two").assert_outcomes(passed=2)
    store = pytester.path / ".batchflow" / "history.sqlite"
    [(invocation,)] = history_rows(store, "SELECT invocation FROM runs")
    assert invocation.startswith("--batchflow -k 'one or two' ")  # pytester adds --basetemp


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_times_stay_real_when_tests_freeze_the_clock(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytest.importorskip("freezegun")
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(
        test_frozen=FROZEN_MODULE
        + "def test_one():\n    time.sleep(0.01)\n\n\ndef test_two():\n    time.sleep(0.01)\n"
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=r.json", "-p", "no:cacheprovider", *workers
    )
    result.assert_outcomes(passed=2)
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    for test in data.tests:
        assert 0 <= test.duration < 60
        assert data.started - 1 <= test.start <= test.stop <= data.stopped + 1
        assert test.resources is not None
        assert 0 <= test.resources.wall < 60
    assert 0 <= data.batches[0].duration < 60
    result = pytester.runpytest_subprocess("--batchflow-plan", "-p", "no:cacheprovider")
    result.stdout.no_fnmatch_line("*test_frozen.py::test_* -*")
    result.stdout.fnmatch_lines(["lower bound: *s on 1 worker*"])


def test_phase_times_stay_pytest_s_around_subtests_and_slow_hooks(
    pytester: pytest.Pytester,
) -> None:
    """Only a clock moved under pytest replaces its times: not a subtest's
    report within the call, nor another plugin's hook taking long between phases."""
    if not hasattr(pytest, "Subtests"):
        pytest.skip("pytest's subtests fixture needs pytest 9")
    pytester.makeconftest(
        """
        import time
        def pytest_runtest_logreport(report):
            if report.nodeid.endswith("test_plain") and report.when == "setup":
                time.sleep(1.2)
        """
    )
    pytester.makepyfile(
        test_times="""
            import time

            def test_sub(subtests):
                time.sleep(1.2)
                with subtests.test():
                    pass
                time.sleep(0.1)

            def test_plain():
                time.sleep(0.1)
        """
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=r.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    tests = {test.nodeid.split("::")[-1]: test for test in data.tests}
    calls = {name: next(p for p in t.phases if p.when == "call") for name, t in tests.items()}
    assert 1.3 <= calls["test_sub"].duration < 5
    assert 0.1 <= calls["test_plain"].duration < 1


def test_times_stay_real_when_tests_move_only_the_time_of_day(
    pytester: pytest.Pytester,
) -> None:
    """time-machine moves time.time (everywhere, pytest's timing included) and
    leaves perf_counter alone: a teardown then starts in 1971 and lasts 0.1 ms."""
    pytester.makepyfile(
        test_travel="""
            import time
            import pytest
            import _pytest.timing

            @pytest.fixture(scope="module", autouse=True)
            def travelled():
                with pytest.MonkeyPatch.context() as patch:
                    for module in (time, _pytest.timing):
                        patch.setattr(module, "time", lambda: 31622400.0)
                    yield

            def test_one(): pass
            def test_two(): pass
        """
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=r.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    for test in data.tests:
        assert data.started - 1 <= test.start <= test.stop <= data.stopped + 1
    assert 0 <= data.batches[0].duration < 60


def test_results_made_in_slices_keep_each_test_s_own_outcome(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_batchflow import orchestrator

    monkeypatch.setattr(orchestrator, "_BUILD_SLICE", 2)  # 7 tests: four slices
    pytester.makepyfile(
        test_mix="""
            import pytest

            @pytest.mark.parametrize("n", range(7))
            def test_n(n):
                if n % 3 == 1:
                    pytest.skip("every third")
                assert n != 5, "five fails"
        """
    )
    result = pytester.runpytest_inprocess("--batchflow", "--batchflow-json=r.json")
    result.assert_outcomes(passed=4, skipped=2, failed=1)
    data = RunResult.model_validate_json((pytester.path / "r.json").read_text())
    outcomes = {test.nodeid.split("[")[1].rstrip("]"): test.outcome for test in data.tests}
    assert outcomes == {
        "0": "passed",
        "1": "skipped",
        "2": "passed",
        "3": "passed",
        "4": "skipped",
        "5": "failed",
        "6": "passed",
    }
    (failed,) = [test for test in data.tests if test.outcome == "failed"]
    assert "five fails" in (failed.longrepr or "")


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_the_history_keeps_each_test_s_attempts_of_its_latest_runs(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_one="def test_one(): pass\ndef test_two(): pass\n")
    store = pytester.path / ".batchflow" / "history.sqlite"
    keep = ["--batchflow-history-runs=2", "--batchflow-flaky-window=2"]
    for _ in range(3):
        result = pytester.runpytest("--batchflow", *keep, *workers)
        result.assert_outcomes(passed=2)
    # Runs of one test push no other test's history out.
    for _ in range(3):
        pytester.runpytest("--batchflow", *keep, "test_one.py::test_one").assert_outcomes(passed=1)
    assert history_rows(store, "SELECT COUNT(*) FROM runs") == [(6,)]
    rows = "SELECT nodeid, run_id FROM attempts ORDER BY nodeid, run_id"
    assert history_rows(store, rows) == [
        ("test_one.py::test_one", 5),
        ("test_one.py::test_one", 6),
        ("test_one.py::test_two", 2),
        ("test_one.py::test_two", 3),
    ]
    refused = pytester.runpytest("--batchflow", "--batchflow-history-runs=5")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-history-runs (command line): a test's 5 runs kept"
            " are fewer than the 20 its flakiness score looks at (--batchflow-flaky-window);"
            " keep at least as many, e.g. --batchflow-history-runs=20, or 0 to keep all"
        ]
    )


def test_a_plan_without_history_says_why_its_estimate_is_unknown(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    first = pytester.runpytest("--batchflow-plan")  # no store yet: nothing timed
    first.stdout.fnmatch_lines(
        ["estimated duration: unknown (no durations in the history yet: a test is timed when*"]
    )
    pytester.runpytest("--batchflow").assert_outcomes(passed=1)
    off = pytester.runpytest("--batchflow-plan", "--batchflow-no-history")
    off.stdout.fnmatch_lines(
        [
            "estimated duration: unknown (no history read: --batchflow-no-history, or the store"
            " could not be used)"
        ]
    )
    timed = pytester.runpytest("--batchflow-plan")
    timed.stdout.fnmatch_lines(["estimated duration: * (history for 1 of 1 test)"])


OUTPUT_OPTIONS = ("--batchflow-json", "--batchflow-html", "--batchflow-junit")


@pytest.mark.parametrize("option", OUTPUT_OPTIONS)
def test_an_output_option_never_replaces_a_file_batchflow_did_not_write(
    pytester: pytest.Pytester, option: str
) -> None:
    # The option takes the next argument as its path: the test file, here.
    test_file = pytester.makepyfile(test_api="def test_api(): pass")
    source = test_file.read_bytes()
    result = pytester.runpytest("--batchflow", option, "test_api.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: batchflow: {option} (command line): */test_api.py exists and is not *"]
    )
    assert test_file.read_bytes() == source
    assert not (pytester.path / ".batchflow").exists()  # nothing ran


def test_the_outputs_batchflow_wrote_are_replaced_by_the_next_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / "empty.xml").touch()  # an empty file is taken too
    paths = ("out/result.json", "out/report.html", "empty.xml")
    args = [f"{option}={path}" for option, path in zip(OUTPUT_OPTIONS, paths, strict=True)]
    first = pytester.runpytest("--batchflow", *args)
    first.assert_outcomes(passed=1)
    written = {path: (pytester.path / path).read_bytes() for path in paths}
    assert all(written.values())
    second = pytester.runpytest("--batchflow", *args)
    second.assert_outcomes(passed=1)
    assert second.ret == pytest.ExitCode.OK
    for path, before in written.items():
        after = (pytester.path / path).read_bytes()
        assert after
        assert after != before  # the second run's own start time, at least


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_in_a_folder_that_takes_no_file_is_refused_before_the_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--batchflow", "--batchflow-json=/proc/result.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-json (command line): cannot write in /proc: *; "
            "e.g. --batchflow-json=.batchflow/result.json"
        ]
    )
    assert not (pytester.path / ".batchflow").exists()


@pytest.mark.skipif(not os.path.exists(os.devnull), reason="needs a null device")
@pytest.mark.parametrize("option", OUTPUT_OPTIONS)
def test_an_output_on_a_device_is_refused_and_the_device_left_alone(
    pytester: pytest.Pytester, option: str
) -> None:
    # Written atomically, the output would have taken the device's place (as root).
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--batchflow", f"{option}={os.devnull}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: batchflow: {option} (command line): {os.devnull} is not a regular file "
            "(a device, a pipe or a socket); name a file; e.g. *"
        ]
    )
    assert not Path(os.devnull).is_file()


def test_a_run_that_writes_nothing_does_not_check_the_outputs(pytester: pytest.Pytester) -> None:
    # The project's ini names an output that pytest's own --junitxml wrote once.
    pytester.makeini("[pytest]\nbatchflow = true\nbatchflow_junit = junit.xml\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / "junit.xml").write_text('<?xml version="1.0"?><testsuites name="pytest"/>')
    for args in (["--collect-only"], ["--help"], ["--markers"], ["--batchflow-plan"]):
        assert pytester.runpytest(*args).ret == pytest.ExitCode.OK, args
    refused = pytester.runpytest()
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["ERROR: batchflow: batchflow_junit (*tox.ini): */junit.xml exists and is not a JUnit *"]
    )


def test_an_output_shared_with_pytest_s_junitxml_is_named_as_such(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--batchflow", "--batchflow-junit=j.xml", "--junitxml=j.xml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-junit (command line): */j.xml is also the file of "
            "pytest's --junitxml; give each output a file of its own, "
            "e.g. --batchflow-junit=.batchflow/junit.xml"
        ]
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_ini_output_in_a_folder_that_takes_no_file_is_a_warning_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    # A checkout mounted read-only: the project's choice, not this command's.
    pytester.makeini("[pytest]\nbatchflow_json = /proc/result.json\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--batchflow")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["batchflow: warning: could not write the JSON result to /proc/result.json: *"]
    )


def test_a_folder_that_cannot_be_entered_is_a_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_batchflow.files import output_problem

    def refused(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", refused)
    assert output_problem(tmp_path / "locked" / "r.json", "json") == (
        f"cannot reach {tmp_path / 'locked' / 'r.json'}: Permission denied"
    )


def test_a_folder_that_keeps_the_probe_s_file_does_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_batchflow.files import output_problem

    def kept(path: str) -> None:  # a folder with chattr +a: files are made, never removed
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(os, "unlink", kept)
    assert output_problem(tmp_path / "r.json", "json") is None
