"""Coverage at the end of a run: combine the data files, write coverage.py's reports, sum up.

Runs for the process that made the run directory (the serial process or the
xdist controller), after every measuring process saved its data. Everything
is coverage.py's own API: ``combine``, ``json_report`` (contexts shown),
``html_report`` (contexts shown) and ``xml_report`` (Cobertura); the JSON is
what :func:`pytest_batchflow.core.coverage.summarize` reads for the figures.

coverage.py does that work in a child process (:class:`CoverageChild`): at
the end of a run the machine's other CPUs are idle. The child says when the
JSON report is written, and goes on with the HTML and XML reports while this
process sums up and writes batchflow's own outputs; the caller waits for it
(:func:`finish_child_reports`) before pytest ends. It starts when the run is
summed up; on an xdist controller whose workers have all finished, that is
while xdist waits for their processes to end
(:class:`pytest_batchflow.xdist_scheduler.XdistHooks`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from .core.coverage import gate_figures, summarize
from .core.words import count_of
from .results import CoverageBatch, CoverageFile, CoverageGate, CoverageResult

__all__ = [
    "OUTPUT_DIR",
    "CoverageChild",
    "combine_and_report",
    "coverage_lines",
    "finish_child_reports",
    "no_figures",
    "start_child",
    "sum_up",
]

#: Under the rootdir: the combined data file and the reports.
OUTPUT_DIR = Path(".batchflow") / "coverage"

#: The child's program, run as a script: it imports only coverage.py.
_CHILD_PROGRAM = Path(__file__).with_name("coverage_child.py")
#: The reports the child writes after the JSON one, and their names in messages.
_LATER_REPORTS = {"html": "HTML", "xml": "XML"}


def _outputs(outdir: Path) -> dict[str, Path]:
    return {
        "data": outdir / ".coverage",
        "html": outdir / "html" / "index.html",
        "xml": outdir / "coverage.xml",
        "json": outdir / "coverage.json",
    }


class CoverageChild:
    """The child process combining the data and writing coverage.py's reports."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes], outdir: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.outdir = outdir
        self.warned: set[str] = set()
        self.failed: dict[str, Any] | None = None  # once it has ended
        #: coverage.py's ``[report] fail_under``, told with the JSON report (0: none).
        self.fail_under = 0.0

    def _next_stage(self) -> dict[str, Any]:
        """The child's next line: what failed; re-emits coverage.py's warnings here."""
        assert self.process.stdout is not None
        try:
            line = self.process.stdout.readline()
        except BaseException:  # e.g. Ctrl-C: no child outlives pytest
            self.kill()
            raise
        try:
            stage = json.loads(line)
            failed = dict(stage["failed"])
            said = [str(message) for message in stage["warnings"]]
            self.fail_under = float(stage.get("fail_under", self.fail_under))
        except (ValueError, KeyError, TypeError):
            return {"child": self._died()}
        for message in said:
            if message not in self.warned:
                self.warned.add(message)
                _warn(message)
        return failed

    def _died(self) -> dict[str, Any]:
        self.process.wait()
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        said = lines[-1] if lines else f"exit code {self.process.returncode}"
        message = f"the child process that runs coverage.py failed: {said}"
        return {"message": message, "coverage": False, "text": message}

    def json_written(self) -> dict[str, Any]:
        """Wait until the data is combined and the JSON report written: what failed."""
        return self._next_stage()

    def finish(self) -> dict[str, Any]:
        """Wait for the HTML and XML reports and for the child's end: what failed."""
        if self.failed is None:
            failed = self._next_stage()
            if "child" in failed:
                failed = dict.fromkeys(_LATER_REPORTS, failed["child"])
            self.process.wait()
            self.close()
            self.failed = failed
        return self.failed

    def kill(self) -> None:
        """Interrupted: the child ends with this process."""
        self.process.kill()
        self.process.wait()
        self.close()
        interrupted = {"message": "interrupted", "coverage": False, "text": "interrupted"}
        self.failed = dict.fromkeys(_LATER_REPORTS, interrupted)

    def close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


def _warn(message: str) -> None:
    """A warning coverage.py gave in the child, given again here with its category."""
    from coverage.exceptions import CoverageWarning

    warnings.warn(message, CoverageWarning, stacklevel=2)


def start_child(rundir: Path, outdir: Path) -> CoverageChild:
    """Start combining ``rundir``'s data files into ``outdir/.coverage`` and reporting on it."""
    outdir.mkdir(parents=True, exist_ok=True)
    outputs = _outputs(outdir)
    for stale in outputs.values():
        stale.unlink(missing_ok=True)
    path = json.dumps(sys.path)
    arguments = [rundir, outputs["data"], outputs["html"].parent, outputs["xml"], outputs["json"]]
    # A file, not a pipe: nobody reads a pipe while the child runs, and a full one stalls it.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (CoverageChild closes it)
    try:
        process = subprocess.Popen(
            [sys.executable, str(_CHILD_PROGRAM), path, *map(str, arguments)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    except BaseException:
        stderr.close()
        raise
    return CoverageChild(process, stderr, outdir)


def no_figures(
    sources: Sequence[str], context: str, lost: Sequence[str], problem: str | None
) -> CoverageResult:
    """A coverage result without figures, and why (``problem``; None to fill in)."""
    return CoverageResult(
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
        problem=problem,
    )


def sum_up(
    child: CoverageChild,
    sources: Sequence[str],
    context: str,
    batches: Sequence[str],
    batch_of: Callable[[str], str | None],
    thresholds: Mapping[str | None, float],
    lost: Sequence[str],
) -> CoverageResult:
    """The figures, once the child has written the JSON report.

    The child goes on with the HTML and XML reports: :func:`finish_child_reports`.
    """
    failed = child.json_written()
    problem = failed.get("json") or failed.get("child")
    if problem is not None:
        child.finish()
        text = problem["text"]
        if problem["coverage"]:
            text = text.rstrip(".") + (
                "; check --batchflow-cov's sources and coverage's include/omit settings"
            )
        return no_figures(sources, context, lost, text)
    outputs = _outputs(child.outdir)
    report = json.loads(outputs["json"].read_text(encoding="utf-8"))
    if None not in thresholds and child.fail_under > 0:
        # coverage.py's own gate, as pytest-cov and `coverage report` apply it.
        thresholds = {None: child.fail_under, **thresholds}
    summary = summarize(report, batch_of, batches, thresholds)
    gates = [
        CoverageGate(batch=g.batch, threshold=g.threshold, actual=g.actual, passed=g.passed)
        for g in summary.gates
    ]
    return no_figures(sources, context, lost, None).model_copy(
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


def finish_child_reports(
    child: CoverageChild, result: CoverageResult
) -> tuple[CoverageResult, list[str]]:
    """Wait for the child: the result without the reports it failed to write, and why."""
    failed = child.finish()
    if not failed or result.problem is not None:
        return result, []
    outputs = {name: path for name, path in result.outputs.items() if name not in failed}
    problems = [
        f"could not write coverage.py's {_LATER_REPORTS.get(name, name)} report: "
        f"{problem['message']}"
        for name, problem in failed.items()
    ]
    return result.model_copy(update={"outputs": outputs}), problems


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
    """Combine ``rundir``'s data files into ``outdir/.coverage`` and report on it.

    All at once: a report that could not be written is the problem.
    """
    child = start_child(rundir, outdir)
    result = sum_up(child, sources, context, batches, batch_of, thresholds, lost)
    result, problems = finish_child_reports(child, result)
    return no_figures(sources, context, lost, "; ".join(problems)) if problems else result


def coverage_lines(result: CoverageResult) -> list[str]:
    """The terminal's coverage section."""
    if result.problem is not None:
        lines = [f"batchflow: coverage: no figures: {result.problem}"]
    else:
        what = "statements and branches" if result.branch else "statements"
        lines = [
            f"batchflow: coverage {result.percent:.2f}% of "
            f"{count_of(result.statements, 'statement')} in {count_of(len(result.files), 'file')}"
            f" ({what}; contexts by {result.context})"
        ]
        width = max((len(batch.name) for batch in result.batches), default=5)
        for batch in result.batches:
            statements = "statement, " if batch.covered == 1 else "statements,"
            lines.append(
                f"  {batch.name:<{width}}  {batch.percent:6.2f}%  {batch.covered:>6} {statements} "
                f"{batch.only:>5} only here"
            )
    for gate in result.gates:
        what = "total" if gate.batch is None else f"batch {gate.batch!r}"
        shown, limit = gate_figures(gate.actual, gate.threshold)
        if gate.passed:
            lines.append(f"  gate: {what} {shown}% >= {limit}%: passed")
        else:
            lines.append(f"  gate: {what} {shown}% < {limit}%: FAILED")
    for note in result.lost:
        lines.append(f"batchflow: coverage lost: {note}")
    if "html" in result.outputs:
        lines.append(f"batchflow: coverage HTML: {result.outputs['html']}")
    return lines
