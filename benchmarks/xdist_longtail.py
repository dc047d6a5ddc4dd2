"""Makespan of 200 independent long-tail tests on ``-n 4``: xdist vs batchflow.

Run with ``python benchmarks/xdist_longtail.py`` (about three to four minutes).
Draws 200 ``time.sleep`` durations from a lognormal distribution with a fixed
seed, scaled to 50 s in total, and generates two suites from the same
durations, each in a temporary directory of its own (so each has its own
batchflow history), laid out two ways:

random order
    The 200 tests in the order they were drawn, dealt round-robin over 10
    modules ``test_tail_00.py`` to ``test_tail_09.py``: no relation between
    where a test is collected and how long it takes.

slowest last
    The 20 slowest tests (the slowest 10 %, ties broken by the order drawn)
    in one module ``test_zz_integration.py``, in the order drawn; the other
    180 in the order drawn, dealt round-robin over 9 modules
    ``test_tail_00.py`` to ``test_tail_08.py``. The slow module sorts after
    the others, so pytest collects it last. Real suites often look like this:
    slow integration or end-to-end tests are kept in modules or folders of
    their own, which are collected after the many quick unit tests (by name,
    or because CI passes ``tests/unit tests/integration`` in that order). The
    test functions keep their names and durations; only their modules change.
    Nothing in this layout was chosen by looking at the results.

Each suite runs four ways on 4 workers: ``--dist load``, ``--dist
worksteal``, ``--batchflow`` without history (the first run, which fills the
history store) and ``--batchflow`` with the history the first run left.
Prints, for each layout, each run's makespan (first test's start to last
test's stop, from a timing conftest present in every run; for batchflow also
from its JSON result), its ratio to the lower bound max(total / 4, longest
test) computed from the generated durations (the same for both layouts), and
batchflow's second run against worksteal. Standard library only; it prints
figures and targets, and asserts nothing.
"""

from __future__ import annotations

import random
import shutil
import statistics
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
SLOW_SHARE = 0.10  # slowest last: this share of the tests goes in the last module
SLOW_MODULE = "test_zz_integration.py"
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


def slowest_last(durations: dict[str, float]) -> dict[str, float]:
    """The same tests and durations, the slowest SLOW_SHARE moved to SLOW_MODULE.

    Both groups keep the order the durations were drawn in (test_000 first);
    the rest are dealt round-robin over MODULES - 1 modules.
    """
    drawn = list(durations.items())
    by_length = sorted(range(len(drawn)), key=lambda index: (-drawn[index][1], index))
    slow = set(by_length[: round(SLOW_SHARE * len(drawn))])
    layout = {}
    rest = 0
    for index, (nodeid, seconds_) in enumerate(drawn):
        name = nodeid.split("::")[1]
        if index in slow:
            module = SLOW_MODULE
        else:
            module = f"test_tail_{rest % (MODULES - 1):02d}.py"
            rest += 1
        layout[f"{module}::{name}"] = seconds_
    return layout


def make_suite(root: Path, durations: dict[str, float]) -> None:
    write_project(root)
    modules: dict[str, list[str]] = {}
    for nodeid, seconds_ in durations.items():
        module, name = nodeid.split("::")
        modules.setdefault(module, []).append(f"def {name}():\n    time.sleep({seconds_!r})\n\n\n")
    for module, bodies in modules.items():
        (root / module).write_text("import time\n\n\n" + "".join(bodies), encoding="utf-8")


def run_layout(label: str, durations: dict[str, float], bound: float, longest: float) -> None:
    """Run the four variants on one layout and print its table and targets."""
    env = clean_env()
    expect = f"{TESTS} passed"
    rows: list[list[str]] = []
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
            print(f"[{label}] running {name} ...", flush=True)
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
    print(f"== layout: {label} ==")
    print(
        table(
            ["variant", "makespan", "/bound", "json", "spread", "wall", "status"],
            [["lower bound", seconds(bound), "1.000", "", "", "", ""], *rows],
        )
    )
    print()
    if printed_bound is not None:
        print(
            f"[{label}] batchflow --batchflow-plan -n {WORKERS} (history of the first run): "
            f"lower bound {printed_bound[0]:.2f}s (critical path {printed_bound[1]:.2f}s); "
            f"computed here from the generated durations: {bound:.2f}s "
            f"(critical path {longest:.2f}s)"
        )
    second = results["batchflow, history"]
    steal = results["--dist worksteal"]
    print(f"[{label}] batchflow (history) / worksteal: {ratio(second, steal)}")
    if second is not None:
        met = second <= TARGET_BOUND * bound
        print(
            f"[{label}] target batchflow (history) <= {TARGET_BOUND:.2f} x lower bound: "
            f"{'met' if met else 'NOT met'} ({second / bound:.3f})"
        )
    if second is not None and steal:
        met = second <= TARGET_WORKSTEAL * steal
        print(
            f"[{label}] target batchflow (history) <= {TARGET_WORKSTEAL:.2f} x worksteal: "
            f"{'met' if met else 'NOT met'} ({second / steal:.3f})"
        )
    print(flush=True)


def main() -> None:
    durations = make_durations()
    layouts = [("random order", durations), ("slowest last", slowest_last(durations))]
    bound, total, longest = lower_bound(durations, {}, WORKERS)
    values = sorted(durations.values())
    slow = sorted(
        seconds_ for nodeid, seconds_ in layouts[1][1].items() if nodeid.startswith(SLOW_MODULE)
    )
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
    print(
        "layouts: random order (as drawn, round-robin over 10 modules); slowest last "
        f"(the {len(slow)} slowest, {slow[0]:.3f}s to {slow[-1]:.3f}s and {sum(slow):.2f}s "
        f"in all, in {SLOW_MODULE}, collected last; the rest as drawn over 9 modules)"
    )
    print(flush=True)
    for label, layout in layouts:
        run_layout(label, layout, bound, longest)
    print(
        "makespan: first test's start to last test's stop (timing conftest, every run); "
        "json: the same from batchflow's JSON result; spread: between the first and the "
        "last worker to finish; wall: the whole pytest command"
    )


if __name__ == "__main__":
    main()
