"""Read what the planner needs from pytest items: ids, markers, dependencies."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

from .core.graph import DependencyMark, TestSpec
from .core.resources import parse_size

__all__ = ["ItemDescriber", "MarkerError"]

_DEPENDENCY_SCOPES = ("session", "package", "module", "class")


class MarkerError(ValueError):
    """A batchflow marker used with the wrong arguments; one line for the user."""


@lru_cache(maxsize=4096)  # one call per test, a few hundred files
def _relative_posix(path: Path, rootpath: Path) -> str:
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return path.as_posix()


class ItemDescriber:
    """Describes items; what their parents tell is worked out once per parent.

    A suite has many tests per module or class: the module, the class and the
    markers of the parent chain (what ``iter_markers`` walks for every test)
    are the same for all of them.
    """

    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath
        self._parents: dict[int, tuple[str | None, str | None, frozenset[str]]] = {}

    def _parent(self, node: pytest.Item) -> tuple[str | None, str | None, frozenset[str]]:
        """Module id, class id and marker names of ``node.parent`` and above."""
        parent = node.parent
        if parent is None:
            return None, None, frozenset()
        known = self._parents.get(id(parent))
        if known is None:
            module = parent.getparent(pytest.Module)
            cls = parent.getparent(pytest.Class)
            known = (
                module.nodeid if module is not None else None,
                cls.nodeid if cls is not None else None,
                frozenset(mark.name for mark in parent.iter_markers()),
            )
            self._parents[id(parent)] = known
        return known

    def describe(self, index: int, item: pytest.Item) -> TestSpec:
        module_id, class_id, parent_names = self._parent(item)
        # The marker readers run only for markers present.
        own = [mark.name for mark in item.own_markers]
        names = parent_names.union(own) if own else parent_names
        return TestSpec(
            index=index,
            nodeid=item.nodeid,
            module_id=module_id if module_id is not None else item.nodeid.split("::")[0],
            class_id=class_id,
            name=item.name,
            base_name=getattr(item, "originalname", item.name),
            path=_relative_posix(item.path, self.rootpath),
            marker_names=names,
            batch_mark=_batch_mark(item) if "batch" in names else None,
            depends_on=_depends_on(item) if "depends_on" in names else (),
            dependency=_dependency_mark(item) if "dependency" in names else None,
        )


def _batch_mark(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("batch")
    if mark is None:
        return None
    name = mark.args[0] if len(mark.args) == 1 and not mark.kwargs else mark.kwargs.get("name")
    if not isinstance(name, str) or not name or len(mark.args) + len(mark.kwargs) != 1:
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.batch takes one batch name, "
            f'e.g. @pytest.mark.batch("db"); got {_show_args(mark)}'
        )
    return name


def string_arguments(item: pytest.Item, marker: str, what: str, example: str) -> tuple[str, ...]:
    """The names given to every ``marker`` on the item, in order, without repeats."""
    names: list[str] = []
    for mark in item.iter_markers(marker):
        if mark.kwargs or not mark.args or not all(isinstance(a, str) and a for a in mark.args):
            raise MarkerError(
                f"{item.nodeid}: @pytest.mark.{marker} takes {what}, "
                f"e.g. @pytest.mark.{marker}({example}); got {_show_args(mark)}"
            )
        names.extend(mark.args)
    return tuple(dict.fromkeys(names))


def rerun_budget(item: pytest.Item) -> int | None:
    """The ``@pytest.mark.reruns(N)`` closest to the test, if any."""
    mark = item.get_closest_marker("reruns")
    if mark is None:
        return None
    count = mark.args[0] if len(mark.args) == 1 and not mark.kwargs else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.reruns takes one whole number of reruns (0 or more), "
            f"e.g. @pytest.mark.reruns(2); got {_show_args(mark)}"
        )
    return count


def declared_needs(item: pytest.Item) -> tuple[int, int] | None:
    """``@pytest.mark.resources(memory="2GB", cpus=2)``: (bytes, cpus), None without it."""
    mark = item.get_closest_marker("resources")
    if mark is None:
        return None
    memory, cpus = mark.kwargs.get("memory", 0), mark.kwargs.get("cpus", 1)
    valid = not mark.args and set(mark.kwargs) <= {"memory", "cpus"}
    problem = ""
    try:
        size = parse_size(memory) if isinstance(memory, str) else memory
    except ValueError as error:
        valid, problem = False, f" ({error})"
    if (
        not valid
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(cpus, int)
        or isinstance(cpus, bool)
        or cpus < 1
    ):
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.resources takes memory=SIZE and cpus=N, "
            f'e.g. @pytest.mark.resources(memory="2GB", cpus=2); got {_show_args(mark)}{problem}'
        )
    return size, cpus


def _depends_on(item: pytest.Item) -> tuple[str, ...]:
    return string_arguments(item, "depends_on", "test names or node ids", '"test_login"')


def _dependency_mark(item: pytest.Item) -> DependencyMark | None:
    mark = item.get_closest_marker("dependency")
    if mark is None:
        return None
    name = mark.kwargs.get("name")
    depends = mark.kwargs.get("depends", ())
    scope = mark.kwargs.get("scope", "module")
    if isinstance(depends, str):
        depends = (depends,)
    valid = (
        (name is None or isinstance(name, str))
        and isinstance(depends, (list, tuple))
        and all(isinstance(target, str) for target in depends)
        and scope in _DEPENDENCY_SCOPES
    )
    if not valid:
        raise MarkerError(
            f"{item.nodeid}: @pytest.mark.dependency takes name=str, depends=[names] and "
            f"scope in {', '.join(_DEPENDENCY_SCOPES)}; got {_show_args(mark)}"
        )
    return DependencyMark(name=name, depends=tuple(depends), scope=scope)


def _show_args(mark: pytest.Mark) -> str:
    args = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    return f"({', '.join(args)})"
