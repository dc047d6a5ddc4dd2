"""Coverage at the end of a run: combine the data files, write coverage.py's reports, sum up.

Runs in the process that made the run directory (the serial process or the
xdist controller), after every measuring process saved its data. Everything
is coverage.py's own API: ``combine``, ``html_report`` (contexts shown),
``xml_report`` (Cobertura) and ``json_report`` (contexts shown), whose JSON
:func:`pytest_batchflow.core.coverage.summarize` reads for the per-batch figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from .core.coverage import summarize
from .results import CoverageBatch, CoverageFile, CoverageGate, CoverageResult

__all__ = ["OUTPUT_DIR", "combine_and_report", "coverage_lines"]

#: Under the rootdir: the combined data file and the reports.
OUTPUT_DIR = Path(".batchflow") / "coverage"


def combine_and_report(
    rundir: Path,
    outdir: Path,
    sources: Sequence[str],
    context: str,
    batches: Sequence[str],
    batch_of: Callable[[str], str | None],
    thresholds: Mapping[str | None, float],
    lost: Sequence[str],
) -> CoverageResult:
    """Combine ``rundir``'s data files into ``outdir/.coverage`` and report on it."""
    import coverage
    from coverage.exceptions import CoverageException

    outdir.mkdir(parents=True, exist_ok=True)
    data_file = outdir / ".coverage"
    outputs = {
        "data": data_file,
        "html": outdir / "html" / "index.html",
        "xml": outdir / "coverage.xml",
        "json": outdir / "coverage.json",
    }
    for stale in outputs.values():
        stale.unlink(missing_ok=True)
    empty = CoverageResult(
        sources=list(sources),
        context="test" if context == "test" else "batch",
        branch=False,
        statements=0,
        covered=0,
        percent=0.0,
        files=[],
        batches=[],
        gates=[],
        failed=False,
        lost=list(lost),
    )
    cov = coverage.Coverage(data_file=str(data_file), config_file=True)
    try:
        cov.combine([str(rundir)], keep=False)
        cov.save()
        cov.html_report(directory=str(outputs["html"].parent), show_contexts=True)
        cov.xml_report(outfile=str(outputs["xml"]))
        cov.json_report(outfile=str(outputs["json"]), show_contexts=True)
    except CoverageException as error:
        problem = f"{error}; check --batchflow-cov's sources and coverage's include/omit settings"
        return empty.model_copy(update={"problem": problem})
    report = json.loads(outputs["json"].read_text(encoding="utf-8"))
    summary = summarize(report, batch_of, batches, thresholds)
    gates = [
        CoverageGate(batch=g.batch, threshold=g.threshold, actual=g.actual, passed=g.passed)
        for g in summary.gates
    ]
    return empty.model_copy(
        update={
            "branch": summary.branch,
            "statements": summary.statements,
            "covered": summary.covered,
            "percent": summary.percent,
            # The core's dataclasses hold the same fields as the result models.
            "files": [CoverageFile.model_validate(asdict(f)) for f in summary.files],
            "batches": [CoverageBatch.model_validate(asdict(b)) for b in summary.batches],
            "gates": gates,
            "failed": any(not gate.passed for gate in gates),
            "outputs": {name: str(path) for name, path in outputs.items()},
        }
    )


def coverage_lines(result: CoverageResult) -> list[str]:
    """The terminal's coverage section."""
    if result.problem is not None:
        lines = [f"batchflow: coverage: no figures: {result.problem}"]
    else:
        what = "statements and branches" if result.branch else "statements"
        lines = [
            f"batchflow: coverage {result.percent:.2f}% of {result.statements} statements "
            f"in {len(result.files)} files ({what}; contexts by {result.context})"
        ]
        width = max((len(batch.name) for batch in result.batches), default=5)
        for batch in result.batches:
            lines.append(
                f"  {batch.name:<{width}}  {batch.percent:6.2f}%  {batch.covered:>6} statements, "
                f"{batch.only:>5} only here"
            )
    for gate in result.gates:
        what = "total" if gate.batch is None else f"batch {gate.batch!r}"
        if gate.passed:
            lines.append(f"  gate: {what} {gate.actual:.2f}% >= {gate.threshold:g}%: passed")
        else:
            lines.append(f"  gate: {what} {gate.actual:.2f}% < {gate.threshold:g}%: FAILED")
    for note in result.lost:
        lines.append(f"batchflow: coverage lost: {note}")
    if result.outputs:
        lines.append(f"batchflow: coverage HTML: {result.outputs['html']}")
    return lines
