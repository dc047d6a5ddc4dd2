"""Helpers shared by the xdist benchmark scripts (not a script itself).

Each script generates a suite in a temporary directory with a ``pytest.ini``
and the timing ``conftest.py`` below, runs ``python -m pytest`` on it in
subprocesses, and reads per-test start/stop times back. The same conftest is
in every run, batchflow or not, so every variant's makespan is measured the
same way: from the first test's setup start to the last test's teardown stop,
as the xdist controller received the reports. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Appends one line per phase report to $BENCH_TIMES, on the
#: controller only (workers forward their reports to it).
TIMING_CONFTEST = """\
import os

_OUT = os.environ.get("BENCH_TIMES")
_CONTROLLER = [True]


def pytest_configure(config):
    _CONTROLLER[0] = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report):
    if not _OUT or not _CONTROLLER[0]:
        return
    node = getattr(report, "node", None)
    worker = node.gateway.id if node is not None else "-"
    with open(_OUT, "a", encoding="utf-8") as out:
        out.write(
            f"{report.nodeid}\\t{report.when}\\t{report.outcome}\\t"
            f"{report.start!r}\\t{report.stop!r}\\t{worker}\\n"
        )
"""

#: On the controller (or a serial run): writes to $BENCH_SPAN, at the end,
#: the first test's start and the last test's stop of the reports it heard:
#: how long the tests ran, apart from the run's start and end. Two comparisons
#: a report, the same in every variant.
SPAN_CONFTEST = """\
import os

_OUT = os.environ.get("BENCH_SPAN")
_SPAN = []


def pytest_runtest_logreport(report):
    if not _SPAN:
        _SPAN.extend((report.start, report.stop))
        return
    if report.start < _SPAN[0]:
        _SPAN[0] = report.start
    if report.stop > _SPAN[1]:
        _SPAN[1] = report.stop


def pytest_unconfigure(config):
    if _OUT and _SPAN and not hasattr(config, "workerinput"):
        with open(_OUT, "w", encoding="utf-8") as out:
            out.write(f"{_SPAN[0]!r} {_SPAN[1]!r}\\n")
"""

PLAN_BOUND = re.compile(
    r"lower bound: ([0-9.]+)(ms|s) on (\d+) workers? \(critical path ([0-9.]+)(ms|s)\)"
)
TIMEOUT = 900.0
#: Where the span conftest writes, in the suite's folder.
SPAN_FILE = "bench_span.txt"


def count_argument(what: str, default: int) -> int:
    """The script's first argument, a whole number of at least 1; ``default``
    without one. Anything else ends the script with a one-line message."""
    if len(sys.argv) < 2:
        return default
    try:
        value = int(sys.argv[1])
    except ValueError:
        value = 0
    if value < 1:
        script = Path(sys.argv[0]).name
        raise SystemExit(
            f"{script}: {what} must be a whole number of at least 1, not {sys.argv[1]!r}"
        )
    return value


def clean_env() -> dict[str, str]:
    """The environment without batchflow or pytest settings from the caller.

    ``PYTHONDONTWRITEBYTECODE`` goes too: the warm-up runs are there to fill
    the bytecode caches, as a user's machine has them; without the caches every
    process re-compiles and re-runs pytest's assertion rewriting on each plugin
    module at start, which drowns what the benchmarks measure.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("BATCHFLOW")}
    for name in ("PYTEST_ADDOPTS", "BENCH_TIMES", "BENCH_SPAN", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def write_project(root: Path, timing: bool = True) -> None:
    """A rootdir of its own (pytest.ini) and, unless told not to, the timing conftest."""
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    if timing:
        (root / "conftest.py").write_text(TIMING_CONFTEST, encoding="utf-8")


@dataclass
class Run:
    """One pytest subprocess: how long it took, how it ended, what it printed."""

    args: list[str]
    wall: float
    returncode: int | None  # None: killed after TIMEOUT (a hang)
    stdout: str
    stderr: str
    times_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: First test start to last test stop, where the span conftest wrote it.
    span: float | None = None
    #: CPU seconds (user plus system) of the command and every process it
    #: waited for (xdist's workers); None without getrusage (Windows).
    cpu: float | None = None

    @property
    def command(self) -> str:
        return "python -m pytest " + " ".join(self.args)

    @property
    def internal_error(self) -> bool:
        return "INTERNALERROR>" in self.stdout or "INTERNALERROR>" in self.stderr

    def status(self) -> str:
        """A short word for the table: ok, rc=N, INTERNALERROR, hang."""
        if self.returncode is None:
            return "hang"
        if self.internal_error:
            return f"rc={self.returncode} INTERNALERROR"
        return "ok" if self.returncode == 0 else f"rc={self.returncode}"


def write_noop_suite(root: Path, tests: int, modules: int) -> None:
    """A project of ``tests`` tests that do nothing, over ``modules`` modules,
    with the span conftest (the per-report timing one would weigh on no-op tests)."""
    write_project(root, timing=False)
    (root / "conftest.py").write_text(SPAN_CONFTEST, encoding="utf-8")
    per_module = tests // modules
    for module in range(modules):
        body = "".join(f"def test_{n}():\n    pass\n\n\n" for n in range(per_module))
        (root / f"test_noop_{module:02d}.py").write_text(body, encoding="utf-8")


def run_pytest(
    root: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    times_name: str | None = None,
    launcher: Sequence[str] = ("-m", "pytest"),
) -> Run:
    """Run ``python -m pytest ARGS`` in ``root``, timed with perf_counter.

    ``launcher``: what starts pytest after ``python`` (another script may wrap it,
    as history_scale.py's does to write the process's peak memory)."""
    run_env = dict(env)
    times_path = None
    if times_name is not None:
        times_path = root / times_name
        times_path.unlink(missing_ok=True)
        run_env["BENCH_TIMES"] = str(times_path)
    run_env["BENCH_SPAN"] = str(root / SPAN_FILE)
    command = [sys.executable, *launcher, *args]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=root, env=run_env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as expired:
        return Run(
            list(args),
            time.perf_counter() - start,
            None,
            _text(expired.stdout),
            _text(expired.stderr),
            times_path,
        )
    wall = time.perf_counter() - start
    run = Run(list(args), wall, done.returncode, done.stdout, done.stderr, times_path)
    cpu_after = _children_cpu()
    if cpu_before is not None and cpu_after is not None:
        run.cpu = cpu_after - cpu_before
    span_path = root / SPAN_FILE
    if span_path.exists():
        first, last = map(float, span_path.read_text(encoding="utf-8").split())
        run.span = last - first
        span_path.unlink()
    return run


def _children_cpu() -> float | None:
    """CPU seconds of this process's ended children so far (None on Windows).

    The processes of one run end before ``subprocess.run`` returns (xdist's
    workers are waited for by their controller, and count once it ends), so
    the difference around a run is that run's CPU time: unlike the wall time,
    it does not grow while the run waits for a CPU other work holds.
    """
    try:
        import resource
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


@dataclass(frozen=True)
class TestTime:
    """One test as the controller saw it: all its phases together."""

    __test__ = False

    nodeid: str
    outcome: str  # passed, failed or skipped
    start: float
    stop: float
    worker: str
    skip_reason: str = ""
    phases: tuple[str, ...] = ()


def read_times(path: Path | None) -> dict[str, TestTime]:
    """The timing conftest's file, one entry per test."""
    if path is None or not path.exists():
        return {}
    rows: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 6:
            rows.setdefault(parts[0], []).append(parts)
    times = {}
    for nodeid, phases in rows.items():
        outcomes = {phase[2] for phase in phases}
        outcome = next((o for o in ("failed", "skipped") if o in outcomes), "passed")
        times[nodeid] = TestTime(
            nodeid=nodeid,
            outcome=outcome,
            start=min(float(phase[3]) for phase in phases),
            stop=max(float(phase[4]) for phase in phases),
            worker=next((phase[5] for phase in phases if phase[5] != "-"), "-"),
            phases=tuple(phase[1] for phase in phases),
        )
    return times


def makespan(times: Iterable[TestTime]) -> float | None:
    """First start to last stop; None without tests."""
    times = list(times)
    if not times:
        return None
    return max(t.stop for t in times) - min(t.start for t in times)


def finish_spread(times: Iterable[TestTime]) -> float | None:
    """Between the first and the last worker to finish its last test: the balance."""
    last: dict[str, float] = {}
    for t in times:
        if t.worker != "-":
            last[t.worker] = max(last.get(t.worker, 0.0), t.stop)
    if len(last) < 2:
        return None
    return max(last.values()) - min(last.values())


def json_tests(path: Path) -> list[dict[str, object]]:
    """The tests of a batchflow JSON result; empty when the file is missing."""
    if not path.exists():
        return []
    tests: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["tests"]
    return tests


def json_makespan(path: Path) -> float | None:
    """First start to last stop of the tests in a batchflow JSON result."""
    tests = [t for t in json_tests(path) if t.get("phases")]
    if not tests:
        return None
    return max(float(t["stop"]) for t in tests) - min(float(t["start"]) for t in tests)  # type: ignore[arg-type]


def critical_path(durations: Mapping[str, float], preds: Mapping[str, Sequence[str]]) -> float:
    """The longest chain of durations along the dependency edges."""
    finish: dict[str, float] = {}

    def visit(name: str) -> float:
        if name not in finish:
            start = max((visit(p) for p in preds.get(name, ())), default=0.0)
            finish[name] = start + durations[name]
        return finish[name]

    return max((visit(name) for name in durations), default=0.0)


def lower_bound(
    durations: Mapping[str, float], preds: Mapping[str, Sequence[str]], workers: int
) -> tuple[float, float, float]:
    """(lower bound, total, critical path): max(total / workers, critical path)."""
    total = sum(durations.values())
    path = critical_path(durations, preds)
    return max(total / workers, path), total, path


def plan_bound(output: str) -> tuple[float, float] | None:
    """(lower bound, critical path) from ``--batchflow-plan`` output, in seconds."""
    match = PLAN_BOUND.search(output)
    if match is None:
        return None
    bound = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    path = float(match.group(4)) / (1000 if match.group(5) == "ms" else 1)
    return bound, path


def seconds(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}s"


def ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def check(run: Run, expect: str | None = None) -> None:
    """Stop the benchmark when a run went wrong in a way that makes its figures void.

    A return code of 3 with an INTERNALERROR after the tests is tolerated (and
    shown in the table): see the notes in docs/performance.rst.
    """
    if run.returncode is None:
        return
    if run.returncode not in (0, 3) or (run.returncode == 3 and not run.internal_error):
        raise SystemExit(
            f"{run.command} failed with rc={run.returncode}:\n{run.stdout[-3000:]}\n"
            f"{run.stderr[-3000:]}"
        )
    if expect is not None and expect not in run.stdout:
        raise SystemExit(f"{run.command}: expected {expect!r} in its output:\n{run.stdout[-3000:]}")


def alternate(
    root: Path,
    variants: Mapping[str, Sequence[str]],
    common: Sequence[str],
    env: Mapping[str, str],
    expect: str,
    repetitions: int,
) -> dict[str, list[Run]]:
    """One untimed warm-up run of each variant, then the variants in turn per repetition.

    Alternating lets drift (caches, CPU frequency, neighbours) hit every variant alike;
    every other repetition runs them in the reverse order (A B C, C B A, ...), so
    that no variant always runs right after the same other one.
    """
    for name, extra in variants.items():
        print(f"warm-up {name} ...", flush=True)
        check(run_pytest(root, [*common, *extra], env), expect)
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for repetition in range(repetitions):
        print(f"repetition {repetition + 1}/{repetitions} ...", flush=True)
        ordered = list(variants.items())
        for name, extra in reversed(ordered) if repetition % 2 else ordered:
            run = run_pytest(root, [*common, *extra], env)
            check(run, expect)
            runs[name].append(run)
    return runs


def machine() -> str:
    """The machine, and the pytest plugins this interpreter's pytest loads on its own.

    Each plugin adds its hooks' work to every test, in both variants of a
    comparison: the same costs of batchflow's are a smaller share of a run
    with more plugins, so a ratio is only comparable with the same set.
    """
    from importlib.metadata import entry_points

    found = entry_points(group="pytest11")
    plugins = sorted({ep.dist.name if ep.dist else ep.name for ep in found})
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}; "
        f"pytest plugins installed: {', '.join(plugins) or 'none'}"
    )


def noop_runs(
    prefix: str,
    tests: int,
    modules: int,
    variants: Mapping[str, Sequence[str]],
    common: Sequence[str],
    repetitions: int,
) -> dict[str, list[Run]]:
    """:func:`alternate` on a suite of ``tests`` no-op tests over ``modules``
    modules, generated in a temporary directory named with ``prefix``."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        write_noop_suite(root, tests, modules)
        return alternate(root, variants, common, clean_env(), f"{tests} passed", repetitions)
