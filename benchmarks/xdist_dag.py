"""A dependency DAG on ``-n 4``: batchflow vs the lower bound, and pytest-dependency.

Run with ``python benchmarks/xdist_dag.py`` (about a minute).
One DAG description (fixed seed) of 120 ``time.sleep`` tests: chains of 3 to
8 tests (one of them, the spine, long enough to be the critical path),
diamonds (a head, two or three middles, a tail) and independent fillers, each
chain and diamond in a module of its own, the fillers in three modules. Two
suites are generated from it in a temporary directory: one with batchflow's
``@pytest.mark.depends_on`` and one with pytest-dependency's
``@pytest.mark.dependency(depends=[...])``.

Runs, on 4 workers: batchflow without history (to fill the history store),
batchflow with that history, and the pytest-dependency suite under
``--dist load -p dependency`` without batchflow. Prints each run's makespan
(first test's start to last test's stop, from a timing conftest present in
every run), its ratio to the lower bound max(total / 4, critical path)
computed from the DAG, how many dependents were skipped and how many ran
before one of their dependencies had finished. Standard library only; it
prints figures and targets, and asserts nothing.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _xdist_bench import (
    TestTime,
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

WORKERS = 4
SEED = 20240602
TESTS = 120
SPINE = [1.5] * 8  # the longest chain: 12 s
CHAINS = [7, 6, 6, 5, 5, 4, 4, 3, 3]  # lengths of the other chains
DIAMONDS = [2, 3, 2, 3, 2, 3]  # middles per diamond (plus a head and a tail)
FILLER_MODULES = 3
COMMON = ["-p", "no:cacheprovider", "-q", "-rs", "-n", str(WORKERS)]
TARGET_BOUND = 1.15


@dataclass(frozen=True)
class Node:
    module: str
    name: str
    seconds: float
    depends: tuple[str, ...]  # names in the same module

    @property
    def nodeid(self) -> str:
        return f"{self.module}::{self.name}"


def make_dag() -> list[Node]:
    """The one DAG description both suites are generated from."""
    rng = random.Random(SEED)
    nodes: list[Node] = []
    groups: list[list[Node]] = []

    def chain(module: str, durations: list[float]) -> list[Node]:
        names = [f"test_{module.removeprefix('test_').removesuffix('.py')}_{i}" for i in range(8)]
        return [
            Node(module, names[i], seconds, (names[i - 1],) if i else ())
            for i, seconds in enumerate(durations)
        ]

    groups.append(chain("test_chain_spine.py", SPINE))
    for number, length in enumerate(CHAINS):
        durations = [round(rng.uniform(0.2, 0.7), 2) for _ in range(length)]
        groups.append(chain(f"test_chain_{number}.py", durations))
    for number, middles in enumerate(DIAMONDS):
        module = f"test_diamond_{number}.py"
        head = Node(module, f"test_diamond_{number}_head", round(rng.uniform(0.3, 0.8), 2), ())
        mids = [
            Node(
                module,
                f"test_diamond_{number}_mid{i}",
                round(rng.uniform(0.2, 0.8), 2),
                (head.name,),
            )
            for i in range(middles)
        ]
        tail = Node(
            module,
            f"test_diamond_{number}_tail",
            round(rng.uniform(0.2, 0.6), 2),
            tuple(m.name for m in mids),
        )
        groups.append([head, *mids, tail])
    rng.shuffle(groups)  # the spine is not simply first in collection order
    for group in groups:
        nodes.extend(group)
    fillers = TESTS - len(nodes)
    for number in range(fillers):
        module = f"test_filler_{number % FILLER_MODULES}.py"
        nodes.append(Node(module, f"test_filler_{number:03d}", round(rng.uniform(0.1, 0.4), 2), ()))
    return nodes


def render(nodes: list[Node], style: str) -> dict[str, str]:
    """module -> source, with ``depends_on`` (batchflow) or ``dependency`` markers."""
    modules: dict[str, list[str]] = {}
    for node in nodes:
        lines = []
        in_dag = node.depends or any(node.name in other.depends for other in nodes)
        if style == "batchflow" and node.depends:
            targets = ", ".join(repr(name) for name in node.depends)
            lines.append(f"@pytest.mark.depends_on({targets})\n")
        elif style == "dependency" and in_dag:
            lines.append(f"@pytest.mark.dependency(depends={list(node.depends)!r})\n")
        lines.append(f"def {node.name}():\n    time.sleep({node.seconds!r})\n\n\n")
        modules.setdefault(node.module, []).append("".join(lines))
    return {
        module: "import time\n\nimport pytest\n\n\n" + "".join(bodies)
        for module, bodies in modules.items()
    }


def make_suite(root: Path, nodes: list[Node], style: str) -> None:
    root.mkdir()
    write_project(root)
    for module, source in render(nodes, style).items():
        (root / module).write_text(source, encoding="utf-8")


def dependents(times: dict[str, TestTime], nodes: list[Node]) -> tuple[int, int, int]:
    """(dependents, skipped, ran before one of their dependencies finished)."""
    total = skipped = early = 0
    for node in nodes:
        if not node.depends:
            continue
        total += 1
        mine = times.get(node.nodeid)
        if mine is None or mine.outcome == "skipped":
            skipped += 1
            continue
        for name in node.depends:
            dep = times.get(f"{node.module}::{name}")
            if dep is None or dep.outcome != "passed" or dep.stop > mine.start:
                early += 1
                break
    return total, skipped, early


def main() -> None:
    env = clean_env()
    nodes = make_dag()
    durations = {node.nodeid: node.seconds for node in nodes}
    preds = {node.nodeid: [f"{node.module}::{d}" for d in node.depends] for node in nodes}
    bound, total, path = lower_bound(durations, preds, WORKERS)
    edges = sum(len(node.depends) for node in nodes)
    print(
        f"xdist_dag: {len(nodes)} sleep tests, {edges} dependency edges "
        f"({1 + len(CHAINS)} chains, {len(DIAMONDS)} diamonds, "
        f"{sum(not p for p in preds.values())} roots), -n {WORKERS}; {machine()}"
    )
    print(
        f"lower bound: max({total:.2f}s / {WORKERS}, critical path {path:.2f}s) = {bound:.2f}s",
        flush=True,
    )
    rows = []
    results: dict[str, float | None] = {}
    printed_bound = None
    with tempfile.TemporaryDirectory(prefix="batchflow-dag-") as tmp:
        flow_root = Path(tmp) / "batchflow"
        dep_root = Path(tmp) / "dependency"
        make_suite(flow_root, nodes, "batchflow")
        make_suite(dep_root, nodes, "dependency")
        for root in (flow_root, dep_root):
            check(run_pytest(root, ["--collect-only", "-q", "-p", "no:cacheprovider"], env))
        shutil.rmtree(flow_root / ".batchflow", ignore_errors=True)
        variants = [
            ("batchflow, no history", flow_root, ["--batchflow", "--batchflow-json=first.json"]),
            ("batchflow, history", flow_root, ["--batchflow", "--batchflow-json=second.json"]),
            ("pytest-dependency, --dist load", dep_root, ["--dist", "load", "-p", "dependency"]),
        ]
        for number, (name, root, extra) in enumerate(variants):
            if name == "batchflow, history":
                plan = run_pytest(flow_root, ["--batchflow-plan", *COMMON], env)
                check(plan)
                printed_bound = plan_bound(plan.stdout)
            print(f"running {name} ...", flush=True)
            run = run_pytest(root, [*COMMON, *extra], env, times_name=f"times-{number}.tsv")
            check(run)
            times = {n: t for n, t in read_times(run.times_path).items() if n in durations}
            span = makespan(times.values())
            results[name] = span
            count, skipped, early = dependents(times, nodes)
            json_path = next(
                (a.split("=", 1)[1] for a in extra if a.startswith("--batchflow-json=")), None
            )
            json_span = json_makespan(root / json_path) if json_path else None
            ran = sum(t.outcome == "passed" for t in times.values())
            work = sum(durations[n] for n, t in times.items() if t.outcome == "passed")
            rows.append(
                [
                    name,
                    seconds(span),
                    ratio(span, bound),
                    seconds(json_span),
                    seconds(finish_spread(times.values())),
                    f"{ran}/{len(nodes)}",
                    seconds(work),
                    f"{skipped}/{count}",
                    f"{early}",
                    seconds(run.wall),
                    run.status(),
                ]
            )
    print()
    print(
        table(
            [
                "variant",
                "makespan",
                "/bound",
                "json",
                "spread",
                "passed",
                "slept",
                "dependents skipped",
                "out of order",
                "wall",
                "status",
            ],
            [
                [
                    "lower bound",
                    seconds(bound),
                    "1.000",
                    "",
                    "",
                    "",
                    seconds(total),
                    "",
                    "",
                    "",
                    "",
                ],
                *rows,
            ],
        )
    )
    print()
    if printed_bound is not None:
        print(
            f"batchflow --batchflow-plan -n {WORKERS} (history of the first run): lower bound "
            f"{printed_bound[0]:.2f}s (critical path {printed_bound[1]:.2f}s); "
            f"computed here from the DAG: {bound:.2f}s (critical path {path:.2f}s)"
        )
    second = results["batchflow, history"]
    if second is not None:
        met = second <= TARGET_BOUND * bound
        print(
            f"target batchflow (history) <= {TARGET_BOUND:.2f} x lower bound: "
            f"{'met' if met else 'NOT met'} ({second / bound:.3f})"
        )
    print(
        "makespan: first test's start to last test's stop (timing conftest, every run; "
        "skipped tests count too); json: the same from batchflow's JSON result; spread: "
        "between the first and the last worker to finish; slept: the generated durations "
        "of the tests that passed; dependents skipped: tests with "
        "dependencies that were skipped (every test passes, so each such skip is spurious); "
        "out of order: dependents that started before a dependency had passed"
    )


if __name__ == "__main__":
    main()
