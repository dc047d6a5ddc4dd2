"""Why a test is skipped instead of run: its dependencies and its batch's policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from core_policy import Policy

from pytest_batchflow.core.graph import TestSpec
from pytest_batchflow.core.plan import build_plan
from pytest_batchflow.core.scheduler import RunState


def run_state(
    tests: Mapping[str, str],
    batches: Sequence[Policy],
    *,
    edges: Mapping[str, Sequence[str]] | None = None,
    run: Sequence[str] | None = None,
    external_reasons: Mapping[str, str | None] | None = None,
    unresolved: Mapping[str, str] | None = None,
) -> tuple[RunState, dict[str, int]]:
    """A fresh state for ``tests`` (node id -> batch); returns it and the index of each id."""
    specs = [TestSpec.from_nodeid(i, nodeid) for i, nodeid in enumerate(tests)]
    index = {s.nodeid: s.index for s in specs}
    plan = build_plan(
        specs,
        batches,
        {index[nodeid]: batch for nodeid, batch in tests.items()},
        {index[d]: tuple(index[p] for p in preds) for d, preds in (edges or {}).items()},
        [index[nodeid] for nodeid in (tests if run is None else run)],
        {},
    )
    state = RunState(
        plan,
        {s.index: s.nodeid for s in specs},
        {index[nodeid]: reason for nodeid, reason in (external_reasons or {}).items()},
        {index[nodeid]: target for nodeid, target in (unresolved or {}).items()},
    )
    return state, index


def finish(state: RunState, index: int, outcome: str, now: float = 0.0) -> None:
    state.test_started(index, now)
    state.test_finished(index, outcome)


ONE_BATCH = (Policy("default"),)


class TestDependencies:
    def test_test_without_dependencies_may_run(self) -> None:
        state, ids = run_state({"t.py::a": "default"}, ONE_BATCH)
        assert state.skip_reason(ids["t.py::a"], now=0.0) is None

    def test_dependency_that_has_not_run(self) -> None:
        state, ids = run_state(
            {"t.py::a": "default", "t.py::b": "default"},
            ONE_BATCH,
            edges={"t.py::b": ["t.py::a"]},
        )
        assert state.skip_reason(ids["t.py::b"], now=0.0) == "depends on t.py::a, which has not run"

    @pytest.mark.parametrize("outcome", ["passed", "xpassed"])
    def test_passed_dependency_is_met(self, outcome: str) -> None:
        state, ids = run_state(
            {"t.py::a": "default", "t.py::b": "default"},
            ONE_BATCH,
            edges={"t.py::b": ["t.py::a"]},
        )
        finish(state, ids["t.py::a"], outcome)
        assert state.skip_reason(ids["t.py::b"], now=0.0) is None

    @pytest.mark.parametrize(
        ("outcome", "words"),
        [
            ("failed", "failed"),
            ("error", "errored"),
            ("skipped", "was skipped"),
            ("xfailed", "xfailed"),
        ],
    )
    def test_unmet_dependency_names_the_test_and_its_outcome(
        self, outcome: str, words: str
    ) -> None:
        state, ids = run_state(
            {"tests/t.py::TestX::test_a[1]": "default", "tests/t.py::test_b": "default"},
            ONE_BATCH,
            edges={"tests/t.py::test_b": ["tests/t.py::TestX::test_a[1]"]},
        )
        finish(state, ids["tests/t.py::TestX::test_a[1]"], outcome)
        assert (
            state.skip_reason(ids["tests/t.py::test_b"], now=0.0)
            == f"depends on tests/t.py::TestX::test_a[1], which {words}"
        )

    def test_first_unmet_dependency_is_named(self) -> None:
        state, ids = run_state(
            {
                "t.py::a": "default",
                "t.py::b": "default",
                "t.py::c": "default",
                "t.py::d": "default",
            },
            ONE_BATCH,
            edges={"t.py::d": ["t.py::a", "t.py::b", "t.py::c"]},
        )
        finish(state, ids["t.py::a"], "passed")
        finish(state, ids["t.py::b"], "skipped")
        finish(state, ids["t.py::c"], "failed")
        assert state.skip_reason(ids["t.py::d"], now=0.0) == "depends on t.py::b, which was skipped"

    def test_dependency_in_an_earlier_batch(self) -> None:
        state, ids = run_state(
            {"s.py::a": "smoke", "u.py::b": "unit"},
            [Policy("smoke"), Policy("unit", after=("smoke",), on_upstream_failure="run")],
            edges={"u.py::b": ["s.py::a"]},
        )
        finish(state, ids["s.py::a"], "failed")
        assert state.skip_reason(ids["u.py::b"], now=0.0) == "depends on s.py::a, which failed"

    def test_unresolved_target(self) -> None:
        state, ids = run_state(
            {"t.py::a": "default"}, ONE_BATCH, unresolved={"t.py::a": "test_missing"}
        )
        assert (
            state.skip_reason(ids["t.py::a"], now=0.0)
            == "depends on 'test_missing', which matches no collected test"
        )

    def test_external_dependency_with_a_reason(self) -> None:
        state, ids = run_state(
            {"t.py::a": "default", "t.py::b": "default"},
            ONE_BATCH,
            edges={"t.py::b": ["t.py::a"]},
            run=["t.py::b"],
            external_reasons={"t.py::a": "was deselected"},
        )
        assert state.plan.external == {ids["t.py::b"]: (ids["t.py::a"],)}
        assert (
            state.skip_reason(ids["t.py::b"], now=0.0) == "depends on t.py::a, which was deselected"
        )

    def test_external_dependency_known_to_have_passed(self) -> None:
        state, ids = run_state(
            {"t.py::a": "default", "t.py::b": "default"},
            ONE_BATCH,
            edges={"t.py::b": ["t.py::a"]},
            run=["t.py::b"],
            external_reasons={"t.py::a": None},
        )
        assert state.skip_reason(ids["t.py::b"], now=0.0) is None


class TestMaxfail:
    TESTS: Mapping[str, str] = {f"t.py::t{i}": "smoke" for i in range(5)} | {"o.py::x": "other"}

    @pytest.mark.parametrize(
        ("maxfail", "reason"),
        [
            (1, "batch 'smoke' stopped after 1 failure (maxfail=1)"),
            (2, "batch 'smoke' stopped after 2 failures (maxfail=2)"),
        ],
    )
    def test_circuit_breaker_opens_after_maxfail_failures(self, maxfail: int, reason: str) -> None:
        state, ids = run_state(self.TESTS, [Policy("smoke", maxfail=maxfail), Policy("other")])
        for i in range(maxfail - 1):
            finish(state, ids[f"t.py::t{i}"], "failed")
            assert state.skip_reason(ids["t.py::t4"], now=0.0) is None
        finish(state, ids[f"t.py::t{maxfail - 1}"], "error")
        assert state.skip_reason(ids["t.py::t4"], now=0.0) == reason

    def test_only_failures_and_errors_count(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("smoke", maxfail=1), Policy("other")])
        for i, outcome in enumerate(["passed", "skipped", "xfailed", "xpassed"]):
            finish(state, ids[f"t.py::t{i}"], outcome)
        assert state.skip_reason(ids["t.py::t4"], now=0.0) is None

    def test_failures_of_another_batch_do_not_count(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("smoke"), Policy("other", maxfail=1)])
        finish(state, ids["t.py::t0"], "failed")
        finish(state, ids["t.py::t1"], "failed")
        assert state.skip_reason(ids["o.py::x"], now=0.0) is None

    def test_no_maxfail_means_no_limit(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("smoke"), Policy("other")])
        for i in range(4):
            finish(state, ids[f"t.py::t{i}"], "failed")
        assert state.skip_reason(ids["t.py::t4"], now=0.0) is None


class TestTimeout:
    TESTS: Mapping[str, str] = {"t.py::a": "slow", "t.py::b": "slow", "o.py::c": "other"}

    def test_timeout_counts_from_the_first_test_of_the_batch(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("slow", timeout=10.0), Policy("other")])
        state.test_started(ids["t.py::a"], now=100.0)
        state.test_started(ids["t.py::a"], now=105.0)  # a rerun does not restart the clock
        assert state.skip_reason(ids["t.py::b"], now=109.9) is None
        assert (
            state.skip_reason(ids["t.py::b"], now=110.0) == "batch 'slow' spent its timeout of 10s"
        )
        assert state.skip_reason(ids["o.py::c"], now=1000.0) is None

    def test_batch_that_has_not_started_has_not_timed_out(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("slow", timeout=1.0), Policy("other")])
        state.test_started(ids["o.py::c"], now=0.0)
        assert state.skip_reason(ids["t.py::a"], now=50.0) is None

    def test_fractional_timeout_in_the_reason(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("slow", timeout=1.5), Policy("other")])
        state.test_started(ids["t.py::a"], now=0.0)
        assert (
            state.skip_reason(ids["t.py::b"], now=2.0) == "batch 'slow' spent its timeout of 1.5s"
        )

    def test_no_timeout_means_no_limit(self) -> None:
        state, ids = run_state(self.TESTS, [Policy("slow"), Policy("other")])
        state.test_started(ids["t.py::a"], now=0.0)
        assert state.skip_reason(ids["t.py::b"], now=1e9) is None


PIPELINE_TESTS: Mapping[str, str] = {
    "s.py::a": "smoke",
    "s.py::b": "smoke",
    "u.py::c": "unit",
    "d.py::d": "db",
}


def pipeline(unit: Policy | None = None, db: Policy | None = None) -> list[Policy]:
    return [
        Policy("smoke"),
        unit or Policy("unit", after=("smoke",)),
        db or Policy("db", after=("unit",)),
    ]


class TestUpstreamBatches:
    def test_upstream_without_failures_lets_the_batch_run(self) -> None:
        state, ids = run_state(PIPELINE_TESTS, pipeline())
        finish(state, ids["s.py::a"], "passed")
        finish(state, ids["s.py::b"], "skipped")
        assert state.skip_reason(ids["u.py::c"], now=0.0) is None
        assert state.upstream_block("unit") is None

    @pytest.mark.parametrize(
        ("outcomes", "reason"),
        [
            (["failed", "passed"], "upstream batch 'smoke' had 1 failure"),
            (["failed", "error"], "upstream batch 'smoke' had 2 failures"),
        ],
    )
    def test_upstream_with_failures_skips_the_batch(self, outcomes: list[str], reason: str) -> None:
        state, ids = run_state(PIPELINE_TESTS, pipeline())
        finish(state, ids["s.py::a"], outcomes[0])
        finish(state, ids["s.py::b"], outcomes[1])
        assert state.skip_reason(ids["u.py::c"], now=0.0) == reason
        assert state.upstream_block("unit") == reason

    def test_skip_is_transitive(self) -> None:
        state, ids = run_state(PIPELINE_TESTS, pipeline())
        finish(state, ids["s.py::a"], "failed")
        assert state.skip_reason(ids["d.py::d"], now=0.0) == "upstream batch 'unit' was skipped"

    def test_batch_that_runs_on_upstream_failure(self) -> None:
        unit = Policy("unit", after=("smoke",), on_upstream_failure="run")
        state, ids = run_state(PIPELINE_TESTS, pipeline(unit=unit))
        finish(state, ids["s.py::a"], "failed")
        assert state.skip_reason(ids["u.py::c"], now=0.0) is None
        assert state.skip_reason(ids["d.py::d"], now=0.0) is None

    def test_downstream_of_a_batch_that_runs_anyway_sees_its_own_upstream_only(self) -> None:
        unit = Policy("unit", after=("smoke",), on_upstream_failure="run")
        state, ids = run_state(PIPELINE_TESTS, pipeline(unit=unit))
        finish(state, ids["s.py::a"], "failed")
        finish(state, ids["u.py::c"], "failed")
        assert state.skip_reason(ids["d.py::d"], now=0.0) == "upstream batch 'unit' had 1 failure"

    def test_unrelated_batch_is_not_blocked(self) -> None:
        state, ids = run_state(
            {"s.py::a": "smoke", "o.py::b": "other"}, [Policy("smoke"), Policy("other")]
        )
        finish(state, ids["s.py::a"], "failed")
        assert state.skip_reason(ids["o.py::b"], now=0.0) is None

    def test_upstream_left_out_of_the_plan_is_ignored(self) -> None:
        state, ids = run_state({"u.py::c": "unit"}, [Policy("unit", after=("smoke",))])
        assert state.skip_reason(ids["u.py::c"], now=0.0) is None

    def test_upstream_reason_comes_before_the_dependency_reason(self) -> None:
        state, ids = run_state(PIPELINE_TESTS, pipeline(), edges={"u.py::c": ["s.py::a"]})
        finish(state, ids["s.py::a"], "failed")
        assert state.skip_reason(ids["u.py::c"], now=0.0) == "upstream batch 'smoke' had 1 failure"


class TestSkipKinds:
    """Why the rules skipped each test, decided when it is skipped: ``--lf`` reruns
    the tests a failure kept from running (``failure``), keeps those that did not
    get their turn (``turn``) and forgets the rest, as pytest does."""

    CHAIN: Mapping[str, str] = {"t.py::a": "default", "t.py::b": "default", "t.py::c": "default"}
    EDGES: Mapping[str, Sequence[str]] = {"t.py::b": ["t.py::a"], "t.py::c": ["t.py::b"]}

    def skip_in_order(self, state: RunState, ids: dict[str, int], *names: str) -> None:
        for name in names:
            index = ids[name]
            assert state.skip(index, now=0.0) is not None
            finish(state, index, "skipped")

    @pytest.mark.parametrize(
        ("outcome", "kind"),
        [
            ("failed", "failure"),
            ("error", "failure"),
            ("skipped", "outcome"),
            ("xfailed", "outcome"),
        ],
    )
    def test_a_chain_behind_a_test_that_did_not_pass(self, outcome: str, kind: str) -> None:
        state, ids = run_state(self.CHAIN, ONE_BATCH, edges=self.EDGES)
        finish(state, ids["t.py::a"], outcome)
        self.skip_in_order(state, ids, "t.py::b", "t.py::c")
        assert state.skipped == {ids["t.py::b"]: kind, ids["t.py::c"]: kind}

    def test_a_test_that_may_run_is_not_recorded(self) -> None:
        state, ids = run_state(self.CHAIN, ONE_BATCH, edges=self.EDGES)
        finish(state, ids["t.py::a"], "passed")
        assert state.skip(ids["t.py::b"], now=0.0) is None
        assert state.skip_reason(ids["t.py::c"], now=0.0) is not None  # a query records nothing
        assert state.skipped == {}

    def test_an_upstream_batch_s_failure_and_maxfail_are_failures(self) -> None:
        tests = {"t.py::s1": "smoke", "t.py::s2": "smoke", "t.py::u": "unit", "t.py::x": "other"}
        batches = [Policy("smoke", maxfail=1), Policy("unit", after=("smoke",)), Policy("other")]
        state, ids = run_state(tests, batches)
        finish(state, ids["t.py::s1"], "failed")
        self.skip_in_order(state, ids, "t.py::s2", "t.py::u")
        assert state.skipped == {ids["t.py::s2"]: "failure", ids["t.py::u"]: "failure"}

    def test_a_skip_before_the_batch_reached_maxfail_stays_what_it_was(self) -> None:
        # b skipped behind a, which skipped itself; c's failure then stops the
        # batch. b was not kept from running by a failure (decided at the end,
        # it seemed so, and --lf then ran b without a for ever).
        tests = {"t.py::a": "smoke", "t.py::b": "smoke", "t.py::c": "smoke"}
        state, ids = run_state(tests, [Policy("smoke", maxfail=1)], edges={"t.py::b": ["t.py::a"]})
        finish(state, ids["t.py::a"], "skipped")
        self.skip_in_order(state, ids, "t.py::b")
        finish(state, ids["t.py::c"], "failed")
        assert state.skipped == {ids["t.py::b"]: "outcome"}

    def test_a_timeout_and_a_dependency_outside_the_run_are_turns(self) -> None:
        tests = {"t.py::a": "slow", "t.py::b": "slow", "t.py::c": "slow"}
        state, ids = run_state(
            tests,
            [Policy("slow", timeout=1.0)],
            edges={"t.py::c": ["t.py::a"]},
            run=["t.py::b", "t.py::c"],
            external_reasons={"t.py::a": "was deselected"},
        )
        assert state.skip(ids["t.py::c"], now=0.0) == "depends on t.py::a, which was deselected"
        finish(state, ids["t.py::b"], "passed", now=0.0)
        assert state.skip(ids["t.py::b"], now=2.0) is not None  # its rerun, say: too late
        assert state.skipped == {ids["t.py::c"]: "turn", ids["t.py::b"]: "turn"}
