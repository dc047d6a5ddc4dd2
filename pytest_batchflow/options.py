"""The options and ini keys, with their help texts: cheap to import.

pytest asks for them on every run, batchflow on or off, so this module must
not pull in pydantic or anything else heavy (see ``plugin.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ALONE_ENV",
    "BATCHES_INI",
    "BATCHES_INI_HELP",
    "COV_OFF",
    "HTML_OFF",
    "OPTIONS",
    "SWITCHES",
    "Option",
    "is_auto_quarantine",
]

#: Set in the process a probe runs a test alone in: batchflow stays off there,
#: whatever the options, so that run writes no history, JSON or report.
ALONE_ENV = "BATCHFLOW_PROBE_ALONE"


#: The value of --batchflow-html that writes no report.
HTML_OFF = "off"
#: The value of --batchflow-cov that measures nothing (over an ini file's source).
COV_OFF = "off"
#: The value of --batchflow-bench-fail (or a batch line's bench_fail=) that gates nothing.
GATE_OFF = "off"
#: The value of --batchflow-bench-fail that gates nothing and makes this run's
#: benchmarks their new baseline (a slowdown accepted).
GATE_ACCEPT = "accept"


def is_auto_quarantine(item: str) -> bool:
    """Whether an item of --batchflow-quarantine is ``auto[:SCORE]``, in any case
    as every choice word is. A file of that name is given as a path: ``./auto``."""
    return item.partition(":")[0].strip().lower() == "auto"


@dataclass(frozen=True)
class Option:
    """One setting and its three spellings, with the help text they share."""

    field: str
    flag: str
    env: str
    ini: str
    help: str
    example: str
    is_flag: bool = False
    metavar: str = "VALUE"
    #: The flag may be given several times (the values join with commas).
    repeatable: bool = False

    @property
    def dest(self) -> str:
        """The attribute on ``config.option``."""
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option(
        "enabled",
        "--batchflow",
        "BATCHFLOW",
        "batchflow",
        "Run the suite as batch jobs in dependency order.",
        "true",
        is_flag=True,
    ),
    Option(
        "plan_only",
        "--batchflow-plan",
        "BATCHFLOW_PLAN",
        "batchflow_plan",
        "Print the plan (batches in order, tests, dependencies, estimated durations, "
        "lower bound) and exit without running tests.",
        "true",
        is_flag=True,
    ),
    Option(
        "select",
        "--batchflow-batches",
        "BATCHFLOW_BATCHES",
        "batchflow_select",
        "Run only these batches, comma-separated (a CI stage).",
        "unit,db",
        metavar="NAMES",
    ),
    Option(
        "json_path",
        "--batchflow-json",
        "BATCHFLOW_JSON",
        "batchflow_json",
        "Write the run's JSON result to this path.",
        ".batchflow/result.json",
        metavar="PATH",
    ),
    Option(
        "html_path",
        "--batchflow-html",
        "BATCHFLOW_HTML",
        "batchflow_html",
        "Write the self-contained HTML report to this path (default: .batchflow/report.html "
        "in rootdir); 'off' writes none.",
        ".batchflow/report.html",
        metavar="PATH",
    ),
    Option(
        "html_passed_output",
        "--batchflow-html-passed-output",
        "BATCHFLOW_HTML_PASSED_OUTPUT",
        "batchflow_html_passed_output",
        "Keep passing tests' captured output and logs in the HTML report too (left out by "
        "default; the JSON result always has them).",
        "true",
        is_flag=True,
    ),
    Option(
        "junit_path",
        "--batchflow-junit",
        "BATCHFLOW_JUNIT",
        "batchflow_junit",
        "Write JUnit XML to this path: one testcase per test with its batch, earlier failed "
        "attempts as flakyFailure/rerunFailure (pytest's --junitxml is unaffected).",
        ".batchflow/junit.xml",
        metavar="PATH",
    ),
    Option(
        "history_path",
        "--batchflow-history",
        "BATCHFLOW_HISTORY",
        "batchflow_history",
        "SQLite history store (default: .batchflow/history.sqlite in rootdir).",
        ".batchflow/history.sqlite",
        metavar="PATH",
    ),
    Option(
        "history_runs",
        "--batchflow-history-runs",
        "BATCHFLOW_HISTORY_RUNS",
        "batchflow_history_runs",
        "Keep each test's attempts of its latest this many runs in the history store: a "
        "run deletes its tests' older ones when it ends (default 50; 0 keeps them all).",
        "200",
        metavar="RUNS",
    ),
    Option(
        "no_history",
        "--batchflow-no-history",
        "BATCHFLOW_NO_HISTORY",
        "batchflow_no_history",
        "Neither read nor write the history store.",
        "true",
        is_flag=True,
    ),
    Option(
        "reruns",
        "--batchflow-reruns",
        "BATCHFLOW_RERUNS",
        "batchflow_reruns",
        "Rerun a failing test up to N times (a batch line's reruns= or a test's "
        "@pytest.mark.reruns(N) wins); a pass after a failure is 'flaky'.",
        "2",
        metavar="N",
    ),
    Option(
        "reruns_delay",
        "--batchflow-reruns-delay",
        "BATCHFLOW_RERUNS_DELAY",
        "batchflow_reruns_delay",
        "Seconds to wait before the first rerun of a test, doubled before each next one.",
        "0.5",
        metavar="SECONDS",
    ),
    Option(
        "reruns_only",
        "--batchflow-reruns-only",
        "BATCHFLOW_RERUNS_ONLY",
        "batchflow_reruns_only",
        "Rerun only failures whose error text matches this regular expression.",
        '"ConnectionError|TimeoutError"',
        metavar="REGEX",
    ),
    Option(
        "reruns_except",
        "--batchflow-reruns-except",
        "BATCHFLOW_RERUNS_EXCEPT",
        "batchflow_reruns_except",
        "Never rerun failures whose error text matches this regular expression.",
        "AssertionError",
        metavar="REGEX",
    ),
    Option(
        "strict_flaky",
        "--batchflow-strict-flaky",
        "BATCHFLOW_STRICT_FLAKY",
        "batchflow_strict_flaky",
        "A flaky test (failed, then passed on a rerun) fails the run.",
        "true",
        is_flag=True,
    ),
    Option(
        "quarantine",
        "--batchflow-quarantine",
        "BATCHFLOW_QUARANTINE",
        "batchflow_quarantine",
        "Quarantined tests still run, but their failures do not fail the run: "
        "comma-separated files of node ids and/or auto[:SCORE] (tests whose flakiness "
        "score reaches SCORE, default 0.3; the word in any case, a file named so as ./auto).",
        "quarantine.txt,auto:0.3",
        metavar="SPEC",
    ),
    Option(
        "flaky_window",
        "--batchflow-flaky-window",
        "BATCHFLOW_FLAKY_WINDOW",
        "batchflow_flaky_window",
        "How many of a test's recent runs its flakiness score looks at (default 20).",
        "20",
        metavar="RUNS",
    ),
    Option(
        "quarantine_release",
        "--batchflow-quarantine-release",
        "BATCHFLOW_QUARANTINE_RELEASE",
        "batchflow_quarantine_release",
        "An automatically quarantined test leaves quarantine after this many clean runs "
        "in a row (default 3).",
        "3",
        metavar="N",
    ),
    Option(
        "probe",
        "--batchflow-probe",
        "BATCHFLOW_PROBE",
        "batchflow_probe",
        "Run every test N times, interleaved and spread over the workers, and report each "
        "failing test's failure rate (with a 95 percent interval) and whether it fails "
        "only after other tests (order-dependent), with suspects. Reruns are off meanwhile.",
        "10",
        metavar="N",
    ),
    Option(
        "cov_source",
        "--batchflow-cov",
        "BATCHFLOW_COV",
        "batchflow_cov_source",
        "Measure coverage of this source (a directory or an importable package, as "
        "coverage's --source takes it; repeat the flag or separate with commas), per batch, "
        "combined from every worker. The coverage configuration file is honoured.",
        "mypkg",
        metavar="SOURCE",
        repeatable=True,
    ),
    Option(
        "cov_context",
        "--batchflow-cov-context",
        "BATCHFLOW_COV_CONTEXT",
        "batchflow_cov_context",
        "Label coverage by 'batch' (default) or by 'test' (which tests ran each line; "
        "slower, larger data).",
        "test",
        metavar="batch|test",
    ),
    Option(
        "cov_fail_under",
        "--batchflow-cov-fail-under",
        "BATCHFLOW_COV_FAIL_UNDER",
        "batchflow_cov_fail_under",
        "Fail the run (exit code 1) when total coverage is below this percentage.",
        "85",
        metavar="PCT",
    ),
    Option(
        "bench_compare",
        "--batchflow-bench-compare",
        "BATCHFLOW_BENCH_COMPARE",
        "batchflow_bench_compare",
        "Compare each benchmark with a baseline from the history: 'last' (its latest earlier "
        "run) or a run id.",
        "last",
        metavar="last|RUN",
    ),
    Option(
        "bench_fail",
        "--batchflow-bench-fail",
        "BATCHFLOW_BENCH_FAIL",
        "batchflow_bench_fail",
        "Fail the run when a benchmark is slower than its baseline by more than this, "
        "significantly (95 percent interval): STAT:PCT with STAT min, mean or median "
        "(a batch line's bench_fail= wins; implies --batchflow-bench-compare=last). 'off': "
        "no gate in this run, batch lines' too; 'accept': no gate, and this run's timings "
        "are the benchmarks' new baseline (a slowdown you meant).",
        "median:10%",
        metavar="STAT:PCT|off|accept",
    ),
    Option(
        "bench_max_time",
        "--batchflow-bench-max-time",
        "BATCHFLOW_BENCH_MAX_TIME",
        "batchflow_bench_max_time",
        "Seconds the bench fixture spends timing one benchmark's rounds (default 1.0).",
        "1.0",
        metavar="SECONDS",
    ),
    Option(
        "bench_min_rounds",
        "--batchflow-bench-min-rounds",
        "BATCHFLOW_BENCH_MIN_ROUNDS",
        "batchflow_bench_min_rounds",
        "Rounds the bench fixture times at least, however long they take (default 5, "
        "at most 2000).",
        "5",
        metavar="N",
    ),
    Option(
        "bench_disable_gc",
        "--batchflow-bench-disable-gc",
        "BATCHFLOW_BENCH_DISABLE_GC",
        "batchflow_bench_disable_gc",
        "Switch the garbage collector off while the bench fixture times rounds.",
        "true",
        is_flag=True,
    ),
    Option(
        "bench_compat",
        "--batchflow-bench-compat",
        "BATCHFLOW_BENCH_COMPAT",
        "batchflow_bench_compat",
        "Also provide pytest-benchmark's 'benchmark' fixture (and marker), measured by "
        "batchflow, for suites written for pytest-benchmark (it replaces pytest-benchmark's "
        "own fixture in a batchflow run).",
        "true",
        is_flag=True,
    ),
    Option(
        "no_resources",
        "--batchflow-no-resources",
        "BATCHFLOW_NO_RESOURCES",
        "batchflow_no_resources",
        "Do not measure each test's peak memory and CPU time (nor schedule by memory).",
        "true",
        is_flag=True,
    ),
    Option(
        "max_memory",
        "--batchflow-max-memory",
        "BATCHFLOW_MAX_MEMORY",
        "batchflow_max_memory",
        "Memory the tests running at one moment may need together, from their peaks in "
        "the history or @pytest.mark.resources: a size (8GiB, 500MB) or a percentage of "
        "the memory available at the start (default 75 percent).",
        "8GiB",
        metavar="SIZE|PCT",
    ),
    Option(
        "test_memory_limit",
        "--batchflow-test-memory-limit",
        "BATCHFLOW_TEST_MEMORY_LIMIT",
        "batchflow_test_memory_limit",
        "Name every test whose peak memory (above its worker's) exceeds this size "
        "(with --batchflow-test-memory-fail such a test errors).",
        "1GiB",
        metavar="SIZE",
    ),
    Option(
        "test_memory_fail",
        "--batchflow-test-memory-fail",
        "BATCHFLOW_TEST_MEMORY_FAIL",
        "batchflow_test_memory_fail",
        "A test over --batchflow-test-memory-limit errors (in its teardown) instead of "
        "only being named.",
        "true",
        is_flag=True,
    ),
    Option(
        "leak_threshold",
        "--batchflow-leak-threshold",
        "BATCHFLOW_LEAK_THRESHOLD",
        "batchflow_leak_threshold",
        "Name a worker whose resident memory grew by this much or more over its tests, "
        "with the tests that grew it most (default 100MiB).",
        "200MiB",
        metavar="SIZE",
    ),
    Option(
        "missing_dependency",
        "--batchflow-missing-dependency",
        "BATCHFLOW_MISSING_DEPENDENCY",
        "batchflow_missing_dependency",
        "What a dependency on an unknown test does: 'error' (usage error) or 'skip' "
        "(the dependent is skipped).",
        "skip",
        metavar="error|skip",
    ),
    Option(
        "keep_order",
        "--batchflow-keep-order",
        "BATCHFLOW_KEEP_ORDER",
        "batchflow_keep_order",
        "Under xdist, send the tests that may start in the plan's order (pytest's, within "
        "a batch) instead of the longest first: for suites whose tests pass only in the "
        "order they are written in.",
        "true",
        is_flag=True,
    ),
    Option(
        "no_fast_exit",
        "--batchflow-no-fast-exit",
        "BATCHFLOW_NO_FAST_EXIT",
        "batchflow_no_fast_exit",
        "Let Python's shutdown collect the objects still alive at exit, as it does "
        "without batchflow (slower; batchflow leaves them to the operating system).",
        "true",
        is_flag=True,
    ),
)

BATCHES_INI = "batchflow_batches"
BATCHES_INI_HELP = (
    "Batch lines, one per line: 'NAME: key=value ...' with keys paths, markers, kind, "
    "after, mode, workers, priority, reruns, timeout, maxfail, cov, cov_fail_under, "
    "bench_fail, on_upstream_failure."
)

#: The options that switch batchflow on (a plan is batchflow's too).
SWITCHES: tuple[Option, ...] = tuple(o for o in OPTIONS if o.field in ("enabled", "plan_only"))

_INI_NAMES = (*(option.ini for option in OPTIONS), BATCHES_INI)


#: Variables batchflow reads besides its settings': the commit under test, and
#: its own, set for the processes it starts.
_OTHER_VARIABLES = ("BATCHFLOW_COMMIT", "BATCHFLOW_COV_RUN", ALONE_ENV)


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each ``BATCHFLOW_*`` variable batchflow does not read, with the
    one meant when one is close (a setting's ini name in capitals, too)."""
    variables = [*(option.env for option in OPTIONS), *_OTHER_VARIABLES]
    # Compared in capitals and without the prefix they share (the switch,
    # BATCHFLOW, has none).
    known = {name.removeprefix("BATCHFLOW_"): name for name in variables if "_" in name}
    known["ENABLED"] = known["ENABLE"] = "BATCHFLOW"
    by_ini = {option.ini.upper(): option.env for option in OPTIONS}
    lines = []
    for name in sorted(environ):
        if not name.upper().startswith("BATCHFLOW_") or name in variables:
            continue
        wrote = name.upper()
        while wrote.startswith("BATCHFLOW_"):  # the prefix twice, too
            wrote = wrote.removeprefix("BATCHFLOW_")
        meant = by_ini.get(name.upper()) or known.get(wrote) or _closest(wrote, known)
        fix = (
            f"did you mean {meant}?"
            if meant
            else "each option's is BATCHFLOW_ and its name (--batchflow-reruns: BATCHFLOW_RERUNS)"
        )
        lines.append(f"{name} is no batchflow variable: {fix}")
    return lines


def misspelt_setting(warning: str) -> str | None:
    """What pytest's ``Unknown config option: batchflow_...`` warning means:
    the setting's name as batchflow knows it, when one is close."""
    words = warning.split()
    if warning.startswith("Unknown config option:") and len(words) == 4:
        key = words[3]
        if key.lower().startswith("batchflow"):
            # Compared without the prefix that they all share.
            known = {name.removeprefix("batchflow_"): name for name in _INI_NAMES}
            meant = _closest(key.lower().removeprefix("batchflow").lstrip("_"), known)
            fix = f"did you mean {meant}?" if meant else "pytest --help lists them"
            return f"{key} is no batchflow setting: {fix}"
    return None


def _closest(wrote: str, known: Mapping[str, str]) -> str | None:
    """The name whose key (a name without its prefix) is closest to ``wrote``."""
    import difflib

    close = difflib.get_close_matches(wrote, known, n=1)
    return known[close[0]] if close else None
