"""The ``batchflow`` command: what the history store knows about tests.

``batchflow flaky`` lists tests by flakiness score with the evidence behind
each; ``batchflow history NODEID`` shows a test's recent attempts. Both read
the store pytest ``--batchflow`` writes (``.batchflow/history.sqlite`` by
default) and never write to it beyond bringing its schema up to date.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .core.flaky import DEFAULT_WINDOW, Flakiness, flakiness
from .history import HistoryError, HistoryStore

__all__ = ["main"]

DEFAULT_STORE = Path(".batchflow") / "history.sqlite"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchflow", description="Read pytest-batchflow's history of runs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    flaky = commands.add_parser("flaky", help="tests by flakiness score, with the evidence")
    flaky.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"recent runs per test the score looks at (default {DEFAULT_WINDOW})",
    )
    flaky.add_argument("--all", action="store_true", help="list tests scoring 0 too")
    history = commands.add_parser("history", help="a test's recent attempts")
    history.add_argument("nodeid", help="the test's node id, as pytest prints it")
    history.add_argument("--limit", type=int, default=20, help="attempts to show (default 20)")
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
    scores: list[tuple[str, Flakiness]] = [
        (nodeid, flakiness(records, window)) for nodeid, records in store.run_records().items()
    ]
    shown = sorted(
        ((nodeid, f) for nodeid, f in scores if everything or f.score > 0),
        key=lambda item: (-item[1].score, item[0]),
    )
    if not shown:
        return [f"no flaky tests in {len(scores)} tests with history (window {window} runs)"]
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
        "passed on a rerun; flip: outcome changed between two runs at the same commit; "
        "excluded: runs that were infrastructure failures or skipped",
    ]


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
                str(commit or "-")[:10],
                str(worker),
                str(outcome),
                f"{float(str(duration)):.3f}s",
                str(phase or "-"),
                str(digest or "-"),
            ]
        )
    return _table(rows, right=frozenset({0, 5}))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``batchflow`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    path: Path = args.history
    if not path.is_file():
        print(
            f"batchflow: no history store at {path}; run pytest --batchflow first, or give "
            "--history PATH",
            file=sys.stderr,
        )
        return 2
    try:
        store, warning = HistoryStore.open(path)
    except HistoryError as error:
        print(f"batchflow: {error}", file=sys.stderr)
        return 2
    if warning:
        print(f"batchflow: warning: {warning}", file=sys.stderr)
    try:
        if args.command == "flaky":
            lines = _flaky(store, args.window, args.all)
        else:
            lines = _history(store, args.nodeid, args.limit)
    finally:
        store.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
