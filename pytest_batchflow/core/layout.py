"""Where to draw each batch of the batch DAG: layers from left to right.

A batch's layer is the length of the longest ``after`` chain leading to it,
so every edge points to a later layer. Within a layer, batches are ordered by
the mean position of the batches they come after (the barycentre heuristic),
which keeps most edges from crossing; ties keep the plan's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Placement", "layered_layout"]


@dataclass(frozen=True)
class Placement:
    """A node's layer (column, from 0) and its row within that layer (from 0)."""

    layer: int
    row: int


def layered_layout(
    nodes: Sequence[str], after: Mapping[str, Sequence[str]]
) -> dict[str, Placement]:
    """Place ``nodes`` (in plan order) given each one's predecessors.

    Predecessors that are not among ``nodes`` are ignored; the graph must be
    acyclic (the plan refuses cycles long before a report is drawn).
    """
    known = set(nodes)
    preds = {node: [p for p in after.get(node, ()) if p in known] for node in nodes}
    layer: dict[str, int] = {}

    def layer_of(node: str) -> int:
        if node not in layer:
            layer[node] = 1 + max((layer_of(p) for p in preds[node]), default=-1)
        return layer[node]

    for node in nodes:
        layer_of(node)
    placement: dict[str, Placement] = {}
    position = {node: index for index, node in enumerate(nodes)}
    for depth in range(max(layer.values(), default=-1) + 1):
        members = [node for node in nodes if layer[node] == depth]

        def barycentre(node: str) -> float:
            rows = [placement[p].row for p in preds[node]]
            return sum(rows) / len(rows) if rows else float(position[node])

        members.sort(key=lambda node: (barycentre(node), position[node]))
        for row, node in enumerate(members):
            placement[node] = Placement(depth, row)
    return placement
