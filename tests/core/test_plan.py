"""Batch assignment, batch order and the plan built from tests, edges and history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from core_policy import Policy

from pytest_batchflow.core.graph import TestSpec
from pytest_batchflow.core.plan import (
    DEFAULT_BATCH,
    BatchRule,
    Plan,
    PlanError,
    assign_batch,
    assign_batches,
    build_plan,
    glob_matches,
    globs_matching_nothing,
    order_batches,
)


class TestGlobMatches:
    @pytest.mark.parametrize(
        ("pattern", "relpath"),
        [
            ("tests/unit/test_a.py", "tests/unit/test_a.py"),
            ("tests/unit", "tests/unit/test_a.py"),
            ("tests", "tests/unit/deep/test_a.py"),
            ("tests/unit/", "tests/unit/test_a.py"),
            ("./tests/unit", "tests/unit/test_a.py"),
            ("tests/api/test_*.py", "tests/api/test_users.py"),
            ("tests/*/test_a.py", "tests/unit/test_a.py"),
            ("tests/*", "tests/unit/test_a.py"),
            ("tests/test_?.py", "tests/test_a.py"),
            ("tests/**/test_a.py", "tests/test_a.py"),
            ("tests/**/test_a.py", "tests/x/y/z/test_a.py"),
            ("**/test_a.py", "test_a.py"),
            ("**/test_a.py", "tests/x/test_a.py"),
            ("**/unit", "tests/unit/test_a.py"),
            ("tests/**", "tests/unit/test_a.py"),
            ("**", "test_a.py"),
            (".", "tests/unit/test_a.py"),
            ("./", "test_a.py"),
        ],
    )
    def test_matches(self, pattern: str, relpath: str) -> None:
        assert glob_matches(pattern, relpath)

    @pytest.mark.parametrize(
        ("pattern", "relpath"),
        [
            ("tests/unit/test_a.py", "tests/unit/test_b.py"),
            ("tests/uni", "tests/unit/test_a.py"),
            ("unit", "tests/unit/test_a.py"),
            ("test_a.py", "tests/test_a.py"),
            ("tests/unit/test_a", "tests/unit/test_a.py"),
            ("tests/unit/deep", "tests/unit/test_a.py"),
            ("*.py", "tests/test_a.py"),
            ("tests/*.py", "tests/unit/test_a.py"),
            ("tests/*/test_a.py", "tests/unit/deep/test_a.py"),
            ("tests/test_?.py", "tests/test_ab.py"),
            ("tests/**/test_a.py", "other/tests/test_a.py"),
            ("**/test_b.py", "tests/test_a.py"),
            ("", "tests/test_a.py"),
            ("/", "tests/test_a.py"),
        ],
    )
    def test_does_not_match(self, pattern: str, relpath: str) -> None:
        assert not glob_matches(pattern, relpath)

    def test_star_does_not_cross_a_slash(self) -> None:
        assert glob_matches("tests/*_a.py", "tests/test_a.py")
        assert not glob_matches("tests/*_a.py", "tests/sub/test_a.py")
        assert not glob_matches("tests*test_a.py", "tests/test_a.py")


def spec(nodeid: str, index: int = 0, **fields: object) -> TestSpec:
    return TestSpec.from_nodeid(index, nodeid, **fields)


def assign(test: TestSpec, *policies: Policy) -> str:
    return assign_batch(test, [BatchRule.from_policy(policy) for policy in policies])


class TestAssignBatch:
    def test_batch_marker_beats_every_line(self) -> None:
        test = spec("tests/unit/test_a.py::test_a", batch_mark="db")
        assert assign(test, Policy("unit", paths=("tests/unit",)), Policy("db")) == "db"

    def test_first_matching_line_wins(self) -> None:
        test = spec("tests/unit/test_a.py::test_a", marker_names=frozenset({"slow"}))
        policies = (
            Policy("api", paths=("tests/api",)),
            Policy("slow", markers="slow"),
            Policy("unit", paths=("tests/unit",)),
        )
        assert assign(test, *policies) == "slow"
        assert assign(test, *reversed(policies)) == "unit"

    def test_any_of_several_paths(self) -> None:
        policy = Policy("fast", paths=("tests/unit", "tests/api/test_*.py"))
        assert assign(spec("tests/api/test_users.py::test_a"), policy) == "fast"
        assert assign(spec("tests/unit/x/test_b.py::test_b"), policy) == "fast"
        assert assign(spec("tests/db/test_c.py::test_c"), policy) == DEFAULT_BATCH

    def test_marker_expression(self) -> None:
        policy = Policy("db", markers="db and not slow")
        assert assign(spec("t.py::a", marker_names=frozenset({"db"})), policy) == "db"
        assert assign(spec("t.py::a", marker_names=frozenset({"db", "slow"})), policy) == "default"
        assert assign(spec("t.py::a"), policy) == "default"

    def test_line_with_paths_and_markers_needs_both(self) -> None:
        policy = Policy("unit-db", paths=("tests/unit",), markers="db")
        db = frozenset({"db"})
        assert assign(spec("tests/unit/test_a.py::t", marker_names=db), policy) == "unit-db"
        assert assign(spec("tests/unit/test_a.py::t"), policy) == "default"
        assert assign(spec("tests/api/test_a.py::t", marker_names=db), policy) == "default"

    def test_line_with_neither_paths_nor_markers_matches_nothing(self) -> None:
        test = spec("tests/unit/test_a.py::test_a", marker_names=frozenset({"db"}))
        assert assign(test, Policy("later"), Policy("unit", paths=("tests",))) == "unit"
        assert assign(test, Policy("later")) == DEFAULT_BATCH

    def test_default_batch_when_nothing_matches(self) -> None:
        assert DEFAULT_BATCH == "default"
        assert assign(spec("tests/test_a.py::test_a")) == "default"
        assert assign(spec("tests/test_a.py::test_a"), Policy("api", paths=("api",))) == "default"

    def test_paths_match_the_module_of_a_method(self) -> None:
        test = spec("tests/unit/test_a.py::TestX::test_a[1]")
        assert assign(test, Policy("unit", paths=("tests/unit/test_a.py",))) == "unit"

    def test_many_tests_at_once_as_one_at_a_time(self) -> None:
        # assign_batches matches once per file and set of markers: tests of
        # one file with other markers, or a batch marker, still get their own.
        policies = (
            Policy("slow", paths=("tests/unit",), markers="slow"),
            Policy("unit", paths=("tests/unit",)),
            Policy("api", paths=("tests/api/test_*.py",)),
        )
        tests = [
            spec("tests/unit/test_a.py::t[1]", 0),
            spec("tests/unit/test_a.py::t[2]", 1, marker_names=frozenset({"slow"})),
            spec("tests/unit/test_a.py::t[3]", 2),
            spec("tests/unit/test_a.py::t[4]", 3, batch_mark="api"),
            spec("tests/api/test_b.py::t", 4, marker_names=frozenset({"slow"})),
            spec("tests/other/test_c.py::t", 5),
            spec("tests/unit/test_a.py::t[5]", 6, marker_names=frozenset({"slow"})),
        ]
        rules = [BatchRule.from_policy(policy) for policy in policies]
        expected = {test.index: assign_batch(test, rules) for test in tests}
        assert assign_batches(tests, rules) == expected
        assert list(expected.values()) == ["unit", "slow", "unit", "api", "api", "default", "slow"]


def names(batches: Sequence[Policy]) -> list[str]:
    return [batch.name for batch in order_batches(batches)]


class TestOrderBatches:
    def test_line_order_without_edges_or_priorities(self) -> None:
        assert names([Policy("c"), Policy("a"), Policy("b")]) == ["c", "a", "b"]

    def test_after_edges_come_first(self) -> None:
        batches = [Policy("db", after=("unit",)), Policy("unit", after=("smoke",)), Policy("smoke")]
        assert names(batches) == ["smoke", "unit", "db"]

    def test_higher_priority_first(self) -> None:
        batches = [Policy("a"), Policy("b", priority=5), Policy("c", priority=-1), Policy("d")]
        assert names(batches) == ["b", "a", "d", "c"]

    def test_priority_does_not_override_after(self) -> None:
        assert names([Policy("a"), Policy("b", priority=9, after=("a",))]) == ["a", "b"]

    def test_priority_among_batches_ready_at_once(self) -> None:
        batches = [
            Policy("smoke"),
            Policy("unit", after=("smoke",)),
            Policy("api", after=("smoke",), priority=2),
        ]
        assert names(batches) == ["smoke", "api", "unit"]

    def test_returns_the_policies_themselves(self) -> None:
        smoke, unit = Policy("smoke", maxfail=1), Policy("unit", after=("smoke",))
        assert order_batches([unit, smoke]) == [smoke, unit]

    def test_cycle_is_a_plan_error_naming_the_path(self) -> None:
        batches = [Policy("a", after=("c",)), Policy("b", after=("a",)), Policy("c", after=("b",))]
        with pytest.raises(PlanError, match="after= edges form a cycle") as excinfo:
            order_batches(batches)
        message = str(excinfo.value)
        assert any(
            path in message for path in ("a -> c -> b -> a", "b -> a -> c -> b", "c -> b -> a -> c")
        )

    def test_self_cycle(self) -> None:
        with pytest.raises(PlanError, match="a -> a"):
            order_batches([Policy("a", after=("a",))])

    def test_plan_error_is_a_value_error(self) -> None:
        assert issubclass(PlanError, ValueError)


def make_plan(
    tests: Mapping[str, str],
    batches: Sequence[Policy],
    *,
    edges: Mapping[str, Sequence[str]] | None = None,
    run: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
) -> tuple[Plan, list[TestSpec]]:
    """Plan ``tests`` (node id -> batch, in collection order); ``run`` defaults to all."""
    specs = [spec(nodeid, index) for index, nodeid in enumerate(tests)]
    index = {s.nodeid: s.index for s in specs}
    predecessors = {
        index[dependent]: tuple(index[pred] for pred in preds)
        for dependent, preds in (edges or {}).items()
    }
    plan = build_plan(
        specs,
        batches,
        {index[nodeid]: batch for nodeid, batch in tests.items()},
        predecessors,
        [index[nodeid] for nodeid in (tests if run is None else run)],
        durations or {},
    )
    return plan, specs


def nodeids(specs: Sequence[TestSpec], indices: Sequence[int]) -> list[str]:
    return [specs[i].nodeid for i in indices]


PIPELINE = (
    Policy("db", markers="db", after=("unit",)),
    Policy("unit", paths=("tests/unit",), after=("smoke",)),
    Policy("smoke", paths=("tests/smoke",)),
    Policy("default"),
)


class TestBuildPlan:
    def test_batches_in_order_and_tests_after_their_dependencies(self) -> None:
        plan, specs = make_plan(
            {
                "d.py::test_db": "db",
                "u.py::test_a": "unit",
                "u.py::test_b": "unit",
                "u.py::test_c": "unit",
                "s.py::test_s": "smoke",
            },
            PIPELINE,
            edges={"u.py::test_a": ["u.py::test_c"], "d.py::test_db": ["u.py::test_a"]},
        )
        assert [batch.name for batch in plan.batches] == ["smoke", "unit", "db", "default"]
        assert nodeids(specs, plan.order) == [
            "s.py::test_s",
            "u.py::test_b",
            "u.py::test_c",
            "u.py::test_a",
            "d.py::test_db",
        ]
        assert nodeids(specs, plan.batch("unit").tests) == [
            "u.py::test_b",
            "u.py::test_c",
            "u.py::test_a",
        ]
        assert plan.batch("default").tests == ()
        assert plan.batch("unit").policy is PIPELINE[1]
        assert plan.batch_of == {0: "db", 1: "unit", 2: "unit", 3: "unit", 4: "smoke"}
        assert plan.predecessors == {1: (3,), 0: (1,)}
        assert plan.edge_count == 2
        assert plan.external == {}

    def test_tests_keep_pytests_order_within_a_batch(self) -> None:
        plan, specs = make_plan(
            {"t.py::a": "default", "t.py::b": "default", "t.py::c": "default"},
            [Policy("default")],
            run=["t.py::c", "t.py::a", "t.py::b"],
        )
        assert nodeids(specs, plan.order) == ["t.py::c", "t.py::a", "t.py::b"]

    def test_edge_against_batch_order_names_both_tests(self) -> None:
        with pytest.raises(PlanError) as excinfo:
            make_plan(
                {"s.py::test_s": "smoke", "u.py::test_u": "unit"},
                PIPELINE,
                edges={"s.py::test_s": ["u.py::test_u"]},
            )
        message = str(excinfo.value)
        assert "s.py::test_s (batch 'smoke') depends on u.py::test_u (batch 'unit')" in message
        # unit runs after smoke: after=unit on smoke's line would be a cycle.
        assert message.endswith("which runs later; move one of them ('unit' runs after 'smoke')")

    def test_an_edge_against_a_chain_of_after_edges_suggests_no_after(self) -> None:
        with pytest.raises(PlanError) as excinfo:
            make_plan(
                {"s.py::test_s": "smoke", "d.py::test_d": "db"},
                PIPELINE,
                edges={"s.py::test_s": ["d.py::test_d"]},
            )
        assert str(excinfo.value).endswith("move one of them ('db' runs after 'smoke')")

    def test_edge_between_unrelated_batches_must_follow_their_order(self) -> None:
        with pytest.raises(PlanError, match=r"a\.py::test_a .* depends on b\.py::test_b") as info:
            make_plan(
                {"a.py::test_a": "a", "b.py::test_b": "b"},
                [Policy("a"), Policy("b")],
                edges={"a.py::test_a": ["b.py::test_b"]},
            )
        # Here after= is the fix: nothing orders b after a yet.
        assert str(info.value).endswith("move one of them or add after=b to the line of 'a'")

    def test_edge_against_batch_order_is_found_among_deselected_tests(self) -> None:
        with pytest.raises(PlanError, match=r"s\.py::test_s .* u\.py::test_u"):
            make_plan(
                {"s.py::test_s": "smoke", "u.py::test_u": "unit", "t.py::test_t": "default"},
                PIPELINE,
                edges={"s.py::test_s": ["u.py::test_u"]},
                run=["t.py::test_t"],
            )

    def test_cycle_names_its_path(self) -> None:
        with pytest.raises(PlanError, match="dependency cycle") as excinfo:
            make_plan(
                {"t.py::a": "default", "t.py::b": "default", "t.py::c": "default"},
                [Policy("default")],
                edges={"t.py::a": ["t.py::b"], "t.py::b": ["t.py::c"], "t.py::c": ["t.py::a"]},
            )
        assert "t.py::a -> t.py::b -> t.py::c -> t.py::a" in str(excinfo.value)

    def test_cycle_among_deselected_tests_is_found(self) -> None:
        with pytest.raises(PlanError, match=r"t\.py::a -> t\.py::b -> t\.py::a"):
            make_plan(
                {"t.py::a": "default", "t.py::b": "default", "t.py::c": "default"},
                [Policy("default")],
                edges={"t.py::a": ["t.py::b"], "t.py::b": ["t.py::a"]},
                run=["t.py::c"],
            )

    def test_dependencies_outside_the_run_are_external(self) -> None:
        plan, specs = make_plan(
            {
                "t.py::a": "default",
                "t.py::b": "default",
                "t.py::c": "default",
                "t.py::d": "default",
            },
            [Policy("default")],
            edges={
                "t.py::c": ["t.py::a", "t.py::b"],
                "t.py::d": ["t.py::b"],
                "t.py::a": ["t.py::b"],
            },
            run=["t.py::b", "t.py::c", "t.py::d"],
        )
        assert nodeids(specs, plan.order) == ["t.py::b", "t.py::c", "t.py::d"]
        assert plan.predecessors == {2: (0, 1), 3: (1,)}
        assert plan.external == {2: (0,)}
        assert set(plan.batch_of) == {1, 2, 3}

    def test_estimates_from_history_and_the_average_for_unknown_tests(self) -> None:
        plan, _ = make_plan(
            {"t.py::a": "default", "t.py::b": "default", "t.py::new": "default"},
            [Policy("default")],
            durations={"t.py::a": 1.0, "t.py::b": 3.0, "gone.py::old": 100.0},
        )
        assert plan.estimates == {0: 1.0, 1: 3.0, 2: 2.0}
        assert plan.measured == {0, 1}
        assert plan.total_estimate == 6.0
        assert plan.batch_estimate("default") == 6.0

    def test_estimates_without_history_are_zero(self) -> None:
        plan, _ = make_plan({"t.py::a": "default"}, [Policy("default")])
        assert plan.estimates == {0: 0.0}
        assert plan.measured == frozenset()
        assert plan.critical_path() == 0.0
        assert plan.lower_bound(4) == 0.0

    def test_batch_estimates(self) -> None:
        plan, _ = make_plan(
            {"s.py::a": "smoke", "u.py::b": "unit", "u.py::c": "unit"},
            PIPELINE,
            durations={"s.py::a": 1.5, "u.py::b": 2.0, "u.py::c": 4.0},
        )
        assert plan.batch_estimate("smoke") == 1.5
        assert plan.batch_estimate("unit") == 6.0
        assert plan.batch_estimate("db") == 0.0


class TestCriticalPathAndLowerBound:
    def test_independent_tests_the_longest_one(self) -> None:
        plan, _ = make_plan(
            {"t.py::a": "default", "t.py::b": "default"},
            [Policy("default")],
            durations={"t.py::a": 2.0, "t.py::b": 5.0},
        )
        assert plan.critical_path() == 5.0

    def test_chain_of_test_dependencies(self) -> None:
        plan, _ = make_plan(
            {"t.py::a": "default", "t.py::b": "default", "t.py::c": "default"},
            [Policy("default")],
            edges={"t.py::b": ["t.py::a"], "t.py::c": ["t.py::b"]},
            durations={"t.py::a": 1.0, "t.py::b": 2.0, "t.py::c": 3.0},
        )
        assert plan.critical_path() == 6.0

    def test_two_tests_in_a_chain(self) -> None:
        plan, _ = make_plan(
            {"t.py::a": "default", "t.py::b": "default"},
            [Policy("default")],
            edges={"t.py::b": ["t.py::a"]},
            durations={"t.py::a": 1.0, "t.py::b": 1.0},
        )
        assert plan.critical_path() == 2.0

    def test_after_barrier_adds_the_longest_test_of_the_upstream_batch(self) -> None:
        durations = {"s.py::a": 2.0, "s.py::b": 3.0, "u.py::c": 1.0}
        tests = {"s.py::a": "smoke", "s.py::b": "smoke", "u.py::c": "unit"}
        plan, _ = make_plan(tests, PIPELINE, durations=durations)
        assert plan.critical_path() == 4.0

        unordered = [Policy("smoke"), Policy("unit")]
        plan, _ = make_plan(tests, unordered, durations=durations)
        assert plan.critical_path() == 3.0

    def test_barrier_passes_through_an_empty_batch(self) -> None:
        batches = [Policy("a"), Policy("b", after=("a",)), Policy("c", after=("b",))]
        plan, _ = make_plan(
            {"a.py::x": "a", "c.py::y": "c"},
            batches,
            durations={"a.py::x": 2.0, "c.py::y": 1.0},
        )
        assert plan.critical_path() == 3.0

    def test_edge_across_batches_without_after(self) -> None:
        plan, _ = make_plan(
            {"a.py::x": "a", "b.py::y": "b", "b.py::z": "b"},
            [Policy("a"), Policy("b")],
            edges={"b.py::y": ["a.py::x"]},
            durations={"a.py::x": 5.0, "b.py::y": 1.0, "b.py::z": 1.0},
        )
        assert plan.critical_path() == 6.0

    def test_chain_inside_a_batch_after_a_barrier(self) -> None:
        plan, _ = make_plan(
            {"s.py::a": "smoke", "u.py::b": "unit", "u.py::c": "unit"},
            PIPELINE,
            edges={"u.py::c": ["u.py::b"]},
            durations={"s.py::a": 1.0, "u.py::b": 2.0, "u.py::c": 3.0},
        )
        assert plan.critical_path() == 6.0

    def test_deselected_dependency_costs_nothing(self) -> None:
        plan, _ = make_plan(
            {"t.py::a": "default", "t.py::b": "default"},
            [Policy("default")],
            edges={"t.py::b": ["t.py::a"]},
            run=["t.py::b"],
            durations={"t.py::a": 10.0, "t.py::b": 1.0},
        )
        assert plan.critical_path() == 1.0

    def test_lower_bound_is_the_larger_of_work_per_worker_and_critical_path(self) -> None:
        tests = {f"t.py::t{i}": "default" for i in range(4)}
        durations = {"t.py::t0": 4.0, "t.py::t1": 2.0, "t.py::t2": 2.0, "t.py::t3": 2.0}
        plan, _ = make_plan(tests, [Policy("default")], durations=durations)
        assert plan.total_estimate == 10.0
        assert plan.critical_path() == 4.0
        assert plan.lower_bound() == 10.0
        assert plan.lower_bound(1) == 10.0
        assert plan.lower_bound(2) == 5.0
        assert plan.lower_bound(4) == 4.0
        assert plan.lower_bound(100) == 4.0

    @pytest.mark.parametrize("workers", [0, -3])
    def test_lower_bound_counts_at_least_one_worker(self, workers: int) -> None:
        plan, _ = make_plan({"t.py::a": "default"}, [Policy("default")], durations={"t.py::a": 3.0})
        assert plan.lower_bound(workers) == 3.0


def planned_order(nodeids: list[str], predecessors: dict[int, tuple[int, ...]]) -> list[str]:
    """The plan's order of these tests (one batch, pytest's order as given)."""
    specs = [TestSpec.from_nodeid(i, nodeid) for i, nodeid in enumerate(nodeids)]
    every = range(len(nodeids))
    batch_of = dict.fromkeys(every, "default")
    plan = build_plan(specs, [Policy(name="default")], batch_of, predecessors, every, {})
    return [nodeids[i] for i in plan.order]


def test_a_dependency_pulled_forward_keeps_its_module_together() -> None:
    """a1 needs b1: b's tests stay together (b1, b2) and a1 follows them."""
    nodeids = ["a.py::a1", "a.py::a2", "a.py::a3", "b.py::b1", "b.py::b2"]
    assert planned_order(nodeids, {0: (3,)}) == [
        "a.py::a2",
        "a.py::a3",
        "b.py::b1",
        "b.py::b2",
        "a.py::a1",
    ]


def test_modules_pytest_interleaved_stay_interleaved() -> None:
    """pytest runs a parametrized session fixture's tests parameter by parameter,
    across modules: the plan keeps that order (no regrouping by module)."""
    nodeids = ["a.py::t[A]", "b.py::t[A]", "a.py::t[B]", "b.py::t[B]"]
    assert planned_order(nodeids, {}) == nodeids


def test_a_dependency_pulled_forward_keeps_its_run_of_neighbours_together() -> None:
    """With interleaved modules, the group is the run of neighbours from one
    module: b.py's first run (b1, b2) comes forward whole for a1, the rest stays."""
    nodeids = ["a.py::a1", "a.py::a2", "b.py::b1", "b.py::b2", "a.py::a3", "b.py::b3"]
    assert planned_order(nodeids, {0: (2,)}) == [
        "a.py::a2",
        "b.py::b1",
        "b.py::b2",
        "a.py::a1",
        "a.py::a3",
        "b.py::b3",
    ]


def test_globs_matching_nothing_are_named_with_their_batch_in_line_order() -> None:
    policies = [
        Policy("unit", paths=("tests/unit", "tset/unit")),
        Policy("db", markers="db"),
        Policy("api", paths=("**/api/test_*.py", "**/test_zz*.py")),
    ]
    files = ["tests/unit/test_a.py", "tests/api/test_b.py"]
    assert globs_matching_nothing(policies, files) == [
        ("unit", "tset/unit"),
        ("api", "**/test_zz*.py"),
    ]
    assert globs_matching_nothing(policies, []) == [
        ("unit", "tests/unit"),
        ("unit", "tset/unit"),
        ("api", "**/api/test_*.py"),
        ("api", "**/test_zz*.py"),
    ]
