"""Makespan of 200 independent long-tail tests on ``-n 4``: xdist vs batchflow.

Run with ``python benchmarks/xdist_longtail.py`` (about a minute and a half).
Generates 200 ``time.sleep`` tests over 10 modules in a temporary directory,
their durations drawn from a lognormal distribution with a fixed seed and
scaled to 50 s in total, in random order. Runs them four ways on 4 workers:
``--dist load``, ``--dist worksteal``, ``--batchflow`` without history (the
first run, which fills the history store) and ``--batchflow`` with the
history the first run left. Prints each run's makespan (first test's start to
last test's stop, from a timing conftest present in every run; for batchflow
also from its JSON result), its ratio to the lower bound
max(total / 4, longest test) computed from the generated durations, and
batchflow's second run against worksteal. Standard library only; it prints
figures and targets, and asserts nothing.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _xdist_bench import (
    check,
    clean_env,
    finish_spread,
    json_makespan,
    lower_bound,
    machine,
    makespan,
    plan_bound,
    ratio,
    read_times,
    run_pytest,
    seconds,
    table,
    write_project,
)

TESTS = 200
MODULES = 10
WORKERS = 4
TOTAL = 50.0  # seconds of sleep over all tests
SIGMA = 1.1  # lognormal shape: a long tail of slow tests
SEED = 20240601
COMMON = ["-p", "no:cacheprovider", "-q", "-n", str(WORKERS)]
TARGET_BOUND = 1.10
TARGET_WORKSTEAL = 0.85


def make_durations() -> dict[str, float]:
    """nodeid -> seconds: lognormal, scaled to TOTAL, in random module order."""
    rng = random.Random(SEED)
    raw = [rng.lognormvariate(0.0, SIGMA) for _ in range(TESTS)]
    scale = TOTAL / sum(raw)
    durations = {}
    for number, value in enumerate(raw):
        module = f"test_tail_{number % MODULES:02d}.py"
        durations[f"{module}::test_{number:03d}"] = round(max(value * scale, 0.01), 3)
    return durations


def make_suite(root: Path, durations: dict[str, float]) -> None:
    write_project(root)
    modules: dict[str, list[str]] = {}
    for nodeid, seconds_ in durations.items():
        module, name = nodeid.split("::")
        modules.setdefault(module, []).append(f"def {name}():\n    time.sleep({seconds_!r})\n\n\n")
    for module, bodies in modules.items():
        (root / module).write_text("import time\n\n\n" + "".join(bodies), encoding="utf-8")


def main() -> None:
    env = clean_env()
    durations = make_durations()
    bound, total, longest = lower_bound(durations, {}, WORKERS)
    values = sorted(durations.values())
    print(f"xdist_longtail: {TESTS} sleep tests in {MODULES} modules, -n {WORKERS}; {machine()}")
    print(
        f"durations: total {total:.2f}s, median {statistics.median(values):.3f}s, "
        f"p90 {values[int(0.9 * len(values))]:.3f}s, max {values[-1]:.3f}s (lognormal "
        f"sigma={SIGMA}, seed {SEED})"
    )
    print(
        f"lower bound: max({total:.2f}s / {WORKERS}, {longest:.2f}s) = {bound:.2f}s",
        flush=True,
    )
    expect = f"{TESTS} passed"
    rows = []
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="batchflow-longtail-") as tmp:
        root = Path(tmp)
        make_suite(root, durations)
        check(run_pytest(root, ["--collect-only", "-q", "-p", "no:cacheprovider"], env))
        variants = [
            ("--dist load", ["--dist", "load"], None),
            ("--dist worksteal", ["--dist", "worksteal"], None),
            ("batchflow, no history", ["--batchflow", "--batchflow-json=first.json"], "first"),
            ("batchflow, history", ["--batchflow", "--batchflow-json=second.json"], "second"),
        ]
        printed_bound = None
        for name, extra, json_name in variants:
            if json_name == "first":
                shutil.rmtree(root / ".batchflow", ignore_errors=True)
            if json_name == "second":
                plan = run_pytest(root, ["--batchflow-plan", *COMMON], env)
                check(plan)
                printed_bound = plan_bound(plan.stdout)
            print(f"running {name} ...", flush=True)
            run = run_pytest(root, [*COMMON, *extra], env, times_name=f"times-{len(rows)}.tsv")
            check(run, expect)
            times = read_times(run.times_path)
            span = makespan(t for n, t in times.items() if n in durations)
            results[name] = span
            json_span = json_makespan(root / f"{json_name}.json") if json_name else None
            rows.append(
                [
                    name,
                    seconds(span),
                    ratio(span, bound),
                    seconds(json_span),
                    seconds(finish_spread(times.values())),
                    seconds(run.wall),
                    run.status(),
                ]
            )
    print()
    print(
        table(
            ["variant", "makespan", "/bound", "json", "spread", "wall", "status"],
            [["lower bound", seconds(bound), "1.000", "", "", "", ""], *rows],
        )
    )
    print()
    if printed_bound is not None:
        print(
            f"batchflow --batchflow-plan -n {WORKERS} (history of the first run): lower bound "
            f"{printed_bound[0]:.2f}s (critical path {printed_bound[1]:.2f}s); "
            f"computed here from the generated durations: {bound:.2f}s "
            f"(critical path {longest:.2f}s)"
        )
    second = results["batchflow, history"]
    steal = results["--dist worksteal"]
    print(f"batchflow (history) / worksteal: {ratio(second, steal)}")
    if second is not None:
        met = second <= TARGET_BOUND * bound
        print(
            f"target batchflow (history) <= {TARGET_BOUND:.2f} x lower bound: "
            f"{'met' if met else 'NOT met'} ({second / bound:.3f})"
        )
    if second is not None and steal:
        met = second <= TARGET_WORKSTEAL * steal
        print(
            f"target batchflow (history) <= {TARGET_WORKSTEAL:.2f} x worksteal: "
            f"{'met' if met else 'NOT met'} ({second / steal:.3f})"
        )
    print(
        "makespan: first test's start to last test's stop (timing conftest, every run); "
        "json: the same from batchflow's JSON result; spread: between the first and the "
        "last worker to finish; wall: the whole pytest command"
    )


if __name__ == "__main__":
    sys.exit(main())
