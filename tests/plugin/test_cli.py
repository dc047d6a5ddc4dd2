"""The ``batchflow`` command over a history written by real runs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from pytest_batchflow.cli import main

SUITE = """
import pathlib

def attempt(name):
    path = pathlib.Path(__file__).with_name(f".attempts-{name}")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count

def test_flaky():
    # Fails on the first attempt of every run (odd attempts), passes on its rerun.
    assert attempt("flaky") % 2 == 0, "odd attempt"

def test_stable():
    pass

def test_broken():
    assert 0, "always"
"""


@pytest.fixture
def store(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Three runs of SUITE with one rerun each, at the same commit."""
    monkeypatch.setenv("BATCHFLOW_COMMIT", "c0ffee")
    pytester.makepyfile(test_suite=SUITE)
    for _ in range(3):
        result = pytester.runpytest_subprocess("--batchflow", "--batchflow-reruns=1")
        assert result.parseoutcomes() == {"failed": 1, "passed": 1, "flaky": 1, "rerun": 2}
    monkeypatch.chdir(pytester.path)
    return pytester


def test_flaky_lists_tests_by_score_with_evidence(
    store: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flaky"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["score", "runs", "flaky", "runs", "flips", "excluded", "test"]
    # Flaky in each of 3 runs; same outcome each run: 3 / (3 runs + 2 pairs).
    assert lines[1].split() == ["0.60", "3", "3", "0/2", "0", "test_suite.py::test_flaky"]
    # Always broken and always passing tests are not flaky.
    assert not any("test_broken" in line or "test_stable" in line for line in lines)
    assert main(["flaky", "--all"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:4]]
    assert rows[1:] == [
        ["0.00", "3", "0", "0/2", "0", "test_suite.py::test_broken"],
        ["0.00", "3", "0", "0/2", "0", "test_suite.py::test_stable"],
    ]


def test_flaky_scores_over_the_window(
    store: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last 2 runs: flaky in both, one same-commit pair without a flip: 2 / (2 + 1).
    assert main(["flaky", "--window", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0.67", "2", "2", "0/1", "0", "test_suite.py::test_flaky"]
    assert lines[2] == ""


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["flaky", "--window", "0"], "--window", "0"),
        (["history", "t.py::a", "--limit", "-3"], "--limit", "-3"),
    ],
)
def test_a_count_below_one_is_a_usage_error(
    args: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"batchflow {args[0]}: error: argument {option}: '{value}' is not a whole number of "
        "at least 1"
    )


def test_history_shows_a_test_s_attempts_newest_first(
    store: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "test_suite.py::test_flaky", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "started", "(UTC)"]
    rows = [line.split() for line in lines[1:]]
    # run, date, time, commit, worker, outcome, ...
    assert [(row[0], row[3], row[4], row[5]) for row in rows] == [
        ("3", "c0ffee", "main", "passed"),
        ("3", "c0ffee", "main", "failed"),
        ("2", "c0ffee", "main", "passed"),
    ]


def test_a_missing_store_is_a_clear_error(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flaky", "--history", str(pytester.path / "nope.sqlite")]) == 2
    assert capsys.readouterr().err == (
        f"batchflow: no history store at {pytester.path / 'nope.sqlite'}; run pytest "
        "--batchflow first, or give --history PATH\n"
    )


def test_a_store_the_command_cannot_read_is_named_with_the_command_s_option(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pytester.path / "stores"
    folder.mkdir()
    assert main(["flaky", "--history", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"batchflow: {folder} is a folder, not a history store; name a file in it, "
        f"e.g. {folder / 'history.sqlite'}\n"
    )
    foreign = pytester.path / "app.sqlite"
    with closing(sqlite3.connect(foreign)) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    assert main(["history", "test_x", "--history", str(foreign)]) == 2
    assert capsys.readouterr().err == (
        f"batchflow: {foreign} is not a batchflow history store (it holds tables users, "
        "schema version 0); give --history a file of its own\n"
    )


def test_a_limit_larger_than_sqlite_takes_shows_every_attempt(
    store: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "test_suite.py::test_flaky", "--limit", str(2**70)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 6  # three runs, each a failed attempt and a pass


@pytest.mark.parametrize("module", ["pytest_batchflow", "pytest_batchflow.cli"])
def test_runs_as_a_module(store: pytest.Pytester, module: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", module, "flaky"],
        capture_output=True,
        text=True,
        check=False,
        cwd=store.path,
    )
    assert completed.returncode == 0, completed.stderr
    assert "test_suite.py::test_flaky" in completed.stdout


def test_a_damaged_store_is_reported_and_left_where_it_is(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading commands write nothing: the next pytest run deals with the damage."""
    path = pytester.path / "history.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    assert main(["flaky", "--history", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"batchflow: cannot read history store {path}: file is not a database\n"
    )
    assert sorted(p.name for p in pytester.path.iterdir()) == ["history.sqlite"]
    assert path.read_bytes() == b"this is not a database" * 100


def test_a_reader_that_stops_early_ends_no_run_in_a_traceback(store: pytest.Pytester) -> None:
    reader = subprocess.Popen(
        # true reads nothing and exits long before Python has started: the write
        # always meets a closed pipe.
        f"{sys.executable} -m pytest_batchflow.cli history test_suite.py::test_flaky | true",
        shell=True,
        cwd=store.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = reader.communicate(timeout=60)
    assert (stdout, stderr) == ("", "")


def test_an_empty_store_is_said_to_be_empty(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pytester.path / "history.sqlite"
    path.write_bytes(b"")
    assert main(["flaky", "--history", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"batchflow: history store {path} is empty: no run is recorded in it\n"
    )


@pytest.mark.parametrize(
    ("commit", "shown"),
    [
        ("0123456789abcdef", "0123456789"),
        ("0123456789abcdef+89abcdef0123", "0123456+89ab"),
        (None, "-"),
    ],
)
def test_the_history_shows_a_commit_and_its_edits_apart(commit: str | None, shown: str) -> None:
    from pytest_batchflow.cli import _short_commit

    assert _short_commit(commit) == shown
