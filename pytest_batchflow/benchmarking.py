"""Benchmarks at the end of a run: statistics, baselines from the history, gates.

The controller (or the serial process) turns each bench fixture's samples
into a :class:`~pytest_batchflow.results.BenchmarkResult`: the statistics of
``core/bench.py``, the baseline asked for (``--batchflow-bench-compare``, or
the latest earlier run when a gate is set), the bootstrap comparison, and
the gate of the test's batch line (``bench_fail=``) or of the run
(``--batchflow-bench-fail``). A baseline measured on another kind of machine
(CPU, cores, Python, OS) is shown with a warning and never gates, nor does a
history of fewer than 3 earlier runs on the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

from .core.bench import (
    MIN_COMPARABLE_ROUNDS,
    compare_with_history,
    fingerprint_mismatch,
    parse_gate,
    scaled_time,
    summarize,
)
from .core.words import count_of
from .history import GATE_ACCEPTED, GATE_FAILED, BenchmarkRow, HistoryStore
from .results import BenchmarkComparison, BenchmarkResult, TestResult

__all__ = ["benchmark_lines", "benchmark_results"]

#: With --batchflow-bench-compare=last, the baseline is this many latest earlier runs.
BASELINE_RUNS = 10
#: A gate applies once this many earlier runs on the machine show how much runs differ:
#: with fewer, a whole-run shift of the machine's speed cannot be told from a regression.
MIN_GATING_RUNS = 3
Reader = Callable[[Callable[[HistoryStore], Any]], Any]


def benchmark_results(
    measured: Sequence[tuple[TestResult, Mapping[str, Any], str]],
    gates: Mapping[str, str | None],
    compare_with: Literal["last"] | int | None,
    read: Reader,
    run_id: int | None,
    accept: bool = False,
) -> tuple[list[BenchmarkResult], list[BenchmarkRow]]:
    """Results for ``(test, measurement, worker)`` triples, and the rows to store.

    ``accept`` (``--batchflow-bench-fail=accept``): the rows are the benchmarks'
    new baselines, the runs before them none any more."""
    results: list[BenchmarkResult] = []
    rows: list[BenchmarkRow] = []
    for test, measurement, worker in measured:
        samples = [float(x) for x in measurement["samples"]]
        if not samples:
            continue
        iterations = int(measurement["iterations"])
        machine = {str(k): str(v) for k, v in dict(measurement["fingerprint"]).items()}
        stats = summarize(samples, iterations)
        gate_text = gates.get(test.batch)
        gate = parse_gate(gate_text) if gate_text else None
        wanted: Literal["last"] | int | None = compare_with
        if wanted is None and gate is not None:
            wanted = "last"
        comparison: BenchmarkComparison | None = None
        problem = None
        if wanted is not None:
            comparison, problem = _compared(
                test.nodeid, samples, machine, wanted, gate, read, run_id
            )
        results.append(
            BenchmarkResult(
                nodeid=test.nodeid,
                batch=test.batch,
                worker=worker,
                **asdict(stats),
                gc_disabled=bool(measurement.get("gc_disabled", False)),
                samples=samples,
                fingerprint=machine,
                comparison=comparison,
                baseline_problem=problem,
            )
        )
        failed = comparison is not None and comparison.failed
        mark = GATE_ACCEPTED if accept else GATE_FAILED if failed else None
        rows.append(
            BenchmarkRow(
                test.nodeid,
                machine,
                iterations,
                stats.min,
                stats.mean,
                stats.median,
                samples,
                gate=mark,
            )
        )
    return results, rows


def _compared(
    nodeid: str,
    samples: Sequence[float],
    machine: Mapping[str, str],
    wanted: Literal["last"] | int,
    gate: Any,
    read: Reader,
    run_id: int | None,
) -> tuple[BenchmarkComparison | None, str | None]:
    if run_id is None:
        return None, "no history (--batchflow-no-history, or the store failed)"
    run = None if wanted == "last" else int(wanted)
    found = read(lambda h: h.benchmark_baselines(nodeid, run_id, run, BASELINE_RUNS))
    if not found:
        where = "in an earlier run" if run is None else f"in run {run}"
        return None, f"no baseline: not measured {where}"
    baseline_run, baseline_machine, baseline_samples = found[-1]
    other = fingerprint_mismatch(baseline_machine, machine)
    # Earlier runs on the latest baseline's machine tell how much runs differ there.
    same_machine = [row for row in found if not fingerprint_mismatch(row[1], baseline_machine)]
    pool = [run_samples for _, _, run_samples in same_machine]
    statistic = gate.statistic if gate is not None else "median"
    threshold = gate.threshold if gate is not None else None
    if min(len(baseline_samples), len(samples)) < MIN_COMPARABLE_ROUNDS:
        return None, (
            f"fewer than {MIN_COMPARABLE_ROUNDS} rounds here or in run {baseline_run}: "
            "too few to compare"
        )
    ungated = None
    if other:
        ungated = f"baseline from another machine: {', '.join(other)} differ"
    elif len(pool) < MIN_GATING_RUNS:
        ungated = (
            f"{count_of(len(pool), 'earlier run')} on this machine; the gate "
            f"needs {MIN_GATING_RUNS} to know how much runs differ"
        )
    try:
        result = compare_with_history(pool, samples, statistic, threshold)
    except ValueError as error:  # a stored baseline with a zero or broken sample
        return None, f"run {baseline_run}'s samples cannot be compared ({error})"
    return (
        BenchmarkComparison(
            baseline_run=baseline_run,
            baseline_runs=[run for run, _, _ in same_machine],
            statistic=result.statistic,
            baseline=result.baseline,
            current=result.current,
            change=result.change,
            low=result.low,
            high=result.high,
            verdict=result.verdict,
            threshold=result.threshold,
            failed=result.failed and ungated is None,
            other_machine=other,
            ungated=ungated if threshold is not None else None,
        ),
        None,
    )


def _time(seconds: float) -> str:
    value, unit = scaled_time(seconds)
    return f"{value:.3g}{unit}"


def benchmark_lines(benchmarks: Sequence[BenchmarkResult]) -> list[str]:
    """The terminal's benchmark table, then one line per comparison."""
    rows = [["benchmark", "median", "iqr", "mean", "stddev", "min", "ops/s", "rounds"]]
    for b in benchmarks:
        rows.append(
            [
                b.nodeid,
                _time(b.median),
                _time(b.iqr),
                _time(b.mean),
                _time(b.stddev),
                _time(b.min),
                # Three figures, trailing zeros kept: 2.00 beside 4.99, not 2.
                f"{b.ops:,.0f}" if b.ops >= 10 else f"{b.ops:#.3g}",
                f"{b.rounds}x{b.iterations}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    for b in benchmarks:
        c = b.comparison
        if c is None:
            if b.baseline_problem:
                lines.append(f"{b.nodeid}: not compared: {b.baseline_problem}")
            continue
        gate = ""
        if c.threshold is not None:
            verdict = "FAILED" if c.failed else "passed"
            if c.ungated:
                verdict = f"not applied ({c.ungated})"
            gate = f", gate {c.threshold * 100:g}%: {verdict}"
        elif c.other_machine:
            gate = f" (baseline from another machine: {', '.join(c.other_machine)} differ)"
        lines.append(
            f"{b.nodeid}: {c.statistic} {c.change:+.1%} vs run {c.baseline_run} "
            f"[{c.low:+.1%}, {c.high:+.1%}] {c.verdict}{gate}"
        )
    return lines
