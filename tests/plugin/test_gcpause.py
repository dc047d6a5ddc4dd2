"""The collector pause restores the collector as it found it, errors included;
at exit, the objects still alive are left to the operating system, and only
the finalizers of what a collection would free are skipped."""

from __future__ import annotations

import atexit
import gc
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pydantic
import pytest
from packaging.version import Version

from pytest_batchflow import gcpause
from pytest_batchflow.gcpause import collector_paused, register_fast_exit


@pytest.fixture
def collector_state() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_inside_and_restored_after(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a bad setting")
    assert gc.isenabled() is enabled


@pytest.fixture
def fresh_fast_exit(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], object]]:
    """The module's state as in a new process; exit handlers collected, not registered."""
    registered: list[Callable[[], object]] = []
    monkeypatch.setattr(gcpause, "_fast_exit", False)
    monkeypatch.setattr(gcpause, "_fast_exit_vetoed", False)
    monkeypatch.setattr(atexit, "register", registered.append)
    return registered


def test_the_exit_handler_is_registered_once_a_process(
    fresh_fast_exit: list[Callable[[], object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append("frozen"))
    register_fast_exit()
    register_fast_exit()
    assert len(fresh_fast_exit) == 1
    fresh_fast_exit[0]()
    assert frozen == ["frozen"]


def test_a_session_without_fast_exit_vetoes_it_for_the_process(
    fresh_fast_exit: list[Callable[[], object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append("frozen"))
    register_fast_exit()  # an outer session with it
    register_fast_exit(wanted=False)  # an inner one without it
    register_fast_exit()
    for handler in fresh_fast_exit:
        handler()
    assert frozen == []


#: Each process that imports it writes what ran at its exit to finalized-<name>.txt:
#: an exit handler, a weakref.finalize callback, the __del__ of a module global
#: (freed when the module is cleared), and three that only the shutdown's
#: collections free: an object in a cycle, one held only by a cycle, and one
#: kept on pytest's config (which is in cycles with its plugins).
EXIT_PROBE = """
import atexit, os, weakref

NAME = os.environ.get("PYTEST_XDIST_WORKER", "main")
PATH = os.path.join(os.environ["EXIT_PROBE_DIR"], f"finalized-{NAME}.txt")

# Late in the shutdown, modules' globals (builtins included) may be gone.
def note(what, path=PATH, flags=os.O_WRONLY | os.O_APPEND | os.O_CREAT,
         open=os.open, write=os.write, close=os.close):
    fd = open(path, flags)
    write(fd, (what + "\\n").encode())
    close(fd)

class Noted:
    def __init__(self, what):
        self.what = what
    def __del__(self, note=note):
        note(self.what)

class Anchor:
    pass

atexit.register(note, "atexit")
GLOBAL = Noted("global")
ANCHOR = Anchor()
weakref.finalize(ANCHOR, note, "weakref.finalize")
CYCLE = Noted("cycle")
CYCLE.me = CYCLE
CYCLE.held = Noted("held-by-cycle")

def pytest_configure(config):
    config.exit_probe = Noted("on-config")
"""

PYDANTIC_FREES_ITS_CYCLES = Version(pydantic.VERSION) >= Version("2.12.4")

ALWAYS = ["atexit", "global", "weakref.finalize"]
ONLY_COLLECTED = ["cycle", "held-by-cycle", "on-config"]


def finalized(folder: Path) -> dict[str, list[str]]:
    return {
        path.stem.removeprefix("finalized-"): sorted(path.read_text().split())
        for path in sorted(folder.glob("finalized-*.txt"))
    }


#: pytest-testmon's shape (it runs its pytest_configure before batchflow's): a
#: SQLite database in write-ahead-log mode on ``config.testmon_data``, never
#: closed, so that only the collection at exit closes it.
TESTMON_SHAPE = """
import sqlite3

class Data:
    def __init__(self, config):
        self.config = config  # a cycle through pytest's config, as testmon's
        self.con = sqlite3.connect("data.db", isolation_level=None)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("CREATE TABLE IF NOT EXISTS runs (n INTEGER)")

def pytest_configure(config):
    config.testmon_data = Data(config)

def pytest_sessionfinish(session):
    session.config.testmon_data.con.execute("INSERT INTO runs VALUES (1)")
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_testmon_database_is_closed_at_exit_as_without_batchflow(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    if not PYDANTIC_FREES_ITS_CYCLES:
        pytest.skip("pydantic-core before 2.41.5 keeps what config holds from the collector")
    pytester.makeconftest(TESTMON_SHAPE)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    for _ in range(2):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--batchflow", *workers)
        result.assert_outcomes(passed=1)
        # Closed: the log folded into the file and removed, as a plain run leaves it.
        assert not (pytester.path / "data.db-wal").exists()
    with closing(sqlite3.connect(pytester.path / "data.db")) as database:
        (rows,) = database.execute("SELECT count(*) FROM runs").fetchone()
    # The controller's and each worker's sessions wrote a row, each run.
    assert rows == (6 if workers else 2)


@pytest.mark.parametrize(
    ("args", "env", "collected"),
    [
        pytest.param([], {}, True, id="without batchflow"),
        pytest.param(["--batchflow"], {}, False, id="batchflow"),
        pytest.param(["--batchflow", "--batchflow-no-fast-exit"], {}, True, id="no fast exit"),
        pytest.param(["--batchflow"], {"PYTHONDEVMODE": "1"}, True, id="development mode"),
        pytest.param(["--batchflow", "-n", "2"], {}, False, id="batchflow -n 2"),
        pytest.param(
            ["--batchflow", "--batchflow-no-fast-exit", "-n", "2"],
            {},
            True,
            id="no fast exit -n 2",
        ),
    ],
)
def test_at_exit_only_what_a_collection_would_free_is_left_unfinalized(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    collected: bool,
) -> None:
    if "-n" in args:
        pytest.importorskip("xdist")
    monkeypatch.setenv("EXIT_PROBE_DIR", str(pytester.path))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this suite's own worker's
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makeconftest(EXIT_PROBE)
    test = "def test_{}():\n    pass\n"
    pytester.makepyfile(test_one=test.format("one"), test_two=test.format("two"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    ran = sorted([*ALWAYS, *ONLY_COLLECTED]) if collected else ALWAYS
    processes = ["gw0", "gw1", "main"] if "-n" in args else ["main"]
    seen = finalized(pytester.path)
    if collected and "--batchflow" in args and not PYDANTIC_FREES_ITS_CYCLES:
        # pydantic-core before 2.41.5 (pydantic 2.12.4) kept objects reachable from
        # a built model's schema out of the collector's reach: pytest's config
        # among them, once batchflow built its result models.
        kept = sorted(set(ran) - {"on-config"})
        seen = {name: ran if names == kept else names for name, names in seen.items()}
    assert seen == dict.fromkeys(processes, ran)
