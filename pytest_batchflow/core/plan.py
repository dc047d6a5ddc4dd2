"""Batch assignment, batch and test ordering, and duration estimates."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from .graph import CycleError, TestSpec, find_cycle, stable_topological_order
from .markexpr import MarkerExpression

__all__ = [
    "DEFAULT_BATCH",
    "BatchPolicy",
    "BatchRule",
    "Plan",
    "PlanError",
    "PlannedBatch",
    "assign_batch",
    "assign_batches",
    "build_plan",
    "glob_matches",
    "glob_segments",
    "globs_matching_nothing",
    "order_batches",
]

DEFAULT_BATCH = "default"

Kind = Literal["test", "benchmark"]
Mode = Literal["parallel", "serial", "exclusive"]
UpstreamFailure = Literal["skip", "run"]


class PlanError(ValueError):
    """The configuration or the markers describe a plan that cannot run."""


class BatchPolicy(Protocol):
    """The execution policy of one batch, as parsed from its batch line."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def paths(self) -> tuple[str, ...]: ...
    @property
    def markers(self) -> str | None: ...
    @property
    def after(self) -> tuple[str, ...]: ...
    @property
    def mode(self) -> Mode: ...
    @property
    def workers(self) -> int | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def reruns(self) -> int | None: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def maxfail(self) -> int | None: ...
    @property
    def cov(self) -> bool: ...
    @property
    def cov_fail_under(self) -> float | None: ...
    @property
    def bench_fail(self) -> str | None: ...
    @property
    def on_upstream_failure(self) -> UpstreamFailure: ...


@lru_cache(maxsize=256)
def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(segment))


def _match_segments(pattern: Sequence[str], segments: Sequence[str]) -> bool:
    if not pattern:
        return not segments
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_segments(rest, segments[i:]) for i in range(len(segments) + 1))
    return (
        bool(segments)
        and _segment_regex(head).match(segments[0]) is not None
        and _match_segments(rest, segments[1:])
    )


def glob_segments(pattern: str) -> list[str]:
    """A ``paths`` glob's segments, as :func:`glob_matches` reads them (no empty or ``.`` ones)."""
    return [s for s in pattern.strip().strip("/").split("/") if s not in ("", ".")]


def glob_matches(pattern: str, relpath: str) -> bool:
    """Whether ``pattern`` matches the file ``relpath`` or any folder above it.

    Both are ``/``-separated and relative to rootdir; ``*`` and ``?`` stay
    within one path segment, ``**`` spans any number of segments; ``.`` is
    rootdir, above every file.
    """
    pattern_segments = glob_segments(pattern)
    if not pattern_segments:  # "." or "./": rootdir itself, above every file
        return bool(pattern.strip().strip("/"))
    segments = [s for s in relpath.split("/") if s not in ("", ".")]
    return any(
        _match_segments(pattern_segments, segments[:end]) for end in range(1, len(segments) + 1)
    )


def globs_matching_nothing(
    policies: Iterable[BatchPolicy], relpaths: Iterable[str]
) -> list[tuple[str, str]]:
    """``(batch, glob)`` for each ``paths`` glob that matches none of ``relpaths``
    (the collected tests' files), in the order of the lines."""
    files = set(relpaths)
    return [
        (policy.name, pattern)
        for policy in policies
        for pattern in policy.paths
        if not any(glob_matches(pattern, path) for path in files)
    ]


@dataclass(frozen=True)
class BatchRule:
    """A batch line compiled for matching tests."""

    name: str
    paths: tuple[str, ...]
    markers: MarkerExpression | None

    @classmethod
    def from_policy(cls, policy: BatchPolicy) -> BatchRule:
        markers = MarkerExpression.compile(policy.markers) if policy.markers else None
        return cls(policy.name, policy.paths, markers)

    def matches(self, test: TestSpec) -> bool:
        if not self.paths and self.markers is None:
            return False
        if self.paths and not any(glob_matches(p, test.path) for p in self.paths):
            return False
        return self.markers is None or self.markers.matches(test.marker_names)


def assign_batch(test: TestSpec, rules: Sequence[BatchRule]) -> str:
    """The ``batch`` marker wins, then the first matching line, else ``default``."""
    if test.batch_mark is not None:
        return test.batch_mark
    return next((rule.name for rule in rules if rule.matches(test)), DEFAULT_BATCH)


def assign_batches(tests: Iterable[TestSpec], rules: Sequence[BatchRule]) -> dict[int, str]:
    """Each test's batch, by index, as :func:`assign_batch` gives it.

    The answer depends on a test's file, markers and batch marker only, so
    the lines are matched once per such combination, not once per test (a
    module's parametrized tests share all three).
    """
    found: dict[tuple[str, frozenset[str], str | None], str] = {}
    batch_of: dict[int, str] = {}
    for test in tests:
        key = (test.path, test.marker_names, test.batch_mark)
        name = found.get(key)
        if name is None:
            name = found[key] = assign_batch(test, rules)
        batch_of[test.index] = name
    return batch_of


def order_batches(batches: Sequence[BatchPolicy]) -> list[BatchPolicy]:
    """Batches by their ``after`` DAG, then higher priority, then line order."""
    ranked = sorted(range(len(batches)), key=lambda i: (-batches[i].priority, i))
    names = [batches[i].name for i in ranked]
    by_name = {batch.name: batch for batch in batches}
    predecessors = {batch.name: batch.after for batch in batches}
    try:
        return [by_name[name] for name in stable_topological_order(names, predecessors)]
    except CycleError as cycle:
        raise PlanError(
            f"the batches' after= edges form a cycle: {cycle}; remove one of these edges"
        ) from None


@dataclass(frozen=True)
class PlannedBatch:
    policy: BatchPolicy
    tests: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.policy.name


@dataclass(frozen=True)
class Plan:
    """The run: batches in order, each with its tests in order, and estimates.

    ``predecessors`` holds every dependency edge of a planned test;
    ``external`` the subset whose target is not planned to run (deselected
    or in a batch left out of the selection).
    """

    batches: tuple[PlannedBatch, ...]
    batch_of: Mapping[int, str]
    predecessors: Mapping[int, tuple[int, ...]]
    external: Mapping[int, tuple[int, ...]]
    estimates: Mapping[int, float]
    measured: frozenset[int]

    @property
    def order(self) -> list[int]:
        return [index for batch in self.batches for index in batch.tests]

    @property
    def edge_count(self) -> int:
        return sum(len(preds) for preds in self.predecessors.values())

    @property
    def total_estimate(self) -> float:
        return sum(self.estimates.values())

    def batch(self, name: str) -> PlannedBatch:
        return next(batch for batch in self.batches if batch.name == name)

    def batch_estimate(self, name: str) -> float:
        return sum(self.estimates.get(i, 0.0) for i in self.batch(name).tests)

    def critical_path(self) -> float:
        """The longest chain of test edges and batch ``after`` barriers."""
        finish: dict[int, float] = {}
        batch_finish: dict[str, float] = {}
        estimates, predecessors = self.estimates, self.predecessors
        for batch in self.batches:
            barrier = max((batch_finish.get(a, 0.0) for a in batch.policy.after), default=0.0)
            last = barrier
            # Plan order is topological, so every planned predecessor is done.
            # Most tests have none: they start at the barrier.
            for index in batch.tests:
                start = barrier
                for pred in predecessors.get(index, ()):
                    done = finish.get(pred)
                    if done is not None and done > start:
                        start = done
                end = finish[index] = start + estimates.get(index, 0.0)
                if end > last:
                    last = end
            batch_finish[batch.name] = last
        return max(batch_finish.values(), default=0.0)

    def remaining_paths(self, floor: float = 0.0) -> dict[int, float]:
        """For each test, the longest chain of work from its start to the end of the run.

        Test edges and batch ``after`` barriers both count; dispatching the test
        with the longest remaining path first is the critical-path rule.
        ``floor``: a test estimated below it adds nothing to the paths through
        it, so that tests whose paths differ only by such estimates (noise at
        that scale) weigh the same, also when a later batch waits on them all.
        """
        # Only tests with dependents have an entry (most tests have none).
        successors: dict[int, list[int]] = {}
        for index, preds in self.predecessors.items():
            for pred in preds:
                if pred in self.batch_of:
                    successors.setdefault(pred, []).append(index)
        downstream: dict[str, list[str]] = {batch.name: [] for batch in self.batches}
        for batch in self.batches:
            for upstream in batch.policy.after:
                if upstream in downstream:
                    downstream[upstream].append(batch.name)
        remaining: dict[int, float] = {}
        batch_head: dict[str, float] = {}
        estimates = self.estimates
        for batch in reversed(self.batches):
            barrier = max((batch_head[d] for d in downstream[batch.name]), default=0.0)
            for index in reversed(batch.tests):
                dependents = successors.get(index)
                after = max(remaining[s] for s in dependents) if dependents else 0.0
                own = estimates.get(index, 0.0)
                remaining[index] = (own if own >= floor else 0.0) + (
                    after if after > barrier else barrier
                )
            batch_head[batch.name] = max((remaining[i] for i in batch.tests), default=barrier)
        return remaining

    def lower_bound(self, workers: int = 1) -> float:
        """No schedule on ``workers`` workers can finish before this."""
        return max(self.total_estimate / max(workers, 1), self.critical_path())


def _upstream_of(name: str, batches: Sequence[BatchPolicy]) -> set[str]:
    """The batches ``name`` runs after, through its ``after`` edges and theirs."""
    after = {batch.name: batch.after for batch in batches}
    found: set[str] = set()
    waiting = list(after.get(name, ()))
    while waiting:
        upstream = waiting.pop()
        if upstream not in found:
            found.add(upstream)
            waiting.extend(after.get(upstream, ()))
    return found


def _module_runs(order: Sequence[int], by_index: Mapping[int, TestSpec]) -> dict[int, int]:
    """Each test's run of neighbours from one module, numbered in ``order``.

    The groups that keep a dependency pulled forward beside its module's other
    tests (and the module's fixtures set up once). Runs, not modules: where
    pytest (or a plugin) has interleaved modules, as it does to set up a
    parametrized session-scoped fixture once per parameter, that order stays.
    """
    runs: dict[int, int] = {}
    run = -1
    previous: str | None = None
    for index in order:
        module = by_index[index].module_id
        if module != previous:
            run += 1
            previous = module
        runs[index] = run
    return runs


def build_plan(
    tests: Sequence[TestSpec],
    batches: Sequence[BatchPolicy],
    batch_of: Mapping[int, str],
    predecessors: Mapping[int, tuple[int, ...]],
    run_order: Sequence[int],
    durations: Mapping[str, float],
) -> Plan:
    """Order the tests in ``run_order`` (indices, in the order pytest holds them).

    ``tests`` is the whole collection, deselected tests included, so that
    cycles and edges against batch order are found whatever the selection.
    Raises PlanError.
    """
    by_index = {test.index: test for test in tests}
    ordered = order_batches(batches)
    position = {batch.name: i for i, batch in enumerate(ordered)}

    for dependent, preds in predecessors.items():
        for pred in preds:
            early, late = batch_of[dependent], batch_of[pred]
            if position[late] > position[early]:
                if early in _upstream_of(late, ordered):
                    # after= on the early batch's line would close a cycle.
                    fix = f"move one of them ({late!r} runs after {early!r})"
                else:
                    fix = f"move one of them or add after={late} to the line of {early!r}"
                raise PlanError(
                    f"{by_index[dependent].nodeid} (batch {early!r}) depends on "
                    f"{by_index[pred].nodeid} (batch {late!r}), which runs later; {fix}"
                )
    cycle = find_cycle([test.index for test in tests], predecessors)
    if cycle is not None:
        path = " -> ".join(by_index[i].nodeid for i in cycle)
        raise PlanError(f"dependency cycle: {path}; remove one of these dependencies")

    planned = set(run_order)
    members: dict[str, list[int]] = {batch.name: [] for batch in ordered}
    for index in run_order:
        members[batch_of[index]].append(index)
    planned_list = []
    for batch in ordered:
        given = members[batch.name]
        runs = _module_runs(given, by_index)
        planned_list.append(
            PlannedBatch(batch, tuple(stable_topological_order(given, predecessors, runs)))
        )
    planned_batches = tuple(planned_list)
    planned_preds = {i: predecessors[i] for i in run_order if i in predecessors}
    external = {
        i: outside
        for i, preds in planned_preds.items()
        if (outside := tuple(p for p in preds if p not in planned))
    }
    measured = {i for i in run_order if by_index[i].nodeid in durations}
    known = [durations[by_index[i].nodeid] for i in measured]
    fallback = sum(known) / len(known) if known else 0.0
    estimates = {i: durations.get(by_index[i].nodeid, fallback) for i in run_order}
    return Plan(
        batches=planned_batches,
        batch_of={i: batch_of[i] for i in run_order},
        predecessors=planned_preds,
        external=external,
        estimates=estimates,
        measured=frozenset(measured),
    )
