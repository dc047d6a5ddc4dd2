"""Expensive module fixtures on ``-n 4``: how often they are set up, and the makespan.

Run with ``python benchmarks/xdist_fixtures.py`` (one to two minutes).
Generates, with a fixed seed, a suite of 14 modules in a temporary directory:
12 modules ``test_fix_00.py`` to ``test_fix_11.py`` each have a
module-scoped fixture that sleeps (0.4 s; 1.0 s in three of them, an
expensive setup such as a database or a server) and 10 to 20 tests that use
it, and 2 modules ``test_plain_00.py`` and ``test_plain_01.py`` have tests
and no fixture. Every test sleeps 0.02 to 0.1 s. Each time a fixture is set
up, it appends one line (module, worker from ``PYTEST_XDIST_WORKER``, seconds
it took) to a log file, so the script counts the setups of every run.

Runs on 4 workers: ``--dist load``, ``--dist loadscope`` (xdist keeps a
module on one worker), ``--dist worksteal``, ``--batchflow`` without history
(the first run, which fills the history store, including each module's
measured setup cost) and ``--batchflow`` with the history the first run left.
Prints each run's makespan (first test's start to last test's stop, from a
timing conftest present in every run), wall time, the number of fixture
setups against the minimum (one per module with a fixture), the seconds
spent in them (from the log; for batchflow also the sum of ``shared_setup``
in its JSON result), the makespan's ratio to the lower bound, and batchflow's
second run against each run.

Lower bound: ``max((sum of test sleeps + one setup per fixture module) / 4,
longest test)``. Every test must run, and every module with a fixture must
have it set up at least once on some worker, so no schedule on 4 workers
does less than that work, spread evenly; and no schedule finishes before its
longest test. A setup can be paid more than once (a module split over
workers pays it on each), so the bound may be out of reach for a schedule
that splits modules to balance the load; it ignores pytest's per-test
overhead too. Here the first term is the larger by far.

Target: batchflow's second run sets each module's fixture up at most 1.5
times on average (total setups <= 1.5 x the minimum) and its makespan is
within 1.10 x the lower bound. Standard library only; it prints figures and
the target, and asserts nothing. With 4 workers on a 2-core machine the
workers are oversubscribed: sleeps are unaffected, but wall times and
per-test overhead are noisier.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _xdist_bench import (
    check,
    clean_env,
    finish_spread,
    json_tests,
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

WORKERS = 4
SEED = 20240603
FIXTURE_MODULES = 12
PLAIN_MODULES = 2
SETUP = 0.4  # seconds a fixture takes to set up
SLOW_SETUP = 1.0  # ... in SLOW_SETUPS of the modules
SLOW_SETUPS = 3
TESTS_PER_MODULE = (10, 20)
TEST_SLEEP = (0.02, 0.1)
COMMON = ["-p", "no:cacheprovider", "-q", "-n", str(WORKERS)]
TARGET_SETUPS = 1.5
TARGET_BOUND = 1.10
SECOND = "batchflow, history"

FIXTURE_MODULE = """\
import os
import time

import pytest


@pytest.fixture(scope="module")
def resource():
    start = time.perf_counter()
    time.sleep({setup!r})
    took = time.perf_counter() - start
    log = os.environ.get("BENCH_SETUPS")
    if log:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{module}\\t{{worker}}\\t{{took!r}}\\n")
    return {module!r}


"""

FIXTURE_TEST = "def test_{number:02d}(resource):\n    time.sleep({sleep!r})\n\n\n"
PLAIN_TEST = "def test_{number:02d}():\n    time.sleep({sleep!r})\n\n\n"


@dataclass(frozen=True)
class Module:
    """One generated module: its fixture's setup (None: no fixture) and test sleeps."""

    name: str
    setup: float | None
    tests: tuple[float, ...]

    def nodeids(self) -> list[str]:
        return [f"{self.name}.py::test_{number:02d}" for number in range(len(self.tests))]

    def source(self) -> str:
        if self.setup is None:
            head, test = "import time\n\n\n", PLAIN_TEST
        else:
            head, test = FIXTURE_MODULE.format(setup=self.setup, module=self.name), FIXTURE_TEST
        return head + "".join(
            test.format(number=number, sleep=sleep) for number, sleep in enumerate(self.tests)
        )


@dataclass(frozen=True)
class Setups:
    """The fixture setups of one run, from the log the fixtures append to."""

    count: int
    seconds: float
    per_module: Counter[str]


def make_modules() -> list[Module]:
    rng = random.Random(SEED)
    slow = set(rng.sample(range(FIXTURE_MODULES), SLOW_SETUPS))
    modules = []
    for index in range(FIXTURE_MODULES + PLAIN_MODULES):
        count = rng.randint(*TESTS_PER_MODULE)
        tests = tuple(round(rng.uniform(*TEST_SLEEP), 3) for _ in range(count))
        if index < FIXTURE_MODULES:
            setup = SLOW_SETUP if index in slow else SETUP
            modules.append(Module(f"test_fix_{index:02d}", setup, tests))
        else:
            modules.append(Module(f"test_plain_{index - FIXTURE_MODULES:02d}", None, tests))
    return modules


def make_suite(root: Path, modules: list[Module]) -> None:
    write_project(root)
    for module in modules:
        (root / f"{module.name}.py").write_text(module.source(), encoding="utf-8")


def read_setups(path: Path) -> Setups:
    per_module: Counter[str] = Counter()
    total = 0.0
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                per_module[parts[0]] += 1
                total += float(parts[2])
    return Setups(sum(per_module.values()), total, per_module)


def json_shared_setup(path: Path) -> float | None:
    """The sum of ``shared_setup`` over the setup phases of a batchflow JSON result."""
    try:
        tests = json_tests(path)
    except (ValueError, KeyError, json.JSONDecodeError):
        return None
    total = None
    for test in tests:
        phases = test.get("phases")
        if not isinstance(phases, list):
            continue
        for phase in phases:
            value = phase.get("shared_setup") if isinstance(phase, dict) else None
            if isinstance(value, int | float):
                total = (total or 0.0) + float(value)
    return total


def main() -> None:
    modules = make_modules()
    fixtures = [m for m in modules if m.setup is not None]
    nodeids = {nodeid for m in modules for nodeid in m.nodeids()}
    sleeps = [sleep for m in modules for sleep in m.tests]
    setup_total = sum(m.setup or 0.0 for m in modules)
    work = sum(sleeps) + setup_total
    bound = max(work / WORKERS, max(sleeps))
    minimum = len(fixtures)
    print(
        f"xdist_fixtures: {len(nodeids)} sleep tests in {len(modules)} modules "
        f"({len(fixtures)} with a module-scoped fixture), -n {WORKERS}; {machine()}"
    )
    print(
        f"fixture setups: {SETUP}s in {len(fixtures) - SLOW_SETUPS} modules, {SLOW_SETUP}s in "
        f"{SLOW_SETUPS} ({', '.join(m.name for m in fixtures if m.setup == SLOW_SETUP)}); "
        f"{setup_total:.2f}s once each"
    )
    print(
        f"tests: {TESTS_PER_MODULE[0]} to {TESTS_PER_MODULE[1]} per module, "
        f"{TEST_SLEEP[0]}s to {TEST_SLEEP[1]}s each, {sum(sleeps):.2f}s in all (seed {SEED})"
    )
    print(
        f"lower bound: max(({sum(sleeps):.2f}s + {setup_total:.2f}s) / {WORKERS}, "
        f"{max(sleeps):.3f}s) = {bound:.2f}s",
        flush=True,
    )
    print(flush=True)

    env = clean_env()
    expect = f"{len(nodeids)} passed"
    variants = [
        ("--dist load", ["--dist", "load"], None),
        ("--dist loadscope", ["--dist", "loadscope"], None),
        ("--dist worksteal", ["--dist", "worksteal"], None),
        ("batchflow, no history", ["--batchflow", "--batchflow-json=first.json"], "first"),
        (SECOND, ["--batchflow", "--batchflow-json=second.json"], "second"),
    ]
    results: dict[str, tuple[float | None, float, Setups, float | None, float | None, str]] = {}
    printed_bound = None
    with tempfile.TemporaryDirectory(prefix="batchflow-fixtures-") as tmp:
        root = Path(tmp)
        make_suite(root, modules)
        check(run_pytest(root, ["--collect-only", "-q", "-p", "no:cacheprovider"], env))
        for index, (name, extra, json_name) in enumerate(variants):
            if json_name == "first":
                shutil.rmtree(root / ".batchflow", ignore_errors=True)
            if json_name == "second":
                plan = run_pytest(root, ["--batchflow-plan", *COMMON], env)
                check(plan)
                printed_bound = plan_bound(plan.stdout)
            log = root / f"setups-{index}.log"
            log.unlink(missing_ok=True)
            print(f"running {name} ...", flush=True)
            run = run_pytest(
                root, [*COMMON, *extra], {**env, "BENCH_SETUPS": str(log)}, f"times-{index}.tsv"
            )
            check(run, expect)
            times = read_times(run.times_path)
            span = makespan(t for n, t in times.items() if n in nodeids)
            shared = json_shared_setup(root / f"{json_name}.json") if json_name else None
            spread = finish_spread(t for n, t in times.items() if n in nodeids)
            results[name] = (span, run.wall, read_setups(log), shared, spread, run.status())

    second_span = results[SECOND][0]
    rows = [["lower bound", seconds(bound), "", "", str(minimum), "1.000"]]
    rows[0].extend([seconds(setup_total), "", "1.000", "", ""])
    for name, (span, wall, setups, shared, spread, status) in results.items():
        rows.append(
            [
                name,
                seconds(span),
                seconds(spread),
                seconds(wall),
                str(setups.count),
                ratio(setups.count, minimum),
                seconds(setups.seconds),
                seconds(shared),
                ratio(span, bound),
                ratio(second_span, span),
                status,
            ]
        )
    print()
    print(
        table(
            [
                "variant",
                "makespan",
                "spread",
                "wall",
                "setups",
                "/min",
                "setup s",
                "json setup",
                "/bound",
                "bf2/this",
                "status",
            ],
            rows,
        )
    )
    print()
    print("setups per fixture module, in module order:")
    for name, (_, _, setups, _, _, _) in results.items():
        counts = [setups.per_module.get(m.name, 0) for m in fixtures]
        spread_text = " ".join(str(c) for c in counts)
        print(
            f"  {name:<22} {spread_text}  (max {max(counts)}, modules set up more than once: "
            f"{sum(1 for c in counts if c > 1)} of {len(fixtures)})"
        )
    print(f"  {'modules':<22} {' '.join(m.name[-2:] for m in fixtures)}")
    print()
    if printed_bound is not None:
        print(
            f"batchflow --batchflow-plan -n {WORKERS} (history of the first run): lower bound "
            f"{printed_bound[0]:.2f}s (critical path {printed_bound[1]:.2f}s); computed here: "
            f"{bound:.2f}s"
        )
    for name, (span, *_) in results.items():
        if name != SECOND:
            print(f"batchflow (history) / {name}: {ratio(second_span, span)}")
    second_setups = results[SECOND][2].count
    setups_met = second_setups <= TARGET_SETUPS * minimum
    bound_met = second_span is not None and second_span <= TARGET_BOUND * bound
    print(
        f"target batchflow (history) setups <= {TARGET_SETUPS:.2f} x minimum "
        f"({second_setups / minimum:.3f}) and makespan <= {TARGET_BOUND:.2f} x lower bound "
        f"({ratio(second_span, bound)}): {'met' if setups_met and bound_met else 'NOT met'} "
        f"(setups {'met' if setups_met else 'NOT met'}, makespan "
        f"{'met' if bound_met else 'NOT met'})"
    )
    print(
        "makespan: first test's start to last test's stop (timing conftest, every run); "
        "spread: between the first and the last worker to finish; wall: the whole pytest "
        "command; setups and setup s: fixture setups and the seconds they took, from the "
        "fixtures' log; json setup: the sum of shared_setup in batchflow's JSON result; "
        "bf2/this: batchflow (history) makespan / this makespan"
    )


if __name__ == "__main__":
    main()
