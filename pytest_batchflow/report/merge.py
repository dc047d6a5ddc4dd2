"""Merge the JSON results of several runs (CI shards, stages) into one result.

``batchflow report`` reads each file with :func:`read_result`, names it with
:func:`labels_for` and merges the results with :func:`merge_results`; the
merged result renders like any other. Every test keeps its own fields, except
that its worker becomes ``LABEL/WORKER`` so each shard keeps its own lanes in
the timeline. Coverage cannot be added up from percentages: it is recomputed
from the runs' coverage.py data files when they are given, else left out.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ..results import (
    READ_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    BatchResult,
    BenchmarkResult,
    CollectionProblem,
    CoverageResult,
    ResourcesResult,
    RunResult,
    TestResult,
    batch_resources,
    collection_or_tests,
    span,
)

__all__ = ["ResultFileError", "labels_for", "merge_results", "read_result"]

# pytest's exit codes, by number: pytest is not imported here.
_OK = 0
_TESTS_FAILED = 1
_INTERRUPTED = 2
_NO_TESTS_COLLECTED = 5
_FAILING = ("failed", "error")
_BatchStatus = Literal["passed", "failed", "skipped", "incomplete", "empty"]
#: Tests named in the note about tests found in several results.
_NAMED_DUPLICATES = 5


class ResultFileError(Exception):
    """An input file that cannot be used; the message names the file and says why."""


def read_result(path: Path) -> RunResult:
    """Read a JSON result file. Raises :class:`ResultFileError`.

    A result of schema version 7 reads as one of this version whose node ids
    are None (not known): written again, it has this version's shape.
    """
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ResultFileError(f"{path}: cannot read it: {error.strerror or error}") from None
    try:
        result = RunResult.model_validate_json(text)
    except ValidationError as error:
        raise ResultFileError(f"{path}: {_what_is_wrong(error)}") from None
    if "schema_version" not in result.model_fields_set:  # the model's default says nothing
        raise ResultFileError(
            f"{path}: not a batchflow result: it has no schema_version (every result written "
            "by pytest --batchflow-json has one)"
        )
    return result.model_copy(update={"schema_version": SCHEMA_VERSION})


def _what_is_wrong(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        return f"not JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    if first["type"] == "model_type":
        return "not a batchflow result: the JSON is not an object"
    for problem in problems:
        if problem["loc"] == ("schema_version",):
            found = repr(problem["input"])
            found = found if len(found) <= 20 else found[:17] + "..."
            readable = [str(version) for version in READ_SCHEMA_VERSIONS]
            if str(problem["input"]) in readable:  # "8": right number, not one
                return (
                    f"not a batchflow result: schema_version is {found}, not the number "
                    f"{problem['input']}"
                )
            return (
                f"a result of schema version {found}; this batchflow reads versions "
                f"{' and '.join(readable)} (render it with the batchflow that wrote it)"
            )
    missing = [p["loc"][0] for p in problems if p["type"] == "missing" and len(p["loc"]) == 1]
    if len(missing) > 2:
        shown = ", ".join(str(name) for name in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"not a batchflow result: no {shown}{more}"
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"not a batchflow result: {where}: {first['msg']}{more}"


def labels_for(paths: Sequence[Path]) -> list[str]:
    """A unique label per file: its parent directory's name if all share a stem, else its stem.

    ``shard1/result.json`` and ``shard2/result.json`` are ``shard1`` and
    ``shard2``; ``unit.json`` and ``integration.json`` are ``unit`` and
    ``integration``. A repeated label gets ``-2``, ``-3`` appended.
    """
    same_stem = len({path.stem for path in paths}) == 1
    labels: list[str] = []
    for path in paths:
        name = (path.absolute().parent.name if same_stem else path.stem) or "result"
        label, count = name, 1
        while label in labels:
            count += 1
            label = f"{name}-{count}"
        labels.append(label)
    return labels


def merge_results(
    results: Sequence[tuple[str, RunResult]],
    coverage_data: Sequence[Path] = (),
    coverage_dir: Path | None = None,
) -> tuple[RunResult, list[str]]:
    """Merge ``(label, result)`` pairs, in order; return the result and notes for the user.

    One result is returned as it is, except that with coverage data files its
    coverage, ``failed_by`` and ``exitstatus`` are recomputed as below. Of several:

    - tests: the union; a node id in several results keeps the later result's
      test (a note says so, and so does the test's own ``notes``). Workers,
      the tests' and their attempts', are renamed ``LABEL/WORKER``.
    - ``collection`` (what pytest could not collect or skipped while
      collecting): the union, in order; a node id in several results keeps
      the later result's problem, and a problem is left out when a later
      result ran tests under its node id (a later stage collected the file).
      A result that pytest stopped at collection errors (exit status 2), all
      of them left out so, is replaced by the later results when together they
      ran or listed as not run each test it did not run (a run again after
      the fix, in shards or not; not another stage): its exit status and its
      tests not run do not count. So is an interrupted result without
      collection errors (``-x`` under xdist, Ctrl-C), given node ids.
    - batches of the same name are combined: ``not_run_nodeids`` the tests a
      result listed as not run there that no result ran, ``tests`` those and
      the merged tests in it, outcomes counted from the merged tests,
      duration from their first start to last stop, the policy of the first
      result. Status: failed if a merged test failed or errored (or a
      result's batch failed for another reason, e.g. strict flaky); else
      incomplete if it has tests not run; else skipped if every result that
      ran it skipped it; else passed, or empty when no result had tests in it.
    - the run: ``started`` the earliest, ``stopped`` the latest; the first
      result's environment with ``workers`` summed; ``estimated`` summed if
      every result has one; ``lower_bound`` None (it is of one machine's
      workers); ``deselected_nodeids``: the tests a result deselected that no
      result ran or listed as not run (stages and shards by ``-k`` deselect
      each other's tests); ``sections`` concatenated; ``probe`` None (a
      probe's figures are of one run; a note says so).
    - resources: see :func:`_merged_resources`.
    - benchmarks: those of the tests kept, each from the result its test is
      kept from (none if that test measured nothing), workers renamed too.
    - coverage: recomputed from ``coverage_data`` (coverage.py data files,
      combined into ``coverage_dir`` with coverage.py's reports; the gates are
      the results' thresholds), else None, with a note if a result had some.
    - ``exitstatus``: 1 if a merged test failed or errored (or a merged batch
      failed, or a file could not be collected); else the highest exit status
      of a result other than 0, 1 and 5 (2 interrupted, 3 internal error, 4
      usage error); else 1 if coverage failed the run (the recomputed gates
      when data files are given, else any result's ``failed_by``) or a kept
      benchmark failed its gate; else 5 if
      there are no tests and a result had none collected; else 0. So a result
      that exited 1 only for a test that a later result passed, or only for
      its own coverage gate when the coverage is recomputed, does not fail the
      merged run. ``failed_by`` agrees: collection if a merged collection
      error is left; tests if the status is nonzero without coverage (and a
      test or batch failed, or there is no collection error); benchmarks if
      a kept benchmark failed its gate; coverage if coverage failed.

    A result of schema version 7 has no node ids (its ``deselected_nodeids``
    and its batches' ``not_run_nodeids`` are None). When a result lacks them,
    the merged ones are None and the numbers are guessed from the results'
    counts, as before schema 8: a batch's ``tests`` and ``not_run`` summed (a test found
    twice counted once), incomplete if a result's batch was; ``deselected``,
    when the merged tests fit in the largest collection, those of that
    collection no result ran or planned, else summed (shards by path); a
    stopped result replaced when the later ones' batches hold as many tests.
    So a run stopped by ``-x`` then the full run counts tests twice, and
    uneven shards by path may look like one suite.

    Raises :class:`ResultFileError` for a data file coverage.py cannot read.
    """
    if not results:
        raise ValueError("merge_results needs at least one result")
    if coverage_data and coverage_dir is None:
        raise ValueError("coverage_data needs a coverage_dir to combine them in")
    if len(results) == 1 and not coverage_data:
        return results[0][1], []
    several = len(results) > 1
    notes: list[str] = []
    runs = [result for _, result in results]
    with_nodeids = all(
        run.deselected_nodeids is not None
        and all(batch.not_run_nodeids is not None for batch in run.batches)
        for run in runs
    )
    collection = _union_of_collections(runs)
    replaced = _replaced(runs, collection, with_nodeids)
    tests, superseded = _union_of_tests(results, several, notes)
    merged_nodeids = {test.nodeid for test in tests} if with_nodeids else None
    batches = _merged_batches(results, tests, superseded, replaced, merged_nodeids)
    coverage: CoverageResult | None = None
    if coverage_data:
        assert coverage_dir is not None
        coverage = _combined_coverage(results, tests, batches, coverage_data, coverage_dir, notes)
        coverage_failed = coverage.failed
    else:
        coverage_failed = any("coverage" in run.failed_by for run in runs)
        if any(run.coverage is not None for run in runs):
            notes.append(
                "coverage of several results cannot be combined from their percentages; "
                "give their data files with --coverage-data"
            )
    if several and any(run.probe is not None for run in runs):
        notes.append(
            "probe results (--batchflow-probe) are left out: a probe's figures are of one run"
        )
    benchmarks = _union_of_benchmarks(results, several)
    benchmarks_failed = any(b.comparison is not None and b.comparison.failed for b in benchmarks)
    uncollected = any(problem.outcome == "error" for problem in collection)
    tests_failed = any(t.outcome in _FAILING for t in tests) or any(
        b.status == "failed" for b in batches
    )
    failing = tests_failed or uncollected
    statuses = [run.exitstatus for position, run in enumerate(runs) if position not in replaced]
    without_coverage = _exitstatus(statuses, failing, False, bool(tests))
    failed_by: list[Literal["collection", "tests", "coverage", "benchmarks"]] = [
        *collection_or_tests(
            uncollected=uncollected, failed=without_coverage != _OK, tests_failed=tests_failed
        )
    ]
    if benchmarks_failed:
        failed_by.append("benchmarks")
    if coverage_failed:
        failed_by.append("coverage")
    gates_failed = coverage_failed or benchmarks_failed
    verdict: dict[str, object] = {
        "exitstatus": _exitstatus(statuses, failing, gates_failed, bool(tests)),
        "coverage": coverage,
        "failed_by": failed_by,
    }
    first = runs[0]
    if not several:
        return first.model_copy(update=verdict), notes
    started = min(run.started for run in runs)
    stopped = max(run.stopped for run in runs)
    deselected, deselected_count = _deselected(runs, tests, batches, with_nodeids)
    merged = first.model_copy(
        update={
            **verdict,
            "started": started,
            "stopped": stopped,
            "duration": stopped - started,
            "environment": first.environment.model_copy(
                update={"workers": sum(run.environment.workers for run in runs)}
            ),
            "batches": batches,
            "tests": tests,
            "benchmarks": benchmarks,
            "resources": _merged_resources(results),
            "collection": collection,
            "deselected": deselected_count,
            "deselected_nodeids": deselected,
            "probe": None,
            "estimated": _sum_if_known([run.estimated for run in runs]),
            "lower_bound": None,
            "sections": [section for run in runs for section in run.sections],
            "shards": [label for label, _ in results],
        }
    )
    return merged, notes


def _union_of_collections(runs: Sequence[RunResult]) -> list[CollectionProblem]:
    """What the results could not collect or skipped while collecting, in order: a
    node id's later problem replacing its earlier one, and a problem left out when
    a later result ran tests under that node id (a later stage collected it)."""
    latest: dict[str, tuple[int, CollectionProblem]] = {}
    for position, run in enumerate(runs):
        for problem in run.collection:
            latest[problem.nodeid] = (position, problem)
    kept = []
    for nodeid, (position, problem) in latest.items():
        inside = (f"{nodeid}::", f"{nodeid}/")  # its tests: of the file, of the directory
        later = (test.nodeid for run in runs[position + 1 :] for test in run.tests)
        if not any(test == nodeid or test.startswith(inside) for test in later):
            kept.append(problem)
    return kept


def _replaced(
    runs: Sequence[RunResult], collection: Sequence[CollectionProblem], with_nodeids: bool
) -> set[int]:
    """The interrupted results (exit status 2) whose tests not run later
    results planned (ran or listed as not run: a run again, not another
    stage): their exit status 2 and their tests not run are of a run the later
    ones replaced. One stopped at collection errors also needs them collected
    by a later result. Without node ids, only such a one, and planned means
    batches as large (an interrupted run's tests cannot be matched)."""
    left = {problem.nodeid for problem in collection if problem.outcome == "error"}
    replaced = set()
    for position, run in enumerate(runs[:-1]):
        if run.exitstatus != _INTERRUPTED:
            continue
        if run.collection_errors:
            if any(problem.nodeid in left for problem in run.collection_errors):
                continue
        elif not with_nodeids:  # -x under xdist, Ctrl-C: needs the node ids
            continue
        later = runs[position + 1 :]  # together: the run again may be in shards
        if with_nodeids:
            planned = {nodeid for other in later for nodeid in _planned(other)}
            again = all(nodeid in planned for nodeid in _not_run(run))
        else:
            counts = Counter[str]()
            for other in later:
                counts.update({batch.name: batch.tests for batch in other.batches})
            again = all(counts[b.name] >= b.tests for b in run.batches if b.not_run)
        if again:
            replaced.add(position)
    return replaced


def _not_run(run: RunResult) -> list[str]:
    """The node ids of the tests ``run`` planned and did not run (none if not known)."""
    return [nodeid for batch in run.batches for nodeid in batch.not_run_nodeids or ()]


def _planned(run: RunResult) -> set[str]:
    """The node ids of the tests ``run`` ran or planned to."""
    return {test.nodeid for test in run.tests}.union(_not_run(run))


def _union_of_tests(
    results: Sequence[tuple[str, RunResult]], several: bool, notes: list[str]
) -> tuple[list[TestResult], Counter[str]]:
    """The tests, a node id's later test replacing its earlier one in place; and per batch,
    how many tests were replaced."""
    latest: dict[str, tuple[str, TestResult]] = {}
    earlier: dict[str, list[tuple[str, TestResult]]] = {}
    for label, result in results:
        for test in result.tests:
            if test.nodeid in latest:
                earlier.setdefault(test.nodeid, []).append(latest[test.nodeid])
            latest[test.nodeid] = (label, _on_shard(test, label) if several else test)
    tests = []
    for nodeid, (label, test) in latest.items():
        if nodeid in earlier:
            also = ", ".join(f"{other} ({found.outcome})" for other, found in earlier[nodeid])
            test = test.model_copy(
                update={"notes": [*test.notes, f"also in {also}; this is {label}'s result"]}
            )
        tests.append(test)
    if earlier:
        named = [
            f"{nodeid} ({', '.join(other for other, _ in earlier[nodeid])}, then "
            f"{latest[nodeid][0]})"
            for nodeid in list(earlier)[:_NAMED_DUPLICATES]
        ]
        more = len(earlier) - len(named)
        count = f"{len(earlier)} tests are" if len(earlier) > 1 else "1 test is"
        notes.append(
            f"{count} in more than one result; the later result's is kept: "
            + ", ".join(named)
            + (f" and {more} more" if more else "")
        )
    superseded = Counter(test.batch for found in earlier.values() for _, test in found)
    return tests, superseded


def _union_of_benchmarks(
    results: Sequence[tuple[str, RunResult]], several: bool
) -> list[BenchmarkResult]:
    """The benchmarks of the tests kept (:func:`_union_of_tests`: a node id's
    later test): each from the result whose test is kept, none if that result's
    test measured nothing (it failed); in order of first appearance."""
    kept_from: dict[str, int] = {}
    for position, (_, result) in enumerate(results):
        for test in result.tests:
            kept_from[test.nodeid] = position
    found: dict[str, BenchmarkResult | None] = {}
    for position, (label, result) in enumerate(results):
        for benchmark in result.benchmarks:
            if kept_from.get(benchmark.nodeid, position) != position:
                found.setdefault(benchmark.nodeid, None)  # keeps its place
                continue
            if several:
                benchmark = benchmark.model_copy(update={"worker": f"{label}/{benchmark.worker}"})
            found[benchmark.nodeid] = benchmark
    return [benchmark for benchmark in found.values() if benchmark is not None]


def _merged_resources(results: Sequence[tuple[str, RunResult]]) -> ResourcesResult | None:
    """The memory and CPU figures of several results: each worker's line and leak
    under ``LABEL/WORKER`` (as its tests), the tests over the limit or run alone
    of all, CPU seconds and CPUs summed; the budget None (it is of one
    machine's workers); the limit and the leak threshold the first's."""
    measured = [(label, run.resources) for label, run in results if run.resources is not None]
    if not measured:
        return None
    first = measured[0][1]
    return first.model_copy(
        update={
            "budget": None,
            "cpus": sum(resources.cpus for _, resources in measured),
            "over_limit": list(dict.fromkeys(n for _, r in measured for n in r.over_limit)),
            "alone": list(dict.fromkeys(n for _, r in measured for n in r.alone)),
            "leaks": [
                leak.model_copy(update={"worker": f"{label}/{leak.worker}"})
                for label, resources in measured
                for leak in resources.leaks
            ],
            "cpu": round(sum(resources.cpu for _, resources in measured), 6),
            "timeline": {
                f"{label}/{worker}": points
                for label, resources in measured
                for worker, points in resources.timeline.items()
            },
        }
    )


def _on_shard(test: TestResult, label: str) -> TestResult:
    attempts = [
        attempt.model_copy(update={"worker": f"{label}/{attempt.worker}"})
        for attempt in test.attempts
    ]
    return test.model_copy(update={"worker": f"{label}/{test.worker}", "attempts": attempts})


def _merged_batches(
    results: Sequence[tuple[str, RunResult]],
    tests: Sequence[TestResult],
    superseded: Counter[str],
    replaced: set[int],
    merged_nodeids: set[str] | None,
) -> list[BatchResult]:
    parts_of: dict[str, list[BatchResult]] = {}
    for position, (_, result) in enumerate(results):
        for batch in result.batches:
            if position in replaced:  # what it ran only: its tests not run ran later
                ran = batch.tests - batch.not_run
                batch = batch.model_copy(
                    update={"tests": ran, "not_run": 0, "status": batch.status if ran else "empty"}
                )
            parts_of.setdefault(batch.name, []).append(batch)
    tests_of: dict[str, list[TestResult]] = {}
    for test in tests:
        tests_of.setdefault(test.batch, []).append(test)
    return [
        _merged_batch(parts, tests_of.get(name, []), superseded[name], merged_nodeids)
        for name, parts in parts_of.items()
    ]


def _merged_batch(
    parts: Sequence[BatchResult],
    tests: Sequence[TestResult],
    superseded: int,
    merged_nodeids: set[str] | None,
) -> BatchResult:
    """``merged_nodeids``: of the merged tests; None without node ids (schema 7)."""
    outcomes = Counter(test.outcome for test in tests)
    not_run: list[str] | None = None
    if merged_nodeids is None:  # the parts' counts: a test not run in one may have run in another
        count = sum(part.tests for part in parts) - superseded
        not_run_count = sum(part.not_run for part in parts)
        incomplete = any(
            part.status == "incomplete" or (part.status == "failed" and part.not_run)
            for part in parts
        )
    else:
        listed = dict.fromkeys(nodeid for part in parts for nodeid in part.not_run_nodeids or ())
        not_run = [nodeid for nodeid in listed if nodeid not in merged_nodeids]
        count, not_run_count = len(tests) + len(not_run), len(not_run)
        incomplete = bool(not_run)
    status = _batch_status(parts, outcomes, incomplete)
    skipped = [part.skip_reason for part in parts if part.status == "skipped"]
    cpu, peak_memory = batch_resources(tests)  # of the merged tests, as a run's are
    return parts[0].model_copy(
        update={
            "status": status,
            "skip_reason": skipped[0] if status == "skipped" else None,
            "tests": count,
            "not_run": not_run_count,
            "not_run_nodeids": not_run,
            "outcomes": dict(sorted(outcomes.items())),
            "duration": span(tests),
            "estimated": _sum_if_known([part.estimated for part in parts]),
            "cpu": cpu,
            "peak_memory": peak_memory,
        }
    )


def _batch_status(
    parts: Sequence[BatchResult], outcomes: Counter[str], incomplete: bool
) -> _BatchStatus:
    # A part that failed without a failing test failed for a reason the merged
    # tests cannot show (strict flaky); one that failed for its tests only
    # fails the merge if one of them is still failing there.
    failed_otherwise = any(
        part.status == "failed" and not any(part.outcomes.get(o, 0) for o in _FAILING)
        for part in parts
    )
    if any(outcomes[o] for o in _FAILING) or failed_otherwise:
        return "failed"
    if incomplete:
        return "incomplete"
    ran = [part.status for part in parts if part.status != "empty"]
    if not ran:
        return "empty"
    return "skipped" if all(status == "skipped" for status in ran) else "passed"


def _exitstatus(statuses: Sequence[int], failing: bool, gates_failed: bool, has_tests: bool) -> int:
    if failing:
        return _TESTS_FAILED
    serious = [s for s in statuses if s not in (_OK, _TESTS_FAILED, _NO_TESTS_COLLECTED)]
    if serious:
        return max(serious)
    if gates_failed:
        return _TESTS_FAILED
    if not has_tests and _NO_TESTS_COLLECTED in statuses:
        return _NO_TESTS_COLLECTED
    return _OK


def _deselected(
    runs: Sequence[RunResult],
    tests: Sequence[TestResult],
    batches: Sequence[BatchResult],
    with_nodeids: bool,
) -> tuple[list[str] | None, int]:
    """The node ids of the tests a result deselected and none ran or listed as
    not run, and their number. Without node ids (schema 7) None, and a guess:
    results whose tests (run, not run) fit in the largest collection collected
    one suite (stages, shards by -k), what it holds beyond them; otherwise they
    collected different tests (shards by path), what each deselected. Uneven
    shards by path may look like one suite."""
    if with_nodeids:
        seen = {nodeid for run in runs for nodeid in _planned(run)}
        listed = dict.fromkeys(nodeid for run in runs for nodeid in run.deselected_nodeids or ())
        deselected = [nodeid for nodeid in listed if nodeid not in seen]
        return deselected, len(deselected)
    collected = max(
        len(run.tests) + sum(batch.not_run for batch in run.batches) + run.deselected
        for run in runs
    )
    seen_count = len(tests) + sum(batch.not_run for batch in batches)
    if seen_count > collected:  # more tests than any one collection: different ones
        return None, sum(run.deselected for run in runs)
    return None, collected - seen_count


def _sum_if_known(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if len(known) == len(values) else None


def _combined_coverage(
    results: Sequence[tuple[str, RunResult]],
    tests: Sequence[TestResult],
    batches: Sequence[BatchResult],
    data_files: Sequence[Path],
    outdir: Path,
    notes: list[str],
) -> CoverageResult:
    """Combine the data files with coverage.py and sum them up as a run's end does.

    A measured batch that no data file has a context of (its run's file not
    given, or none of its lines ran) reads 0%: a note names it and the results
    that ran it."""
    from ..coverage_report import combine_and_report

    several = len(results) > 1
    measured_by = [(label, r.coverage) for label, r in results if r.coverage is not None]
    sources = list(dict.fromkeys(s for _, c in measured_by for s in c.sources))
    context = measured_by[0][1].context if measured_by else "batch"
    measured = [batch.name for batch in batches if batch.cov and batch.tests]
    thresholds: dict[str | None, float] = {}
    for _, result_coverage in measured_by:
        for gate in result_coverage.gates:
            if gate.batch is None or gate.batch in measured:
                thresholds.setdefault(gate.batch, gate.threshold)
    lost = [
        f"{label}: {note}" if several else note
        for label, result_coverage in measured_by
        for note in result_coverage.lost
    ]
    names = set(measured)
    batch_by_nodeid = {test.nodeid: test.batch for test in tests}
    results_of = {label: result.batches for label, result in results}

    # Contexts are batch names, or node ids with per-test contexts.
    def batch_of(label: str) -> str | None:
        return label if label in names else batch_by_nodeid.get(label)

    # combine() deletes what it combined, and reading a data file can write to
    # it: coverage.py works on copies, never on the files given.
    with tempfile.TemporaryDirectory(prefix="batchflow-coverage-") as rundir:
        contexts: set[str] = set()
        for number, path in enumerate(data_files):
            copy = Path(rundir) / f".coverage.{number}"
            contexts |= _copy_data_file(path, copy)
        with_data = {batch_of(label) for label in contexts}
        for name in measured:
            if name not in with_data:
                ran_by = [
                    label
                    for label, result in measured_by
                    if any(batch.name == name and batch.tests for batch in results_of[label])
                ]
                notes.append(
                    f"coverage: no data for batch {name!r} (run by {', '.join(ran_by) or '-'}) "
                    "in the data files given: give each run's .batchflow/coverage/.coverage "
                    "with --coverage-data"
                )
        return combine_and_report(
            Path(rundir), outdir, sources, context, measured, batch_of, thresholds, lost
        )


def _copy_data_file(path: Path, copy: Path) -> set[str]:
    """Copy a data file given, and read it: the contexts it measured."""
    import coverage
    from coverage.exceptions import CoverageException

    try:
        shutil.copyfile(path, copy)
    except OSError as error:
        raise ResultFileError(f"{path}: cannot read it: {error.strerror or error}") from None
    data = coverage.CoverageData(basename=str(copy))
    try:
        data.read()
        return data.measured_contexts()
    except CoverageException:
        raise ResultFileError(f"{path}: not a coverage.py data file") from None
    finally:
        data.close()  # Python 3.13 warns about a sqlite connection left to the collector
