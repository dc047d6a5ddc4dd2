"""The collector pause restores the collector as it found it, errors included;
at exit, the objects still alive are left to the operating system, and only
their cycles' finalizers are skipped."""

from __future__ import annotations

import atexit
import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_batchflow import gcpause
from pytest_batchflow.gcpause import collector_paused, skip_collection_at_exit


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


def test_the_exit_handler_is_registered_once_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Callable[[], object]] = []
    monkeypatch.setattr(gcpause, "_skipping_at_exit", False)
    monkeypatch.setattr(atexit, "register", registered.append)
    skip_collection_at_exit()
    skip_collection_at_exit()
    assert registered == [gc.freeze]


#: Each process that imports it writes what ran at its exit to finalized-<name>.txt:
#: an exit handler, a weakref.finalize callback, the __del__ of a module global
#: (freed when the module is cleared) and the __del__ of an object in a cycle
#: that is still alive (only the shutdown's collection frees it).
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
"""


def finalized(folder: Path) -> dict[str, list[str]]:
    return {
        path.stem.removeprefix("finalized-"): sorted(path.read_text().split())
        for path in sorted(folder.glob("finalized-*.txt"))
    }


@pytest.mark.parametrize(
    ("args", "cycles_finalized"),
    [
        pytest.param([], True, id="without batchflow"),
        pytest.param(["--batchflow"], False, id="batchflow"),
        pytest.param(["--batchflow", "--batchflow-no-fast-exit"], True, id="no fast exit"),
        pytest.param(["--batchflow", "-n", "2"], False, id="batchflow -n 2"),
    ],
)
def test_at_exit_only_the_finalizers_of_live_cycles_are_skipped(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    cycles_finalized: bool,
) -> None:
    if "-n" in args:
        pytest.importorskip("xdist")
    monkeypatch.setenv("EXIT_PROBE_DIR", str(pytester.path))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this suite's own worker's
    pytester.makeconftest(EXIT_PROBE)
    test = "def test_{}():\n    pass\n"
    pytester.makepyfile(test_one=test.format("one"), test_two=test.format("two"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    ran = ["atexit", "global", "weakref.finalize"]
    if cycles_finalized:
        ran = sorted([*ran, "cycle"])
    processes = ["gw0", "gw1", "main"] if "-n" in args else ["main"]
    assert finalized(pytester.path) == dict.fromkeys(processes, ran)
