"""The ``bench`` fixture's accuracy and the benchmark gate's false alarm rate.

Run with ``python benchmarks/bench_gate.py [--runs 20] [--max-time 0.3]``
(about two minutes at the defaults on 2 cores). Two parts, each generated in
a temporary directory and run as ``python -m pytest`` subprocesses:

Accuracy
   A ``kind=benchmark`` batch times functions of known cost: a busy-wait on
   ``time.perf_counter_ns`` for exactly 1 us to 10 ms, whose cost is that
   plus the call's overhead; ``spin(0)`` shows that overhead and a no-op the
   floor of the measurement itself. One ``--batchflow --batchflow-no-history``
   run, read back from the JSON result, and the same functions timed by
   pytest-benchmark once (its ``--benchmark-json``), side by side.

False alarms (A/A)
   Four ordinary functions (sorting 1,000 ints, a dict comprehension,
   ``json.dumps`` of a small dict, ``sum(range(10_000))``), the code never
   changing, run ``runs + 1`` times by each tool against its own store: the
   first run is the baseline, each later one is compared with the one before
   it and gated at ``median:10%``, by batchflow (``--batchflow-bench-compare=last
   --batchflow-bench-fail=median:10%``, a bootstrap interval) and by
   pytest-benchmark (``--benchmark-compare --benchmark-compare-fail=median:10%``,
   the plain ratio of the medians). The two tools' runs alternate, so that
   the machine's noise hits both alike. Every failure here is a false alarm.

Needs pytest-benchmark in the environment (the ``bench`` extra). It prints
figures and whether the target (batchflow's gate fails <= 5% of the A/A
comparisons) was met, and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _xdist_bench import Run, clean_env, machine, run_pytest, table

DEFAULT_RUNS = 20
DEFAULT_MAX_TIME = 0.3
GATE = "median:10%"
THRESHOLD = 0.10
TARGET = 0.05

#: Function name in the generated module -> nominal cost in ns (None: no nominal cost).
KNOWN_COST: dict[str, int | None] = {
    "noop": None,
    "spin_0": 0,
    "spin_1us": 1_000,
    "spin_10us": 10_000,
    "spin_100us": 100_000,
    "spin_1ms": 1_000_000,
    "spin_10ms": 10_000_000,
}

KNOWN_COST_MODULE = '''\
import time


def spin(ns):
    """Busy-wait for ns nanoseconds of the clock the fixtures time with."""
    deadline = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < deadline:
        pass


def noop():
    pass


def test_noop({fixture}):
    {fixture}(noop)
{spins}'''

SPIN_TEST = """

def test_{name}({fixture}):
    {fixture}(spin, {ns})
"""

REALISTIC_MODULE = """\
import json
import random

NUMBERS = random.Random(7).sample(range(1_000_000), 1_000)
RECORD = {{
    "name": "batchflow",
    "tests": 1234,
    "ratio": 0.25,
    "tags": ["unit", "perf", "slow"],
    "nested": {{"workers": 2, "ok": True, "missing": None}},
}}


def squares():
    return {{n: n * n for n in range(1_000)}}


def test_sort({fixture}):
    {fixture}(sorted, NUMBERS)


def test_dict_comprehension({fixture}):
    {fixture}(squares)


def test_json_dumps({fixture}):
    {fixture}(json.dumps, RECORD)


def test_sum_range({fixture}):
    {fixture}(sum, range(10_000))
"""

REALISTIC = ["test_sort", "test_dict_comprehension", "test_json_dumps", "test_sum_range"]

#: pytest-benchmark's line per failed check, after "Performance has regressed:".
REGRESSED = re.compile(
    r"^\s*(?P<name>test_\w+).* - Field 'median' has failed \w+: (?P<value>-?[0-9.]+) >",
    re.MULTILINE,
)


def write_project(root: Path, fixture: str, module: str) -> None:
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text(
        "[pytest]\nbatchflow_batches = perf: kind=benchmark paths=test_perf.py\n",
        encoding="utf-8",
    )
    if module == "known":
        spins = "".join(
            SPIN_TEST.format(name=name, fixture=fixture, ns=ns)
            for name, ns in KNOWN_COST.items()
            if ns is not None
        )
        body = KNOWN_COST_MODULE.format(fixture=fixture, spins=spins)
    else:
        body = REALISTIC_MODULE.format(fixture=fixture)
    (root / "test_perf.py").write_text(body, encoding="utf-8")


def batchflow_args(json_path: Path, max_time: float, *extra: str) -> list[str]:
    # pytest-benchmark stays out of batchflow's runs: its plugin would only add startup.
    return [
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        "-q",
        "--batchflow",
        "--batchflow-html=off",
        f"--batchflow-json={json_path}",
        f"--batchflow-bench-max-time={max_time}",
        *extra,
    ]


def pytest_benchmark_args(json_path: Path, max_time: float, *extra: str) -> list[str]:
    return [
        "-p",
        "no:cacheprovider",
        "-p",
        "no:batchflow",
        "-q",
        f"--benchmark-max-time={max_time}",
        f"--benchmark-json={json_path}",
        *extra,
    ]


def fail(run: Run, why: str) -> SystemExit:
    return SystemExit(f"{run.command}: {why}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def short(nodeid: str) -> str:
    return nodeid.rsplit("::", 1)[-1]


def batchflow_benchmarks(run: Run, json_path: Path) -> tuple[dict[str, Any], list[str]]:
    """A batchflow run's benchmarks by test name, and what failed it."""
    if not json_path.exists():
        raise fail(run, "no JSON result")
    result = json.loads(json_path.read_text(encoding="utf-8"))
    failed_by: list[str] = result["failed_by"]
    expected = 1 if failed_by == ["benchmarks"] else 0
    if failed_by not in ([], ["benchmarks"]) or run.returncode != expected:
        raise fail(run, f"rc={run.returncode}, failed_by={failed_by}")
    return {short(b["nodeid"]): b for b in result["benchmarks"]}, failed_by


def pytest_benchmark_medians(run: Run, json_path: Path) -> dict[str, dict[str, float]]:
    """A pytest-benchmark run's stats by test name."""
    if not json_path.exists():
        raise fail(run, "no --benchmark-json file")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    return {b["name"]: b["stats"] for b in data["benchmarks"]}


def duration(seconds: float | None) -> str:
    """A time per call with a unit that keeps three or four digits."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds * 1e9:.3g}ns"


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:+.{digits}f}%"


def size(value: float) -> str:
    """A fraction that has no sign (a spread, a width), in percent."""
    return f"{100 * value:.1f}%"


def rate(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f}%)" if total else f"{count}/0"


def error_of(measured: float, nominal_ns: int | None) -> float | None:
    if not nominal_ns:
        return None
    return measured / (nominal_ns / 1e9) - 1


def accuracy(base: Path, max_time: float, env: Mapping[str, str]) -> list[list[str]]:
    """One batchflow and one pytest-benchmark run of the known-cost functions."""
    print("accuracy: batchflow run ...", flush=True)
    ours = base / "known-batchflow"
    write_project(ours, "bench", "known")
    ours_json = ours / "result.json"
    run = run_pytest(ours, batchflow_args(ours_json, max_time, "--batchflow-no-history"), env)
    measured, _ = batchflow_benchmarks(run, ours_json)
    print("accuracy: pytest-benchmark run ...", flush=True)
    theirs = base / "known-pytest-benchmark"
    write_project(theirs, "benchmark", "known")
    theirs_json = theirs / "result.json"
    other = run_pytest(theirs, pytest_benchmark_args(theirs_json, max_time), env)
    if other.returncode != 0:
        raise fail(other, f"rc={other.returncode}")
    reference = pytest_benchmark_medians(other, theirs_json)
    # spin(0) is what every spin costs besides its wait: the call, two clock reads.
    overhead = measured["test_spin_0"]["median"]
    rows = []
    for name, nominal in KNOWN_COST.items():
        ours_stats = measured[f"test_{name}"]
        theirs_stats = reference[f"test_{name}"]
        median = ours_stats["median"]
        net = (
            (median - overhead) / (nominal / 1e9) - 1
            if nominal
            else None  # noop and spin(0) have no cost of their own to compare with
        )
        rows.append(
            [
                name,
                "-" if nominal is None else duration(nominal / 1e9),
                duration(median),
                percent(error_of(median, nominal), 2),
                percent(net, 2),
                duration(ours_stats["min"]),
                percent(error_of(ours_stats["min"], nominal), 2),
                f"{ours_stats['rounds']}x{ours_stats['iterations']}",
                duration(theirs_stats["median"]),
                percent(error_of(theirs_stats["median"], nominal), 2),
                f"{theirs_stats['rounds']}x{theirs_stats['iterations']}",
            ]
        )
    return rows


@dataclass
class Tally:
    """One tool's A/A runs."""

    runs: int = 0
    failed_runs: int = 0
    comparisons: int = 0
    failed: int = 0
    slower: int = 0


@dataclass
class Change:
    """One benchmark against the previous run."""

    run: int
    baseline: float  # the statistic, seconds per call
    current: float
    change: float
    low: float | None = None
    high: float | None = None
    verdict: str = ""
    failed: bool = False
    spread: float = 0.0  # this run's IQR / median: the noise within the run


def aa_runs(
    base: Path, runs: int, max_time: float, env: Mapping[str, str]
) -> tuple[Tally, Tally, dict[str, list[Change]], dict[str, list[Change]]]:
    """runs + 1 runs of each tool, alternating; the first of each is the baseline."""
    ours_root = base / "aa-batchflow"
    theirs_root = base / "aa-pytest-benchmark"
    write_project(ours_root, "bench", "realistic")
    write_project(theirs_root, "benchmark", "realistic")
    storage = f"file://{theirs_root / 'storage'}"
    gate = ["--batchflow-bench-compare=last", f"--batchflow-bench-fail={GATE}"]
    ours, theirs = Tally(), Tally()
    ours_changes: dict[str, list[Change]] = {name: [] for name in REALISTIC}
    theirs_changes: dict[str, list[Change]] = {name: [] for name in REALISTIC}
    previous: dict[str, dict[str, float]] = {}
    for number in range(runs + 1):
        started = time.perf_counter()
        ours_json = ours_root / f"run-{number:02d}.json"
        run = run_pytest(ours_root, batchflow_args(ours_json, max_time, *gate), env)
        benchmarks, failed_by = batchflow_benchmarks(run, ours_json)
        theirs_json = theirs_root / f"run-{number:02d}.json"
        compare = [] if number == 0 else ["--benchmark-compare", f"--benchmark-compare-fail={GATE}"]
        other = run_pytest(
            theirs_root,
            pytest_benchmark_args(
                theirs_json, max_time, "--benchmark-autosave", f"--benchmark-storage={storage}"
            )
            + compare,
            env,
        )
        output = other.stdout + other.stderr
        regressed = {match["name"] for match in REGRESSED.finditer(output)}
        if (other.returncode != 0) != bool(regressed) or (number == 0 and regressed):
            raise fail(other, f"rc={other.returncode}, regressed={sorted(regressed)}")
        stats = pytest_benchmark_medians(other, theirs_json)
        if number == 0:
            if failed_by:
                raise fail(run, "the baseline run failed")
            previous = stats
            print(f"A/A run 0 (baselines) {time.perf_counter() - started:.1f}s", flush=True)
            continue
        ours.runs += 1
        ours.failed_runs += bool(failed_by)
        for name in REALISTIC:
            comparison = benchmarks[name]["comparison"]
            if comparison is None:
                raise fail(run, f"{name}: no comparison ({benchmarks[name]['baseline_problem']})")
            ours.comparisons += 1
            ours.failed += comparison["failed"]
            ours.slower += comparison["verdict"] == "slower"
            ours_changes[name].append(
                Change(
                    number,
                    comparison["baseline"],
                    comparison["current"],
                    comparison["change"],
                    comparison["low"],
                    comparison["high"],
                    comparison["verdict"],
                    comparison["failed"],
                    benchmarks[name]["iqr"] / benchmarks[name]["median"],
                )
            )
        theirs.runs += 1
        theirs.failed_runs += other.returncode != 0
        for name in REALISTIC:
            change = stats[name]["median"] / previous[name]["median"] - 1
            theirs.comparisons += 1
            theirs.failed += name in regressed
            theirs_changes[name].append(
                Change(
                    number,
                    previous[name]["median"],
                    stats[name]["median"],
                    change,
                    failed=name in regressed,
                    spread=stats[name]["iqr"] / stats[name]["median"],
                )
            )
        previous = stats
        print(
            f"A/A run {number}/{runs}: batchflow {'FAILED' if failed_by else 'passed'}, "
            f"pytest-benchmark {'FAILED' if other.returncode else 'passed'} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    return ours, theirs, ours_changes, theirs_changes


def per_benchmark_rows(
    ours: Mapping[str, Sequence[Change]], theirs: Mapping[str, Sequence[Change]]
) -> list[list[str]]:
    rows = []
    for name in REALISTIC:
        mine, other = ours[name], theirs[name]
        widths = [c.high - c.low for c in mine if c.high is not None and c.low is not None]
        rows.append(
            [
                name,
                f"{sum(c.verdict == 'slower' for c in mine)}/{len(mine)}",
                f"{sum(c.failed for c in mine)}/{len(mine)}",
                size(statistics.median(abs(c.change) for c in mine)),
                percent(max((c.change for c in mine), key=abs)),
                size(statistics.median(widths) / 2),
                size(statistics.median(c.spread for c in mine)),
                f"{sum(c.failed for c in other)}/{len(other)}",
                size(statistics.median(abs(c.change) for c in other)),
                percent(max((c.change for c in other), key=abs)),
            ]
        )
    return rows


def alarm_rows(ours: Mapping[str, Sequence[Change]]) -> list[list[str]]:
    """Every comparison that failed batchflow's gate: what drove it."""
    rows = []
    for name in REALISTIC:
        for c in ours[name]:
            if c.failed:
                rows.append(
                    [
                        f"{name} run {c.run}",
                        duration(c.baseline),
                        duration(c.current),
                        percent(c.change),
                        f"[{percent(c.low)}, {percent(c.high)}]",
                        f"{100 * c.spread:.1f}%",
                    ]
                )
    return rows


def mark(change: Change) -> str:
    """A change with its verdict: F failed the gate, s slower, f faster (batchflow only)."""
    suffix = "F" if change.failed else {"slower": "s", "faster": "f"}.get(change.verdict, " ")
    return f"{percent(change.change, 0)}{suffix}"


def common_mode(changes: Sequence[Change]) -> str:
    """The geometric mean change of a run's benchmarks: the machine, not one benchmark."""
    return percent(statistics.geometric_mean(1 + c.change for c in changes) - 1, 0)


def per_run_rows(
    ours: Mapping[str, Sequence[Change]], theirs: Mapping[str, Sequence[Change]]
) -> list[list[str]]:
    rows = []
    for index in range(len(ours[REALISTIC[0]])):
        mine = [ours[name][index] for name in REALISTIC]
        other = [theirs[name][index] for name in REALISTIC]
        rows.append(
            [
                str(mine[0].run),
                *(mark(c) for c in mine),
                common_mode(mine),
                *(mark(c) for c in other),
                common_mode(other),
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="A/A comparisons per tool (default 20)"
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=DEFAULT_MAX_TIME,
        help="seconds of timed rounds per benchmark, both tools (default 0.3)",
    )
    options = parser.parse_args()
    try:
        import pytest_benchmark
    except ImportError:
        raise SystemExit(
            "bench_gate.py compares with pytest-benchmark: pip install pytest-benchmark"
        ) from None
    started = time.perf_counter()
    env = clean_env()
    print(
        f"bench_gate: {options.runs} A/A comparisons per tool, max time {options.max_time}s "
        f"per benchmark, gate {GATE}; pytest-benchmark {pytest_benchmark.__version__}; "
        f"{machine()}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="batchflow-bench-gate-") as tmp:
        base = Path(tmp)
        known = accuracy(base, options.max_time, env)
        ours, theirs, ours_changes, theirs_changes = aa_runs(
            base, options.runs, options.max_time, env
        )
    print()
    print("Accuracy: busy-waits of known cost (one run each; error = median / nominal - 1)")
    print(
        table(
            [
                "function",
                "nominal",
                "median",
                "error",
                "net spin(0)",
                "min",
                "min error",
                "rounds",
                "pytest-benchmark",
                "error",
                "rounds",
            ],
            known,
        )
    )
    print(
        "net spin(0): error of median - spin(0)'s median, the wait alone; "
        "noop: the floor of each tool's timing loop"
    )
    print()
    print(f"False alarms: A/A runs, unchanged code, gate {GATE}, each run against the one before")
    print(
        table(
            [
                "benchmark",
                "bf slower",
                "bf failed",
                "bf |change|",
                "bf worst",
                "bf half-CI",
                "bf iqr/med",
                "pb failed",
                "pb |change|",
                "pb worst",
            ],
            per_benchmark_rows(ours_changes, theirs_changes),
        )
    )
    print(
        "bf: batchflow, pb: pytest-benchmark; |change|: median of |median / previous median - 1|;\n"
        "worst: the largest change either way; half-CI: median half-width of batchflow's 95% "
        "interval;\niqr/med: the rounds' spread within a run (median over the runs)"
    )
    print()
    print("Per run: each benchmark's change against the previous run, and their geometric mean")
    names = [name.removeprefix("test_").split("_")[0] for name in REALISTIC]
    print(
        table(
            ["run", *(f"bf {n}" for n in names), "bf all", *(f"pb {n}" for n in names), "pb all"],
            per_run_rows(ours_changes, theirs_changes),
        )
    )
    print(
        "F: failed the gate; s / f: batchflow's verdict slower / faster (the interval "
        "clear of 0); pytest-benchmark has no verdict, only F"
    )
    alarms = alarm_rows(ours_changes)
    if alarms:
        print()
        print("batchflow's gate failures:")
        print(
            table(
                ["comparison", "baseline", "current", "change", "95% interval", "iqr/med"],
                alarms,
            )
        )
    print()
    ours_rate = ours.failed / ours.comparisons if ours.comparisons else 0.0
    print(
        table(
            ["tool", "slower verdicts", "comparisons failed", "runs failed"],
            [
                [
                    f"batchflow --batchflow-bench-fail={GATE}",
                    rate(ours.slower, ours.comparisons),
                    rate(ours.failed, ours.comparisons),
                    rate(ours.failed_runs, ours.runs),
                ],
                [
                    f"pytest-benchmark --benchmark-compare-fail={GATE}",
                    "-",
                    rate(theirs.failed, theirs.comparisons),
                    rate(theirs.failed_runs, theirs.runs),
                ],
            ],
        )
    )
    print(
        f"target batchflow false alarms <= {100 * TARGET:.0f}% of comparisons: "
        f"{'met' if ours_rate <= TARGET else 'NOT met'} ({100 * ours_rate:.1f}%)"
    )
    print(
        f"whole script: {time.perf_counter() - started:.0f}s; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
