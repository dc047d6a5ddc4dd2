"""Text for the terminal: the plan and the per-batch summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .core.graph import TestSpec
from .core.plan import Plan

if TYPE_CHECKING:
    from .results import BatchResult

__all__ = ["batch_table", "format_header", "format_plan", "seconds"]


def seconds(value: float) -> str:
    """A duration as the summaries print it: ``1.23s``."""
    return f"{value:.2f}s"


def _count(number: int, word: str) -> str:
    plural = {"batch": "batches", "dependency": "dependencies"}.get(word, f"{word}s")
    return f"{number} {word if number == 1 else plural}"


def _policy_words(plan: Plan, name: str) -> str:
    policy = plan.batch(name).policy
    words: list[str] = [policy.kind, policy.mode]
    for key in ("workers", "priority", "reruns", "timeout", "maxfail"):
        value = getattr(policy, key)
        if value not in (None, 0):
            words.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    if not policy.cov:
        words.append("cov=off")
    if policy.on_upstream_failure != "skip":
        words.append(f"on_upstream_failure={policy.on_upstream_failure}")
    return ", ".join(words)


def format_header(plan: Plan, what: str = "batchflow") -> str:
    """``batchflow: 4 batches, 42 tests, 5 dependencies``."""
    batches = sum(1 for batch in plan.batches if batch.tests)
    return (
        f"{what}: {_count(batches, 'batch')}, {_count(len(plan.order), 'test')}, "
        f"{_count(plan.edge_count, 'dependency')}"
    )


def format_plan(plan: Plan, specs: Mapping[int, TestSpec], workers: int) -> list[str]:
    """The plan as ``--batchflow-plan`` prints it."""
    batches = [batch for batch in plan.batches if batch.tests]
    known = bool(plan.measured)
    lines = [format_header(plan, "batchflow plan")]
    for number, batch in enumerate(batches, start=1):
        after = f" after {','.join(batch.policy.after)}" if batch.policy.after else ""
        estimate = f", est. {seconds(plan.batch_estimate(batch.name))}" if known else ""
        lines.append(
            f"[{number}] {batch.name} ({_policy_words(plan, batch.name)}){after}: "
            f"{_count(len(batch.tests), 'test')}{estimate}"
        )
        for index in batch.tests:
            line = f"    {specs[index].nodeid}"
            if known:
                line += f"  {seconds(plan.estimates[index])}"
                if index not in plan.measured:
                    line += " (average)"
            preds = plan.predecessors.get(index, ())
            if preds:
                line += "  <- " + ", ".join(specs[p].nodeid for p in preds)
            lines.append(line)
    if known:
        unknown = len(plan.order) - len(plan.measured)
        detail = f"history for {len(plan.measured)} of {_count(len(plan.order), 'test')}"
        if unknown:
            detail += f"; {unknown} counted at the average"
        lines.append(f"estimated duration: {seconds(plan.total_estimate)} ({detail})")
        lines.append(
            f"lower bound: {seconds(plan.lower_bound(workers))} on "
            f"{_count(workers, 'worker')} (critical path {seconds(plan.critical_path())})"
        )
    else:
        lines.append("estimated duration: unknown (no history yet; run once to measure)")
        lines.append("lower bound: unknown until the history has durations")
    return lines


_COLUMNS = ("batch", "kind", "tests", "passed", "failed", "skipped", "duration", "status")


def batch_table(batches: Sequence[BatchResult]) -> list[str]:
    """One row per batch; xpassed counts as passed, errors as failed, xfailed as skipped.

    ``flaky`` (failed, then passed on a rerun) and ``quarantined`` (failed, but
    quarantined) columns appear when a batch has such a test.
    """
    extras = [
        word for word in ("flaky", "quarantined") if any(b.outcomes.get(word) for b in batches)
    ]
    columns = list(_COLUMNS)
    columns[4:4] = extras
    rows = [columns]
    for batch in batches:
        o = batch.outcomes
        status = batch.status if batch.skip_reason is None else f"skipped: {batch.skip_reason}"
        row = [
            batch.name,
            batch.kind,
            str(batch.tests),
            str(o.get("passed", 0) + o.get("xpassed", 0)),
            str(o.get("failed", 0) + o.get("error", 0)),
            str(o.get("skipped", 0) + o.get("xfailed", 0)),
            seconds(batch.duration),
            status,
        ]
        row[4:4] = [str(o.get(word, 0)) for word in extras]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return lines
