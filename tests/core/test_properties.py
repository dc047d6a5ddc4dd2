"""Hypothesis properties of the graph algorithms and of the plan built on them."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import pytest
from core_policy import Policy
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.graph import (
    CycleError,
    TestSpec,
    find_cycle,
    stable_topological_order,
)
from pytest_batchflow.core.plan import Plan, build_plan, order_batches

# database=None: failures are reproduced from the printed example, and the run
# leaves no .hypothesis folder behind in the checkout.
MODEST = settings(max_examples=200, deadline=None, database=None)


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


def assert_is_cycle(cycle: Sequence[int] | None, dag: Dag) -> None:
    assert cycle is not None
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a cycle visits each node once"
    for dependent, pred in zip(cycle, cycle[1:]):
        assert pred in dag.predecessors.get(dependent, ())


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
    for first, second in zip(order, order[1:]):
        if given_position[second] < given_position[first]:
            assert first in dag.predecessors.get(second, ())


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
    assert_is_cycle(find_cycle(dag.nodes, dag.predecessors), dag)


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
    dag = draw(dags())
    batches = draw(batch_lines())
    ordered = order_batches(batches)
    # Lower labels get batches no later than higher labels, so that every edge
    # (which points to a lower label) agrees with the batch order.
    ranks = sorted(draw(st.lists(st.integers(0, len(ordered) - 1), min_size=len(dag.nodes), max_size=len(dag.nodes))))
    batch_of = {label: ordered[rank].name for label, rank in enumerate(ranks)}
    tests = [TestSpec.from_nodeid(label, f"tests/test_{label}.py::test_{label}") for label in dag.nodes]
    selected = [label for label in dag.nodes if draw(st.booleans())]
    run_order = list(draw(st.permutations(selected)))
    durations = {
        test.nodeid: duration
        for test in tests
        if (duration := draw(st.none() | st.floats(0.0, 100.0))) is not None
    }
    return Scenario(tests, batches, batch_of, dag.predecessors, run_order, durations)


@MODEST
@given(scenarios())
def test_plan_runs_each_selected_test_once(scenario: Scenario) -> None:
    plan = scenario.plan()
    assert sorted(plan.order) == sorted(scenario.run_order)
    assert len(set(plan.order)) == len(plan.order)
    assert set(plan.batch_of) == set(scenario.run_order)
    for batch in plan.batches:
        for index in batch.tests:
            assert plan.batch_of[index] == batch.name == scenario.batch_of[index]


@MODEST
@given(scenarios())
def test_plan_order_respects_every_edge(scenario: Scenario) -> None:
    plan = scenario.plan()
    position = {index: i for i, index in enumerate(plan.order)}
    for dependent, preds in scenario.predecessors.items():
        for pred in preds:
            if dependent in position and pred in position:
                assert position[pred] < position[dependent]


@MODEST
@given(scenarios())
def test_plan_order_respects_every_batch_after_edge(scenario: Scenario) -> None:
    plan = scenario.plan()
    batch_position = {batch.name: i for i, batch in enumerate(plan.batches)}
    assert set(batch_position) == {policy.name for policy in scenario.batches}
    position = {index: i for i, index in enumerate(plan.order)}
    for batch in plan.batches:
        for upstream in batch.policy.after:
            assert batch_position[upstream] < batch_position[batch.name]
            for before in plan.batch(upstream).tests:
                for after in batch.tests:
                    assert position[before] < position[after]


@MODEST
@given(scenarios())
def test_external_edges_are_exactly_those_to_unselected_tests(scenario: Scenario) -> None:
    plan = scenario.plan()
    selected = set(scenario.run_order)
    expected = {
        dependent: outside
        for dependent, preds in scenario.predecessors.items()
        if dependent in selected and (outside := tuple(p for p in preds if p not in selected))
    }
    assert plan.external == expected


def reference_critical_path(plan: Plan) -> float:
    """The longest path through test edges and batch barriers, by plain recursion."""
    tests_of = {batch.name: batch.tests for batch in plan.batches}
    after_of = {batch.name: batch.policy.after for batch in plan.batches}
    batch_of = plan.batch_of

    @cache
    def batch_end(name: str) -> float:
        barrier = max((batch_end(a) for a in after_of[name] if a in after_of), default=0.0)
        return max([barrier, *(test_end(i) for i in tests_of[name])])

    @cache
    def test_end(index: int) -> float:
        starts = [batch_end(a) for a in after_of[batch_of[index]] if a in after_of]
        starts += [test_end(p) for p in plan.predecessors.get(index, ()) if p in batch_of]
        return max(starts, default=0.0) + plan.estimates[index]

    return max((batch_end(name) for name in tests_of), default=0.0)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@MODEST
@given(scenarios())
def test_critical_path_is_the_longest_chain_of_edges_and_barriers(scenario: Scenario) -> None:
    plan = scenario.plan()
    assert close(plan.critical_path(), reference_critical_path(plan))


@MODEST
@given(scenarios())
def test_critical_path_lies_between_the_longest_test_and_the_total(scenario: Scenario) -> None:
    plan = scenario.plan()
    critical = plan.critical_path()
    total = plan.total_estimate
    assert critical <= total or close(critical, total)
    longest = max(plan.estimates.values(), default=0.0)
    assert critical >= longest or close(critical, longest)


@MODEST
@given(scenarios())
def test_lower_bound_never_grows_with_more_workers(scenario: Scenario) -> None:
    plan = scenario.plan()
    bounds = [plan.lower_bound(workers) for workers in range(1, 12)]
    for fewer, more in zip(bounds, bounds[1:]):
        assert more <= fewer
    assert close(bounds[0], max(plan.total_estimate, plan.critical_path()))
    assert all(bound >= plan.critical_path() for bound in bounds)
