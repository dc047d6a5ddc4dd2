"""What the collection tells the planner, in one serialisable record.

Serially the same process collects and plans. Under xdist the controller
does not collect: each worker writes its :class:`Analysis` as JSON into the
run directory, and the controller plans from that (DESIGN: metadata travels
by an explicit channel, never inside node ids).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .core.graph import DependencyMark, TestSpec, resolve_dependencies, unmarked_namesake
from .core.plan import (
    BatchRule,
    PlanError,
    assign_batches,
    glob_matches,
    glob_segments,
    globs_matching_nothing,
)
from .items import ItemDescriber, MarkerError, declared_needs, rerun_budget, string_arguments
from .settings import Settings

__all__ = ["Analysis", "analyse", "misspelt_paths", "release_nodes", "release_points"]


@dataclass(frozen=True)
class Analysis:
    """Every collected test (deselected ones too) and what the plan needs of it.

    ``kept`` are the indices pytest kept after ``-k``/``-m``/``--deselect``;
    ``run`` the ones to run (``kept`` within the selected batches), in the
    order pytest holds them; ``parents`` the node id of each test's parent,
    whose fixtures a worker keeps between tests; ``reruns`` the budget of
    each test with a ``reruns`` marker; ``locations`` pytest's location of
    each test batchflow may have to report without running it (a skip);
    ``needs`` the (memory bytes, cpus) a ``resources`` marker declares;
    ``skips_by_line`` those of the tests with a location whose skip pytest's
    short summary names by its line: their keywords hold ``pytestmark`` (marks
    decorate the function), where it folds the others' skips by file. An xdist
    controller's report of such a skip must say which it is. ``chains``: for
    each parent, the nodes from the session down to it (pytest's
    ``listchain``), each by a key of its depth and node id (see
    :func:`release_points`), where an xdist worker may stop tearing down
    after a test (see :class:`~pytest_batchflow.core.scheduler.Dispatcher`).
    ``order_classes``: the tests another plugin's ordering puts after the
    others of their batch on every process (pytest-django's transactional
    tests, which empty the worker's database), each with 1; the xdist
    scheduler sends none of them while a test of class 0 of that batch is
    ready to go (see :func:`_django_order_class`). ``follows_next_item``:
    the plugins and conftests that read the next item a test's teardown is
    given (see ``next_item_followers`` in the orchestrator), on a worker.
    """

    specs: tuple[TestSpec, ...]
    batch_of: dict[int, str]
    predecessors: dict[int, tuple[int, ...]]
    unresolved: dict[int, str]
    kept: tuple[int, ...]
    run: tuple[int, ...]
    parents: dict[int, str]
    locks: dict[int, frozenset[str]]
    locations: dict[int, tuple[str, int | None, str]]
    uses_dependency_marks: bool
    reruns: dict[int, int]
    needs: dict[int, tuple[int, int]]
    skips_by_line: frozenset[int]
    chains: dict[str, tuple[str, ...]]
    order_classes: dict[int, int] = field(default_factory=dict)
    follows_next_item: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        """Compact JSON: rows, not objects (only :meth:`from_json` reads it)."""
        document = [
            [_spec_row(spec) for spec in self.specs],
            list(self.batch_of.items()),
            list(self.predecessors.items()),
            list(self.unresolved.items()),
            self.kept,
            self.run,
            list(self.parents.items()),
            [(index, sorted(names)) for index, names in self.locks.items()],
            list(self.locations.items()),
            self.uses_dependency_marks,
            list(self.reruns.items()),
            [(index, list(wanted)) for index, wanted in self.needs.items()],
            sorted(self.skips_by_line),
            list(self.chains.items()),
            list(self.order_classes.items()),
            self.follows_next_item,
        ]
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Analysis:
        (
            specs,
            batch_of,
            predecessors,
            unresolved,
            kept,
            run,
            parents,
            locks,
            locations,
            uses_dependency_marks,
            reruns,
            needs,
            skips_by_line,
            chains,
            order_classes,
            follows_next_item,
        ) = json.loads(data)
        # Many tests carry the same marker names: one frozenset for each set.
        names: dict[tuple[str, ...], frozenset[str]] = {}
        return cls(
            specs=tuple(_spec_from_row(row, names) for row in specs),
            batch_of=dict(batch_of),
            predecessors={index: tuple(preds) for index, preds in predecessors},
            unresolved=dict(unresolved),
            kept=tuple(kept),
            run=tuple(run),
            parents=dict(parents),
            locks={index: frozenset(lock_names) for index, lock_names in locks},
            locations={
                index: (path, lineno, domain) for index, (path, lineno, domain) in locations
            },
            uses_dependency_marks=uses_dependency_marks,
            reruns=dict(reruns),
            needs={index: (memory, cpus) for index, (memory, cpus) in needs},
            skips_by_line=frozenset(skips_by_line),
            chains={parent: tuple(chain) for parent, chain in chains},
            order_classes=dict(order_classes),
            follows_next_item=tuple(follows_next_item),
        )

    def check(self, settings: Settings, narrowed: bool) -> None:
        """Refuse a dependency on an unknown target.

        ``narrowed``: the command line picked some tests (``file::test``, ``--lf``),
        so an unknown target may exist but not be collected: its dependents run
        without it rather than being refused. Cycles and edges against
        the batch order are refused by :func:`build_plan`, once, where the plan
        is made (the serial process, the xdist controller).
        """
        if self.unresolved and settings.missing_dependency == "error" and not narrowed:
            dependent, target = next(iter(self.unresolved.items()))
            namesake = unmarked_namesake(self.specs, self.specs[dependent], target)
            if namesake is not None:
                raise PlanError(
                    f"{self.specs[dependent].nodeid} depends on {target!r}, which matches no "
                    f"test marked @pytest.mark.dependency ({namesake} has no such mark); "
                    "mark it, or set batchflow_missing_dependency = skip"
                )
            raise PlanError(
                f"{self.specs[dependent].nodeid} depends on {target!r}, which matches no "
                "collected test; fix the name, select that test too, or set "
                "batchflow_missing_dependency = skip"
            )


def _spec_row(spec: TestSpec) -> list[Any]:
    mark = spec.dependency
    return [
        spec.index,
        spec.nodeid,
        spec.module_id,
        spec.class_id,
        spec.name,
        spec.base_name,
        spec.path,
        sorted(spec.marker_names),
        spec.batch_mark,
        spec.depends_on,
        None if mark is None else [mark.name, mark.depends, mark.scope],
    ]


def _spec_from_row(row: list[Any], names: dict[tuple[str, ...], frozenset[str]]) -> TestSpec:
    index, nodeid, module_id, class_id, name, base_name, path, markers, batch, depends, mark = row
    key = tuple(markers)
    marker_names = names.get(key)
    if marker_names is None:
        marker_names = names[key] = frozenset(key)
    return TestSpec(
        index=index,
        nodeid=nodeid,
        module_id=module_id,
        class_id=class_id,
        name=name,
        base_name=base_name,
        path=path,
        marker_names=marker_names,
        batch_mark=batch,
        depends_on=tuple(depends),
        dependency=None
        if mark is None
        else DependencyMark(name=mark[0], depends=tuple(mark[1]), scope=mark[2]),
    )


def _locks(item: pytest.Item) -> frozenset[str]:
    return frozenset(string_arguments(item, "locks", "lock names", '"db", "port-8080"'))


def _django_order_class(item: pytest.Item) -> int:
    """1 for a test pytest-django runs after the others (a transactional one), else 0.

    pytest-django sorts the collection as Django's runner does: tests in a
    transaction first, then transactional tests (``transactional_db``,
    ``live_server``, ``django_db(transaction=True)`` or ``reset_sequences``,
    ``TransactionTestCase``), whose teardown empties every table of the
    worker's test database: data that migrations or ``django_db_setup`` put
    there is gone for any test that comes after on that worker.
    """
    cls = getattr(item, "cls", None)
    test_module = sys.modules.get("django.test")
    if (
        cls is not None
        and test_module is not None
        and issubclass(cls, test_module.TransactionTestCase)
    ):
        return 0 if issubclass(cls, test_module.TestCase) else 1
    marker = item.get_closest_marker("django_db")
    if marker is not None and (
        marker.kwargs.get("transaction")
        or marker.kwargs.get("reset_sequences")
        or any(marker.args[:2])
    ):
        return 1
    names = getattr(item, "fixturenames", ())
    return 1 if "transactional_db" in names or "live_server" in names else 0


def analyse(
    collected: Sequence[pytest.Item], kept: Sequence[pytest.Item], settings: Settings, root: Path
) -> Analysis:
    """Describe ``collected`` (pytest's collection) given the ``kept`` subset.

    Raises MarkerError for a marker used wrongly or naming an unknown batch.
    """
    describer = ItemDescriber(root)
    specs = tuple(describer.describe(i, item) for i, item in enumerate(collected))
    position = {id(item): i for i, item in enumerate(collected)}
    policies = settings.policies
    known = {policy.name for policy in policies}
    rules = [BatchRule.from_policy(policy) for policy in policies]
    batch_of = assign_batches(specs, rules)
    for spec in specs:
        if batch_of[spec.index] not in known:
            raise MarkerError(
                f"{spec.nodeid}: @pytest.mark.batch({batch_of[spec.index]!r}) names an "
                f"unknown batch; known batches: {', '.join(sorted(known))}"
            )
    resolution = resolve_dependencies(specs)
    unresolved: dict[int, str] = {}
    for target in resolution.unresolved:
        unresolved.setdefault(target.dependent, target.target)
    kept_indices = tuple(position[id(item)] for item in kept)
    by_name = {policy.name: policy for policy in policies}
    whole_run = bool(settings.reruns or settings.probe)

    def reported_unrun(index: int) -> bool:
        """Whether batchflow may report the test without running it (skip, given-up rerun).

        Only those need their location (costly to compute for every test on
        every worker; pytest computes it anyway for the tests it runs).
        """
        policy = by_name[batch_of[index]]
        return bool(
            whole_run
            or resolution.predecessors.get(index)
            or index in unresolved
            or policy.after
            or policy.maxfail is not None
            or policy.timeout is not None
            or policy.reruns
            or "reruns" in specs[index].marker_names
        )

    selected = set(settings.select) if settings.select is not None else known
    unrun = [i for i in range(len(collected)) if reported_unrun(i)]
    return Analysis(
        specs=specs,
        batch_of=batch_of,
        predecessors=dict(resolution.predecessors),
        unresolved=unresolved,
        kept=kept_indices,
        run=tuple(i for i in kept_indices if batch_of[i] in selected),
        parents={
            i: item.parent.nodeid if item.parent is not None else ""
            for i, item in enumerate(collected)
        },
        locks={
            i: locks
            for i, item in enumerate(collected)
            if "locks" in specs[i].marker_names and (locks := _locks(item))
        },
        locations={i: collected[i].location for i in unrun},
        uses_dependency_marks=any(spec.dependency is not None for spec in specs),
        reruns={
            i: budget
            for i, item in enumerate(collected)
            if "reruns" in specs[i].marker_names and (budget := rerun_budget(item)) is not None
        },
        needs={
            i: needs
            for i, item in enumerate(collected)
            if "resources" in specs[i].marker_names and (needs := declared_needs(item)) is not None
        },
        skips_by_line=frozenset(i for i in unrun if "pytestmark" in collected[i].keywords),
        order_classes=(
            {i: 1 for i, item in enumerate(collected) if _django_order_class(item)}
            if collected and collected[0].config.pluginmanager.hasplugin("django")
            else {}
        ),
        chains=_chains(collected),
    )


def release_points(item: pytest.Item) -> dict[str, pytest.Collector | pytest.Session]:
    """The nodes above ``item``, the session first, down to its parent: where
    an xdist worker's release item may sit, each by a key of its depth and
    node id. The id alone is not enough: pytest gives a module outside the
    rootdir the session's id, ``""``."""
    return {
        f"{depth} {node.nodeid}": node  # type: ignore[misc]
        for depth, node in enumerate(item.listchain()[:-1])
    }


def release_nodes(items: Sequence[pytest.Item]) -> dict[str, pytest.Collector | pytest.Session]:
    """Every node above ``items`` by its :func:`release_points` key: where an
    xdist worker puts a release item."""
    nodes: dict[str, pytest.Collector | pytest.Session] = {}
    for item in _one_of_each_parent(items):
        nodes.update(release_points(item))
    return nodes


def _chains(items: Sequence[pytest.Item]) -> dict[str, tuple[str, ...]]:
    """Each parent's :func:`release_points`, as keys."""
    return {
        item.parent.nodeid if item.parent is not None else "": tuple(release_points(item))
        for item in _one_of_each_parent(items)
    }


def _one_of_each_parent(items: Sequence[pytest.Item]) -> Iterator[pytest.Item]:
    """The first item of each parent node id: the tests of a parent share its nodes."""
    seen: set[str] = set()
    for item in items:
        parent = item.parent.nodeid if item.parent is not None else ""
        if parent not in seen:
            seen.add(parent)
            yield item


#: Folders a ``paths`` glob is not looked for in (besides hidden ones): they
#: hold no tests of the project, and may hold a great many files.
_NOT_LOOKED_IN = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})
#: At most this many folders are listed looking for a glob: past it, say nothing.
_FOLDERS_LOOKED_IN = 5000


def _on_disk(root: Path, pattern: str) -> bool:
    """Whether a file or folder under ``root`` matches the ``paths`` glob, as
    batchflow matches globs (:func:`~pytest_batchflow.core.plan.glob_matches`).

    The walk starts at the glob's literal folders and leaves out hidden
    folders, virtualenvs and ``node_modules``; a tree too large to list in
    :data:`_FOLDERS_LOOKED_IN` folders counts as matching (no warning).
    """
    segments = glob_segments(pattern)
    literal = 0
    while literal < len(segments) and not any(c in segments[literal] for c in "*?["):
        literal += 1
    start = root.joinpath(*segments[:literal])
    if literal == len(segments):
        return start.exists()
    if not start.is_dir():
        return False
    for listed, (folder, folders, files) in enumerate(os.walk(start), 1):
        if listed > _FOLDERS_LOOKED_IN:
            return True
        here = Path(folder)
        folders[:] = [
            name
            for name in folders
            if not name.startswith(".")
            and name not in _NOT_LOOKED_IN
            and not (here / name / "pyvenv.cfg").exists()
        ]
        for name in (*folders, *files):
            if glob_matches(pattern, (here / name).relative_to(root).as_posix()):
                return True
    return False


def misspelt_paths(analysis: Analysis, settings: Settings, root: Path) -> list[str]:
    """A warning for each batch line's ``paths`` glob that names nothing on disk.

    Only globs that matched no collected test are looked up: a narrowed run
    (``pytest tests/unit``) leaves other lines' globs without tests, and their
    folders exist.
    """
    unmatched = globs_matching_nothing(settings.policies, {spec.path for spec in analysis.specs})
    return [
        f"batch {batch!r}: paths={pattern} matches no file or folder under {root} "
        "(paths are globs relative to rootdir)"
        for batch, pattern in unmatched
        if not _on_disk(root, pattern)
    ]
