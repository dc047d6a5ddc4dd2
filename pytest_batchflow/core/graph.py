"""Tests, their dependency edges, and the graph algorithms the plan needs.

Nodes are plain hashable values (collection indices for tests, names for
batches); edges are given as ``predecessors[node] = the nodes it depends on``.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

__all__ = [
    "CycleError",
    "DependencyMark",
    "Resolution",
    "TestSpec",
    "UnresolvedTarget",
    "find_cycle",
    "resolve_dependencies",
    "stable_topological_order",
    "unmarked_namesake",
]

N = TypeVar("N", bound=Hashable)
#: No group emitted yet (a group may be named None).
_NO_GROUP = object()

DependencyScope = Literal["session", "package", "module", "class"]


class CycleError(ValueError):
    """The edges contain a cycle; ``cycle`` lists it, first node repeated last."""

    def __init__(self, cycle: Sequence[Hashable]) -> None:
        super().__init__(" -> ".join(str(node) for node in cycle))
        self.cycle = list(cycle)


@dataclass(frozen=True)
class DependencyMark:
    """A pytest-dependency ``@pytest.mark.dependency(name=, depends=, scope=)``."""

    name: str | None = None
    depends: tuple[str, ...] = ()
    scope: DependencyScope = "module"


@dataclass(frozen=True, slots=True)
class TestSpec:
    """What the planner knows of one collected test; plain strings only.

    ``index`` is the position in the full collection (before deselection) and
    identifies the test everywhere in the core.
    """

    __test__ = False  # not a pytest test class, despite the name

    index: int
    nodeid: str
    module_id: str
    class_id: str | None
    name: str
    base_name: str
    path: str
    marker_names: frozenset[str] = frozenset()
    batch_mark: str | None = None
    depends_on: tuple[str, ...] = ()
    dependency: DependencyMark | None = None

    @classmethod
    def from_nodeid(cls, index: int, nodeid: str, **kwargs: object) -> TestSpec:
        """Derive module, class and names from a node id ``path::[Class::]name[params]``."""
        head = nodeid.partition("[")[0]
        parts = head.split("::")
        module_id = parts[0]
        class_id = "::".join(parts[:-1]) if len(parts) > 2 else None
        name = nodeid[len("::".join(parts[:-1])) + 2 :]
        return cls(
            index=index,
            nodeid=nodeid,
            module_id=module_id,
            class_id=class_id,
            name=name,
            base_name=parts[-1],
            path=module_id,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def base_nodeid(self) -> str:
        """The node id without its parametrization, shared by all instances."""
        return self.nodeid[: len(self.nodeid) - len(self.name) + len(self.base_name)]

    @property
    def name_in_module(self) -> str:
        return self.nodeid[len(self.module_id) + 2 :]

    @property
    def package_id(self) -> str:
        return self.module_id.rpartition("/")[0]


@dataclass(frozen=True)
class UnresolvedTarget:
    dependent: int
    target: str


@dataclass(frozen=True)
class Resolution:
    """Dependency edges by dependent index, and the targets no test matched."""

    predecessors: Mapping[int, tuple[int, ...]]
    unresolved: tuple[UnresolvedTarget, ...] = field(default=())

    @property
    def edge_count(self) -> int:
        return sum(len(targets) for targets in self.predecessors.values())


def resolve_dependencies(tests: Sequence[TestSpec]) -> Resolution:
    """Turn ``depends_on`` targets and pytest-dependency marks into edges."""
    by_nodeid: dict[str, list[TestSpec]] = {}
    for test in tests:
        by_nodeid.setdefault(test.nodeid, []).append(test)
        if test.base_nodeid != test.nodeid:
            by_nodeid.setdefault(test.base_nodeid, []).append(test)
    by_module: dict[str, list[TestSpec]] = {}
    for test in tests:
        by_module.setdefault(test.module_id, []).append(test)
    marked = [test for test in tests if test.dependency is not None]

    predecessors: dict[int, tuple[int, ...]] = {}
    unresolved: list[UnresolvedTarget] = []
    for test in tests:
        found: dict[int, None] = {}
        for target in test.depends_on:
            matches = _match_depends_on(test, target, by_nodeid, by_module)
            if not matches:
                unresolved.append(UnresolvedTarget(test.index, target))
            found.update(_edges(test, matches))
        if test.dependency is not None:
            for target in test.dependency.depends:
                matches = _match_dependency_mark(test, target, test.dependency.scope, marked)
                if not matches:
                    unresolved.append(UnresolvedTarget(test.index, target))
                # A mark naming its own test is left out, as before: pytest-dependency
                # would skip that test, and a usage error would break its suites.
                found.update(dict.fromkeys(m.index for m in matches if m.index != test.index))
        if found:
            predecessors[test.index] = tuple(found)
    return Resolution(predecessors, tuple(unresolved))


def _edges(test: TestSpec, matches: Sequence[TestSpec]) -> dict[int, None]:
    """The tests a target names, but the test itself: a parametrized test's
    base name names its other instances. A target that names only the test
    itself stays, a cycle of one, which the plan refuses as any cycle."""
    if len(matches) == 1 and matches[0].index == test.index:
        return {test.index: None}
    return dict.fromkeys(m.index for m in matches if m.index != test.index)


def _match_depends_on(
    test: TestSpec,
    target: str,
    by_nodeid: Mapping[str, list[TestSpec]],
    by_module: Mapping[str, list[TestSpec]],
) -> list[TestSpec]:
    matches = _match_as_written(test, target, by_nodeid, by_module)
    escaped = _escaped_parameters(target)
    if not matches and escaped is not None:
        return _match_as_written(test, escaped, by_nodeid, by_module)
    return matches


def _escaped_parameters(target: str) -> str | None:
    """The target with its parameter id as pytest writes it in node ids, where it
    differs: pytest escapes non-ASCII characters, backslashes and control
    characters there (``test_p[ä]`` is ``test_p[\\xe4]``), as
    ``_pytest.compat.ascii_escaped`` does."""
    name, bracket, parameters = target.partition("[")
    escaped = parameters.encode("unicode_escape").decode("ascii")
    if not bracket or escaped == parameters:
        return None
    return f"{name}[{escaped}"


def _match_as_written(
    test: TestSpec,
    target: str,
    by_nodeid: Mapping[str, list[TestSpec]],
    by_module: Mapping[str, list[TestSpec]],
) -> list[TestSpec]:
    if target in by_nodeid:
        return by_nodeid[target]
    siblings = by_module.get(test.module_id, [])
    # A parametrization id may itself hold "::"; only the part before it counts.
    if test.class_id is not None and "::" not in target.partition("[")[0]:
        in_class = [
            other
            for other in siblings
            if other.class_id == test.class_id and target in (other.name, other.base_name)
        ]
        if in_class:
            return in_class
    return [
        other for other in siblings if target in (other.name_in_module, _base_name_in_module(other))
    ]


def _base_name_in_module(test: TestSpec) -> str:
    return test.base_nodeid[len(test.module_id) + 2 :]


def _match_dependency_mark(
    test: TestSpec, target: str, scope: DependencyScope, marked: Sequence[TestSpec]
) -> list[TestSpec]:
    """pytest-dependency's naming: an explicit ``name=`` or the id within the scope."""
    matches = []
    for other in marked:
        assert other.dependency is not None
        if scope == "module" and other.module_id != test.module_id:
            continue
        if scope == "class" and (test.class_id is None or other.class_id != test.class_id):
            continue
        if scope == "package" and other.package_id != test.package_id:
            continue
        if other.dependency.name is not None:
            names: Collection[str] = (other.dependency.name,)
        elif scope == "module":
            names = (other.name_in_module,)
        elif scope == "class":
            names = (other.name,)
        else:
            names = (other.nodeid,)
        if target in names:
            matches.append(other)
    return matches


def unmarked_namesake(tests: Sequence[TestSpec], test: TestSpec, target: str) -> str | None:
    """The node id of a test that ``test``'s pytest-dependency target would name
    if that test had a ``@pytest.mark.dependency`` mark (pytest-dependency knows
    only marked tests by name), for the error of a target that matches none."""
    if test.dependency is None or target not in test.dependency.depends:
        return None
    unmarked = [
        replace(other, dependency=DependencyMark()) for other in tests if other.dependency is None
    ]
    matches = _match_dependency_mark(test, target, test.dependency.scope, unmarked)
    return matches[0].nodeid if matches else None


def find_cycle(nodes: Iterable[N], predecessors: Mapping[N, Collection[N]]) -> list[N] | None:
    """Return one cycle as a path ``[a, b, ..., a]`` (a depends on b ...), or None."""
    state: dict[N, int] = {}  # 1 = on the current path, 2 = finished
    for root in nodes:
        if state.get(root) or not predecessors.get(root):
            # A node that depends on nothing is on no cycle; a walk from
            # another node still passes through it (usually: most tests).
            continue
        path: list[N] = [root]
        iterators = [iter(predecessors.get(root, ()))]
        state[root] = 1
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            mark = state.get(nxt)
            if mark == 1:
                return [*path[path.index(nxt) :], nxt]
            if mark is None:
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(predecessors.get(nxt, ())))
    return None


def stable_topological_order(
    nodes: Sequence[N],
    predecessors: Mapping[N, Collection[N]],
    group: Mapping[N, Hashable] | None = None,
) -> list[N]:
    """Order ``nodes`` so every node follows its predecessors.

    Among the nodes ready at each step the one earliest in ``nodes`` goes
    first, so the given order is kept wherever no edge forces otherwise: two
    neighbours end up out of the given order only when the second depends on
    the first. With ``group`` (a test's module, say), a ready node of the
    group just emitted goes before the others, so that a dependency pulled
    forward does not split its group: then neighbours may also be out of the
    given order when they share a group. Predecessors outside ``nodes`` are
    ignored. Raises CycleError.
    """
    position = {node: i for i, node in enumerate(nodes)}
    if not any(
        node in position and any(p in position for p in preds)
        for node, preds in predecessors.items()
    ):
        return _grouped(nodes, group)  # no edge among them (most suites): no search
    return _topological_order(nodes, predecessors, group, position)


def _grouped(nodes: Sequence[N], group: Mapping[N, Hashable] | None) -> list[N]:
    """What :func:`_topological_order` gives where no node depends on another:
    each group whole, in the order of its first node, its nodes in their order."""
    if group is None:
        return list(nodes)
    groups: dict[Hashable, list[N]] = {}
    for node in nodes:
        groups.setdefault(group[node], []).append(node)
    return [node for members in groups.values() for node in members]


def _topological_order(
    nodes: Sequence[N],
    predecessors: Mapping[N, Collection[N]],
    group: Mapping[N, Hashable] | None,
    position: Mapping[N, int],
) -> list[N]:
    """Kahn's algorithm with :func:`stable_topological_order`'s tie rules."""
    waiting = {
        node: sum(1 for p in set(predecessors.get(node, ())) if p in position) for node in nodes
    }
    successors: dict[N, list[N]] = {node: [] for node in nodes}
    for node in nodes:
        for pred in set(predecessors.get(node, ())):
            if pred in position:
                successors[pred].append(node)
    ready = [position[node] for node in nodes if waiting[node] == 0]
    heapq.heapify(ready)
    ready_in: dict[Hashable, list[int]] = {}
    if group is not None:
        for index in ready:
            heapq.heappush(ready_in.setdefault(group[nodes[index]], []), index)
    emitted: set[int] = set()

    def earliest(heap: list[int]) -> int | None:
        while heap and heap[0] in emitted:  # taken already through the other heap
            heapq.heappop(heap)
        return heapq.heappop(heap) if heap else None

    order: list[N] = []
    current: Hashable = _NO_GROUP
    while True:
        found = earliest(ready_in.get(current, [])) if group is not None else None
        if found is None:
            found = earliest(ready)
        if found is None:
            break
        index = found
        emitted.add(index)
        node = nodes[index]
        order.append(node)
        if group is not None:
            current = group[node]
        for succ in successors[node]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, position[succ])
                if group is not None:
                    heapq.heappush(ready_in.setdefault(group[succ], []), position[succ])
    if len(order) != len(nodes):
        inside = {node: [p for p in predecessors.get(node, ()) if p in position] for node in nodes}
        cycle = find_cycle([node for node in nodes if waiting[node]], inside)
        assert cycle is not None
        raise CycleError(cycle)
    return order
