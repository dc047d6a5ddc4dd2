"""Hypothesis properties of the graph algorithms and of the plan built on them."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, TypeVar

import pytest
from core_policy import Policy
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.graph import (
    CycleError,
    TestSpec,
    find_cycle,
    stable_topological_order,
)
from pytest_batchflow.core.plan import Plan, build_plan, order_batches

T = TypeVar("T")

# database=None: a failure is reproduced from the printed example, not from a
# database local to one checkout. No explain phase: it costs more than the rest
# of a failing run, and the shrunk example already says what went wrong.
MODEST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


@dataclass(frozen=True)
class Dag:
    """Nodes in collection order; a node depends only on lower-labelled nodes."""

    nodes: list[int]
    predecessors: dict[int, tuple[int, ...]]

    def edges(self) -> Iterator[tuple[int, int]]:
        """(dependent, dependency) pairs."""
        for dependent, preds in self.predecessors.items():
            for pred in preds:
                yield dependent, pred


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 0, max_nodes: int = 12) -> Dag:
    count = draw(st.integers(min_nodes, max_nodes))
    predecessors: dict[int, tuple[int, ...]] = {}
    for node in range(1, count):
        preds = draw(st.lists(st.integers(0, node - 1), max_size=3, unique=True))
        if preds:
            predecessors[node] = tuple(preds)
    nodes = draw(st.permutations(range(count)))
    return Dag(list(nodes), predecessors)


def ancestors(node: int, predecessors: Mapping[int, Sequence[int]]) -> set[int]:
    seen: set[int] = set()
    stack = list(predecessors.get(node, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(predecessors.get(current, ()))
    return seen


@st.composite
def cyclic_dags(draw: st.DrawFn) -> Dag:
    """A DAG plus one back edge that closes a path (or a self-loop) into a cycle."""
    dag = draw(dags(min_nodes=1))
    start = draw(st.sampled_from(dag.nodes))
    closing = draw(st.sampled_from(sorted(ancestors(start, dag.predecessors) | {start})))
    predecessors = dict(dag.predecessors)
    predecessors[closing] = (*predecessors.get(closing, ()), start)
    return Dag(dag.nodes, predecessors)


def assert_is_cycle(cycle: Sequence[Hashable] | None, dag: Dag) -> None:
    assert cycle is not None
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"
    predecessors: Mapping[Any, Sequence[int]] = dag.predecessors
    for dependent, pred in pairwise(cycle):
        assert pred in predecessors.get(dependent, ())


@MODEST
@given(dags())
def test_topological_order_respects_every_edge(dag: Dag) -> None:
    order = stable_topological_order(dag.nodes, dag.predecessors)
    assert sorted(order) == sorted(dag.nodes)
    position = {node: i for i, node in enumerate(order)}
    for dependent, pred in dag.edges():
        assert position[pred] < position[dependent]


@MODEST
@given(dags())
def test_topological_order_keeps_the_given_order_unless_an_edge_forces_it(dag: Dag) -> None:
    given_position = {node: i for i, node in enumerate(dag.nodes)}
    order = stable_topological_order(dag.nodes, dag.predecessors)
    for first, second in pairwise(order):
        if given_position[second] < given_position[first]:
            assert first in dag.predecessors.get(second, ())


@MODEST
@given(dags(), st.integers(1, 4))
def test_grouped_order_leaves_a_group_only_when_none_of_it_is_ready(dag: Dag, groups: int) -> None:
    group = {node: node % groups for node in dag.nodes}
    order = stable_topological_order(dag.nodes, dag.predecessors, group)
    position = {node: i for i, node in enumerate(order)}
    assert sorted(order) == sorted(dag.nodes)
    for dependent, pred in dag.edges():
        assert position[pred] < position[dependent]
    for first, second in pairwise(order):
        if group[first] != group[second]:
            # Leaving a group: none of its nodes was ready any more.
            rest = [n for n in order[position[second] :] if group[n] == group[first]]
            assert all(
                any(position[p] >= position[second] for p in dag.predecessors.get(n, ()))
                for n in rest
            )


@MODEST
@given(st.integers(0, 20).flatmap(lambda n: st.permutations(range(n))))
def test_topological_order_without_edges_is_the_identity(nodes: list[int]) -> None:
    assert stable_topological_order(nodes, {}) == list(nodes)


@MODEST
@given(dags())
def test_acyclic_graph_has_no_cycle(dag: Dag) -> None:
    assert find_cycle(dag.nodes, dag.predecessors) is None


@MODEST
@given(cyclic_dags())
def test_planted_cycle_is_found(dag: Dag) -> None:
    cycle = find_cycle(dag.nodes, dag.predecessors)
    assert_is_cycle(cycle, dag)


@MODEST
@given(cyclic_dags())
def test_topological_order_refuses_a_cycle_and_names_it(dag: Dag) -> None:
    with pytest.raises(CycleError) as excinfo:
        stable_topological_order(dag.nodes, dag.predecessors)
    assert_is_cycle(excinfo.value.cycle, dag)


@dataclass(frozen=True)
class Scenario:
    """Everything build_plan takes, consistent with the batch order."""

    tests: list[TestSpec]
    batches: list[Policy]
    batch_of: dict[int, str]
    predecessors: dict[int, tuple[int, ...]]
    run_order: list[int]
    durations: dict[str, float]

    def plan(self) -> Plan:
        return build_plan(
            self.tests,
            self.batches,
            self.batch_of,
            self.predecessors,
            self.run_order,
            self.durations,
        )


@st.composite
def batch_lines(draw: st.DrawFn) -> list[Policy]:
    """Batches whose after= edges point to earlier-numbered ones, in random line order."""
    count = draw(st.integers(1, 4))
    policies = [
        Policy(
            f"b{number}",
            after=tuple(f"b{a}" for a in draw(st.lists(st.integers(0, number - 1), unique=True)))
            if number
            else (),
            priority=draw(st.integers(-2, 2)),
        )
        for number in range(count)
    ]
    return list(draw(st.permutations(policies)))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dag = draw(dags(max_nodes=10))
    count = len(dag.nodes)
    batches = draw(batch_lines())
    ordered = order_batches(batches)
    # Lower labels get batches no later than higher labels, so that every edge
    # (which points to a lower label) agrees with the batch order.
    ranks = sorted(draw(per_test(st.integers(0, len(ordered) - 1), count)))
    batch_of = {label: ordered[rank].name for label, rank in enumerate(ranks)}
    tests = [TestSpec.from_nodeid(label, f"t.py::test_{label}") for label in dag.nodes]
    chosen = draw(per_test(st.booleans(), count))
    run_order = draw(st.permutations([label for label in dag.nodes if chosen[label]]))
    history = draw(per_test(st.none() | st.floats(0.0, 100.0), count))
    durations = {
        f"t.py::test_{label}": duration
        for label, duration in enumerate(history)
        if duration is not None
    }
    return Scenario(tests, batches, batch_of, dag.predecessors, list(run_order), durations)


def per_test(values: st.SearchStrategy[T], count: int) -> st.SearchStrategy[list[T]]:
    return st.lists(values, min_size=count, max_size=count)


def reference_critical_path(plan: Plan) -> float:
    """The longest path through test edges and batch barriers, by plain recursion."""
    tests_of = {batch.name: batch.tests for batch in plan.batches}
    after_of = {batch.name: batch.policy.after for batch in plan.batches}

    @cache
    def batch_end(name: str) -> float:
        barrier = max((batch_end(a) for a in after_of[name] if a in after_of), default=0.0)
        return max([barrier, *(test_end(i) for i in tests_of[name])])

    @cache
    def test_end(index: int) -> float:
        starts = [batch_end(a) for a in after_of[plan.batch_of[index]] if a in after_of]
        starts += [test_end(p) for p in plan.predecessors.get(index, ()) if p in plan.batch_of]
        return max(starts, default=0.0) + plan.estimates[index]

    return max((batch_end(name) for name in tests_of), default=0.0)


def at_most(a: float, b: float) -> bool:
    return a <= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# The plan properties share one generated scenario per example: drawing a
# scenario costs more than checking it.


@MODEST
@given(scenarios())
def test_plan_order(scenario: Scenario) -> None:
    plan = scenario.plan()
    selected = set(scenario.run_order)

    assert sorted(plan.order) == sorted(scenario.run_order), "each selected test exactly once"
    position = {index: i for i, index in enumerate(plan.order)}
    for batch in plan.batches:
        for index in batch.tests:
            assert plan.batch_of[index] == batch.name == scenario.batch_of[index]

    for dependent, preds in scenario.predecessors.items():
        for pred in preds:
            if dependent in selected and pred in selected:
                assert position[pred] < position[dependent], (dependent, pred)

    batch_position = {batch.name: i for i, batch in enumerate(plan.batches)}
    assert set(batch_position) == {policy.name for policy in scenario.batches}
    for batch in plan.batches:
        for upstream in batch.policy.after:
            assert batch_position[upstream] < batch_position[batch.name]
            for before in plan.batch(upstream).tests:
                for after in batch.tests:
                    assert position[before] < position[after], (batch.name, upstream)

    assert plan.external == {
        dependent: outside
        for dependent, preds in scenario.predecessors.items()
        if dependent in selected and (outside := tuple(p for p in preds if p not in selected))
    }


@MODEST
@given(scenarios())
def test_plan_estimates(scenario: Scenario) -> None:
    plan = scenario.plan()
    critical = plan.critical_path()
    assert at_most(critical, plan.total_estimate), "critical path <= total estimate"
    assert at_most(max(plan.estimates.values(), default=0.0), critical), "longest test <= it"
    assert at_most(critical, reference_critical_path(plan))
    assert at_most(reference_critical_path(plan), critical)

    bounds = [plan.lower_bound(workers) for workers in range(1, 12)]
    for fewer, more in pairwise(bounds):
        assert more <= fewer, "lower bound does not grow with more workers"
    assert bounds[0] == max(plan.total_estimate, critical)
    assert all(bound >= critical for bound in bounds)
