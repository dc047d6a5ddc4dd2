"""Text for the terminal: the plan and the per-batch summary table."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from .core.graph import TestSpec
from .core.plan import Plan
from .core.resources import KEPT_PER_TEST, budget_share, format_size
from .core.words import count_of

if TYPE_CHECKING:
    from .results import (
        BatchResult,
        CollectionProblem,
        ResourceResult,
        ResourcesResult,
        TestResult,
    )

__all__ = [
    "OUTCOME_ORDER",
    "batch_table",
    "format_header",
    "format_plan",
    "outcome_columns",
    "resource_lines",
    "seconds",
]

#: How many tests the resources summary names in each of its lists.
HEAVIEST = 3
#: The resources section appears when a test needed this much memory or CPU
#: time (or something went wrong: a limit, a leak, a test too large to share).
NOTABLE_MEMORY = 10 * 1024**2
NOTABLE_CPU = 1.0


def seconds(value: float) -> str:
    """A duration as the summaries print it: ``1.23s``."""
    return f"{value:.2f}s"


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
        f"{what}: {count_of(batches, 'batch')}, {count_of(len(plan.order), 'test')}, "
        f"{count_of(plan.edge_count, 'dependency')}"
    )


def format_plan(
    plan: Plan, specs: Mapping[int, TestSpec], workers: int, history: bool = True
) -> list[str]:
    """The plan as ``--batchflow-plan`` prints it; ``history``: whether a store
    was read (without one no estimate can be known)."""
    batches = [batch for batch in plan.batches if batch.tests]
    known = bool(plan.measured)
    lines = [format_header(plan, "batchflow plan")]
    for number, batch in enumerate(batches, start=1):
        after = f" after {','.join(batch.policy.after)}" if batch.policy.after else ""
        estimate = f", est. {seconds(plan.batch_estimate(batch.name))}" if known else ""
        lines.append(
            f"[{number}] {batch.name} ({_policy_words(plan, batch.name)}){after}: "
            f"{count_of(len(batch.tests), 'test')}{estimate}"
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
        detail = f"history for {len(plan.measured)} of {count_of(len(plan.order), 'test')}"
        if unknown:
            detail += f"; {unknown} counted at the average"
        lines.append(f"estimated duration: {seconds(plan.total_estimate)} ({detail})")
        lines.append(
            f"lower bound: {seconds(plan.lower_bound(workers))} on "
            f"{count_of(workers, 'worker')} (critical path {seconds(plan.critical_path())})"
        )
    else:
        why = (
            "no durations in the history yet: a test is timed when it passes"
            if history
            else "no history read: --batchflow-no-history, or the store could not be used"
        )
        lines.append(f"estimated duration: unknown ({why})")
        lines.append("lower bound: unknown until the history has durations")
    return lines


#: The batch table's counts, in its order, each with whether it shows only when
#: a batch has such a test: each outcome word has a column of its own.
_COUNTED = (
    ("passed", False),
    ("flaky", True),
    ("quarantined", True),
    ("failed", False),
    ("error", True),
    ("skipped", False),
    ("xfailed", True),
    ("xpassed", True),
)


#: The outcome words in the table's order (the GitHub summary counts them so too).
OUTCOME_ORDER = tuple(word for word, _ in _COUNTED)


def outcome_columns(batches: Sequence[BatchResult]) -> list[str]:
    """The outcome words the batch table counts: passed, failed and skipped
    always; flaky, quarantined, error, xfailed and xpassed when a batch has
    such a test."""
    return [
        word
        for word, optional in _COUNTED
        if not optional or any(batch.outcomes.get(word) for batch in batches)
    ]


#: How xdist words a worker's collection that differed from the first one's.
_DIFFERED = "Different tests were collected between"


def collection_line(collection: Sequence[CollectionProblem]) -> str | None:
    """What the batch table cannot show: files (or classes) skipped whole, or
    not collected, while collecting (they have no tests to put in a batch),
    and xdist workers whose collection differed."""
    if not collection:
        return None
    skipped = sum(1 for problem in collection if problem.outcome == "skipped")
    differed = sum(
        1 for problem in collection if problem.outcome == "error" and _DIFFERED in problem.longrepr
    )
    errors = len(collection) - skipped - differed
    parts = [f"{skipped} skipped"] if skipped else []
    parts += [f"{errors} could not be collected"] if errors else []
    parts += [f"{count_of(differed, 'worker')} collected other tests"] if differed else []
    return f"while collecting: {', '.join(parts)} (not in the table)"


def batch_rows(
    batches: Sequence[BatchResult], quote: Callable[[str], str] = str
) -> tuple[list[str], list[list[str]]]:
    """The batch table's header and rows, as text: a count for each outcome
    word of :func:`outcome_columns`.

    A batch that the run stopped in says how many of its tests have no
    result. ``quote`` wraps the suite's own words (a batch's name, a skip's
    reason).
    """
    counted = outcome_columns(batches)
    columns = ["batch", "kind", "tests", *counted, "duration", "status"]
    rows = []
    for batch in batches:
        o = batch.outcomes
        reason = batch.skip_reason
        status = batch.status if reason is None else f"skipped: {quote(reason)}"
        if batch.not_run:  # the run stopped (-x, Ctrl-C): those tests have no result
            status += f" ({batch.not_run} not run)"
        rows.append(
            [
                quote(batch.name),
                batch.kind,
                str(batch.tests),
                *(str(o.get(word, 0)) for word in counted),
                seconds(batch.duration),
                status,
            ]
        )
    return columns, rows


def batch_table(batches: Sequence[BatchResult]) -> list[str]:
    """One row per batch (:func:`batch_rows`), in aligned columns."""
    columns, body = batch_rows(batches)
    rows = [columns, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return lines


def _used(test: TestResult) -> ResourceResult:
    """A measured test's figures."""
    assert test.resources is not None
    return test.resources


def _leaders(ranked: list[TestResult], shown: Callable[[TestResult], tuple[float, str]]) -> str:
    """The first of ``ranked`` and those after it with at least a hundredth of
    its figure, each with its figure as ``shown`` gives it (the figure and its
    text); those shown as nothing (``0 B``, ``0.00s``) left out: a 0 B test
    beside a 100 MiB one is no news. Empty when none is left."""
    least = shown(ranked[0])[0] / 100 if ranked else 0
    kept = []
    for test in ranked:
        figure, text = shown(test)
        if figure and figure >= least and any(digit in text for digit in "123456789"):
            kept.append(f"{test.nodeid} ({text})")
    return ", ".join(kept)


def resource_lines(
    resources: ResourcesResult, tests: Sequence[TestResult], max_memory: str | None = None
) -> list[tuple[str, bool]]:
    """The resources summary: heaviest and busiest tests, budget, limit, leaks.

    ``max_memory``: the setting the budget came from, when it is a share of
    the memory available (then named: the figure changes from run to run).
    Each line with whether it reports a problem (a limit that fails tests).
    """
    # Nothing made per test is kept while the tests are gone through: on a
    # large suite, that many objects alive at once set off a full garbage
    # collection over the whole heap (0.65 s after 27,000 tests), which finds
    # nothing to free.
    measured = [t for t in tests if t.resources is not None]
    problems = bool(resources.alone or resources.over_limit or resources.leaks)
    notable = bool(measured) and (
        max(map(attrgetter("resources.memory"), measured)) >= NOTABLE_MEMORY
        or max(map(attrgetter("resources.cpu"), measured)) >= NOTABLE_CPU
    )
    if not measured or not (problems or notable):
        return []  # a suite of small tests: nothing worth a section
    heaviest = _leaders(
        heapq.nsmallest(HEAVIEST, measured, key=lambda t: (-_used(t).memory, t.nodeid)),
        lambda t: (_used(t).memory, format_size(_used(t).memory)),
    )
    busiest = _leaders(
        heapq.nsmallest(HEAVIEST, measured, key=lambda t: (-_used(t).cpu, t.nodeid)),
        lambda t: (_used(t).cpu, seconds(_used(t).cpu)),
    )
    lines = [
        (
            "memory: "
            + (f"heaviest tests {heaviest}; " if heaviest else "")
            + f"highest process peak {format_size(max(_used(t).peak_rss for t in measured))}",
            False,
        ),
        (
            f"CPU: {seconds(resources.cpu)} in {count_of(len(measured), 'test')}"
            + (f"; busiest {busiest}" if busiest else ""),
            False,
        ),
    ]
    if resources.budget is not None:
        share = budget_share(max_memory) if max_memory is not None else None
        lines.append(
            (
                f"memory budget: {format_size(resources.budget)}"
                + (f" ({share} of the memory available)" if share else "")
                + f" for the tests running at once; CPU budget: {resources.cpus} (the larger "
                "of the machine's CPUs and the workers)",
                False,
            )
        )
    for nodeid in resources.alone:
        lines.append((f"ran alone (needs more than the budget): {nodeid}", False))
    if resources.memory_limit is not None and resources.over_limit:
        memory = {t.nodeid: _used(t).memory for t in measured}
        over = ", ".join(f"{n} ({format_size(memory[n])})" for n in resources.over_limit)
        failed = any(t.memory_limit_exceeded and t.outcome == "error" for t in measured)
        lines.append(
            (f"over the memory limit of {format_size(resources.memory_limit)}: {over}", failed)
        )
    for leak in resources.leaks:
        culprits = ", ".join(f"{n} (+{format_size(kept)})" for n, kept in leak.culprits)
        allowed = resources.leak_threshold + KEPT_PER_TEST * leak.tests
        lines.append(
            (
                f"memory leak? worker {leak.worker} grew by {format_size(leak.growth)} over "
                f"{leak.tests} tests (threshold {format_size(resources.leak_threshold)} plus "
                f"{format_size(KEPT_PER_TEST)} a test: {format_size(allowed)})"
                + (f"; most by: {culprits}" if culprits else ""),
                False,
            )
        )
    return lines
