"""Flaky-test detection against theory: batchflow reruns vs pytest-rerunfailures.

Run with ``python benchmarks/flaky_detection.py [tests per p]`` (default 200;
under a minute). Generates, in a temporary directory, one module per failure
probability p in 0, 0.05, 0.2, 0.5, 0.8 and 1, each with that many tests that
fail each attempt with probability p, and runs the suite with the same rerun
budget r = 2 three ways: batchflow serially, batchflow on ``-n 2`` (both with
``-p no:rerunfailures``) and pytest-rerunfailures ``--reruns 2`` (without
``--batchflow``; skipped with a note when it is not importable).

A test draws ``random.random() < p`` on each attempt with no fixed seed, so
attempts are independent and every run draws afresh (not reproducible, by
choice: a seeded draw would need an attempt counter shared across xdist
workers, since batchflow reruns a test on another worker). Per p it prints the
share of tests classified passed / flaky / failed next to theory: P(passed) =
1 - p, P(flaky) = p (1 - p^r), P(failed) = p^(r + 1). batchflow's
classification is read from its JSON result (outcome and attempts);
pytest-rerunfailures' from the reports it gives pytest, logged by a conftest
hook on the controller: a test whose call phase was reported ``rerun`` and
then ``passed`` is flaky. (pytest's junitxml drops ``rerun`` reports, the
``-rA`` summary is text meant for people, and ``--report-log`` needs another
plugin.) A share marked ``*`` lies outside the 95% Wilson score interval of
its observed count, i.e. theory is not within it; twelve cells per variant
are random (theory neither 0 nor 1), so a miss in some runs is chance.

Independently of the plugins, each test appends its draw to a log, so the
actual attempts are known: the script also counts the tests whose
classification disagrees with their own draws, which statistics cannot hide.
Standard library only; it prints figures and asserts nothing.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from _xdist_bench import (
    Run,
    clean_env,
    count_argument,
    json_tests,
    machine,
    run_pytest,
    seconds,
    table,
)

PROBABILITIES = (0.0, 0.05, 0.2, 0.5, 0.8, 1.0)
DEFAULT_TESTS = 200
RERUNS = 2
WORKERS = 2
OUTCOMES = ("passed", "flaky", "failed")
Z95 = 1.959964
COMMON = ["-p", "no:cacheprovider", "-q"]
BATCHFLOW = ["--batchflow", "--batchflow-no-history", f"--batchflow-reruns={RERUNS}"]
RERUNFAILURES = "pytest-rerunfailures --reruns 2"

#: Each attempt's draw, from inside the test: the ground truth.
TEST_MODULE = """\
import os
import random

import pytest

P = {p!r}


@pytest.mark.parametrize("n", range({tests}))
def test_draw(n, request):
    failed = random.random() < P
    log = os.environ.get("BENCH_ATTEMPTS")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{{request.node.nodeid}}\\t{{'failed' if failed else 'passed'}}\\n")
    assert not failed, f"drew a failure (p={{P}})"
"""

#: Every report as the controller received it (workers forward theirs).
REPORT_CONFTEST = """\
import os

_OUT = os.environ.get("BENCH_REPORTS")
_CONTROLLER = [True]


def pytest_configure(config):
    _CONTROLLER[0] = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report):
    if _OUT and _CONTROLLER[0]:
        with open(_OUT, "a", encoding="utf-8") as out:
            out.write(f"{report.nodeid}\\t{report.when}\\t{report.outcome}\\n")
"""

SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|rerun|flaky|errors?)\b")


@dataclass
class Variant:
    """One way to run the suite and what it made of each test."""

    name: str
    slug: str  # names its files in the suite's directory
    args: list[str]
    run: Run | None = None
    classified: dict[str, str] = field(default_factory=dict)
    draws: dict[str, list[str]] = field(default_factory=dict)
    disagreements: int = 0
    notes: list[str] = field(default_factory=list)


def p_of(nodeid: str) -> float:
    """The module name carries p in thousandths: test_p0050.py is p = 0.05."""
    return int(nodeid.split("::")[0][len("test_p") : -len(".py")]) / 1000


def make_suite(root: Path, tests: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (root / "conftest.py").write_text(REPORT_CONFTEST, encoding="utf-8")
    for p in PROBABILITIES:
        module = TEST_MODULE.format(p=p, tests=tests)
        (root / f"test_p{round(p * 1000):04d}.py").write_text(module, encoding="utf-8")


def theory(p: float) -> dict[str, float]:
    return {"passed": 1 - p, "flaky": p * (1 - p**RERUNS), "failed": p ** (RERUNS + 1)}


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial share."""
    share = successes / n
    denominator = 1 + Z95**2 / n
    centre = (share + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(share * (1 - share) / n + Z95**2 / (4 * n * n)) / denominator
    return centre - half, centre + half


def within(expected: float, successes: int, n: int) -> bool:
    low, high = wilson(successes, n)
    return low - 1e-9 <= expected <= high + 1e-9  # exact 0 and 1 despite rounding


def read_lines(path: Path, fields: int) -> list[list[str]]:
    if not path.exists():
        return []
    rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
    return [row for row in rows if len(row) == fields]


def read_draws(path: Path) -> dict[str, list[str]]:
    draws: dict[str, list[str]] = {}
    for nodeid, outcome in read_lines(path, 2):
        draws.setdefault(nodeid, []).append(outcome)
    return draws


def from_draws(draws: Sequence[str]) -> str:
    """What a correct rerunner makes of these attempts."""
    if draws[-1] == "failed":
        return "failed"
    return "flaky" if len(draws) > 1 else "passed"


def from_json(path: Path, notes: list[str]) -> dict[str, str]:
    """batchflow's outcome per test, with a note on each attempt list that does not fit it."""
    classified = {}
    for test in json_tests(path):
        nodeid, outcome = str(test["nodeid"]), str(test["outcome"])
        attempts = test.get("attempts")
        earlier = [str(a["outcome"]) for a in attempts] if isinstance(attempts, list) else []
        fits = {
            "passed": not earlier,
            "flaky": 1 <= len(earlier) <= RERUNS,
            "failed": len(earlier) == RERUNS,
        }.get(outcome, False) and all(o == "failed" for o in earlier)
        if not fits:
            notes.append(f"JSON: {nodeid} is {outcome} with earlier attempts {earlier}")
        classified[nodeid] = outcome
    return classified


def from_reports(path: Path) -> dict[str, str]:
    """pytest-rerunfailures' outcome per test, from its call-phase reports."""
    calls: dict[str, list[str]] = {}
    for nodeid, when, outcome in read_lines(path, 3):
        if when == "call":
            calls.setdefault(nodeid, []).append(outcome)
    classified = {}
    for nodeid, outcomes in calls.items():
        if outcomes[-1] == "passed":
            classified[nodeid] = "flaky" if "rerun" in outcomes else "passed"
        else:
            classified[nodeid] = outcomes[-1]
    return classified


def summary_counts(output: str) -> dict[str, int]:
    """The counts of pytest's last summary line (``3 failed, 5 passed, 2 rerun``)."""
    lines = [line for line in output.splitlines() if re.search(r" in [0-9.]+s\b", line)]
    if not lines:
        return {}
    return {word: int(count) for count, word in SUMMARY_COUNT.findall(lines[-1])}


def check_draws(variant: Variant, tests: int) -> None:
    """Notes on tests classified against their own draws, or rerun against the budget."""
    expected = len(PROBABILITIES) * tests
    if len(variant.classified) != expected:
        variant.notes.append(f"{len(variant.classified)} tests classified of {expected}")
    wrong = []
    for nodeid, draws in sorted(variant.draws.items()):
        budget_kept = (
            len(draws) <= RERUNS + 1
            and all(draw == "failed" for draw in draws[:-1])
            and (draws[-1] == "passed" or len(draws) == RERUNS + 1)
        )
        if not budget_kept:
            variant.notes.append(f"{nodeid} drew {draws} with {RERUNS} reruns")
        if variant.classified.get(nodeid) != from_draws(draws):
            wrong.append(f"{nodeid} drew {draws}, classified {variant.classified.get(nodeid)}")
    variant.disagreements = len(wrong)
    variant.notes.extend(wrong[:10])


def check_summary(variant: Variant, run: Run) -> None:
    """A note when pytest's summary line does not add up to the classification."""
    counts = summary_counts(run.stdout)
    classified = list(variant.classified.values())
    mine = {
        # pytest counts rerunfailures' flaky tests as passed, batchflow's as flaky
        "passed or flaky": sum(1 for c in classified if c in ("passed", "flaky")),
        "failed": classified.count("failed"),
        "rerun": sum(len(draws) - 1 for draws in variant.draws.values()),
    }
    theirs = {
        "passed or flaky": counts.get("passed", 0) + counts.get("flaky", 0),
        "failed": counts.get("failed", 0),
        "rerun": counts.get("rerun", 0),
    }
    if "--batchflow" in run.args:
        theirs["flaky"], mine["flaky"] = counts.get("flaky", 0), classified.count("flaky")
    if theirs != mine:
        variant.notes.append(f"summary line {theirs}, classification and draws {mine}")


def run_variant(root: Path, variant: Variant, tests: int) -> None:
    env = clean_env()
    attempts, reports = root / f"{variant.slug}.attempts", root / f"{variant.slug}.reports"
    json_path = root / f"{variant.slug}.json"
    for path in (attempts, reports, json_path):
        path.unlink(missing_ok=True)
    env["BENCH_ATTEMPTS"], env["BENCH_REPORTS"] = str(attempts), str(reports)
    args = [*COMMON, *variant.args]
    batchflow = "--batchflow" in args
    if batchflow:
        args.append(f"--batchflow-json={json_path}")
    variant.run = run = run_pytest(root, args, env)
    if run.returncode not in (0, 1) or run.internal_error:
        variant.notes.append(
            f"{run.command}: {run.status()}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        )
    variant.draws = read_draws(attempts)
    if batchflow:
        variant.classified = from_json(json_path, variant.notes)
    else:
        variant.classified = from_reports(reports)
    check_draws(variant, tests)
    check_summary(variant, run)


def shares(classified: Mapping[str, str], p: float) -> tuple[dict[str, int], int]:
    """Tests of this p by outcome, and how many there are."""
    outcomes = [outcome for nodeid, outcome in classified.items() if p_of(nodeid) == p]
    return {o: outcomes.count(o) for o in OUTCOMES}, len(outcomes)


def drawn_p(draws: Mapping[str, Sequence[str]], p: float) -> str:
    """The share of failed attempts among this p's tests: the generator, not the classifier."""
    attempts = [draw for nodeid, ds in draws.items() if p_of(nodeid) == p for draw in ds]
    return f"{attempts.count('failed') / len(attempts):.3f}" if attempts else "-"


def cell(count: int, n: int, expected: float) -> str:
    if n == 0:
        return "-"
    return f"{count / n:.3f}" + ("" if within(expected, count, n) else "*")


def main() -> None:
    tests = count_argument("the number of tests", DEFAULT_TESTS)
    print(
        f"flaky_detection: {tests} tests for each p in "
        f"{', '.join(f'{p:g}' for p in PROBABILITIES)}, {RERUNS} reruns; {machine()}",
        flush=True,
    )
    variants = [
        Variant("batchflow serial", "serial", [*BATCHFLOW, "-p", "no:rerunfailures"]),
        Variant(
            f"batchflow -n {WORKERS}",
            "xdist",
            [*BATCHFLOW, "-p", "no:rerunfailures", "-n", str(WORKERS)],
        ),
        Variant(RERUNFAILURES, "rerunfailures", ["--reruns", str(RERUNS)]),
    ]
    if find_spec("pytest_rerunfailures") is None:
        print(
            "pytest-rerunfailures is not importable: its column is skipped "
            "(pip install pytest-rerunfailures)"
        )
        variants.pop()
    with tempfile.TemporaryDirectory(prefix="batchflow-flaky-") as tmp:
        root = Path(tmp)
        make_suite(root, tests)
        for variant in variants:
            print(f"running {variant.name} ...", flush=True)
            run_variant(root, variant, tests)
    rows = []
    for p in PROBABILITIES:
        expected = theory(p)
        label = f"p={p:g}"
        rows.append(
            [f"{label:<8}theory", *(f"{expected[o]:.3f}" for o in OUTCOMES), "", f"{p:.3f}"]
        )
        for variant in variants:
            counts, n = shares(variant.classified, p)
            observed = [cell(counts[o], n, expected[o]) for o in OUTCOMES]
            rows.append([f"{'':<8}{variant.name}", *observed, str(n), drawn_p(variant.draws, p)])
    print()
    print(table(["p       variant", *OUTCOMES, "tests", "drawn p"], rows))
    print()
    for variant in variants:
        worst, where, cells = 0.0, "-", 0
        outside: list[str] = []
        for p in PROBABILITIES:
            counts, n = shares(variant.classified, p)
            for outcome in OUTCOMES:
                if n == 0:
                    continue
                cells += 1
                deviation = abs(counts[outcome] / n - theory(p)[outcome])
                if deviation > worst:
                    worst, where = deviation, f"p={p:g} {outcome}"
                if not within(theory(p)[outcome], counts[outcome], n):
                    outside.append(f"p={p:g} {outcome}")
        verdict = "yes" if not outside else f"no, {len(outside)} of {cells}: {', '.join(outside)}"
        wall, status = (variant.run.wall, variant.run.status()) if variant.run else (None, "-")
        print(
            f"{variant.name}: wall {seconds(wall)} ({status}); "
            f"largest |observed - theory| {worst:.3f} ({where}); "
            f"all {cells} shares within their 95% Wilson interval: {verdict}; "
            f"classified unlike their own draws: {variant.disagreements} of "
            f"{len(variant.draws)} tests"
        )
    for variant in variants:
        for note in variant.notes:
            print(f"note, {variant.name}: {note}")
    print(
        "shares of each p's tests; * theory outside the 95% Wilson interval of the observed "
        "count (about 1 in 20 of the cells whose theory is neither 0 nor 1 by chance); "
        "drawn p: failed attempts / attempts, from the tests' own log; wall: the whole pytest "
        "command"
    )


if __name__ == "__main__":
    main()
