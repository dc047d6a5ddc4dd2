"""The results model: one versioned shape every output is rendered from.

The JSON result file is this model dumped; later outputs (HTML, JUnit,
merged shards) read it back with :meth:`RunResult.model_validate_json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .files import write_atomically

__all__ = [
    "READ_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "AttemptResult",
    "BatchResult",
    "BenchmarkComparison",
    "BenchmarkResult",
    "CollectionProblem",
    "Environment",
    "PhaseResult",
    "ProbeResult",
    "ProbeTest",
    "ReportSection",
    "ResourceLeak",
    "ResourceResult",
    "ResourcesResult",
    "RunResult",
    "TestOutcome",
    "TestResult",
    "batch_resources",
    "collection_error_line",
    "collection_or_tests",
    "error_line",
    "json_schema",
    "span",
    "validate_tests",
]

SCHEMA_VERSION = 8
#: The versions read back. A result of 7 has no node ids of its deselected
#: tests and its tests not run: they read as None.
READ_SCHEMA_VERSIONS = (7, SCHEMA_VERSION)

TestOutcome = str


class _Model(BaseModel):
    # Built on first use: xdist workers import these models and never use them.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# Per test, the result holds three phases and, when measured, its resources:
# slotted dataclasses, not models. A model is two objects the garbage collector
# tracks (its fields-set is a set), and every full collection after the run's
# end (pytest's sweep for unraisable exceptions, Hypothesis's register_random)
# walks them all: with 5,000 tests, the phases' sets alone made a serial run
# some 140 ms longer. Attributes, accepted input, JSON and JSON schema are the
# same; fields are keyword-only, as a model's are. Not built lazily
# (defer_build): pydantic 2.10.0 to 2.10.2 then leave out the fields a model
# that holds them needs (pydantic issue 10953).
_PER_TEST_DATACLASS = ConfigDict(extra="forbid")


@pydantic_dataclass(frozen=True, slots=True, kw_only=True, config=_PER_TEST_DATACLASS)
class PhaseResult:
    """One of a test's setup, call and teardown phases, as pytest reported it."""

    when: str = Field(description="setup, call or teardown; ??? for a crashed worker.")
    outcome: str = Field(description="passed, failed or skipped; other plugins add words (rerun).")
    duration: float = Field(description="Seconds, as measured by pytest.")
    start: float = Field(description="Unix time the phase started.")
    stop: float = Field(description="Unix time the phase ended.")
    # default=, not a first argument: type checkers read a dataclass's defaults so.
    longrepr: str | None = Field(default=None, description="Failure text or skip reason.")
    shared_setup: float | None = Field(
        default=None,
        description="Setup phase only: seconds spent setting up class, module and package "
        "fixtures (the first test of a module on a worker pays for the module's).",
    )


@pydantic_dataclass(frozen=True, slots=True, kw_only=True, config=_PER_TEST_DATACLASS)
class ResourceResult:  # a dataclass: see PhaseResult
    """What one test used, measured in the process that ran it (setup to teardown)."""

    peak_rss: int = Field(
        description="Bytes: the highest resident memory of the test process plus the peaks "
        "of the child processes it started (exact on Linux, from the kernel's high-water mark)."
    )
    memory: int = Field(
        description="Bytes: peak_rss above the process's resident memory when the test "
        "started, what the test itself needed; memory-aware scheduling uses it."
    )
    rss_start: int = Field(description="Bytes resident in the process when the test started.")
    rss_end: int = Field(description="Bytes resident after its teardown.")
    cpu: float = Field(description="User plus system CPU seconds, ended children included.")
    wall: float = Field(description="Seconds from the start of setup to the end of teardown.")
    pid: int = Field(description="The process that ran it (a replaced worker has another).")


class AttemptResult(_Model):
    """An earlier attempt of a test: one that failed and was rerun."""

    outcome: str = Field(description="failed or error (a crashed worker's test: failed).")
    worker: str = Field(description="'main' for a serial run, else the xdist worker id.")
    duration: float = Field(description="Seconds, all phases together.")
    start: float
    stop: float
    phases: list[PhaseResult]
    longrepr: str | None = Field(None, description="The failure text of the failing phase.")


class TestResult(_Model):
    """One test's final result in this run."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    file: str | None = Field(None, description="The test's file, relative to rootdir.")
    line: int | None = Field(None, description="The line it is defined on, counted from 1.")
    batch: str
    outcome: TestOutcome = Field(
        description="passed, failed, error, skipped, xfailed, xpassed, or flaky (failed, "
        "then passed on a rerun)."
    )
    duration: float = Field(description="Seconds, all phases together.")
    start: float
    stop: float
    worker: str = Field(description="'main' for a serial run, else the xdist worker id.")
    dependencies: list[str] = Field(default_factory=list, description="Node ids it depends on.")
    phases: list[PhaseResult]
    longrepr: str | None = Field(
        None, description="The failure text of the failing phase, or the skip reason."
    )
    stdout: str = ""
    stderr: str = ""
    log: str = ""
    attempts: list[AttemptResult] = Field(
        default_factory=list,
        description="Earlier attempts, oldest first: each failed and was rerun. The "
        "test's own fields describe its last attempt.",
    )
    flakiness: float | None = Field(
        None,
        description="Flaky, quarantined, failed and error tests with history: the flakiness "
        "score over the recent runs (see docs/flaky).",
    )
    recent: list[str] = Field(
        default_factory=list,
        description="The same tests: outcomes of their recent runs, oldest first, this run "
        "last (at most the flaky window).",
    )
    resources: ResourceResult | None = Field(
        None, description="Memory and CPU of its last attempt; None when not measured."
    )
    memory_limit_exceeded: bool = Field(
        False, description="Its memory was over --batchflow-test-memory-limit."
    )
    notes: list[str] = Field(
        default_factory=list,
        description="Notes for the report's row, from pytest_batchflow_report_test hooks.",
    )

    @property
    def first_start(self) -> float:
        """When its first attempt started (``start`` is its last attempt's)."""
        if not self.attempts:
            return self.start
        return min(self.start, *(attempt.start for attempt in self.attempts))


class BatchResult(_Model):
    """One batch: its policy, what happened to its tests, and its wall time."""

    name: str
    kind: Literal["test", "benchmark"]
    mode: Literal["parallel", "serial", "exclusive"]
    after: list[str]
    priority: int
    workers: int | None = Field(None, description="Concurrency cap; None is no cap.")
    reruns: int
    timeout: float | None = Field(None, description="Wall-clock budget in seconds.")
    maxfail: int | None
    cov: bool
    on_upstream_failure: Literal["skip", "run"]
    status: Literal["passed", "failed", "skipped", "incomplete", "empty"] = Field(
        description="incomplete: some tests never ran (the run stopped early)."
    )
    skip_reason: str | None = None
    tests: int
    not_run: int = Field(0, description="Tests of the batch without a result.")
    not_run_nodeids: list[str] | None = Field(
        None, description="Their node ids; None when not known (a result of schema version 7)."
    )
    outcomes: dict[str, int] = Field(description="Test count by outcome.")
    duration: float = Field(description="Wall-clock seconds from its first start to last stop.")
    estimated: float | None = Field(None, description="Seconds estimated from history.")
    cpu: float | None = Field(None, description="CPU seconds of its measured tests, summed.")
    peak_memory: int | None = Field(
        None, description="Bytes: the largest memory (above its worker's) of its tests."
    )


class ProbeTest(_Model):
    """One test's runs in a probe (``--batchflow-probe``)."""

    __test__ = False

    nodeid: str
    runs: int = Field(description="How many times it ran in the suite.")
    failures: int = Field(description="How many of those runs failed or errored.")
    rate: float = Field(description="failures / runs.")
    low: float = Field(description="The 95% Wilson score interval of the rate: lower end.")
    high: float = Field(description="The 95% Wilson score interval of the rate: upper end.")
    alone_runs: int = Field(0, description="Runs alone, each in a fresh process.")
    alone_failures: int = 0
    verdict: Literal["order-dependent", "fails alone", "inconclusive", "not checked"] | None = (
        Field(None, description="For a test that failed in the suite: what its runs alone say.")
    )
    p_value: float | None = Field(
        None,
        description="One-sided Fisher exact test: the chance of passing alone so often "
        "if order made no difference.",
    )
    problem: str | None = Field(None, description="Why it could not be run alone, or not fully.")
    suspects: list[str] = Field(
        default_factory=list,
        description="Tests that ran before its failing runs on the same worker, likeliest "
        "first (at most 20).",
    )
    confirmed: list[str] = Field(
        default_factory=list,
        description="Of an order-dependent test's first 5 suspects, those that make it fail "
        "when run just before it, the two alone in a fresh process.",
    )


class ProbeResult(_Model):
    """What a probe found: every probed test's failure rate and verdict."""

    runs: int = Field(description="The N of --batchflow-probe=N.")
    tests: list[ProbeTest]


class Environment(_Model):
    python: str
    implementation: str
    platform: str
    pytest: str
    batchflow: str
    plugins: list[str] = Field(description="Installed pytest plugins as 'name==version'.")
    rootdir: str
    invocation: list[str] = Field(description="The command-line arguments.")
    hostname: str
    git_commit: str | None = None
    workers: int = Field(1, description="Worker processes: 1 serially, else xdist's -n.")


class CoverageFile(_Model):
    path: str = Field(description="As coverage.py reports it (relative to the directory run in).")
    statements: int
    covered: int
    percent: float = Field(description="coverage.py's figure (branches included if measured).")
    missing: list[int] = Field(description="Statements no test ran.")


class CoverageBatch(_Model):
    name: str
    covered: int = Field(description="Statements the batch's tests ran (setup and teardown too).")
    percent: float = Field(description="covered / all measured statements.")
    only: int = Field(description="Statements no other batch ran.")
    only_lines: dict[str, list[int]] = Field(
        description="Those statements, by file (files with none left out)."
    )


class CoverageGate(_Model):
    batch: str | None = Field(description="None: the total (--batchflow-cov-fail-under).")
    threshold: float
    actual: float
    passed: bool


class CoverageResult(_Model):
    """Coverage of the run, combined from every process that ran tests."""

    sources: list[str]
    context: Literal["batch", "test"]
    branch: bool = Field(description="Branch coverage measured (coverage's branch setting).")
    statements: int
    covered: int
    percent: float = Field(description="coverage.py's total (branches included if measured).")
    files: list[CoverageFile]
    batches: list[CoverageBatch] = Field(description="Batches measured (cov=on), plan order.")
    gates: list[CoverageGate]
    failed: bool = Field(description="A gate failed: coverage failed the run.")
    lost: list[str] = Field(
        default_factory=list, description="Data known to be missing (crashed workers), why."
    )
    problem: str | None = Field(None, description="Why there are no figures (no data).")
    outputs: dict[str, str] = Field(
        default_factory=dict, description="data, html, xml and json: the paths written."
    )


class BenchmarkComparison(_Model):
    """A benchmark against its baseline: how much slower, how sure, and the gate."""

    baseline_run: int = Field(description="The history's run id of the latest baseline run.")
    baseline_runs: list[int] = Field(
        default_factory=list,
        description="Every run the baseline pools (the latest 5 on that machine with "
        "--batchflow-bench-compare=last): their spread widens the interval.",
    )
    statistic: Literal["min", "mean", "median"]
    baseline: float = Field(
        description="The baseline's statistic, seconds per call (with several baseline "
        "runs: the median of theirs)."
    )
    current: float
    change: float = Field(description="current / baseline - 1: 0.12 is 12% slower.")
    low: float = Field(description="The 95% bootstrap interval of change, lower end.")
    high: float
    verdict: Literal["faster", "slower", "same"] = Field(
        description="slower: the whole interval above 0; faster: below; else same."
    )
    threshold: float | None = Field(None, description="The gate, as a fraction (0.1 = 10%).")
    failed: bool = Field(
        description="The gate failed: the slowdown beyond the threshold is significant."
    )
    other_machine: list[str] = Field(
        default_factory=list,
        description="Fingerprint keys in which the baseline's machine differs; a baseline "
        "from another machine is shown but never gates.",
    )
    ungated: str | None = Field(
        None,
        description="Why a gate was not applied: a baseline from another machine, or fewer "
        "than 3 earlier runs on this one.",
    )


class BenchmarkResult(_Model):
    """One benchmark: a test that timed a function with the bench fixture."""

    nodeid: str
    batch: str
    worker: str
    rounds: int
    iterations: int = Field(description="Calls per round.")
    min: float = Field(description="Seconds per call, as all the timings here.")
    max: float
    mean: float
    stddev: float
    median: float
    q1: float
    q3: float
    iqr: float
    outliers_iqr: int = Field(description="Rounds beyond 1.5 IQR of the quartiles.")
    outliers_stddev: int = Field(description="Rounds beyond one stddev of the mean.")
    ops: float = Field(description="Calls per second: 1 / mean.")
    total: float = Field(description="Seconds spent in the timed rounds.")
    gc_disabled: bool
    samples: list[float] = Field(description="Seconds per call, one per round, in order.")
    fingerprint: dict[str, str] = Field(description="cpu, cores, python, os of the machine.")
    comparison: BenchmarkComparison | None = Field(
        None, description="With --batchflow-bench-compare or a gate, and a baseline."
    )
    baseline_problem: str | None = Field(
        None, description="Why there is no comparison although one was asked for."
    )
    trend: list[tuple[int, float]] = Field(
        default_factory=list,
        description="(run id, median) of its recent runs in the history, this one last.",
    )


class ReportSection(_Model):
    """A section a pytest_batchflow_report_sections hook adds to the HTML report."""

    title: str = Field(description="Plain text, escaped in the report.")
    html: str = Field(description="Markup, inserted as it is (it comes from the suite's code).")


class ResourceLeak(_Model):
    """A worker process whose resident memory grew across its tests."""

    worker: str
    pid: int
    growth: int = Field(description="Bytes from its first test's start to its last test's end.")
    tests: int = Field(description="Tests it ran.")
    culprits: list[tuple[str, int]] = Field(
        description="(node id, bytes it kept) of the tests that grew it most, largest first."
    )


class ResourcesResult(_Model):
    """Memory and CPU across the run (with resources measured; see --batchflow-no-resources)."""

    budget: int | None = Field(
        None, description="Bytes the tests running at one moment may need together (xdist)."
    )
    cpus: int = Field(description="CPUs the running tests may use together (xdist).")
    memory_limit: int | None = Field(None, description="--batchflow-test-memory-limit, bytes.")
    over_limit: list[str] = Field(
        default_factory=list, description="Node ids of the tests over the memory limit."
    )
    alone: list[str] = Field(
        default_factory=list,
        description="Node ids of tests that needed more than the whole budget and ran alone.",
    )
    leak_threshold: int
    leaks: list[ResourceLeak] = Field(default_factory=list)
    cpu: float = Field(description="CPU seconds of every measured test, summed.")
    timeline: dict[str, list[tuple[float, int]]] = Field(
        default_factory=dict,
        description="Per worker: (unix time a test ended, bytes resident after it), in order.",
    )


class CollectionProblem(_Model):
    """A file or class that pytest could not collect, or skipped whole while collecting."""

    nodeid: str = Field(
        description="The collector's node id: a file, a class, a directory (its conftest.py "
        "or __init__.py), or under xdist a worker (gw1) whose collection differed."
    )
    outcome: Literal["error", "skipped"] = Field(
        description="error: collecting raised (an import error, a bad parametrize); skipped: "
        "a module-level pytest.skip or importorskip."
    )
    longrepr: str = Field(description="The error as pytest prints it, or the skip's reason.")


class RunResult(_Model):
    """A whole batchflow run."""

    schema_version: Literal[7, 8] = 8
    started: float
    stopped: float
    duration: float
    exitstatus: int
    environment: Environment
    batches: list[BatchResult]
    tests: list[TestResult]
    collection: list[CollectionProblem] = Field(
        default_factory=list,
        description="What pytest could not collect, or skipped while collecting, in its order; "
        "such files have no tests in this result.",
    )
    deselected: int = 0
    deselected_nodeids: list[str] | None = Field(
        None,
        description="The node ids of the deselected tests; None when not known (a result of "
        "schema version 7).",
    )
    probe: ProbeResult | None = Field(None, description="With --batchflow-probe only.")
    coverage: CoverageResult | None = Field(None, description="With --batchflow-cov only.")
    benchmarks: list[BenchmarkResult] = Field(
        default_factory=list, description="Tests that used the bench fixture, run order."
    )
    resources: ResourcesResult | None = Field(
        None, description="Memory and CPU figures; None with --batchflow-no-resources."
    )
    failed_by: list[Literal["collection", "tests", "coverage", "benchmarks"]] = Field(
        default_factory=list,
        description="What failed the run: collection (a file pytest could not collect), tests "
        "(a failure or error), coverage (a gate), benchmarks (a significant slowdown beyond a "
        "gate).",
    )
    estimated: float | None = Field(
        None, description="The plan's estimate of the tests' total duration (from history)."
    )
    lower_bound: float | None = Field(
        None,
        description="The plan's lower bound of the run time on these workers: max(total / "
        "workers, critical path), from history; None without history.",
    )
    sections: list[ReportSection] = Field(
        default_factory=list, description="Extra report sections from hooks."
    )
    shards: list[str] = Field(
        default_factory=list,
        description="For a result merged by `batchflow report`: the merged results' labels; "
        "their workers are named LABEL/WORKER.",
    )

    @property
    def collection_errors(self) -> list[CollectionProblem]:
        """What pytest could not collect (its skips left out)."""
        return [problem for problem in self.collection if problem.outcome == "error"]

    @property
    def makespan(self) -> float:
        """Seconds from the first test's start (its first attempt's) to the last
        test's stop."""
        return span(self.tests)

    @property
    def bound_ratio(self) -> float | None:
        """The makespan in lower bounds; None without a bound that shows as at
        least 0.01s (a suite of sub-millisecond tests: pytest's own time per
        test then makes any ratio, 200x and more, and says nothing)."""
        if self.lower_bound is None or self.lower_bound < _SHOWN_BOUND:
            return None
        return self.makespan / self.lower_bound

    def write(self, path: Path) -> None:
        """Write atomically: a reader never sees half a file. Raises OSError."""
        write_atomically(path, self.model_dump_json(indent=1).encode("utf-8"))


#: The smallest lower bound printed as more than 0.00s.
_SHOWN_BOUND = 0.005


@cache
def _tests_adapter() -> TypeAdapter[list[TestResult]]:
    return TypeAdapter(list[TestResult])


def span(tests: Sequence[TestResult]) -> float:
    """Seconds from the first test's start (its first attempt's) to the last
    test's stop; 0 for no test. A batch's duration, a run's makespan."""
    if not tests:
        return 0.0
    return max(test.stop for test in tests) - min(test.first_start for test in tests)


def batch_resources(tests: Sequence[TestResult]) -> tuple[float | None, int | None]:
    """A batch's CPU seconds (summed) and peak memory (the largest ``memory``)
    over its measured tests; None for both when none was measured."""
    measured = [test.resources for test in tests if test.resources is not None]
    if not measured:
        return None, None
    return round(sum(used.cpu for used in measured), 6), max(used.memory for used in measured)


def validate_tests(values: Sequence[Mapping[str, Any]]) -> list[TestResult]:
    """Many tests' results at once: one call into pydantic-core validates them all,
    faster than one model at a time (5,000 tests: 45 ms, one at a time 75 ms)."""
    return _tests_adapter().validate_python(values)


#: An exception group's line in Python's rendering of its traceback, inside
#: the box it draws (``  | ExceptionGroup: two errors (2 sub-exceptions)``).
_GROUP_LINE = re.compile(r"^[\s|+]*((?:Base)?ExceptionGroup: .*)$")
#: How Python's traceback parts a chain of exceptions.
_CHAINED = frozenset(
    {
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
    }
)
#: A line of that box alone (``+-+---- 1 ----``, ``+------``).
_BOX_LINE = re.compile(r"^[\s|+\-\d]*$")


def error_line(longrepr: str | None, *, last: bool = False) -> str:
    """The line that says what went wrong: pytest's first ``E`` line (``last``: its
    last, where an exception such as a SyntaxError is named after its source
    lines); else an exception group's own line, as pytest's short summary
    gives it; else the last line that is not the group's box."""
    lines = [line for line in (longrepr or "").splitlines() if line.strip()]
    for line in reversed(lines) if last else lines:
        if line.startswith("E "):
            return line[1:].strip()
    # A chain (--tb=native): the exception raised last is the last section's.
    starts = [at + 1 for at, line in enumerate(lines) if line.strip() in _CHAINED]
    lines = lines[starts[-1] :] if starts else lines
    for line in lines:
        group = _GROUP_LINE.match(line)
        if group is not None:
            return group[1].strip()
    text = [line for line in lines if not _BOX_LINE.match(line)]
    return text[-1].strip() if text else "(no error text)"


def collection_error_line(problem: CollectionProblem) -> str:
    """What went wrong collecting: the last ``E`` line (a SyntaxError's first
    ones are its source), else the first line (xdist's "Different tests were
    collected between gw0 and gw1")."""
    if any(line.startswith("E ") for line in problem.longrepr.splitlines()):
        return error_line(problem.longrepr, last=True)
    first = next((line.strip() for line in problem.longrepr.splitlines() if line.strip()), "")
    return first or "(no error text)"


def collection_or_tests(
    *, uncollected: bool, failed: bool, tests_failed: bool
) -> list[Literal["collection", "tests"]]:
    """The first words of ``failed_by``: ``collection`` when a file could not be
    collected (``uncollected``); ``tests`` when the run ``failed`` and a test or
    batch did (``tests_failed``), or nothing could account for it but the tests."""
    words: list[Literal["collection", "tests"]] = ["collection"] if uncollected else []
    if failed and (tests_failed or not uncollected):
        words.append("tests")
    return words


def json_schema() -> str:
    """The JSON Schema of the result file, as published in the docs."""
    return json.dumps(RunResult.model_json_schema(), indent=2, sort_keys=True) + "\n"
