"""The batch DAG's layout: every edge points right, no two boxes share a place."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.layout import Placement, layered_layout


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    count = draw(st.integers(0, 12))
    nodes = [f"b{i}" for i in range(count)]
    after = {
        node: [nodes[j] for j in draw(st.sets(st.integers(0, i - 1))) if j < i] if i else []
        for i, node in enumerate(nodes)
    }
    return nodes, after


@given(dags())
def test_every_edge_goes_to_a_later_layer_and_places_are_unique(
    dag: tuple[list[str], dict[str, list[str]]],
) -> None:
    nodes, after = dag
    placed = layered_layout(nodes, after)
    assert set(placed) == set(nodes)
    for node, predecessors in after.items():
        for before in predecessors:
            assert placed[before].layer < placed[node].layer
    assert len(set(placed.values())) == len(nodes)
    # Rows of a layer are 0..k-1: no gaps in a column.
    for layer in {p.layer for p in placed.values()}:
        rows = sorted(p.row for p in placed.values() if p.layer == layer)
        assert rows == list(range(len(rows)))


def test_a_chain_is_one_row_and_a_fork_two() -> None:
    placed = layered_layout(
        ["smoke", "unit", "integration", "perf"],
        {"unit": ["smoke"], "integration": ["unit"], "perf": ["unit"]},
    )
    assert placed == {
        "smoke": Placement(0, 0),
        "unit": Placement(1, 0),
        "integration": Placement(2, 0),
        "perf": Placement(2, 1),
    }


def test_unknown_predecessors_are_ignored() -> None:
    assert layered_layout(["unit"], {"unit": ["smoke"]}) == {"unit": Placement(0, 0)}
