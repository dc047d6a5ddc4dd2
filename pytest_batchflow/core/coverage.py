"""Coverage by batch: what each batch ran, what only it ran, and the gates.

The input is coverage.py's own JSON report written with the contexts shown
(``Coverage.json_report(show_contexts=True)``): for every measured file its
statements, executed lines and, per executed line, the contexts that ran it.
Batchflow labels the contexts itself (a batch name, or a test's node id with
per-test contexts; :data:`COLLECTION_CONTEXT` while modules are imported), so
a line belongs to a batch when one of its contexts maps to that batch. The
total is coverage.py's own figure (branches included when measured); per-batch
figures count statements only. No coverage.py or pytest import here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLLECTION_CONTEXT",
    "BatchCoverage",
    "CoverageSummary",
    "FileCoverage",
    "Gate",
    "gate_figures",
    "summarize",
]

#: The context of code that runs while pytest imports test modules and
#: conftests (module-level statements of the measured code, mostly).
COLLECTION_CONTEXT = "(collection)"


@dataclass(frozen=True)
class FileCoverage:
    path: str
    statements: int
    covered: int
    percent: float
    missing: tuple[int, ...]


@dataclass(frozen=True)
class BatchCoverage:
    name: str
    covered: int  # statements its tests ran
    percent: float
    only: int  # statements no other batch ran
    only_lines: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """A threshold: on the total (``batch`` None) or on one batch's percentage."""

    batch: str | None
    threshold: float
    actual: float

    @property
    def passed(self) -> bool:
        return self.actual >= self.threshold

    def describe(self) -> str:
        what = "total" if self.batch is None else f"batch {self.batch!r}"
        relation = ">=" if self.passed else "<"
        shown, limit = gate_figures(self.actual, self.threshold)
        return f"{what} {shown}% {relation} {limit}%"


def gate_figures(actual: float, threshold: float) -> tuple[str, str]:
    """A gate's percentage and threshold as shown: the threshold as written
    (``90``, ``83.4351234``), the percentage with two decimals or as many more
    as it takes for the two to compare as the exact figures do (``83.435`` <
    ``83.44``, not ``83.44`` < ``83.44``; ``90.001`` >= ``90.001``, not
    ``90.00``). The gate compares the exact figures."""
    limit = f"{threshold:g}"
    if float(limit) != threshold:
        limit = repr(threshold)
    shown_limit = float(limit)
    passed = actual >= threshold
    for decimals in range(2, 10):
        shown = f"{actual:.{decimals}f}"
        if (float(shown) >= shown_limit) == passed:
            return shown, limit
    return repr(actual), limit


@dataclass(frozen=True)
class CoverageSummary:
    statements: int
    covered: int
    percent: float
    branch: bool
    files: tuple[FileCoverage, ...]
    batches: tuple[BatchCoverage, ...]
    gates: tuple[Gate, ...]

    @property
    def failed_gates(self) -> tuple[Gate, ...]:
        return tuple(gate for gate in self.gates if not gate.passed)


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def summarize(
    report: Mapping[str, Any],
    batch_of: Callable[[str], str | None],
    batches: Sequence[str],
    thresholds: Mapping[str | None, float],
) -> CoverageSummary:
    """Per-file, per-batch and total figures, and the gates, from a JSON report.

    ``batch_of`` maps a context label to its batch (None: no batch, e.g. the
    collection context); ``batches`` are the measured batches, in plan order;
    ``thresholds`` maps None (the total) or a batch name to a minimum percentage.
    """
    files: list[FileCoverage] = []
    ran_by: dict[str, dict[str, set[int]]] = {name: {} for name in batches}
    statements_total = 0
    for path, data in sorted(report.get("files", {}).items()):
        summary = data["summary"]
        statements = int(summary["num_statements"])
        statements_total += statements
        files.append(
            FileCoverage(
                path=path,
                statements=statements,
                covered=int(summary["covered_lines"]),
                percent=float(summary["percent_covered"]),
                missing=tuple(sorted(data.get("missing_lines", ()))),
            )
        )
        executed = set(data.get("executed_lines", ()))
        for line, contexts in data.get("contexts", {}).items():
            number = int(line)
            if number not in executed:
                continue
            for context in contexts:
                batch = batch_of(context)
                if batch in ran_by:
                    ran_by[batch].setdefault(path, set()).add(number)
    owners: dict[tuple[str, int], set[str]] = {}
    for name, by_file in ran_by.items():
        for path, lines in by_file.items():
            for line in lines:
                owners.setdefault((path, line), set()).add(name)
    per_batch: list[BatchCoverage] = []
    for name in batches:
        by_file = ran_by[name]
        covered = sum(len(lines) for lines in by_file.values())
        only_lines = {
            path: tuple(sorted(line for line in lines if owners[(path, line)] == {name}))
            for path, lines in sorted(by_file.items())
        }
        only_lines = {path: lines for path, lines in only_lines.items() if lines}
        per_batch.append(
            BatchCoverage(
                name=name,
                covered=covered,
                percent=_percent(covered, statements_total),
                only=sum(len(lines) for lines in only_lines.values()),
                only_lines=only_lines,
            )
        )
    totals = report.get("totals", {})
    total_percent = float(totals.get("percent_covered", _percent(0, statements_total)))
    by_name = {entry.name: entry for entry in per_batch}
    gates = []
    if None in thresholds:
        gates.append(Gate(None, thresholds[None], total_percent))
    for name in batches:
        if name in thresholds:
            gates.append(Gate(name, thresholds[name], by_name[name].percent))
    return CoverageSummary(
        statements=statements_total,
        covered=int(totals.get("covered_lines", 0)),
        percent=total_percent,
        branch=bool(report.get("meta", {}).get("branch_coverage", False)),
        files=tuple(files),
        batches=tuple(per_batch),
        gates=tuple(gates),
    )
