"""GitHub Actions outputs: the job's step summary and error annotations.

The step summary is GitHub-flavoured markdown appended to the file
``GITHUB_STEP_SUMMARY`` names. GitHub refuses a summary over 1 MiB, so every
list in it is capped (``... and N more``) and every text from the suite is
clipped: its size is bounded whatever the suite. Text from the suite is shown
in ``<code>`` elements with markdown's and HTML's special characters written
as character references: a node id or failure line cannot open a tag, end a
table cell, link, mention or emphasise anything.

Annotations are workflow commands for the files pytest could not collect,
then for the failed and errored tests, in
result order: GitHub shows at most 10 error annotations per step, so
:func:`annotations` makes at most 10, then one warning that says how many
more failures there are. ``file`` is the test's file relative to the
checkout (``GITHUB_WORKSPACE``), as GitHub reads it, also for a project in
a folder of the repository; relative to pytest's rootdir when the file is
not in the checkout.
"""

# No ``from __future__ import annotations``: it would clash with annotations() below.
import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.coverage import gate_figures
from ..core.words import count_of
from ..results import (
    BatchResult,
    CollectionProblem,
    RunResult,
    TestResult,
    collection_error_line,
    error_line,
)
from ..terminal import OUTCOME_ORDER, batch_rows, seconds
from .junit import visible

__all__ = [
    "ANNOTATION_LIMIT",
    "LIST_LIMIT",
    "SUMMARY_LIMIT",
    "annotations",
    "append_step_summary",
    "step_summary",
]

#: GitHub's limit for one step's summary, in bytes of UTF-8.
SUMMARY_LIMIT = 1024 * 1024
#: Items of one list in the summary: failures, flaky tests, batches.
LIST_LIMIT = 50
#: Error annotations GitHub shows for one step.
ANNOTATION_LIMIT = 10
#: Characters of one text from the suite in the summary (a node id, a line).
_CLIP = 300
#: Lines of the failure text in an annotation, after its error line.
_ANNOTATION_LINES = 20
_ANNOTATION_LINE_CLIP = 500
_FAILING = ("failed", "error")
#: What markdown, GitHub's extensions (emoji, math, autolinks) or HTML could read
#: as markup; alphanumerics, spaces and plain punctuation stay as they are.
_MARKUP = re.compile(r"[^\w ./,;%()=+?'\"-]|_")


def _clip(text: str, limit: int = _CLIP) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _code(text: str) -> str:
    """Text from the suite, shown as code and never read as markup."""
    line = " ".join(visible(text).split())
    escaped = _MARKUP.sub(lambda match: f"&#{ord(match.group())};", _clip(line))
    return f"<code>{escaped}</code>"


def _more(shown: int, total: int, what: str) -> list[str]:
    """``... and 1 more failure``: ``what`` in the singular."""
    return [f"... and {count_of(total - shown, f'more {what}')}", ""] if total > shown else []


def _verdict(result: RunResult) -> str:
    if result.exitstatus == 0 and not result.failed_by:
        return "## ✅ batchflow: passed"
    if result.failed_by:
        return f"## ❌ batchflow: failed by {' and '.join(result.failed_by)}"
    return f"## ❌ batchflow: failed (exit status {result.exitstatus})"


def _counts(result: RunResult) -> str:
    counts = Counter(test.outcome for test in result.tests)
    # The batch table's order; other plugins' words follow, sorted.
    words = [*OUTCOME_ORDER, *sorted(set(counts) - set(OUTCOME_ORDER))]
    parts = [f"{counts[word]} {word}" for word in words if counts[word]]
    if result.deselected:
        parts.append(f"{result.deselected} deselected")
    errors = len(result.collection_errors)
    if errors:
        parts.append(count_of(errors, "collection error"))
    if skipped := len(result.collection) - errors:
        parts.append(f"{skipped} skipped while collecting")
    return f"**{count_of(len(result.tests), 'test')}**" + (f": {', '.join(parts)}" if parts else "")


def _times(result: RunResult) -> str:
    line = f"Duration {seconds(result.duration)}, makespan {seconds(result.makespan)}"
    if result.lower_bound is not None:
        line += f" (lower bound {seconds(result.lower_bound)}"
        if result.bound_ratio is not None:
            line += f", {result.bound_ratio:.2f}x"
        line += ")"
    return line


def _table(
    header: Sequence[str], numeric: Sequence[bool], rows: Iterable[Sequence[str]]
) -> list[str]:
    lines = [
        f"| {' | '.join(header)} |",
        f"|{'|'.join('---:' if right else '---' for right in numeric)}|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return [*lines, ""]


def _batches(batches: Sequence[BatchResult]) -> list[str]:
    """The terminal's table: the batches that have tests, the same columns in
    the same order (:func:`~pytest_batchflow.terminal.batch_rows`)."""
    batches = [batch for batch in batches if batch.tests]
    if not batches:
        return []
    header, rows = batch_rows(batches[:LIST_LIMIT], quote=_code)
    numeric = [False, False, *[True] * (len(header) - 3), False]
    return [
        "### Batches",
        "",
        *_table(header, numeric, rows),
        *_more(len(rows), len(batches), "batch"),
    ]


def _collection_errors(errors: Sequence[CollectionProblem]) -> list[str]:
    if not errors:
        return []
    lines = [f"### Collection errors ({len(errors)})", ""]
    for problem in errors[:LIST_LIMIT]:
        lines.append(f"- {_code(problem.nodeid)}: {_code(collection_error_line(problem))}")
    return [*lines, "", *_more(LIST_LIMIT, len(errors), "collection error")]


def _failures(tests: Sequence[TestResult]) -> list[str]:
    failing = [test for test in tests if test.outcome in _FAILING]
    if not failing:
        return []
    lines = [f"### Failures ({len(failing)})", ""]
    for test in failing[:LIST_LIMIT]:
        what = "error" if test.outcome == "error" else "failed"
        line = error_line(test.longrepr)
        lines.append(f"- {_code(test.nodeid)} ({what}): {_code(line)}")
    return [*lines, "", *_more(LIST_LIMIT, len(failing), "failure")]


def _flaky(tests: Sequence[TestResult]) -> list[str]:
    flaky = [test for test in tests if test.outcome == "flaky"]
    if not flaky:
        return []
    lines = [f"### Flaky tests ({len(flaky)})", ""]
    for test in flaky[:LIST_LIMIT]:
        first = test.attempts[0].longrepr if test.attempts else None
        failed = f", first failure: {_code(error_line(first))}" if first else ""
        lines.append(f"- {_code(test.nodeid)}: passed at attempt {len(test.attempts) + 1}{failed}")
    return [*lines, "", *_more(LIST_LIMIT, len(flaky), "flaky test")]


def _coverage(result: RunResult) -> list[str]:
    coverage = result.coverage
    if coverage is None:
        return []
    if coverage.problem is not None:
        return ["### Coverage", "", f"No figures: {_code(coverage.problem)}", ""]
    lines = [
        "### Coverage",
        "",
        f"Total: **{coverage.percent:.2f}%** ({coverage.covered} of {coverage.statements} "
        f"statements{', branches measured' if coverage.branch else ''})",
        "",
    ]
    for gate in coverage.gates[:LIST_LIMIT]:
        what = "total" if gate.batch is None else f"batch {_code(gate.batch)}"
        mark = "passed" if gate.passed else "**failed**"
        shown, limit = gate_figures(gate.actual, gate.threshold)
        lines.append(f"- {what}: {shown}%, at least {limit}% wanted: {mark}")
    if coverage.gates:
        lines += ["", *_more(LIST_LIMIT, len(coverage.gates), "gates")]
    if coverage.batches:
        rows = [
            [_code(b.name), f"{b.percent:.2f}%", str(b.covered), str(b.only)]
            for b in coverage.batches[:LIST_LIMIT]
        ]
        header = ["batch", "coverage", "statements", "only this batch"]
        lines += _table(header, [False, True, True, True], rows)
        lines += _more(len(rows), len(coverage.batches), "batches")
    return lines


def step_summary(result: RunResult, html_path: Path | None) -> str:
    """The run as GitHub-flavoured markdown, under :data:`SUMMARY_LIMIT` bytes."""
    lines = [_verdict(result), "", f"{_counts(result)}  ", _times(result), ""]
    lines += _batches(result.batches)
    lines += _collection_errors(result.collection_errors)
    lines += _failures(result.tests)
    lines += _flaky(result.tests)
    lines += _coverage(result)
    if html_path is not None:
        lines += [f"HTML report: {_code(str(html_path))}", ""]
    return "\n".join(lines)


def append_step_summary(result: RunResult, path: Path, html_path: Path | None) -> None:
    """Append the step summary to ``path`` (``GITHUB_STEP_SUMMARY``). Raises OSError."""
    with path.open("a", encoding="utf-8") as stream:
        # A blank line first: what the file already holds may not end its paragraph.
        stream.write("\n" + step_summary(result, html_path))


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _error_command(properties: list[str], title: str, first: str, longrepr: str | None) -> str:
    """A ``::error`` command: the error line, then the traceback's last lines."""
    properties.append(f"title={_escape_property(visible(title))}")
    lines = (longrepr or "").rstrip().splitlines()
    tail = [_clip(line, _ANNOTATION_LINE_CLIP) for line in lines[-_ANNOTATION_LINES:]]
    message = "\n".join([first, "", *tail]).rstrip()
    return f"::error {','.join(properties)}::{_escape_data(visible(message))}"


def _failing_line(paths: Sequence[str], longrepr: str | None) -> int | None:
    """The line of the test's file where the failure happened: the last entry
    of pytest's traceback in that file (the failing assert, the raise in a
    fixture of that file, the call into a library that raised). pytest writes
    an entry's place as ``path:line: ...`` (``--tb=long``, ``short``,
    ``line``) or ``File "path", line N`` (``native``), the path relative to
    the folder pytest ran in when that is shorter: ``paths`` are the file's
    possible spellings."""
    found = None
    for line in (longrepr or "").splitlines():
        stripped = line.strip().lstrip("|+ ")  # an exception group's box
        for path in paths:
            if stripped.startswith(f"{path}:"):
                number, colon, _ = stripped[len(path) + 1 :].partition(":")
                if colon and number.isdigit():
                    found = int(number)
            elif stripped.startswith(f'File "{path}", line '):
                number = stripped[len(path) + 14 :].split(",")[0]
                if number.isdigit():
                    found = int(number)
    return found


def _spellings(file: str, rootdir: str, cwd: Path | None) -> list[str]:
    """The test file as tracebacks may name it: relative to rootdir (its node
    id's), to the folder pytest ran in, and absolute."""
    absolute = Path(rootdir) / file
    spellings = [file, str(absolute)]
    if cwd is not None:
        with contextlib.suppress(ValueError):  # another drive on Windows
            spellings.append(os.path.relpath(absolute, cwd))
    return list(dict.fromkeys(spellings))


def _in_checkout(file: str, rootdir: str, workspace: str | None) -> str:
    """The file as GitHub names it: relative to the checkout when it is in it."""
    if workspace:
        # The folders resolved (a checkout reached through a link), the file's
        # "../" folded but not the file followed (a link to a file elsewhere).
        absolute = Path(os.path.normpath(Path(rootdir).resolve() / file))
        with contextlib.suppress(ValueError):  # outside it: as pytest names it
            return absolute.relative_to(Path(workspace).resolve()).as_posix()
    return file


def _annotation(test: TestResult, rootdir: str, cwd: Path | None, workspace: str | None) -> str:
    what = "errored" if test.outcome == "error" else "failed"
    properties = []
    if test.file is not None:
        file = _in_checkout(test.file, rootdir, workspace)
        properties.append(f"file={_escape_property(visible(file))}")
        paths = _spellings(test.file, rootdir, cwd)
        line = _failing_line(paths, test.longrepr) or test.line
        if line is not None:
            properties.append(f"line={line}")
    title = f"batchflow: {test.nodeid} {what}"
    return _error_command(properties, title, error_line(test.longrepr), test.longrepr)


def _collection_annotation(problem: CollectionProblem, rootdir: str, workspace: str | None) -> str:
    # A file where there is one: not a directory (its conftest.py), not an xdist worker.
    path = problem.nodeid.split("::")[0]
    is_file = bool(path) and (Path(rootdir) / path).is_file()
    file = _in_checkout(path, rootdir, workspace)
    properties = [f"file={_escape_property(visible(file))}"] if is_file else []
    title = f"batchflow: {problem.nodeid} could not be collected"
    return _error_command(properties, title, collection_error_line(problem), problem.longrepr)


def _call_failed(test: TestResult) -> bool:
    """Whether a call report of the test, in any attempt, failed (or was a rerun)."""
    phases = [*test.phases, *(phase for attempt in test.attempts for phase in attempt.phases)]
    return any(phase.when == "call" and phase.outcome in ("failed", "rerun") for phase in phases)


def annotations(
    result: RunResult,
    cwd: Path | None = None,
    workspace: str | None = None,
    failures: bool = True,
) -> list[str]:
    """Workflow commands for collection errors, then failed and errored tests: at most
    10 errors, then a warning. ``cwd``: the folder pytest ran in, which paths in
    tracebacks may be relative to; ``workspace``: the checkout (``GITHUB_WORKSPACE``),
    which the commands' paths are relative to; ``failures``: whether failed tests
    whose call failed are annotated (not when another plugin annotates failed
    calls); errored tests always are, and failed ones with no failed call (a
    crashed worker's)."""
    failing: list[CollectionProblem | TestResult] = [*result.collection_errors]
    failing += [
        test
        for test in result.tests
        if test.outcome in _FAILING
        and (failures or test.outcome == "error" or not _call_failed(test))
    ]
    rootdir = result.environment.rootdir
    commands = [
        _collection_annotation(item, rootdir, workspace)
        if isinstance(item, CollectionProblem)
        else _annotation(item, rootdir, cwd, workspace)
        for item in failing[:ANNOTATION_LIMIT]
    ]
    if len(failing) > ANNOTATION_LIMIT:
        more = count_of(len(failing) - ANNOTATION_LIMIT, "more failure")
        commands.append(f"::warning::batchflow: {more} not annotated (see the report)")
    return commands
