"""The ``batchflow`` command: the history store, and reports from JSON results.

``batchflow flaky`` lists tests by flakiness score with the evidence behind
each; ``batchflow history NODEID`` shows a test's recent attempts. Both read
the store pytest ``--batchflow`` writes (``.batchflow/history.sqlite`` by
default) and never write to it beyond bringing its schema up to date.

``batchflow report RESULT.json... -o report.html`` renders the HTML report
from one JSON result (``--batchflow-json``) or from several merged (CI shards,
stages; see :func:`pytest_batchflow.report.merge.merge_results`), optionally
with the merged JSON and JUnit XML, and coverage recomputed from the runs'
coverage.py data files. Its exit code is the merged run's: 0 when everything
passed, 1 when tests failed; 2 for a missing or unusable input.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .core.flaky import DEFAULT_WINDOW, Flakiness, flakiness
from .files import output_problem, shared_file, why_not_written
from .history import HistoryError, HistoryStore

__all__ = ["main"]

DEFAULT_STORE = Path(".batchflow") / "history.sqlite"
DEFAULT_REPORT = Path("report.html")


#: The largest count a query takes (SQLite's integers are 64-bit).
_MOST = 2**63 - 1


def _count(text: str) -> int:
    """A whole number of at least 1 (``--window``, ``--limit``); any larger
    than SQLite takes counts as all."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return min(number, _MOST)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchflow",
        description="Read pytest-batchflow's history of runs; render reports from its results.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    flaky = commands.add_parser("flaky", help="tests by flakiness score, with the evidence")
    flaky.add_argument(
        "--window",
        type=_count,
        default=DEFAULT_WINDOW,
        help=f"recent runs per test the score looks at (default {DEFAULT_WINDOW})",
    )
    flaky.add_argument("--all", action="store_true", help="list tests scoring 0 too")
    history = commands.add_parser("history", help="a test's recent attempts")
    history.add_argument("nodeid", help="the test's node id, as pytest prints it")
    history.add_argument("--limit", type=_count, default=20, help="attempts to show (default 20)")
    report = commands.add_parser(
        "report",
        help="render the HTML report from JSON results, merging several (CI shards, stages)",
    )
    report.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULT.json",
        help="results written by pytest --batchflow-json; the later of two results with the "
        "same test wins",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_REPORT,
        metavar="PATH",
        help=f"the HTML report to write (default {DEFAULT_REPORT})",
    )
    report.add_argument("--json", type=Path, metavar="PATH", help="also write the merged result")
    report.add_argument("--junit", type=Path, metavar="PATH", help="also write JUnit XML")
    report.add_argument(
        "--coverage-data",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="coverage.py data files of the runs (each run's .batchflow/coverage/.coverage) to "
        "recompute the coverage from (after the results: it takes every name that follows), "
        "with coverage's reports beside the HTML report (in "
        "report-coverage/ for report.html); run it where the runs ran, or map their paths with "
        "coverage's [paths] setting",
    )
    for command in (flaky, history):
        command.add_argument(
            "--history",
            type=Path,
            default=DEFAULT_STORE,
            metavar="PATH",
            help=f"the history store (default {DEFAULT_STORE})",
        )
    return parser


def _table(rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _flaky(store: HistoryStore, window: int, everything: bool) -> list[str]:
    # Each test's runs back to the oldest its score counts: the whole history
    # of a long-lived store would be read for nothing.
    nodeids = store.nodeids()
    recent = store.recent_run_records(nodeids, window)
    scores: list[tuple[str, Flakiness]] = [
        (nodeid, flakiness(recent[nodeid], window)) for nodeid in nodeids if nodeid in recent
    ]
    shown = sorted(
        ((nodeid, f) for nodeid, f in scores if everything or f.score > 0),
        key=lambda item: (-item[1].score, item[0]),
    )
    if not shown:
        return [f"no flaky tests in {len(nodeids)} tests with history (window {window} runs)"]
    rows = [["score", "runs", "flaky runs", "flips", "excluded", "test"]]
    rows += [
        [
            f"{f.score:.2f}",
            str(f.runs),
            str(f.flaky_runs),
            f"{f.flips}/{f.pairs}",
            str(f.excluded),
            nodeid,
        ]
        for nodeid, f in shown
    ]
    return [
        *_table(rows, right=frozenset({0, 1, 2, 3, 4})),
        "",
        "score = (flaky runs + flips) / (runs + same-commit pairs); flaky run: failed, then "
        "passed on a rerun; flips N/M: of M pairs (a counted run and the previous counted run "
        "at the same commit), N whose outcome changed; "
        "excluded: runs in the window's span (back to the oldest counted run) that were "
        "infrastructure failures, skipped or xfailed",
    ]


def _short_commit(commit: object) -> str:
    """``0123456789`` for a commit, ``0123456+89ab`` for edits on it, ``-`` for none."""
    if not commit:
        return "-"
    head, edited, mark = str(commit).partition("+")
    return f"{head[:7]}+{mark[:4]}" if edited else head[:10]


def _history(store: HistoryStore, nodeid: str, limit: int) -> list[str]:
    attempts = store.attempts_of(nodeid, limit)
    if not attempts:
        return [f"no attempts of {nodeid} in the history"]
    rows = [["run", "started (UTC)", "commit", "worker", "outcome", "duration", "phase", "error"]]
    for run, started, commit, worker, outcome, duration, phase, digest in attempts:
        rows.append(
            [
                str(run),
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(str(started)))),
                _short_commit(commit),
                str(worker),
                str(outcome),
                f"{float(str(duration)):.3f}s",
                str(phase or "-"),
                str(digest or "-"),
            ]
        )
    return _table(rows, right=frozenset({0, 5}))


def _report(args: argparse.Namespace) -> int:
    from .coverage_report import coverage_lines
    from .report.merge import ResultFileError, labels_for, merge_results, read_result
    from .results import RunResult

    paths: list[Path] = args.results
    output: Path = args.output
    problem = _inputs_problem(paths) or _outputs_problem(
        [
            ("-o/--output", "html", output),
            ("--json", "json", args.json),
            ("--junit", "junit", args.junit),
        ],
        paths,
    )
    if problem is not None:
        print(f"batchflow: {problem}", file=sys.stderr)
        return 2
    try:
        results = [read_result(path) for path in paths]
        merged, notes = merge_results(
            list(zip(labels_for(paths), results, strict=True)),
            coverage_data=args.coverage_data,
            coverage_dir=output.with_name(f"{output.stem}-coverage"),
        )
    except ResultFileError as error:
        print(f"batchflow: {error}", file=sys.stderr)
        return 2
    for note in notes:
        _emit(f"batchflow: note: {note}")
    if args.coverage_data and merged.coverage is not None:
        _emit("\n".join(coverage_lines(merged.coverage)))
    from .report.html import write_html

    outputs: list[tuple[str, Path, Callable[[RunResult, Path], None]]] = [
        ("HTML report", output, write_html)
    ]
    if args.json is not None:
        outputs.append(("JSON result", args.json, RunResult.write))
    if args.junit is not None:
        from .report.junit import write_junit

        outputs.append(("JUnit XML", args.junit, write_junit))
    unwritten = False
    for what, path, write in outputs:  # one that cannot be written costs the others nothing
        try:
            write(merged, path)
        except OSError as error:
            why = why_not_written(error, path)
            print(f"batchflow: cannot write the {what} to {path}: {why}", file=sys.stderr)
            unwritten = True
        else:
            _emit(f"batchflow: {what}: {path}")
    if unwritten:
        return 2
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and len(results) > 1:
        # The merged run's summary, in the step that merges (a CI job after the
        # shards'); one result re-rendered appended its own when it ran. No
        # annotations: each run printed its own in its job.
        from .report.github import append_step_summary

        try:
            append_step_summary(merged, Path(summary), output)
        except OSError as error:  # as in a pytest run: a warning, the verdict stays
            print(
                f"batchflow: warning: cannot append the GitHub step summary to {summary}: {error}",
                file=sys.stderr,
            )
        else:
            _emit(f"batchflow: GitHub step summary: {summary}")
    return merged.exitstatus


def _inputs_problem(paths: list[Path]) -> str | None:
    """A result given twice (its tests would count as two shards')."""
    seen: dict[Path, Path] = {}
    for path in paths:
        first = seen.setdefault(path.resolve(), path)
        if first is not path:
            also = "" if str(first) == str(path) else f" (as {first} and {path})"
            return f"{path} is given twice{also}; give each result once"
    return None


def _outputs_problem(outputs: list[tuple[str, str, Path | None]], inputs: list[Path]) -> str | None:
    """What stops ``batchflow report`` from writing its outputs (option, kind,
    path; None for one not asked for), checked before any result is read: as
    in a run (:func:`~pytest_batchflow.files.output_problem`), each on a file
    of its own, none of them an input."""
    read = {path.resolve() for path in inputs}
    asked = [(option, kind, path) for option, kind, path in outputs if path is not None]
    for option, kind, path in asked:
        problem = output_problem(path, kind)
        if problem is not None:
            return f"{option}: {problem}"
        if path.resolve() in read:
            return f"{option}: {path} is also an input; write the outputs to other files"
    shared = shared_file((option, path) for option, _, path in asked)
    if shared is not None:
        other, option, path = shared
        return f"{option}: {path} is also the file of {other}; give each output a file of its own"
    return None


def _read_history(args: argparse.Namespace) -> int:
    path: Path = args.history
    if not path.exists():
        print(
            f"batchflow: no history store at {path}; run pytest --batchflow first, or give "
            "--history PATH",
            file=sys.stderr,
        )
        return 2
    try:
        # A damaged store stays as it is, for pytest to handle.
        store = HistoryStore.read(path, option="--history", staged=True)
    except HistoryError as error:
        print(f"batchflow: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "flaky":
            lines = _flaky(store, args.window, args.all)
        else:
            lines = _history(store, args.nodeid, args.limit)
    except sqlite3.DatabaseError as error:  # damage past what opening it read
        print(f"batchflow: cannot read history store {path}: {error}", file=sys.stderr)
        return 2
    finally:
        store.close()
    _emit("\n".join(lines))
    return 0


def _emit(text: str) -> None:
    """Print to stdout. A reader that stops early (``batchflow flaky | head``)
    had what it wanted: the command goes on (its files are written) and keeps
    its exit code, and nothing more goes to the closed pipe, at exit either."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchflow`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    return _report(args) if args.command == "report" else _read_history(args)


if __name__ == "__main__":
    sys.exit(main())
