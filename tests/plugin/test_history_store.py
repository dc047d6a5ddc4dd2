"""What the plan reads of the history store: each test's last few attempts."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.flaky import RunRecord, flakiness, is_infrastructure_run
from pytest_batchflow.history import (
    DURATION_WINDOW,
    GATE_ACCEPTED,
    GATE_FAILED,
    MEMORY_WINDOW,
    SCHEMA_VERSION,
    Attempt,
    BenchmarkRow,
    HistoryError,
    HistoryStore,
    _connect_read_only,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    opened, warning = HistoryStore.open(tmp_path / "history.sqlite")
    assert warning is None
    yield opened
    opened.close()


def attempt(
    nodeid: str,
    outcome: str,
    duration: float,
    memory: int | None = None,
    shared_setup: float | None = None,
) -> Attempt:
    return Attempt(
        nodeid=nodeid,
        batch="default",
        outcome=outcome,
        phase=None,
        duration=duration,
        started=0.0,
        stopped=duration,
        worker="gw0",
        longrepr=None,
        shared_setup=shared_setup,
        memory=memory,
    )


def record_runs(store: HistoryStore, runs: list[list[Attempt]]) -> None:
    for number, attempts in enumerate(runs):
        run_id = store.start_run(float(number), None, "host", "3.11", "pytest")
        store.record_attempts(run_id, None, attempts)


def test_staged_attempts_are_read_once_moved_in_the_order_staged(
    store: HistoryStore, tmp_path: Path
) -> None:
    run_id = store.start_run(0.0, "abc", "host", "3.11", "pytest")
    store.stage_attempts(run_id, "abc", [attempt("t.py::a", "passed", 1.0)])
    store.stage_attempts(run_id, "abc", [attempt("t.py::b", "failed", 2.0)])
    assert store.durations() == {}  # staged: the readers do not look there
    assert store.fold_staged() == 2
    assert store.fold_staged() == 0
    assert store.durations() == {"t.py::a": 1.0}
    with closing(sqlite3.connect(tmp_path / "history.sqlite")) as db:
        rows = db.execute("SELECT id, run_id, nodeid, outcome, git_commit FROM attempts").fetchall()
        staged = db.execute("SELECT COUNT(*) FROM staged_attempts").fetchone()
    assert [row[1:] for row in rows] == [
        (run_id, "t.py::a", "passed", "abc"),
        (run_id, "t.py::b", "failed", "abc"),
    ]
    assert rows[0][0] < rows[1][0]
    assert staged == (0,)


def test_attempts_a_killed_run_staged_are_moved_when_the_store_is_next_opened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite"
    first, _ = HistoryStore.open(path)
    run_id = first.start_run(0.0, None, "host", "3.11", "pytest")
    first.stage_attempts(run_id, None, [attempt("t.py::a", "passed", 1.5)])
    # The process dies here: nothing moves them. The next run's store does.
    second, _ = HistoryStore.open(path)
    assert second.durations() == {"t.py::a": 1.5}
    second.close()
    first.close()


def test_a_store_only_read_sees_the_attempts_a_killed_run_staged(tmp_path: Path) -> None:
    """batchflow history and flaky (which only read) saw no attempt of a serial
    run a crash killed until the next pytest run moved them; the store is
    left as it is."""
    path = tmp_path / "history.sqlite"
    first, _ = HistoryStore.open(path)
    record_runs(first, [[attempt("t.py::a", "passed", 1.0)]])
    run_id = first.start_run(1.0, None, "host", "3.11", "pytest")
    first.stage_attempts(run_id, None, [attempt("t.py::a", "failed", 2.0)])
    first.stage_attempts(run_id, None, [attempt("t.py::b", "passed", 3.0)])
    # The process dies here.
    plans = HistoryStore.read(path)
    try:
        assert plans.durations() == {"t.py::a": 1.0}  # the plan's reads: not the staged ones
    finally:
        plans.close()
    reader = HistoryStore.read(path, staged=True)
    try:
        assert [row[0] for row in reader.attempts_of("t.py::a", 10)] == [run_id, run_id - 1]
        assert reader.attempts_of("t.py::b", 10)[0][4] == "passed"
        assert reader.durations() == {"t.py::a": 1.0, "t.py::b": 3.0}
    finally:
        reader.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM staged_attempts").fetchone() == (2,)
    first.close()


def test_the_plan_reads_each_tests_last_attempts(store: HistoryStore) -> None:
    # Eight runs: "a" passes with durations 1..8 and fails in run 6; "b" only
    # fails; "c" ran in the first run only. Memory and shared setups are
    # measured in some runs and not others.
    runs = []
    for n in range(1, 9):
        runs.append(
            [
                attempt(
                    "t.py::a",
                    "failed" if n == 6 else "passed",
                    float(n),
                    memory=n * 100 if n != 8 else None,
                    shared_setup=n / 10 if n <= 5 else None,
                ),
                attempt("t.py::b", "failed", 9.0),
                *([attempt("t.py::c", "xpassed", 0.5, memory=7)] if n == 1 else []),
            ]
        )
    record_runs(store, runs)
    assert DURATION_WINDOW == MEMORY_WINDOW == 5
    # The last five passing attempts of a: runs 8, 7, 5, 4, 3.
    assert store.durations() == {"t.py::a": (8 + 7 + 5 + 4 + 3) / 5, "t.py::c": 0.5}
    # The largest of the last five measured: runs 7, 6, 5, 4, 3 (8 measured nothing).
    assert store.memory_needs() == {"t.py::a": 700, "t.py::c": 7}
    # The latest measured shared setup: run 5.
    assert store.shared_setups() == {"t.py::a": 0.5}
    # The xdist controller reads all three in one query.
    assert store.plan_figures() == (
        store.durations(),
        store.shared_setups(),
        store.memory_needs(),
    )


def test_the_plans_figures_are_read_through_the_index_by_node_id(store: HistoryStore) -> None:
    # Each test's last attempts, looked up in the index: the reading grows with
    # the number of tests, not with the history's length (a window over every
    # attempt took 3 s on 550,000 of them, where this takes 0.15 s).
    record_runs(store, [[attempt("t.py::a", "passed", 1.0, memory=1, shared_setup=0.1)]])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.durations()
    store.shared_setups()
    store.memory_needs()
    store.plan_figures()
    store._db.set_trace_callback(None)
    assert len(statements) == 4
    for statement in statements:
        plan = " | ".join(
            str(row[3]) for row in store._db.execute("EXPLAIN QUERY PLAN " + statement)
        )
        assert "SEARCH attempts USING INDEX attempts_by_nodeid (nodeid=?)" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def rows_in_the_file(path: Path) -> int:
    """Attempts in the database file itself, without its write-ahead log."""
    with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


def test_a_run_reaches_the_database_file_when_it_finishes(tmp_path: Path) -> None:
    # Copying the log into the file syncs it to disk: once a run, at its end,
    # not every 1,000 pages while its tests run.
    path = tmp_path / "history.sqlite"
    HistoryStore.open(path)[0].close()  # the schema, in the file
    store, _ = HistoryStore.open(path)
    try:
        run_id = store.start_run(0.0, None, "host", "3.11", "pytest")
        attempts = [attempt(f"t.py::test_{n}", "passed", 0.1) for n in range(60_000)]
        store.record_attempts(run_id, None, attempts)
        assert Path(f"{path}-wal").stat().st_size > 1_000 * 4096  # past SQLite's default
        assert rows_in_the_file(path) == 0
        store.finish_run(run_id, 1.0, 0)
        # In a thread of its own, while the run sums up; the store stays open.
        store.wait_for_checkpoint()
        assert rows_in_the_file(path) == 60_000
        # The store goes on working beside it: a second run's attempts.
        second = store.start_run(2.0, None, "host", "3.11", "pytest")
        store.record_attempts(second, None, attempts[:10])
        store.finish_run(second, 3.0, 0)
        store.wait_for_checkpoint()
        assert rows_in_the_file(path) == 60_010
    finally:
        store.close()
    reopened, _ = HistoryStore.open(path)
    try:
        assert len(reopened.durations()) == 60_000
    finally:
        reopened.close()


def test_a_finished_run_deletes_its_tests_attempts_of_runs_older_than_those_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite"
    store, _ = HistoryStore.open(path)
    try:
        runs = []
        for number in range(5):
            run_id = store.start_run(float(number), None, "host", "3.11", "pytest")
            duration = 1.0 if number < 2 else 2.0  # the two oldest runs: 1 s
            # test_b runs in the first run only; test_a, twice in run 3 (a rerun).
            attempts = [attempt("t.py::test_a", "passed", duration)] * (2 if number == 3 else 1)
            if number == 0:
                attempts.append(attempt("t.py::test_b", "passed", 1.0))
            store.record_attempts(run_id, None, attempts)
            store.finish_run(run_id, float(number), 0, keep_runs=3)
            store.wait_for_checkpoint()
            runs.append(run_id)
        with closing(sqlite3.connect(path)) as db:
            kept = db.execute("SELECT nodeid, run_id FROM attempts ORDER BY id").fetchall()
            (count,) = db.execute("SELECT COUNT(*) FROM runs").fetchone()
        # test_a: its attempts of its latest 3 runs (both of run 3's); test_b,
        # which later runs did not run, keeps its one run.
        assert kept == [
            ("t.py::test_b", runs[0]),
            ("t.py::test_a", runs[2]),
            ("t.py::test_a", runs[3]),
            ("t.py::test_a", runs[3]),
            ("t.py::test_a", runs[4]),
        ]
        assert count == 5  # the runs' own rows stay
        assert store.durations()["t.py::test_a"] == 2.0  # the old 1 s are gone
        assert store.prune(runs[-1], 3) == 0  # nothing more to delete
        assert store.prune(runs[-1], 1) == 3
        # Nothing of a later run (one still recording beside it) is deleted.
        assert store.prune(runs[0], 1) == 0
    finally:
        store.close()


def test_a_long_history_is_cut_down_over_several_runs(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_batchflow import history

    monkeypatch.setattr(history, "PRUNE_AT_ONCE", 10)
    tests = [f"t.py::test_{n}" for n in range(4)]
    record_runs(store, [[attempt(nodeid, "passed", 1.0) for nodeid in tests]] * 8)
    (last,) = store._db.execute("SELECT MAX(id) FROM runs").fetchone()
    # 8 runs, 2 kept: 6 attempts a test to delete; a call stops past 10.
    assert [store.prune(last, 2) for _ in range(3)] == [12, 12, 0]
    assert all(len(store.attempts_of(nodeid, 20)) == 2 for nodeid in tests)


OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: Two tests scored, and six that fail together now and then: an
#: infrastructure failure (at least 5 failed, half of the run).
SCORED = ("t.py::a", "t.py::b")
CROWD = tuple(f"t.py::crowd{n}" for n in range(6))


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """Runs, oldest first: (commit, [(node id, outcome) in the order written])."""
    runs = []
    for _ in range(draw(st.integers(1, 30))):
        attempts = []
        for nodeid in SCORED:
            if draw(st.booleans()) or draw(st.booleans()):  # some runs leave a test out
                tries = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3))
                attempts += [(nodeid, outcome) for outcome in tries]
        crowd = "failed" if draw(st.integers(0, 4)) == 0 else "passed"
        attempts += [(nodeid, crowd) for nodeid in CROWD]
        runs.append((draw(st.sampled_from([None, "c1", "c2"])), attempts))
    return runs


@settings(max_examples=60, deadline=None)
@given(runs=histories(), window=st.integers(1, 8), data=st.data())
def test_recent_run_records_score_as_the_whole_history_does(
    runs: list[tuple[str | None, list[tuple[str, str]]]], window: int, data: st.DataObject
) -> None:
    # What a run reads of the history for flakiness scores (the tests that
    # failed, and automatic quarantine) goes back only as far as the window:
    # the scores and the last `window` runs are those of the whole history.
    # Runs may write at the same time: each run's attempts go in two parts,
    # the parts of all runs in a drawn order (each run's own in order).
    parts = data.draw(st.permutations([number for number in range(len(runs)) for _ in "ab"]))
    with tempfile.TemporaryDirectory() as folder:
        opened, _ = HistoryStore.open(Path(folder) / "history.sqlite")
        with closing(opened) as store:
            run_ids = [
                store.start_run(float(number), commit, "host", "3.11", "pytest")
                for number, (commit, _) in enumerate(runs)
            ]
            written = [0] * len(runs)
            for number in parts:
                commit, attempts = runs[number]
                half = (len(attempts) + 1) // 2
                part = attempts[:half] if not written[number] else attempts[half:]
                written[number] += 1
                store.record_attempts(
                    run_ids[number], commit, [attempt(n, outcome, 0.1) for n, outcome in part]
                )
            recent = store.recent_run_records([*SCORED, "t.py::never"], window)
    # The whole history, from what was written: each test's runs, oldest first.
    whole: dict[str, list[RunRecord]] = {}
    for run_id, (commit, attempts) in zip(run_ids, runs, strict=True):
        tried: dict[str, list[str]] = {}
        for nodeid, outcome in attempts:
            tried.setdefault(nodeid, []).append(outcome)
        infrastructure = is_infrastructure_run([outcomes[-1] for outcomes in tried.values()])
        for nodeid, outcomes in tried.items():
            whole.setdefault(nodeid, []).append(
                RunRecord(run_id, commit, tuple(outcomes), infrastructure)
            )
    assert set(recent) == {nodeid for nodeid in SCORED if nodeid in whole}
    for nodeid, records in recent.items():
        everything = whole[nodeid]
        assert records == everything[len(everything) - len(records) :]
        assert records[-window:] == everything[-window:]
        full, bounded = flakiness(everything, window), flakiness(records, window)
        assert (bounded.score, bounded.runs, bounded.flaky_runs, bounded.flips, bounded.pairs) == (
            full.score,
            full.runs,
            full.flaky_runs,
            full.flips,
            full.pairs,
        )


def test_recent_run_records_stop_at_the_window(store: HistoryStore) -> None:
    # 30 runs of a test that passes: a window of 5 reads its last 5 runs that
    # count, and those between them that do not (run 28 an infrastructure
    # failure, run 29 a skip).
    runs: list[list[Attempt]] = []
    for number in range(30):
        crowd = "failed" if number == 27 else "passed"
        runs.append(
            [
                attempt("t.py::a", "skipped" if number == 28 else "passed", 0.1),
                *(attempt(nodeid, crowd, 0.1) for nodeid in CROWD),
            ]
        )
    record_runs(store, runs)
    records = store.recent_run_records(["t.py::a"], 5)["t.py::a"]
    assert [record.run for record in records] == [24, 25, 26, 27, 28, 29, 30]
    assert [record.infrastructure for record in records] == [False] * 4 + [True] + [False] * 2
    assert records[-2].verdict is None


@pytest.mark.parametrize(("version", "writer"), [(SCHEMA_VERSION - 1, "an older"), (99, "a newer")])
def test_a_store_of_another_schema_is_not_read_as_it_is(
    tmp_path: Path, version: int, writer: str
) -> None:
    """Reading only, it cannot be migrated, and this batchflow cannot read it as it is."""
    path = tmp_path / "history.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
        db.execute(f"PRAGMA user_version = {version}")
    with pytest.raises(HistoryError) as raised:
        _connect_read_only(path)
    update = (
        "; a pytest --batchflow run updates it"
        if writer == "an older"
        else "; upgrade pytest-batchflow to read it"
    )
    assert str(raised.value) == (
        f"history store {path} was written by {writer} batchflow (schema "
        f"{version}, this one reads {SCHEMA_VERSION}){update}"
    )


def test_a_read_only_store_is_read_as_it_is(store: HistoryStore) -> None:
    store.start_run(1.0, "c0ffee", "host", "3.11", "pytest")
    store.close()
    reading = HistoryStore(store.path, _connect_read_only(store.path), read_only=True)
    try:
        assert reading.nodeids() == []
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reading.start_run(2.0, "c0ffee", "host", "3.11", "pytest")
    finally:
        reading.close()


def test_another_program_s_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        db.commit()
    with pytest.raises(HistoryError) as raised:
        HistoryStore.open(path)
    assert str(raised.value) == (
        f"{path} is not a batchflow history store (it holds tables users, schema version 0); "
        "give --batchflow-history a file of its own"
    )
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # header untouched
    with pytest.raises(HistoryError, match="is not a batchflow history store"):
        HistoryStore.read(path)  # the batchflow command says the same


def test_another_program_s_database_with_a_schema_version_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE attempts (id INTEGER PRIMARY KEY)")
        db.execute("PRAGMA user_version = 3")
    with pytest.raises(HistoryError, match=r"\(it holds tables attempts, schema version 3\)"):
        HistoryStore.open(path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_exception_groups_have_digests_of_their_own() -> None:
    from pytest_batchflow.history import error_digest

    box = "\n  +-+---- 1 ----\n    | ValueError: a\n    +------------"
    first = f"+ Exception Group Traceback:\n  | ExceptionGroup: two errors (2 sub-exceptions){box}"
    second = f"+ Exception Group Traceback:\n  | ExceptionGroup: a timeout (1 sub-exception){box}"
    assert error_digest(first) != error_digest(second)
    assert error_digest(first) == error_digest(first.replace("two", "two"))


def test_a_history_path_this_process_may_not_look_into_runs_without_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked" / "history.sqlite"

    def refused(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", refused)
    with pytest.raises(HistoryError, match=r"cannot use history store .*: .*Permission denied"):
        HistoryStore.open(path)


def record_benchmark_runs(store: HistoryStore, gates: list[str | None]) -> list[int]:
    """One run of ``b.py::test_b`` per gate mark, the n-th at n seconds a call."""
    run_ids = []
    for number, gate in enumerate(gates, 1):
        run_id = store.start_run(float(number), None, "host", "3.11", "pytest")
        row = BenchmarkRow("b.py::test_b", {}, 1, number, number, number, [float(number)], gate)
        store.record_benchmarks(run_id, [row])
        run_ids.append(run_id)
    return run_ids


def test_benchmark_baselines_leave_out_failed_runs_and_those_before_an_accepted_one(
    store: HistoryStore,
) -> None:
    ids = record_benchmark_runs(store, [None, None, GATE_FAILED, None, GATE_ACCEPTED, None])
    baselines = store.benchmark_baselines("b.py::test_b", ids[-1] + 1, None, 10)
    # Runs 1 to 4 come before the accepted run 5; the failed run 3 would be left out anyway.
    assert [run for run, _, _ in baselines] == ids[4:]
    before_acceptance = store.benchmark_baselines("b.py::test_b", ids[4], None, 10)
    assert [run for run, _, _ in before_acceptance] == [ids[0], ids[1], ids[3]]
    # A failed run named as the baseline is kept; the failed runs before it are not.
    named = store.benchmark_baselines("b.py::test_b", ids[-1] + 1, ids[2], 10)
    assert [run for run, _, _ in named] == [ids[0], ids[1], ids[2]]


def test_a_store_of_an_earlier_batchflow_keeps_its_benchmarks_as_baselines(
    tmp_path: Path,
) -> None:
    """The gate column is added in place, with no new schema version: a store
    keeps the version an earlier batchflow reads, and its records stay baselines."""
    path = tmp_path / "history.sqlite"
    opened, _ = HistoryStore.open(path)
    ids = record_benchmark_runs(opened, [None, None])
    opened.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("ALTER TABLE benchmarks DROP COLUMN gate")  # as an earlier batchflow left it
    again, warning = HistoryStore.open(path)
    try:
        assert warning is None
        baselines = again.benchmark_baselines("b.py::test_b", ids[-1] + 1, None, 10)
        assert [run for run, _, _ in baselines] == ids
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert SCHEMA_VERSION == 6
    finally:
        again.close()
