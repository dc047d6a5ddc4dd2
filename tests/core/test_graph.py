"""Test ids, dependency resolution and the graph algorithms of the planner."""

from __future__ import annotations

import graphlib
from collections.abc import Hashable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.graph import (
    CycleError,
    DependencyMark,
    Resolution,
    TestSpec,
    UnresolvedTarget,
    _topological_order,
    find_cycle,
    resolve_dependencies,
    stable_topological_order,
)


def collect(*entries: str | tuple[str, dict[str, object]]) -> list[TestSpec]:
    """Specs in collection order; an entry is a node id or ``(nodeid, fields)``."""
    specs = []
    for index, entry in enumerate(entries):
        nodeid, fields = (entry, {}) if isinstance(entry, str) else entry
        specs.append(TestSpec.from_nodeid(index, nodeid, **fields))
    return specs


def resolve(*entries: str | tuple[str, dict[str, object]]) -> tuple[list[TestSpec], Resolution]:
    specs = collect(*entries)
    return specs, resolve_dependencies(specs)


def edges_by_nodeid(specs: Sequence[TestSpec], resolution: Resolution) -> dict[str, list[str]]:
    nodeid = {spec.index: spec.nodeid for spec in specs}
    return {
        nodeid[dependent]: [nodeid[pred] for pred in preds]
        for dependent, preds in resolution.predecessors.items()
    }


def unresolved_by_nodeid(
    specs: Sequence[TestSpec], resolution: Resolution
) -> list[tuple[str, str]]:
    nodeid = {spec.index: spec.nodeid for spec in specs}
    return [(nodeid[u.dependent], u.target) for u in resolution.unresolved]


def depends_on(*targets: str) -> dict[str, object]:
    return {"depends_on": targets}


def dependency(*depends: str, name: str | None = None, scope: str = "module") -> dict[str, object]:
    return {"dependency": DependencyMark(name=name, depends=depends, scope=scope)}  # type: ignore[arg-type]


class TestFromNodeid:
    def test_module_level_function(self) -> None:
        spec = TestSpec.from_nodeid(3, "tests/api/test_users.py::test_create")
        assert spec.index == 3
        assert spec.nodeid == "tests/api/test_users.py::test_create"
        assert spec.module_id == "tests/api/test_users.py"
        assert spec.path == "tests/api/test_users.py"
        assert spec.class_id is None
        assert spec.name == "test_create"
        assert spec.base_name == "test_create"
        assert spec.base_nodeid == spec.nodeid
        assert spec.name_in_module == "test_create"
        assert spec.package_id == "tests/api"

    def test_method_of_a_class(self) -> None:
        spec = TestSpec.from_nodeid(0, "tests/test_x.py::TestX::test_a")
        assert spec.module_id == "tests/test_x.py"
        assert spec.class_id == "tests/test_x.py::TestX"
        assert spec.name == "test_a"
        assert spec.base_name == "test_a"
        assert spec.name_in_module == "TestX::test_a"

    def test_method_of_a_nested_class(self) -> None:
        spec = TestSpec.from_nodeid(0, "test_x.py::TestOuter::TestInner::test_a")
        assert spec.module_id == "test_x.py"
        assert spec.class_id == "test_x.py::TestOuter::TestInner"
        assert spec.name == "test_a"
        assert spec.name_in_module == "TestOuter::TestInner::test_a"

    def test_parametrized_function(self) -> None:
        spec = TestSpec.from_nodeid(0, "tests/test_p.py::test_p[1-a]")
        assert spec.module_id == "tests/test_p.py"
        assert spec.class_id is None
        assert spec.name == "test_p[1-a]"
        assert spec.base_name == "test_p"
        assert spec.base_nodeid == "tests/test_p.py::test_p"
        assert spec.name_in_module == "test_p[1-a]"

    def test_parametrized_method(self) -> None:
        spec = TestSpec.from_nodeid(0, "test_p.py::TestP::test_p[x]")
        assert spec.class_id == "test_p.py::TestP"
        assert spec.name == "test_p[x]"
        assert spec.base_nodeid == "test_p.py::TestP::test_p"
        assert spec.name_in_module == "TestP::test_p[x]"

    @pytest.mark.parametrize(
        ("nodeid", "class_id", "name", "base_nodeid"),
        [
            ("m.py::test_p[a::b]", None, "test_p[a::b]", "m.py::test_p"),
            (
                "m.py::TestP::test_p[a::b::c]",
                "m.py::TestP",
                "test_p[a::b::c]",
                "m.py::TestP::test_p",
            ),
            ("m.py::test_p[x[::]y]", None, "test_p[x[::]y]", "m.py::test_p"),
        ],
    )
    def test_double_colon_inside_the_parameter_id(
        self, nodeid: str, class_id: str | None, name: str, base_nodeid: str
    ) -> None:
        spec = TestSpec.from_nodeid(0, nodeid)
        assert spec.module_id == "m.py"
        assert spec.class_id == class_id
        assert spec.name == name
        assert spec.base_name == "test_p"
        assert spec.base_nodeid == base_nodeid

    def test_module_at_rootdir_has_an_empty_package(self) -> None:
        assert TestSpec.from_nodeid(0, "test_top.py::test_a").package_id == ""

    def test_extra_fields_are_passed_through(self) -> None:
        spec = TestSpec.from_nodeid(
            0,
            "m.py::test_a",
            marker_names=frozenset({"db"}),
            batch_mark="db",
            depends_on=("test_b",),
        )
        assert spec.marker_names == {"db"}
        assert spec.batch_mark == "db"
        assert spec.depends_on == ("test_b",)


class TestDependsOn:
    def test_name_in_the_same_module(self) -> None:
        specs, resolution = resolve(
            "other.py::test_a",
            "m.py::test_a",
            ("m.py::test_b", depends_on("test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_b": ["m.py::test_a"]}
        assert resolution.unresolved == ()
        assert resolution.edge_count == 1

    def test_same_class_is_searched_first(self) -> None:
        specs, resolution = resolve(
            "m.py::test_a",
            "m.py::TestY::test_a",
            "m.py::TestX::test_a",
            ("m.py::TestX::test_b", depends_on("test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::TestX::test_b": ["m.py::TestX::test_a"]
        }

    def test_method_falls_back_to_a_module_level_function(self) -> None:
        specs, resolution = resolve(
            "m.py::test_setup",
            ("m.py::TestX::test_b", depends_on("test_setup")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::TestX::test_b": ["m.py::test_setup"]}

    def test_method_of_another_class_needs_the_class_name(self) -> None:
        specs, resolution = resolve(
            "m.py::TestY::test_a",
            ("m.py::TestX::test_b", depends_on("test_a")),
            ("m.py::TestX::test_c", depends_on("TestY::test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::TestX::test_c": ["m.py::TestY::test_a"]
        }
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::TestX::test_b", "test_a")]

    def test_class_and_name_inside_the_module(self) -> None:
        specs, resolution = resolve(
            "m.py::TestX::test_a",
            "n.py::TestX::test_a",
            ("m.py::test_c", depends_on("TestX::test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_c": ["m.py::TestX::test_a"]}

    def test_full_node_id_in_another_module(self) -> None:
        specs, resolution = resolve(
            "tests/api/test_users.py::test_create",
            "tests/api/test_users.py::TestLogin::test_ok",
            (
                "tests/ui/test_page.py::test_view",
                depends_on(
                    "tests/api/test_users.py::test_create",
                    "tests/api/test_users.py::TestLogin::test_ok",
                ),
            ),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "tests/ui/test_page.py::test_view": [
                "tests/api/test_users.py::test_create",
                "tests/api/test_users.py::TestLogin::test_ok",
            ]
        }

    def test_full_node_id_of_a_parameter_id_with_double_colon(self) -> None:
        specs, resolution = resolve(
            "m.py::test_p[a::b]",
            "m.py::test_p[c]",
            ("n.py::test_q", depends_on("m.py::test_p[a::b]")),
        )
        assert edges_by_nodeid(specs, resolution) == {"n.py::test_q": ["m.py::test_p[a::b]"]}

    def test_parametrized_base_name_means_all_instances(self) -> None:
        specs, resolution = resolve(
            "m.py::test_p[1]",
            "m.py::test_p[2]",
            "m.py::test_pp",
            ("m.py::test_q", depends_on("test_p")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_q": ["m.py::test_p[1]", "m.py::test_p[2]"]
        }

    def test_parametrized_base_node_id_means_all_instances(self) -> None:
        specs, resolution = resolve(
            "m.py::TestP::test_p[1]",
            "m.py::TestP::test_p[2]",
            ("n.py::test_q", depends_on("m.py::TestP::test_p")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "n.py::test_q": ["m.py::TestP::test_p[1]", "m.py::TestP::test_p[2]"]
        }

    def test_parametrized_base_name_in_the_same_class(self) -> None:
        specs, resolution = resolve(
            "m.py::TestP::test_p[1]",
            "m.py::TestP::test_p[2]",
            ("m.py::TestP::test_q", depends_on("test_p")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::TestP::test_q": ["m.py::TestP::test_p[1]", "m.py::TestP::test_p[2]"]
        }

    def test_a_test_naming_only_itself_is_a_cycle_of_one(self) -> None:
        """Dropped silently before: the plan now refuses it as a cycle. A
        pytest-dependency mark naming its own test is still left out."""
        specs, resolution = resolve(
            ("m.py::test_x", depends_on("test_x")),
            ("m.py::test_y", dependency("test_y")),
            "m.py::test_z",
        )
        edges = edges_by_nodeid(specs, resolution)
        assert edges == {"m.py::test_x": ["m.py::test_x"]}
        assert find_cycle(range(3), resolution.predecessors) == [0, 0]

    def test_instances_naming_their_own_base_name_depend_on_the_others(self) -> None:
        specs, resolution = resolve(
            ("m.py::test_p[1]", depends_on("test_p")),
            ("m.py::test_p[2]", depends_on("test_p")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_p[1]": ["m.py::test_p[2]"],
            "m.py::test_p[2]": ["m.py::test_p[1]"],
        }

    def test_a_parameter_id_as_written_finds_pytest_s_escaped_id(self) -> None:
        """pytest escapes non-ASCII parameter ids in node ids: ``[ä]`` is ``[\\xe4]``."""
        specs, resolution = resolve(
            "m.py::test_p[\\xe4]",
            "m.py::test_p[\\u65e5\\u672c]",
            ("m.py::test_a", depends_on("test_p[ä]")),
            ("m.py::test_b", depends_on("m.py::test_p[日本]")),
            ("m.py::test_c", depends_on("test_p[ö]")),
            "m.py::test_p[C:\\\\tmp]",
            ("m.py::test_d", depends_on("test_p[C:\\tmp]")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_a": ["m.py::test_p[\\xe4]"],
            "m.py::test_b": ["m.py::test_p[\\u65e5\\u672c]"],
            "m.py::test_d": ["m.py::test_p[C:\\\\tmp]"],
        }
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::test_c", "test_p[ö]")]

    def test_one_parametrized_instance_by_its_name(self) -> None:
        specs, resolution = resolve(
            "m.py::test_p[1]",
            "m.py::test_p[2]",
            ("m.py::test_q", depends_on("test_p[2]")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_q": ["m.py::test_p[2]"]}

    def test_one_parametrized_instance_with_double_colon_in_the_same_class(self) -> None:
        # The parameter id is part of the name; its "::" does not name a class.
        specs, resolution = resolve(
            "m.py::TestP::test_p[a::b]",
            "m.py::TestP::test_p[c]",
            ("m.py::TestP::test_q", depends_on("test_p[a::b]")),
        )
        assert resolution.unresolved == ()
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::TestP::test_q": ["m.py::TestP::test_p[a::b]"]
        }

    def test_unknown_targets_are_reported_and_known_ones_still_resolved(self) -> None:
        specs, resolution = resolve(
            "m.py::test_a",
            ("m.py::test_b", depends_on("test_missing", "test_a", "m.py::test_gone")),
            ("m.py::test_c", depends_on("n.py::test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_b": ["m.py::test_a"]}
        assert resolution.unresolved == (
            UnresolvedTarget(dependent=1, target="test_missing"),
            UnresolvedTarget(dependent=1, target="m.py::test_gone"),
            UnresolvedTarget(dependent=2, target="n.py::test_a"),
        )

    def test_name_in_another_module_is_not_found_without_its_node_id(self) -> None:
        specs, resolution = resolve(
            "n.py::test_a",
            ("m.py::test_b", depends_on("test_a")),
        )
        assert resolution.predecessors == {}
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::test_b", "test_a")]

    @pytest.mark.parametrize("target", ["test_a", "m.py::test_a"])
    def test_self_reference_is_a_cycle_of_one(self, target: str) -> None:
        _, resolution = resolve(("m.py::test_a", depends_on(target)))
        assert resolution.predecessors == {0: (0,)}
        assert resolution.unresolved == ()

    def test_duplicate_targets_give_one_edge(self) -> None:
        specs, resolution = resolve(
            "m.py::test_a",
            ("m.py::test_b", depends_on("test_a", "m.py::test_a", "test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_b": ["m.py::test_a"]}
        assert resolution.edge_count == 1

    def test_edges_keep_the_order_of_the_targets(self) -> None:
        specs, resolution = resolve(
            "m.py::test_a",
            "m.py::test_b",
            ("m.py::test_c", depends_on("test_b", "test_a")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_c": ["m.py::test_b", "m.py::test_a"]
        }

    def test_tests_without_dependencies_have_no_entry(self) -> None:
        _, resolution = resolve("m.py::test_a", "m.py::test_b")
        assert resolution == Resolution(predecessors={}, unresolved=())
        assert resolution.edge_count == 0


class TestDependencyMark:
    def test_module_scope_names_the_test_by_its_id_after_the_module(self) -> None:
        specs, resolution = resolve(
            ("m.py::TestX::test_a", dependency()),
            ("m.py::test_p[1]", dependency()),
            ("m.py::test_b", dependency("TestX::test_a", "test_p[1]")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_b": ["m.py::TestX::test_a", "m.py::test_p[1]"]
        }
        assert resolution.unresolved == ()

    def test_module_scope_does_not_know_the_bare_method_name(self) -> None:
        specs, resolution = resolve(
            ("m.py::TestX::test_a", dependency()),
            ("m.py::TestX::test_b", dependency("test_a")),
        )
        assert resolution.predecessors == {}
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::TestX::test_b", "test_a")]

    def test_module_scope_stays_in_the_module(self) -> None:
        specs, resolution = resolve(
            ("m.py::test_a", dependency()),
            ("n.py::test_b", dependency("test_a")),
        )
        assert resolution.predecessors == {}
        assert unresolved_by_nodeid(specs, resolution) == [("n.py::test_b", "test_a")]

    def test_target_must_carry_a_dependency_mark(self) -> None:
        # As in pytest-dependency: only marked tests record their outcome under a name.
        specs, resolution = resolve(
            "m.py::test_a",
            ("m.py::test_b", dependency("test_a")),
        )
        assert resolution.predecessors == {}
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::test_b", "test_a")]

    def test_class_scope_names_the_function_within_the_same_class(self) -> None:
        specs, resolution = resolve(
            ("m.py::TestY::test_a", dependency()),
            ("m.py::TestX::test_a", dependency()),
            ("m.py::TestX::test_b", dependency("test_a", scope="class")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::TestX::test_b": ["m.py::TestX::test_a"]
        }

    def test_class_scope_outside_a_class_finds_nothing(self) -> None:
        specs, resolution = resolve(
            ("m.py::test_a", dependency()),
            ("m.py::test_b", dependency("test_a", scope="class")),
        )
        assert resolution.predecessors == {}
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::test_b", "test_a")]

    def test_class_scope_does_not_see_other_classes(self) -> None:
        specs, resolution = resolve(
            ("m.py::TestY::test_a", dependency()),
            ("m.py::TestX::test_b", dependency("test_a", scope="class")),
        )
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::TestX::test_b", "test_a")]

    def test_package_scope_uses_node_ids_in_the_same_folder(self) -> None:
        specs, resolution = resolve(
            ("tests/a/test_1.py::test_x", dependency()),
            ("tests/a/test_2.py::test_y", dependency("tests/a/test_1.py::test_x", scope="package")),
            ("tests/b/test_3.py::test_z", dependency("tests/a/test_1.py::test_x", scope="package")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "tests/a/test_2.py::test_y": ["tests/a/test_1.py::test_x"]
        }
        assert unresolved_by_nodeid(specs, resolution) == [
            ("tests/b/test_3.py::test_z", "tests/a/test_1.py::test_x")
        ]

    def test_package_scope_does_not_know_the_short_name(self) -> None:
        specs, resolution = resolve(
            ("tests/a/test_1.py::test_x", dependency()),
            ("tests/a/test_1.py::test_y", dependency("test_x", scope="package")),
        )
        assert unresolved_by_nodeid(specs, resolution) == [("tests/a/test_1.py::test_y", "test_x")]

    def test_session_scope_uses_node_ids_anywhere(self) -> None:
        specs, resolution = resolve(
            ("tests/a/test_1.py::TestX::test_x", dependency()),
            (
                "other/test_2.py::test_y",
                dependency("tests/a/test_1.py::TestX::test_x", scope="session"),
            ),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "other/test_2.py::test_y": ["tests/a/test_1.py::TestX::test_x"]
        }

    @pytest.mark.parametrize("scope", ["module", "session"])
    def test_explicit_name_replaces_the_default_name(self, scope: str) -> None:
        specs, resolution = resolve(
            ("m.py::TestX::test_a", dependency(name="login")),
            ("m.py::test_b", dependency("login", scope=scope)),
            ("m.py::test_c", dependency("TestX::test_a", scope=scope)),
        )
        assert edges_by_nodeid(specs, resolution) == {"m.py::test_b": ["m.py::TestX::test_a"]}
        assert unresolved_by_nodeid(specs, resolution) == [("m.py::test_c", "TestX::test_a")]

    def test_explicit_name_in_session_scope_crosses_modules(self) -> None:
        specs, resolution = resolve(
            ("tests/a.py::test_login", dependency(name="login")),
            ("tests/b.py::test_view", dependency("login", scope="session")),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "tests/b.py::test_view": ["tests/a.py::test_login"]
        }

    def test_marks_and_depends_on_combine(self) -> None:
        specs, resolution = resolve(
            ("m.py::test_a", dependency()),
            "m.py::test_b",
            ("m.py::test_c", {**dependency("test_a"), **depends_on("test_b", "test_a")}),
        )
        assert edges_by_nodeid(specs, resolution) == {
            "m.py::test_c": ["m.py::test_b", "m.py::test_a"]
        }


def assert_is_cycle(
    cycle: Sequence[Hashable] | None, predecessors: Mapping[Any, Sequence[Hashable]]
) -> None:
    assert cycle is not None
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    for dependent, pred in pairwise(cycle):
        assert pred in predecessors.get(dependent, ())


class TestFindCycle:
    def test_acyclic_graph_has_none(self) -> None:
        predecessors = {"d": ["b", "c"], "b": ["a"], "c": ["a"]}
        assert find_cycle("abcd", predecessors) is None

    def test_no_edges(self) -> None:
        assert find_cycle([1, 2, 3], {}) is None

    def test_cycle_is_a_path_back_to_its_start(self) -> None:
        predecessors = {"a": ["b"], "b": ["c"], "c": ["a"]}
        cycle = find_cycle("abc", predecessors)
        assert cycle == ["a", "b", "c", "a"]

    def test_self_loop(self) -> None:
        assert find_cycle(["a"], {"a": ["a"]}) == ["a", "a"]

    def test_cycle_reached_through_a_tail_excludes_the_tail(self) -> None:
        predecessors = {"x": ["y"], "y": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}
        cycle = find_cycle("xyabc", predecessors)
        assert_is_cycle(cycle, predecessors)
        assert cycle is not None
        assert set(cycle) == {"a", "b", "c"}

    def test_cycle_found_from_a_later_root(self) -> None:
        predecessors = {"c": ["d"], "d": ["c"], "b": ["a"]}
        cycle = find_cycle("abcd", predecessors)
        assert_is_cycle(cycle, predecessors)

    def test_node_zero_is_a_node(self) -> None:
        assert find_cycle([0, 1], {0: [1], 1: [0]}) in ([0, 1, 0], [1, 0, 1])


class TestStableTopologicalOrder:
    def test_no_edges_keeps_the_order(self) -> None:
        assert stable_topological_order([3, 1, 2], {}) == [3, 1, 2]

    def test_dependency_moves_before_its_dependent(self) -> None:
        assert stable_topological_order(["a", "b"], {"a": ["b"]}) == ["b", "a"]

    def test_unrelated_nodes_keep_their_places(self) -> None:
        assert stable_topological_order(list("cab"), {"a": ["b"]}) == list("cba")

    def test_earliest_ready_node_goes_first(self) -> None:
        # a waits for d; b and c are ready and earlier than d.
        assert stable_topological_order(list("abcd"), {"a": ["d"]}) == list("bcda")

    def test_diamond(self) -> None:
        predecessors = {"a": ["b", "c"], "b": ["d"], "c": ["d"]}
        assert stable_topological_order(list("abcd"), predecessors) == list("dbca")

    def test_predecessors_outside_the_nodes_are_ignored(self) -> None:
        assert stable_topological_order(["a", "b"], {"a": ["z"], "b": ["a", "y"]}) == ["a", "b"]

    def test_repeated_predecessor_counts_once(self) -> None:
        assert stable_topological_order(["a", "b"], {"a": ["b", "b"]}) == ["b", "a"]

    def test_cycle_raises_with_its_path(self) -> None:
        predecessors = {"a": ["b"], "b": ["c"], "c": ["a"], "d": []}
        with pytest.raises(CycleError) as excinfo:
            stable_topological_order(list("dabc"), predecessors)
        assert_is_cycle(excinfo.value.cycle, predecessors)
        assert set(excinfo.value.cycle) == {"a", "b", "c"}
        assert str(excinfo.value) == " -> ".join(map(str, excinfo.value.cycle))

    def test_cycle_through_an_outside_node_is_no_cycle(self) -> None:
        assert stable_topological_order(["a", "b"], {"a": ["z"], "z": ["a"]}) == ["a", "b"]

    def test_cycle_error_is_a_value_error(self) -> None:
        assert issubclass(CycleError, ValueError)


#: Small graphs over the nodes 0-11: each node's predecessors, some of them
#: nodes outside the ordered ones.
graphs = st.dictionaries(st.integers(0, 11), st.lists(st.integers(0, 11), max_size=3), max_size=12)


class TestWithoutEdges:
    """Most suites have no dependency: the order then comes without a search,
    and must be what the search would give."""

    def test_groups_stay_whole_in_the_order_of_their_first_node(self) -> None:
        group = {1: "m1", 2: "m2", 3: "m1", 4: None, 5: "m2"}
        assert stable_topological_order([1, 2, 3, 4, 5], {}, group) == [1, 3, 2, 5, 4]

    @given(
        nodes=st.lists(st.integers(0, 30), unique=True, max_size=30),
        groups=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=31, max_size=31),
        outside=st.lists(st.integers(31, 40), max_size=4),
        grouped=st.booleans(),
    )
    def test_same_order_as_the_search(
        self, nodes: list[int], groups: list[str | None], outside: list[int], grouped: bool
    ) -> None:
        # Predecessors outside the nodes are ignored: still no edge among them.
        predecessors = dict.fromkeys(nodes[::2], outside)
        group = dict(enumerate(groups)) if grouped else None
        position = {node: i for i, node in enumerate(nodes)}
        searched = _topological_order(nodes, predecessors, group, position)
        assert stable_topological_order(nodes, predecessors, group) == searched

    @given(graphs)
    def test_a_cycle_is_found_exactly_when_there_is_one(
        self, predecessors: dict[int, list[int]]
    ) -> None:
        cycle = find_cycle(range(12), predecessors)
        try:
            tuple(graphlib.TopologicalSorter(predecessors).static_order())
        except graphlib.CycleError:
            assert_is_cycle(cycle, predecessors)
        else:
            assert cycle is None
