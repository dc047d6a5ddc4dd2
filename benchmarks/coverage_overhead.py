"""Coverage overhead on ``-n 2``: plain, pytest-cov, batchflow by batch and by test.

Run with ``python benchmarks/coverage_overhead.py [repetitions]`` (default 3).
Generates a package of a few hundred statements (branches, loops) and 1,000
tests over two batches that call into it, in a temporary directory, and times
the whole ``python -m pytest -n 2`` command (perf_counter around the
subprocess) for: no coverage, pytest-cov's ``--cov``, ``--batchflow`` without
coverage, ``--batchflow --batchflow-cov`` (batch contexts), the same with
``--batchflow-no-fast-exit`` (Python's full shutdown in every process, as
under pytest-cov: batchflow's cost like for like, not a target) and with
``--batchflow-cov-context=test``. One untimed warm-up of each (bytecode
caches), then the variants alternate within each repetition; the table gives
the median and the range, and the total percentage each coverage variant
printed, so that one sees they measured the same code. The ratio of the
fastest runs is printed too: on a machine shared with other work the medians
move by more than the differences measured. Needs pytest-cov
(``pip install pytest-cov``). Standard library only; prints figures and the
targets, asserts nothing.
"""

from __future__ import annotations

import importlib.util
import re
import statistics
import tempfile
from pathlib import Path

from _xdist_bench import alternate, clean_env, count_argument, machine, seconds, table

TESTS_PER_MODULE = 50
MODULES = 20
WORKERS = 2
DEFAULT_REPETITIONS = 3
COMMON = ["-p", "no:cacheprovider", "-q", "-n", str(WORKERS)]
BATCHFLOW = ["--batchflow", "--batchflow-no-history"]
PYTEST_COV = ["--cov=benchpkg", "--cov-report=term"]
#: The reports batchflow writes, asked of pytest-cov (in the suite's folder).
SAME_REPORTS = ["--cov-report=html", "--cov-report=xml", "--cov-report=json"]
VARIANTS = {
    "plain": [],
    "pytest-cov": PYTEST_COV,
    "pytest-cov, same reports": [*PYTEST_COV, *SAME_REPORTS],
    "batchflow + pytest-cov": [*BATCHFLOW, *PYTEST_COV, *SAME_REPORTS],
    "batchflow, no coverage": BATCHFLOW,
    "batchflow, batch contexts": [*BATCHFLOW, "--batchflow-cov=benchpkg"],
    "batchflow, batch contexts, no fast exit": [
        *BATCHFLOW,
        "--batchflow-cov=benchpkg",
        "--batchflow-no-fast-exit",
    ],
    "batchflow, test contexts": [
        *BATCHFLOW,
        "--batchflow-cov=benchpkg",
        "--batchflow-cov-context=test",
    ],
}
BASE = "pytest-cov"
SAME = "pytest-cov, same reports"
TARGETS = {"batchflow, batch contexts": 1.05, "batchflow, test contexts": 1.25}
#: Not a target: batch contexts with Python's full shutdown, like pytest-cov.
LIKE_FOR_LIKE = "batchflow, batch contexts, no fast exit"
PERCENT = {
    "pytest-cov": re.compile(r"^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$", re.MULTILINE),
    "batchflow": re.compile(r"^batchflow: coverage (\d+(?:\.\d+)?)% of", re.MULTILINE),
}

MODULE = """\
def classify_{n}(value):
    if value < 0:
        return "negative"
    if value == 0:
        return "zero"
    if value % 2:
        return "odd"
    return "even"


def total_{n}(values):
    result = 0
    for value in values:
        if classify_{n}(value) == "odd":
            result += value
        else:
            result -= value
    return result


def table_{n}(size):
    rows = []
    for row in range(size):
        rows.append([row * column for column in range(size)])
    return rows


def unused_{n}():
    return "no test calls this"
"""

TEST_MODULE = """\
import pytest

from benchpkg.mod_{n} import classify_{n}, table_{n}, total_{n}


@pytest.mark.parametrize("value", range({count}))
def test_value(value):
    assert classify_{n}(value - 5) in ("negative", "zero", "odd", "even")
    assert isinstance(total_{n}(range(value)), int)
    assert len(table_{n}(value % 7)) == value % 7
"""


def make_suite(root: Path) -> None:
    (root / "pytest.ini").write_text(
        "[pytest]\npythonpath = src\nbatchflow_batches =\n"
        "    first: paths=tests/first\n    second: paths=tests/second after=first\n",
        encoding="utf-8",
    )
    package = root / "src" / "benchpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for n in range(MODULES):
        (package / f"mod_{n}.py").write_text(MODULE.format(n=n), encoding="utf-8")
        folder = root / "tests" / ("first" if n < MODULES // 2 else "second")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"test_mod_{n}.py").write_text(
            TEST_MODULE.format(n=n, count=TESTS_PER_MODULE), encoding="utf-8"
        )


def percent_of(name: str, output: str) -> str:
    pattern = PERCENT["pytest-cov" if "pytest-cov" in name else "batchflow"]
    found = pattern.search(output)
    return f"{float(found.group(1)):.2f}%" if found else "?"


def main() -> None:
    if importlib.util.find_spec("pytest_cov") is None:
        raise SystemExit("coverage_overhead: pytest-cov is needed: pip install pytest-cov")
    repetitions = count_argument("repetitions", DEFAULT_REPETITIONS)
    env = clean_env()
    tests = TESTS_PER_MODULE * MODULES
    print(
        f"coverage_overhead: {tests} tests over {MODULES} modules in 2 batches, -n {WORKERS}, "
        f"{repetitions} repetitions; {machine()}",
        flush=True,
    )
    expect = f"{tests} passed"
    with tempfile.TemporaryDirectory(prefix="batchflow-cov-bench-") as tmp:
        root = Path(tmp)
        make_suite(root)
        runs = alternate(root, VARIANTS, COMMON, env, expect, repetitions)
    samples = {name: [run.wall for run in done] for name, done in runs.items()}
    percents = {
        name: {percent_of(name, run.stdout) for run in done}
        for name, done in runs.items()
        if "cov" in " ".join(VARIANTS[name])
    }
    medians = {name: statistics.median(values) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    rows = [
        [
            name,
            seconds(medians[name]),
            seconds(fastest[name]),
            seconds(max(values)),
            f"{medians[name] / medians[BASE]:.3f}",
            f"{medians[name] / medians[SAME]:.3f}",
            f"{fastest[name] / fastest[BASE]:.3f}",
            f"{medians[name] / medians['plain']:.3f}",
            ", ".join(sorted(percents.get(name, ()))) or "-",
        ]
        for name, values in samples.items()
    ]
    print()
    headers = ["variant", "median", "min", "max", f"/{BASE}", "/same reports", "min/min"]
    print(table([*headers, "/plain", "total"], rows))
    print()
    for name, target in TARGETS.items():
        for base in (BASE, SAME):
            value = medians[name] / medians[base]
            verdict = "met" if value <= target else "NOT met"
            print(
                f"target {name} <= {target:.2f} x {base}: {verdict} ({value:.3f}; "
                f"fastest runs {fastest[name] / fastest[base]:.3f})"
            )
    for base in (BASE, SAME):
        print(
            f"like for like (no target): {LIKE_FOR_LIKE} / {base}: "
            f"{medians[LIKE_FOR_LIKE] / medians[base]:.3f} (fastest runs "
            f"{fastest[LIKE_FOR_LIKE] / fastest[base]:.3f})"
        )
    print(
        "wall time of the whole pytest command, medians; min/min: the fastest runs' ratio "
        f"to {BASE}'s; total: the coverage each printed"
    )


if __name__ == "__main__":
    main()
