"""The SQLite history store: runs and every test attempt, across runs.

Written only by the process that owns the run: serially one transaction per
attempt into a table without indexes (``staged_attempts``), moved into
``attempts`` in batches, so an interrupted run keeps what finished (the next
run moves what it left); under xdist in batches. A damaged store is moved
aside and a fresh store started: the history is never worth a failed run. A
file that is not a SQLite database at all is never moved (a mistyped path
may name a test module): the run goes on without history.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .core.flaky import RunRecord, is_infrastructure_run, verdict_of
from .files import ignore_in_git

__all__ = [
    "GATE_ACCEPTED",
    "GATE_FAILED",
    "SCHEMA_VERSION",
    "BenchmarkRow",
    "HistoryError",
    "HistoryStore",
    "PlanFigures",
    "error_digest",
]

#: Each entry migrates the store from version ``i`` to ``i + 1``.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        stopped REAL,
        git_commit TEXT,
        hostname TEXT,
        python TEXT,
        invocation TEXT,
        exitstatus INTEGER
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        nodeid TEXT NOT NULL,
        batch TEXT NOT NULL,
        outcome TEXT NOT NULL,
        phase TEXT,
        duration REAL NOT NULL,
        started REAL NOT NULL,
        stopped REAL NOT NULL,
        worker TEXT NOT NULL,
        error_digest TEXT,
        git_commit TEXT
    );
    CREATE INDEX attempts_by_nodeid ON attempts (nodeid, id);
    CREATE INDEX attempts_by_commit ON attempts (git_commit, outcome);
    """,
    """
    CREATE TABLE quarantine (
        nodeid TEXT PRIMARY KEY,
        score REAL NOT NULL,
        entered REAL NOT NULL,
        clean_runs INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE quarantine_releases (
        nodeid TEXT PRIMARY KEY,
        released_after_run INTEGER NOT NULL
    );
    """,
    # Seconds the attempt's setup phase spent setting up class, module and
    # package fixtures (NULL: not measured, an older batchflow).
    """
    ALTER TABLE attempts ADD COLUMN shared_setup REAL;
    """,
    # Benchmarks: their statistics, and their samples for later comparisons.
    """
    CREATE TABLE benchmarks (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        nodeid TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        iterations INTEGER NOT NULL,
        min REAL NOT NULL,
        mean REAL NOT NULL,
        median REAL NOT NULL,
        samples TEXT NOT NULL
    );
    CREATE INDEX benchmarks_by_nodeid ON benchmarks (nodeid, run_id);
    """,
    # Resources (NULL: not measured): the peak memory above the worker's
    # (bytes), the peak resident memory with children, CPU seconds, and the
    # worker's resident memory when the test started.
    """
    ALTER TABLE attempts ADD COLUMN memory INTEGER;
    ALTER TABLE attempts ADD COLUMN peak_rss INTEGER;
    ALTER TABLE attempts ADD COLUMN cpu REAL;
    ALTER TABLE attempts ADD COLUMN rss_start INTEGER;
    """,
    # For recent_run_records: a test's runs newest first (two runs that write
    # at once interleave their attempts' ids), and one run's attempts, for
    # its infrastructure verdict.
    """
    CREATE INDEX attempts_by_nodeid_run ON attempts (nodeid, run_id, id);
    CREATE INDEX attempts_by_run ON attempts (run_id, id);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

#: The columns an attempt is written with, in ``attempts`` and ``staged_attempts``.
_ATTEMPT_COLUMNS = (
    "run_id, nodeid, batch, outcome, phase, duration, started, stopped, worker,"
    " error_digest, git_commit, shared_setup, memory, peak_rss, cpu, rss_start"
)
#: A serial run's attempts, one transaction each, until they are moved into
#: ``attempts`` (:meth:`HistoryStore.fold_staged`): those columns, without
#: indexes, so that a commit writes one page where ``attempts`` takes five
#: (the table's and one in each index): 22 against 45 µs an attempt on a
#: 2-run store of 27,000 tests. Not a migration: a batchflow that does not
#: know the table ignores it. (A migration that adds a column to ``attempts``
#: and to ``_ATTEMPT_COLUMNS`` must add it to an existing ``staged_attempts``.)
_STAGED_TABLE = (
    f"CREATE TABLE IF NOT EXISTS staged_attempts AS SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE 0"
)
#: ``benchmarks.gate``: what the run's gate made of the benchmark, for later
#: runs' baselines (:meth:`HistoryStore.benchmark_baselines`): NULL (passed,
#: not gated, or an older batchflow's record), ``failed``, or ``accepted`` (run
#: with ``--batchflow-bench-fail=accept``: its earlier runs no baseline any more).
#: Not a migration, for the same reason as ``staged_attempts``: a batchflow
#: that does not know the column writes NULL and reads the store as before.
_GATE_COLUMN = "ALTER TABLE benchmarks ADD COLUMN gate TEXT"
GATE_FAILED = "failed"
GATE_ACCEPTED = "accepted"


#: WAL pages a run may write before SQLite copies them into the database
#: file. SQLite's default, 1,000, had a 5,000-test run copy them about five
#: times while its tests ran, each copy syncing the file to disk (10 to 30 ms).
#: An xdist controller, writing in batches, writes about one page a test, so at
#: this size a run of up to some 10,000 tests copies once, when it finishes
#: (:meth:`HistoryStore.finish_run`). A serial run commits each attempt into
#: ``staged_attempts``, each commit writing that table's last page again, and
#: moves them in batches: about two pages a test, a copy every 5,000 tests or
#: so. Either way the log stays under 40 MiB (4 KiB pages) whatever the suite.
RUN_CHECKPOINT_PAGES = 10_000
#: SQLite's own, restored when the run is over.
DEFAULT_CHECKPOINT_PAGES = 1_000
#: How many recent passing attempts a duration estimate averages over.
DURATION_WINDOW = 5
#: How many recent measured attempts a test's memory need is the largest of.
MEMORY_WINDOW = 5
#: How many recent attempts tell a worker's resting memory.
RESTING_WINDOW = 500
#: Each test once, from the index by node id. The figures the plan reads are
#: each test's last few attempts, looked up through that index: the time grows
#: with the number of tests, not of attempts (on 550,000 attempts of 5,000
#: tests, 150 ms where windows over every attempt took 3 s).
_EACH_TEST = "(SELECT DISTINCT nodeid FROM attempts)"
#: Each figure of one test (``tests.nodeid``), as a correlated subquery.
_MEAN_DURATION = f"""(
    SELECT AVG(duration) FROM (
        SELECT duration FROM attempts
        WHERE nodeid = tests.nodeid AND outcome IN ('passed', 'xpassed')
        ORDER BY id DESC LIMIT {DURATION_WINDOW}
    )
)"""
_LAST_SHARED_SETUP = """(
    SELECT shared_setup FROM attempts
    WHERE nodeid = tests.nodeid AND shared_setup IS NOT NULL
    ORDER BY id DESC LIMIT 1
)"""
_MEMORY_NEED = f"""(
    SELECT MAX(memory) FROM (
        SELECT memory FROM attempts
        WHERE nodeid = tests.nodeid AND memory IS NOT NULL
        ORDER BY id DESC LIMIT {MEMORY_WINDOW}
    )
)"""

_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|\d+(\.\d+)?")


#: The option that names the store in a run (``batchflow`` commands take ``--history``).
HISTORY_OPTION = "--batchflow-history"


class HistoryError(Exception):
    """The store could not be used; the message says why, for a warning line."""


def error_digest(longrepr: str | None) -> str | None:
    """A short fingerprint of a failure's last line, stable across runs: the
    line an exception group names itself on where its traceback ends with
    the box Python draws around it (every group's last line is the same).

    Numbers and addresses are blanked so that the same error with another
    value or object id groups together.
    """
    if not longrepr:
        return None
    last = next((line for line in reversed(longrepr.splitlines()) if line.strip()), "")
    if not last.strip(" |+-"):  # an exception group's box alone
        from .results import error_line

        last = error_line(longrepr)
    return hashlib.sha1(_VOLATILE.sub("#", last.strip()).encode()).hexdigest()[:12]


class Attempt(NamedTuple):
    """One attempt of a test, as :meth:`HistoryStore.record_attempts` stores it.

    A named tuple: the run makes one a test, and a frozen dataclass's
    ``__init__`` (an ``object.__setattr__`` a field) cost several times as much.
    """

    nodeid: str
    batch: str
    outcome: str
    phase: str | None
    duration: float
    started: float
    stopped: float
    worker: str
    longrepr: str | None
    shared_setup: float | None = None
    memory: int | None = None
    peak_rss: int | None = None
    cpu: float | None = None
    rss_start: int | None = None


@dataclass(frozen=True)
class BenchmarkRow:
    """One benchmark of a run, as the store keeps it."""

    nodeid: str
    fingerprint: Mapping[str, str]
    iterations: int
    min: float
    mean: float
    median: float
    samples: Sequence[float]
    #: What the run's gate made of it: None, ``failed`` or ``accepted`` (``_GATE_COLUMN``).
    gate: str | None = None


class PlanFigures(NamedTuple):
    """What a plan reads of the history, each by node id (see :meth:`HistoryStore.plan_figures`)."""

    durations: dict[str, float]
    shared_setups: dict[str, float]
    memory_needs: dict[str, int]


class HistoryStore:
    """One open store; use :meth:`open` to get one with corruption handled."""

    def __init__(self, path: Path, connection: sqlite3.Connection, read_only: bool = False) -> None:
        self.path = path
        self._db = connection
        #: Opened for reading only (:meth:`open`): nothing may be written.
        self.read_only = read_only
        self._checkpointing: threading.Thread | None = None

    @classmethod
    def open(cls, path: Path) -> tuple[HistoryStore, str | None]:
        """Open or create the store; a damaged store is moved aside.

        Returns the store and, when a file was moved aside or can only be
        read, a warning to show. A file this process may not write (a CI
        cache restored read-only, a read-only checkout) is opened for reading:
        the plan, dependencies met at this commit and flakiness scores read it,
        and :attr:`read_only` tells the caller to record nothing. Raises
        HistoryError when no store can be used: the folder or a fresh store
        cannot be created, the file belongs to another batchflow's schema and
        cannot be migrated, it is locked, or it is not a SQLite file at all
        (all left untouched).
        """
        _refuse_other_files(path)
        try:
            created = not path.parent.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise HistoryError(f"cannot create the folder of {path}: {error}") from None
        if created:
            ignore_in_git(path.parent)
        try:
            return cls(path, _connect(path)), None
        except sqlite3.DatabaseError as error:
            if _is_read_only(error) and path.is_file():
                try:
                    store = cls.read(path)
                except HistoryError as unreadable:
                    raise HistoryError(f"{unreadable} (the file is read-only)") from None
                return store, (
                    f"history store {path} is read-only: this run reads it and is not "
                    "recorded in it (make the file and its folder writable to record runs)"
                )
            if not _is_corrupt(error) or not path.exists():
                raise HistoryError(f"cannot use history store {path}: {error}") from None
            damage = error
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.replace(aside)
            store = cls(path, _connect(path))
        except (OSError, sqlite3.Error) as error:
            raise HistoryError(f"history store {path} is unreadable ({damage}): {error}") from None
        warning = f"history store {path} was unreadable ({damage}); moved it to {aside.name}"
        return store, f"{warning} and started a fresh one"

    @classmethod
    def read(cls, path: Path, option: str = HISTORY_OPTION, staged: bool = False) -> HistoryStore:
        """Open an existing store only to read it: nothing is written, not even
        a migration, and a damaged file stays where it is. Raises HistoryError,
        naming ``option`` as the one that gives the store's path.

        ``staged``: read the attempts a killed serial run staged too (the
        ``batchflow`` command's views of a test; not the plan's queries over
        every test, which the view that joins them makes many times slower)."""
        _refuse_other_files(path, option)
        connection = _connect_read_only(path, option)
        if staged:
            _read_staged_too(connection)
        return cls(path, connection, read_only=True)

    def close(self) -> None:
        self.wait_for_checkpoint()
        self._db.close()

    def wait_for_checkpoint(self) -> None:
        """Wait until the checkpoint :meth:`finish_run` started is done."""
        if self._checkpointing is not None:
            self._checkpointing.join()
            self._checkpointing = None

    def start_run(
        self, started: float, git_commit: str | None, hostname: str, python: str, invocation: str
    ) -> int:
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO runs (started, git_commit, hostname, python, invocation)"
                " VALUES (?, ?, ?, ?, ?)",
                (started, git_commit, hostname, python, invocation),
            )
        self._db.execute(f"PRAGMA wal_autocheckpoint = {RUN_CHECKPOINT_PAGES}")
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def record_attempts(
        self, run_id: int, git_commit: str | None, attempts: Sequence[Attempt]
    ) -> None:
        """Store attempts in one transaction (one commit per test would cost more than it)."""
        self._insert("attempts", run_id, git_commit, attempts)

    def stage_attempts(
        self, run_id: int, git_commit: str | None, attempts: Sequence[Attempt]
    ) -> None:
        """Store attempts at once where no reader looks yet, in one transaction
        that writes about one page: a serial run's, each as it finishes, which
        a test that kills the process cannot take back. :meth:`fold_staged`
        moves them where the readers look."""
        self._insert("staged_attempts", run_id, git_commit, attempts)

    def fold_staged(self) -> int:
        """Move every staged attempt into ``attempts``, in the order staged, in
        one transaction; return how many. Those of a run that ended without
        moving them (killed by a test) go with the next run's."""
        with self._db:
            return _fold_staged(self._db)

    def _insert(
        self, table: str, run_id: int, git_commit: str | None, attempts: Sequence[Attempt]
    ) -> None:
        with self._db:
            self._db.executemany(
                f"INSERT INTO {table} ({_ATTEMPT_COLUMNS}) VALUES ({','.join('?' * 16)})",
                [
                    (
                        run_id,
                        attempt.nodeid,
                        attempt.batch,
                        attempt.outcome,
                        attempt.phase,
                        attempt.duration,
                        attempt.started,
                        attempt.stopped,
                        attempt.worker,
                        error_digest(attempt.longrepr),
                        git_commit,
                        attempt.shared_setup,
                        attempt.memory,
                        attempt.peak_rss,
                        attempt.cpu,
                        attempt.rss_start,
                    )
                    for attempt in attempts
                ],
            )

    def record_late_error(
        self, run_id: int, nodeid: str, outcome: str, longrepr: str | None
    ) -> None:
        """A teardown error that came after the test's attempt was stored (a
        module fixture torn down as the run moved on): its last attempt in the
        run takes the test's ``outcome`` now."""
        with self._db:
            self._db.execute(
                "UPDATE attempts SET outcome = ?, phase = COALESCE(phase, 'teardown'),"
                " error_digest = COALESCE(error_digest, ?)"
                " WHERE id = (SELECT MAX(id) FROM attempts WHERE run_id = ? AND nodeid = ?)",
                (outcome, error_digest(longrepr), run_id, nodeid),
            )

    def finish_run(self, run_id: int, stopped: float, exitstatus: int, keep_runs: int = 0) -> None:
        """Close the run's record, then in a thread on a connection of its own
        delete its tests' attempts of runs older than their latest
        ``keep_runs`` (0: none are; see :meth:`prune`) and copy what the run
        wrote into the database file: the run's one checkpoint (PASSIVE: a
        concurrent run is not waited for). Both mostly wait for SQLite and the
        disk, while the run sums up. :meth:`close` waits for it."""
        with self._db:
            self._db.execute(
                "UPDATE runs SET stopped = ?, exitstatus = ? WHERE id = ?",
                (stopped, exitstatus, run_id),
            )
        self._db.execute(f"PRAGMA wal_autocheckpoint = {DEFAULT_CHECKPOINT_PAGES}")
        self.wait_for_checkpoint()
        self._checkpointing = threading.Thread(
            target=_tidy, args=(self.path, run_id, keep_runs), name="batchflow-checkpoint"
        )
        self._checkpointing.start()

    def prune(self, run_id: int, keep_runs: int) -> int:
        """For each test that run ``run_id`` recorded, delete its attempts of
        runs older than its latest ``keep_runs`` runs; returns how many
        attempts were deleted (at most some :data:`PRUNE_AT_ONCE` a call).

        Per test, not per run: a run of one test (``pytest tests/x.py::test_a``)
        pushes no other test's history out, and a test run in one CI stage of
        several keeps its own last runs. No attempt of ``run_id`` or a later
        run is deleted (a run still recording beside it). The store then stops
        growing, apart from tests no longer run, which keep their last runs:
        SQLite reuses the freed pages (the file keeps its size). The runs'
        own rows and the benchmarks' stay (a run id may be a pinned baseline).
        """
        return _prune(self._db, run_id, keep_runs)

    def durations(self) -> dict[str, float]:
        """Mean duration of each test's last few passing attempts."""
        rows = self._each_test(_MEAN_DURATION)
        return {nodeid: float(mean) for nodeid, mean in rows if mean is not None}

    def shared_setups(self) -> dict[str, float]:
        """Each test's shared fixture setup time in its latest measured attempt.

        The test that set up its module's (or class's) fixtures on a worker
        shows their cost; the tests after it show about 0.
        """
        rows = self._each_test(_LAST_SHARED_SETUP)
        return {nodeid: float(seconds) for nodeid, seconds in rows if seconds is not None}

    def memory_needs(self) -> dict[str, int]:
        """Each test's largest memory (bytes above its worker's) in its last measured attempts."""
        rows = self._each_test(_MEMORY_NEED)
        return {nodeid: int(memory) for nodeid, memory in rows if memory is not None}

    def plan_figures(self) -> PlanFigures:
        """:meth:`durations`, :meth:`shared_setups` and :meth:`memory_needs` in
        one pass over the tests: what the xdist controller plans with (on 5,000
        tests with five runs, 30 ms where the three queries took 54)."""
        figures = PlanFigures({}, {}, {})
        rows = self._each_test(_MEAN_DURATION, _LAST_SHARED_SETUP, _MEMORY_NEED)
        for nodeid, mean, seconds, memory in rows:
            if mean is not None:
                figures.durations[nodeid] = float(mean)
            if seconds is not None:
                figures.shared_setups[nodeid] = float(seconds)
            if memory is not None:
                figures.memory_needs[nodeid] = int(memory)
        return figures

    def _each_test(self, *figures: str) -> sqlite3.Cursor:
        """Each test's node id and these figures (correlated subqueries on ``tests``)."""
        return self._db.execute(
            f"SELECT tests.nodeid, {', '.join(figures)} FROM {_EACH_TEST} AS tests"
        )

    def resting_memory(self) -> list[int]:
        """Workers' resident memory at the start of the latest measured attempts."""
        rows = self._db.execute(
            "SELECT rss_start FROM attempts WHERE rss_start IS NOT NULL ORDER BY id DESC LIMIT ?",
            (RESTING_WINDOW,),
        )
        return [int(rss) for (rss,) in rows]

    def passed_at_commit(self, git_commit: str, nodeids: Iterable[str]) -> set[str]:
        """Which of these tests have a passing attempt, last of its run, at this commit."""
        wanted = set(nodeids)
        rows = self._db.execute(
            """
            SELECT nodeid, outcome FROM attempts WHERE id IN (
                SELECT MAX(id) FROM attempts WHERE git_commit = ? GROUP BY nodeid
            )
            """,
            (git_commit,),
        )
        return {
            nodeid
            for nodeid, outcome in rows
            if nodeid in wanted and outcome in ("passed", "xpassed")
        }

    def nodeids(self) -> list[str]:
        """Every test with an attempt in the store, each once (from the node-id index)."""
        return [nodeid for (nodeid,) in self._db.execute(f"SELECT nodeid FROM {_EACH_TEST}")]

    def recent_run_records(self, nodeids: Iterable[str], window: int) -> dict[str, list[RunRecord]]:
        """These tests' runs, back only as far as their flakiness scores look.

        Each test's runs (:class:`~pytest_batchflow.core.flaky.RunRecord`:
        its attempts' outcomes, and whether the run was an infrastructure
        failure), oldest first, from the run that makes ``window`` runs that
        count (not an infrastructure failure, and with a verdict:
        :func:`~pytest_batchflow.core.flaky.flakiness`) to its newest, or all
        of them where it has fewer; tests with no attempt are left out. Runs
        older than that cannot change the score. The work grows with the
        window and the tests asked about, not with the history (except for a
        test whose runs never count: skipped or xfailed in all of them): each
        test's attempts come run by run, newest first, through an index, and
        each run's infrastructure verdict from that run's attempts alone. On a
        store of 300 runs of 5,000 tests, reading every run instead took 1.5
        million rows, 650 MB and 7.4 s.
        """
        runs: dict[int, tuple[str | None, bool] | None] = {}

        def run_facts(run_id: int) -> tuple[str | None, bool] | None:
            """The run's commit and whether it failed too broadly; None if it has no row."""
            if run_id not in runs:
                found = self._db.execute(
                    "SELECT git_commit FROM runs WHERE id = ?", (run_id,)
                ).fetchone()
                if found is None:
                    runs[run_id] = None
                else:
                    last = dict(
                        self._db.execute(
                            "SELECT nodeid, outcome FROM attempts WHERE run_id = ? ORDER BY id",
                            (run_id,),
                        )
                    )
                    runs[run_id] = (found[0], is_infrastructure_run(last.values()))
            return runs[run_id]

        records: dict[str, list[RunRecord]] = {}
        for nodeid in dict.fromkeys(nodeids):
            newest_first: dict[int, list[str]] = {}
            counted = 0
            rows = self._db.execute(
                "SELECT run_id, outcome FROM attempts WHERE nodeid = ?"
                " ORDER BY run_id DESC, id DESC",
                (nodeid,),
            )
            for run_id, outcome in rows:
                if run_id in newest_first:  # the run's earlier attempts
                    newest_first[run_id].append(outcome)
                    continue
                if counted >= window:
                    break
                facts = run_facts(run_id)
                if facts is None:  # attempts of no known run (its row is gone) are left out
                    continue
                newest_first[run_id] = [outcome]  # the run's last attempt: its verdict
                if not facts[1] and verdict_of(outcome) is not None:
                    counted += 1
            found_runs = []
            for run_id in sorted(newest_first):
                facts = runs[run_id]
                assert facts is not None
                outcomes = tuple(reversed(newest_first[run_id]))
                found_runs.append(RunRecord(run_id, facts[0], outcomes, facts[1]))
            if found_runs:
                records[nodeid] = found_runs
        return records

    def quarantine(self) -> tuple[dict[str, tuple[float, int]], dict[str, int]]:
        """Automatic quarantine: who is in (score, clean runs since), and when each
        test last left it (the run after which its score starts afresh)."""
        inside = {
            nodeid: (float(score), int(clean))
            for nodeid, score, clean in self._db.execute(
                "SELECT nodeid, score, clean_runs FROM quarantine"
            )
        }
        released = dict(
            self._db.execute("SELECT nodeid, released_after_run FROM quarantine_releases")
        )
        return inside, released

    def enter_quarantine(self, entries: Mapping[str, float], now: float) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO quarantine (nodeid, score, entered, clean_runs)"
                " VALUES (?, ?, ?, 0)",
                [(nodeid, score, now) for nodeid, score in entries.items()],
            )

    def settle_quarantine(
        self, clean: Iterable[str], dirty: Iterable[str], release_after: int, run_id: int
    ) -> list[str]:
        """Count a run for quarantined tests; return those that leave after enough clean runs."""
        with self._db:
            self._db.executemany(
                "UPDATE quarantine SET clean_runs = clean_runs + 1 WHERE nodeid = ?",
                [(nodeid,) for nodeid in clean],
            )
            self._db.executemany(
                "UPDATE quarantine SET clean_runs = 0 WHERE nodeid = ?",
                [(nodeid,) for nodeid in dirty],
            )
            leaving = [
                nodeid
                for (nodeid,) in self._db.execute(
                    "SELECT nodeid FROM quarantine WHERE clean_runs >= ? ORDER BY nodeid",
                    (release_after,),
                )
            ]
            self._db.executemany(
                "DELETE FROM quarantine WHERE nodeid = ?", [(nodeid,) for nodeid in leaving]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO quarantine_releases (nodeid, released_after_run)"
                " VALUES (?, ?)",
                [(nodeid, run_id) for nodeid in leaving],
            )
        return leaving

    def record_benchmarks(self, run_id: int, benchmarks: Iterable[BenchmarkRow]) -> None:
        """Store this run's benchmarks, in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT INTO benchmarks (run_id, nodeid, fingerprint, iterations, min, mean,"
                " median, samples, gate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        row.nodeid,
                        json.dumps(row.fingerprint, sort_keys=True),
                        row.iterations,
                        row.min,
                        row.mean,
                        row.median,
                        json.dumps(row.samples),
                        row.gate,
                    )
                    for row in benchmarks
                ],
            )

    def benchmark_baselines(
        self, nodeid: str, before_run: int, run: int | None, limit: int
    ) -> list[tuple[int, dict[str, str], list[float]]]:
        """A benchmark's baseline runs, oldest first: its latest ``limit`` records
        before ``before_run``, or up to and including ``run`` (none if ``run`` did not
        measure it). The earlier ones tell how much its runs differ.

        A record of a run where the benchmark failed its gate is left out
        (``run`` itself is kept when named): a regression that is not fixed
        fails every run, rather than widening the spread of the baseline runs
        until the same slowdown looks like noise. Records before the latest
        one a run accepted (``--batchflow-bench-fail=accept``) are left out too."""
        last = run if run is not None else before_run - 1
        accepted = self._db.execute(
            "SELECT MAX(run_id) FROM benchmarks WHERE nodeid = ? AND run_id <= ? AND gate = ?",
            (nodeid, last, GATE_ACCEPTED),
        ).fetchone()[0]
        rows = self._db.execute(
            "SELECT run_id, fingerprint, samples FROM benchmarks WHERE nodeid = ?"
            " AND run_id BETWEEN ? AND ? AND (gate IS NOT ? OR run_id = ?)"
            " ORDER BY run_id DESC LIMIT ?",
            (nodeid, accepted or 0, last, GATE_FAILED, run, limit),
        ).fetchall()[::-1]
        if run is not None and (not rows or rows[-1][0] != run):
            return []
        return [
            (int(row[0]), json.loads(row[1]), [float(x) for x in json.loads(row[2])])
            for row in rows
        ]

    def benchmark_trend(self, nodeid: str, limit: int) -> list[tuple[int, float]]:
        """(run id, median) of a benchmark's latest ``limit`` runs, oldest first."""
        rows = self._db.execute(
            "SELECT run_id, median FROM benchmarks WHERE nodeid = ? ORDER BY run_id DESC LIMIT ?",
            (nodeid, limit),
        ).fetchall()
        return [(int(run), float(median)) for run, median in reversed(rows)]

    def attempts_of(self, nodeid: str, limit: int) -> list[tuple[object, ...]]:
        """A test's most recent attempts, newest first: run, start, commit, worker,
        outcome, duration, phase, error digest."""
        return self._db.execute(
            "SELECT run_id, started, git_commit, worker, outcome, duration, phase, error_digest"
            " FROM attempts WHERE nodeid = ? ORDER BY id DESC LIMIT ?",
            (nodeid, limit),
        ).fetchall()


#: How every SQLite database file starts (its header string).
_SQLITE_HEADER = b"SQLite format 3\x00"
#: Names a store may have whatever the file holds: batchflow's own
#: (``history.sqlite``) and the usual ones of SQLite databases.
_STORE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db", ".db3"})


def _is_sqlite_file(path: Path) -> bool:
    """Whether the file starts as a SQLite database does."""
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def _refuse_other_files(path: Path, option: str = HISTORY_OPTION) -> None:
    """A path that is no store is left alone: raises HistoryError for a folder,
    and for an existing file that neither starts as a SQLite database nor has
    a store's name (``.sqlite``, ``.db``...). A mistyped --batchflow-history may
    name a test module, an empty ``__init__.py``: SQLite would take an empty
    file for an empty database and write over it, and a damaged store is
    moved aside. A store with a store's name is moved aside when damaged
    (zero-filled by a power loss, cut short in a CI cache), whatever its
    first bytes."""
    try:
        folder = path.is_dir()
        special = not folder and path.exists() and not path.is_file()
        other = (
            path.is_file()
            and path.suffix.lower() not in _STORE_SUFFIXES
            and not _is_sqlite_file(path)
        )
    except OSError as error:  # a folder on the way this process may not enter
        raise HistoryError(f"cannot use history store {path}: {error}") from None
    if folder:
        raise HistoryError(
            f"{path} is a folder, not a history store; name a file in it, e.g. "
            f"{path / 'history.sqlite'}"
        )
    if special:  # /dev/null, a pipe: SQLite fails on them with odd messages
        instead = ", or use --batchflow-no-history" if option == HISTORY_OPTION else ""
        raise HistoryError(
            f"{path} is not a regular file (a device, a pipe or a socket), so not a history "
            f"store; give {option} a file{instead}"
        )
    if other:
        raise HistoryError(
            f"{path} is not a SQLite file, so not a history store; batchflow left it as it "
            "is (give the history store another path)"
        )


def _is_corrupt(error: sqlite3.DatabaseError) -> bool:
    """Only a damaged file is moved aside; locked or read-only ones are left alone."""
    name = getattr(error, "sqlite_errorname", None)  # Python >= 3.11
    if name is not None:
        return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
    message = str(error)
    return "not a database" in message or "malformed" in message


def _is_read_only(error: sqlite3.DatabaseError) -> bool:
    """The file, its folder or its file system may not be written by this process."""
    name = getattr(error, "sqlite_errorname", None)  # Python >= 3.11
    if name is not None:
        return str(name).startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))
    message = str(error)
    return "readonly database" in message or "unable to open database file" in message


def _connect_read_only(path: Path, option: str = HISTORY_OPTION) -> sqlite3.Connection:
    """A connection that only reads the store.

    ``mode=ro`` where SQLite can make the write-ahead log's index next to the
    file; in a read-only folder ``immutable=1``, which reads the database file
    alone, without locks (what a run left in a log it never copied back is
    not seen). Raises HistoryError when neither reads a store of this schema.
    """
    problem: str | None = None
    for query in ("mode=ro", "immutable=1"):
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?{query}", uri=True, check_same_thread=False
        )
        try:
            version = _refuse_foreign(connection, path, option)
            if version == 0:  # no table either: a store nothing was recorded in
                raise HistoryError(f"history store {path} is empty: no run is recorded in it")
            connection.execute("SELECT COUNT(*) FROM runs").fetchone()
        except HistoryError:
            connection.close()
            raise
        except sqlite3.DatabaseError as error:
            connection.close()
            problem = str(error)
            continue
        if version != SCHEMA_VERSION:
            connection.close()
            writer = "an older" if version < SCHEMA_VERSION else "a newer"
            update = (
                "; a pytest --batchflow run updates it"
                if version < SCHEMA_VERSION
                else "; upgrade pytest-batchflow to read it"
            )
            raise HistoryError(
                f"history store {path} was written by {writer} batchflow "
                f"(schema {version}, this one reads {SCHEMA_VERSION}){update}"
            )
        return connection
    raise HistoryError(f"cannot read history store {path}: {problem}")


#: Attempts one run's end deletes at most (some half a second), the tests
#: taken in node id order: a store that grew long before a limit (a batchflow
#: without one, or a limit lowered) is cut down over several runs, not all at
#: the end of one (1.5 million attempts: some 15 s).
PRUNE_AT_ONCE = 50_000
#: A test's attempts of runs before its ``keep``-th latest (``?2``: keep - 1),
#: once it has more than ``keep`` + slack runs (``?4``); up to run ``?3``, the
#: pruning run (nothing of a later run, one still recording, counts).
_PRUNE_TEST = """
    DELETE FROM attempts WHERE nodeid = ?1 AND EXISTS (
        SELECT 1 FROM attempts WHERE nodeid = ?1 AND run_id <= ?3
        GROUP BY run_id ORDER BY run_id DESC LIMIT 1 OFFSET ?4
    ) AND run_id < (
        SELECT run_id FROM attempts WHERE nodeid = ?1 AND run_id <= ?3
        GROUP BY run_id ORDER BY run_id DESC LIMIT 1 OFFSET ?2
    )
"""


def _prune(connection: sqlite3.Connection, run_id: int, keep_runs: int) -> int:
    """:meth:`HistoryStore.prune` on ``connection``."""
    nodeids = [
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT nodeid FROM attempts WHERE run_id = ? ORDER BY nodeid", (run_id,)
        )
    ]
    # A test is cut down once it has a fifth more runs than kept: its rows,
    # side by side in the indexes by node id, go several at a time (22 µs an
    # attempt, where one a test and run cost 60).
    slack = keep_runs // 5
    # At least twice the run's tests: on average one attempt a test a run
    # falls out, and the deleting keeps up whatever the suite's size.
    most = max(PRUNE_AT_ONCE, 2 * len(nodeids))
    deleted = 0
    with connection:  # one transaction: one sync of the log, not one a test
        for nodeid in nodeids:
            if deleted >= most:
                break
            values = (nodeid, keep_runs - 1, run_id, keep_runs + slack)
            deleted += connection.execute(_PRUNE_TEST, values).rowcount
    return deleted


def _tidy(path: Path, run_id: int, keep_runs: int) -> None:
    """The end of a run's writing (:meth:`HistoryStore.finish_run`): its tests'
    attempts of older runs deleted, then the log copied into the database
    file. Best effort: the next run deletes what this one could not, and
    SQLite copies the log anyway when the last connection closes or at the
    next run's first thousand pages."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
            if keep_runs:
                connection.execute("PRAGMA synchronous = NORMAL")  # as _connect's
                _prune(connection, run_id, keep_runs)
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error:
        pass


def _connect(path: Path) -> sqlite3.Connection:
    # The xdist controller opens the store in a thread and uses it in the main
    # thread after that one ended (see Orchestrator._read_history): never both at once.
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA busy_timeout = 30000")
        _refuse_foreign(connection, path)  # before WAL, which the file's header keeps
        connection.execute("PRAGMA journal_mode = WAL")
        # Under WAL a commit survives a crash of the process; only a power loss
        # may take the last few, which a test history can afford for speed.
        connection.execute("PRAGMA synchronous = NORMAL")
        _migrate(connection, path)
        connection.execute("SELECT COUNT(*) FROM runs").fetchone()
        connection.isolation_level = "DEFERRED"
    except BaseException:
        connection.close()
        raise
    return connection


def _read_staged_too(connection: sqlite3.Connection) -> None:
    """On a connection that only reads: attempts a serial run staged and did
    not move (a crash killed it; the next run that writes moves them) read as
    attempts, so ``batchflow history`` and ``flaky`` see the tests that
    finished before it. A temporary view named ``attempts`` over both tables
    (SQLite looks a name up in the temporary schema first), the staged ones
    numbered after the others; nothing is written to the store."""
    try:
        staged = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM main.staged_attempts)"
        ).fetchone()[0]
        if staged:
            connection.execute(
                f"CREATE TEMP VIEW attempts AS SELECT id, {_ATTEMPT_COLUMNS} FROM main.attempts"
                " UNION ALL SELECT (SELECT IFNULL(MAX(id), 0) FROM main.attempts) + rowid,"
                f" {_ATTEMPT_COLUMNS} FROM main.staged_attempts"
            )
    except sqlite3.Error:  # no staged_attempts (an earlier batchflow's store): attempts alone
        pass


def _fold_staged(connection: sqlite3.Connection) -> int:
    """Move the staged attempts into ``attempts`` (in the caller's transaction)."""
    moved = connection.execute(
        f"INSERT INTO attempts ({_ATTEMPT_COLUMNS})"
        f" SELECT {_ATTEMPT_COLUMNS} FROM staged_attempts ORDER BY rowid"
    ).rowcount
    if moved:
        connection.execute("DELETE FROM staged_attempts")
    return moved


def _refuse_foreign(
    connection: sqlite3.Connection, path: Path, option: str = HISTORY_OPTION
) -> int:
    """Another program's SQLite database is left as it is: tables but no
    schema version, or a version without batchflow's ``runs`` table.
    Returns the schema version read."""
    # One statement, one snapshot: a concurrent first run creates the tables
    # and sets the version in one transaction, seen whole or not at all.
    row = connection.execute(
        "SELECT (SELECT user_version FROM pragma_user_version),"
        " (SELECT group_concat(name, char(10)) FROM"
        " (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name))"
    ).fetchone()
    version = int(row[0])
    tables = str(row[1]).split("\n") if row[1] else []
    if (version == 0 and tables) or (version > 0 and "runs" not in tables):
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise HistoryError(
            f"{path} is not a batchflow history store (it holds tables {shown or 'none'}, "
            f"schema version {version}); give {option} a file of its own"
        )
    return version


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to date; concurrent runs serialise on the write lock.

    Attempts a serial run staged and did not move (a test killed it) are
    moved here, so that the next run's plan reads them.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"history store {path} has schema version {version}, newer than this "
                f"batchflow's {SCHEMA_VERSION}; upgrade pytest-batchflow or use another "
                "--batchflow-history"
            )
        for target, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {target}")
        connection.execute(_STAGED_TABLE)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(benchmarks)")}
        if "gate" not in columns:
            connection.execute(_GATE_COLUMN)
        _fold_staged(connection)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
