"""What a long history costs a run: 5,000 no-op tests against stores of 1, 30 and 300 runs.

Run with ``python benchmarks/history_scale.py [repetitions]`` (default 3;
about seven minutes on two CPUs, a minute and a half of it building the stores). The
history store grows with every run (one row a test attempt) and batchflow
reads it at a run's start: each test's recent durations and memory peaks for
the plan, and with ``--batchflow-quarantine=auto`` each test's recent runs for
its flakiness score. This script shows whether those reads, and the writes
into a store that large, stay bounded as the store grows.

It generates 5,000 no-op tests over 50 modules in a temporary directory and
builds, through :class:`pytest_batchflow.history.HistoryStore`, stores of 1, 30
and 300 earlier runs of those tests (300 runs: 1.5 million attempts, some
480 MB). Before every timed run the variant's store is copied into place, so
each run of a variant meets the same store. It times the whole ``python -m
pytest`` command serially and on ``-n 2``: ``--batchflow
--batchflow-no-history``, then with each store, and with the 300-run store
and ``--batchflow-quarantine=auto``. One untimed warm-up of each first, then
the variants alternate within each repetition. Per variant it prints the
median wall time and its ratio to the run without history, and the peak
resident memory of the pytest process (an xdist controller's own; its
workers do not read the history). Standard library and batchflow only; it
prints figures and asserts nothing.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _xdist_bench import (
    TIMEOUT,
    check,
    clean_env,
    count_argument,
    machine,
    run_pytest,
    table,
    write_noop_suite,
)

from pytest_batchflow.history import Attempt, HistoryStore

TESTS = 5000
MODULES = 50
WORKERS = 2
DEFAULT_REPETITIONS = 3
#: Earlier runs in each store.
SIZES = (1, 30, 300)
#: --batchflow-history-runs=0: every run meets its variant's whole store, which
#: the default (each test's latest 50 runs) would cut down as the run
#: ends (a store at its limit deletes one attempt a test).
COMMON = ["-p", "no:cacheprovider", "-q", "--batchflow", "--batchflow-history-runs=0"]
MODES = {"serial": [], f"-n {WORKERS}": ["-n", str(WORKERS)]}
NO_HISTORY = "no history"
QUARANTINE = "--batchflow-quarantine=auto"

#: Runs pytest in-process and writes the process's peak resident memory
#: (KiB on Linux) to $BENCH_MAXRSS at exit: the command's own, not its workers'.
RUNNER = """\
import atexit, os, resource, runpy, sys

def _peak():
    with open(os.environ["BENCH_MAXRSS"], "w") as out:
        out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))

atexit.register(_peak)
sys.argv[0] = "pytest"
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""


def build_store(path: Path, runs: int, nodeids: list[str]) -> None:
    """A store of ``runs`` runs of ``nodeids``, as batchflow writes them: each
    test passed in a few hundred microseconds, except the last one, which
    failed in a tenth of the runs (so that scoring it reads something)."""
    store, _ = HistoryStore.open(path)
    try:
        clock = time.time() - runs * 60.0
        for number in range(runs):
            run_id = store.start_run(clock, "0" * 40, "bench", "3", "pytest --batchflow")
            attempts = []
            for position, nodeid in enumerate(nodeids):
                failed = position == len(nodeids) - 1 and number % 10 == 0
                duration = 0.0002 + (position % 7) * 0.00005
                attempts.append(
                    Attempt(
                        nodeid=nodeid,
                        batch="default",
                        outcome="failed" if failed else "passed",
                        phase="call" if failed else None,
                        duration=duration,
                        started=clock,
                        stopped=clock + duration,
                        worker=f"gw{position % WORKERS}",
                        longrepr="E   AssertionError" if failed else None,
                        shared_setup=0.0,
                        memory=0,
                        peak_rss=40_000_000,
                        cpu=duration,
                        rss_start=40_000_000,
                    )
                )
                clock += duration
            store.record_attempts(run_id, "0" * 40, attempts)
            store.finish_run(run_id, clock, 0)
            clock += 60.0
    finally:
        store.close()


def timed_run(root: Path, args: list[str], store: Path | None) -> tuple[float, int]:
    """Wall seconds and peak resident KiB of one run on a fresh copy of ``store``."""
    history = root / ".batchflow" / "history.sqlite"
    for leftover in history.parent.glob("history.sqlite*"):
        leftover.unlink()
    if store is not None:
        history.parent.mkdir(exist_ok=True)
        shutil.copyfile(store, history)
    peak_file = root / "maxrss.txt"
    env = {**clean_env(), "BENCH_MAXRSS": str(peak_file)}
    run = run_pytest(root, args, env, launcher=("-c", RUNNER))
    if run.returncode is None:
        raise SystemExit(f"{run.command}: no end after {TIMEOUT:.0f} s")
    check(run, f"{TESTS} passed")
    peak = int(peak_file.read_text(encoding="utf-8"))
    peak_file.unlink()
    return run.wall, peak


def main() -> None:
    repetitions = count_argument("repetitions", DEFAULT_REPETITIONS)
    print(
        f"history_scale: {TESTS} no-op tests in {MODULES} modules, serial and -n {WORKERS}, "
        f"stores of {', '.join(map(str, SIZES))} runs, {repetitions} repetitions; {machine()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="batchflow-history-scale-") as tmp:
        root = Path(tmp) / "suite"
        root.mkdir()
        write_noop_suite(root, TESTS, MODULES)
        per_module = TESTS // MODULES
        nodeids = [
            f"test_noop_{module:02d}.py::test_{n}"
            for module in range(MODULES)
            for n in range(per_module)
        ]
        stores: dict[int, Path] = {}
        for runs in SIZES:
            started = time.perf_counter()
            stores[runs] = Path(tmp) / f"history-{runs}.sqlite"
            build_store(stores[runs], runs, nodeids)
            size = stores[runs].stat().st_size / 1e6
            print(
                f"built a store of {runs} run{'s' if runs > 1 else ''} "
                f"({runs * TESTS} attempts, {size:.0f} MB) "
                f"in {time.perf_counter() - started:.1f}s",
                flush=True,
            )
        variants: dict[str, tuple[list[str], Path | None]] = {
            NO_HISTORY: (["--batchflow-no-history"], None),
            **{f"{runs} run{'s' if runs > 1 else ''}": ([], stores[runs]) for runs in SIZES},
            f"{SIZES[-1]} runs, {QUARANTINE}": ([QUARANTINE], stores[SIZES[-1]]),
        }
        walls: dict[tuple[str, str], list[float]] = {}
        peaks: dict[tuple[str, str], list[int]] = {}
        for mode, mode_args in MODES.items():
            for name, (extra, store) in variants.items():
                print(f"warm-up {mode}, {name} ...", flush=True)
                timed_run(root, [*COMMON, *mode_args, *extra], store)
        for repetition in range(repetitions):
            print(f"repetition {repetition + 1}/{repetitions} ...", flush=True)
            for mode, mode_args in MODES.items():
                for name, (extra, store) in variants.items():
                    wall, peak = timed_run(root, [*COMMON, *mode_args, *extra], store)
                    walls.setdefault((mode, name), []).append(wall)
                    peaks.setdefault((mode, name), []).append(peak)
    rows = []
    for mode in MODES:
        base = statistics.median(walls[(mode, NO_HISTORY)])
        for name in variants:
            values = walls[(mode, name)]
            median = statistics.median(values)
            rows.append(
                [
                    f"{mode}, {name}",
                    f"{median:.2f}s",
                    f"{min(values):.2f}s",
                    f"{max(values):.2f}s",
                    f"{median / base:.3f}",
                    f"{1000 * (median - base) / TESTS:+.3f}",
                    f"{max(peaks[(mode, name)]) / 1024:.0f} MiB",
                ]
            )
    print()
    print(
        table(
            ["variant", "median", "min", "max", "/no history", "ms/test", "peak memory"],
            rows,
        )
    )
    print(
        "wall time of the whole pytest command; /no history: the median's ratio to the "
        "same mode without history; ms/test: the difference spread over the "
        f"{TESTS} tests; peak memory: the pytest process's own (an xdist controller's), "
        "the highest of the repetitions"
    )


if __name__ == "__main__":
    main()
