"""The multi-worker dispatcher, run against a simulated xdist cluster.

Plain scenarios first, then Hypothesis properties over random plans: every rule
of the plan holds on any number of workers, the right tests are skipped, the
run always ends, and without constraints other than dependencies and batch
barriers the makespan stays within Graham's bound of list scheduling.

Every simulated run is checked by :func:`check_run`, an oracle that knows the
rules but not the dispatcher: it judges only the start and stop times of the
executions and the skips.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import Any
from unittest.mock import patch

import pytest
from cluster import Cluster, Execution, Outcome
from core_policy import Policy
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_batchflow.core.graph import TestSpec
from pytest_batchflow.core.plan import Plan, build_plan, order_batches
from pytest_batchflow.core.resources import Budget, Needs
from pytest_batchflow.core.scheduler import (
    FAILING_OUTCOMES,
    MIN_OBSERVATIONS,
    PIPELINE_DEPTH,
    PIPELINE_HORIZON,
    PRIORITY_FLOOR,
    SATISFYING_OUTCOMES,
    Dispatcher,
    Idle,
    RunState,
)

# As in test_properties: no example database, no explain phase.
MODEST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

ONE_BATCH = (Policy("default"),)
WORDS = {"failed": "failed", "error": "errored", "skipped": "was skipped", "xfailed": "xfailed"}


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# -- running a scenario ------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A planned run on a simulated cluster; tests are indices 0..n-1."""

    nodeids: list[str]
    batches: list[Policy]
    batch_of: dict[int, str]
    predecessors: dict[int, tuple[int, ...]]
    run_order: list[int]
    durations: dict[int, float]
    workers: int
    outcomes: dict[int, str] = field(default_factory=dict)
    crashes: frozenset[int] = frozenset()
    teardown_crashes: frozenset[int] = frozenset()
    locks: dict[int, frozenset[str]] = field(default_factory=dict)
    #: The dispatcher's pipeline horizon (0: one test per worker at a time).
    horizon: float = PIPELINE_HORIZON
    #: Whether the durations are known from history before the run.
    history: bool = True
    #: Outcomes per attempt (the last repeats), rerun budgets, first rerun's delay.
    attempts: dict[int, list[str]] = field(default_factory=dict)
    budgets: dict[int, int] = field(default_factory=dict)
    rerun_delay: float = 0.0
    #: Memory and CPUs the tests need, and the budget of the running tests.
    needs: dict[int, Needs] = field(default_factory=dict)
    budget: Budget | None = None
    #: Seconds each module's fixtures take to set up on a worker (known to the
    #: dispatcher from history, and spent by the cluster).
    setup_costs: dict[str, float] = field(default_factory=dict)
    #: A plugin reads the next item: release items at the top, and a test of
    #: unknown length gets a test behind it (see ``Dispatcher``).
    release_at_top: bool = False

    def plan(self) -> Plan:
        specs = [TestSpec.from_nodeid(i, nodeid) for i, nodeid in enumerate(self.nodeids)]
        return build_plan(
            specs,
            self.batches,
            self.batch_of,
            self.predecessors,
            self.run_order,
            {self.nodeids[i]: d for i, d in self.durations.items()} if self.history else {},
        )

    def simulate(self) -> tuple[Plan, Outcome]:
        plan = self.plan()
        state = RunState(plan, dict(enumerate(self.nodeids)), {}, {})
        parents = {i: nodeid.partition("::")[0] for i, nodeid in enumerate(self.nodeids)}
        dispatcher = Dispatcher(
            plan,
            state,
            parents,
            self.locks,
            horizon=self.horizon,
            needs=self.needs,
            budget=self.budget,
            setup_costs=self.setup_costs or None,
            # As a worker's collection gives them: the session, then the module.
            chains={parent: ("", parent) for parent in parents.values()},
            # As the orchestrator says: a test may be handed back with a budget.
            may_rerun=any(self.budgets.values()),
            release_at_top=self.release_at_top,
        )
        cluster = Cluster(
            dispatcher,
            state,
            self.workers,
            self.durations,
            outcomes=self.outcomes,
            crashes=self.crashes,
            teardown_crashes=self.teardown_crashes,
            attempts=self.attempts,
            budgets=self.budgets,
            rerun_delay=self.rerun_delay,
            setup_costs=self.setup_costs,
        )
        return plan, cluster.run()


def one_batch(
    nodeids: list[str], durations: dict[int, float], horizon: float = PIPELINE_HORIZON
) -> Scenario:
    """A scenario of independent tests in one batch, in collection order, on one worker."""
    count = len(nodeids)
    return Scenario(
        nodeids=nodeids,
        batches=list(ONE_BATCH),
        batch_of=dict.fromkeys(range(count), "default"),
        predecessors={},
        run_order=list(range(count)),
        durations=durations,
        workers=1,
        horizon=horizon,
    )


@dataclass
class Run:
    """A scenario's result, by test name."""

    plan: Plan
    result: Outcome
    ids: dict[str, int]

    def one(self, name: str) -> Execution:
        """The only execution of test ``name``."""
        runs = [e for e in self.result.executions if e.index == self.ids[name]]
        assert len(runs) == 1, f"{name} ran {len(runs)} times"
        return runs[0]

    @property
    def executed(self) -> list[str]:
        names = {index: name for name, index in self.ids.items()}
        return [names[e.index] for e in self.result.executions]

    @property
    def skipped(self) -> dict[str, str]:
        names = {index: name for name, index in self.ids.items()}
        return {names[index]: reason for index, reason in self.result.skipped.items()}

    @property
    def makespan(self) -> float:
        return self.result.makespan


def simulate(
    tests: Sequence[str] | Mapping[str, str],
    batches: Sequence[Policy] = ONE_BATCH,
    *,
    workers: int = 2,
    edges: Mapping[str, Sequence[str]] | None = None,
    durations: Mapping[str, float] | None = None,
    outcomes: Mapping[str, str] | None = None,
    crashes: Iterable[str] = (),
    teardown_crashes: Iterable[str] = (),
    locks: Mapping[str, Iterable[str]] | None = None,
    horizon: float = PIPELINE_HORIZON,
    history: bool = True,
    attempts: Mapping[str, list[str]] | None = None,
    budgets: Mapping[str, int] | None = None,
    rerun_delay: float = 0.0,
    needs: Mapping[str, Needs] | None = None,
    budget: Budget | None = None,
    release_at_top: bool = False,
) -> Run:
    """Run tests named ``t.py::<name>`` (a list, or name -> batch) and check the run.

    A name with ``::`` is a whole node id (``a.py::x``, for another module).

    Every test takes 1.0 unless ``durations`` says otherwise.
    """
    batch_of_name = tests if isinstance(tests, Mapping) else dict.fromkeys(tests, "default")
    ids = {name: i for i, name in enumerate(batch_of_name)}
    durations = durations or {}
    scenario = Scenario(
        nodeids=[name if "::" in name else f"t.py::{name}" for name in batch_of_name],
        batches=list(batches),
        batch_of={ids[name]: batch for name, batch in batch_of_name.items()},
        predecessors={ids[d]: tuple(ids[p] for p in preds) for d, preds in (edges or {}).items()},
        run_order=list(ids.values()),
        durations={i: durations.get(name, 1.0) for name, i in ids.items()},
        workers=workers,
        outcomes={ids[name]: outcome for name, outcome in (outcomes or {}).items()},
        crashes=frozenset(ids[name] for name in crashes),
        teardown_crashes=frozenset(ids[name] for name in teardown_crashes),
        locks={ids[name]: frozenset(held) for name, held in (locks or {}).items()},
        horizon=horizon,
        history=history,
        attempts={ids[name]: outcomes for name, outcomes in (attempts or {}).items()},
        budgets={ids[name]: budget for name, budget in (budgets or {}).items()},
        rerun_delay=rerun_delay,
        needs={ids[name]: wanted for name, wanted in (needs or {}).items()},
        budget=budget,
        release_at_top=release_at_top,
    )
    plan, result = scenario.simulate()
    check_run(scenario, plan, result)
    return Run(plan, result, ids)


# -- the oracle ----------------------------------------------------------------


def overlap(a: Execution, b: Execution) -> bool:
    return a.start < b.stop and b.start < a.stop


def most_at_once(executions: Iterable[Execution]) -> int:
    """The largest number of executions running at one instant (a stop frees at once)."""
    executions = list(executions)
    events = sorted(
        [(e.start, 1) for e in executions] + [(e.stop, -1) for e in executions],
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def check_run(scenario: Scenario, plan: Plan, result: Outcome) -> None:
    """Every rule of the plan, judged from the executions and skips alone."""
    policies = {batch.name: batch.policy for batch in plan.batches}
    tests_of = {batch.name: batch.tests for batch in plan.batches}
    nodeids = scenario.nodeids

    # A crashed test counts as failed, and the dispatcher names it as the crashed one.
    for execution in result.executions:
        if execution.crashed:
            assert execution.index in scenario.crashes
            assert execution.outcome == "failed"
            assert result.blamed[execution.worker] == execution.index
    for worker, blamed in result.blamed.items():
        if not any(e.crashed and e.worker == worker for e in result.executions):
            assert blamed is None, f"{worker} crashed between tests, yet {blamed} is blamed"

    # Each test is executed once (a crash counts), plus a rerun per failed
    # attempt its budget allows, or skipped, never both.
    runs: dict[int, list[Execution]] = defaultdict(list)
    for execution in result.executions:
        runs[execution.index].append(execution)
    for index in plan.order:
        attempts, skipped = runs.get(index, []), index in result.skipped
        # A rerun the rules skip (maxfail, timeout) leaves the last failure standing.
        given_up = bool(attempts) and attempts[-1].rerun
        assert bool(attempts) != skipped or given_up, (
            f"{nodeids[index]} executed {len(attempts)} times, skipped: {skipped}"
        )
        if attempts:
            assert len(attempts) <= 1 + scenario.budgets.get(index, 0), nodeids[index]
            assert [e.rerun for e in attempts[:-1]] == [True] * (len(attempts) - 1)
            assert attempts[-1].rerun == skipped, nodeids[index]
            for earlier, later in pairwise(attempts):
                assert earlier.outcome in FAILING_OUTCOMES
                assert later.start >= earlier.stop + scenario.rerun_delay - 1e-9
    assert set(runs) | set(result.skipped) == set(plan.order)
    # A test's final attempt decides; its first one is when it started.
    run = {index: executions[-1] for index, executions in runs.items()}
    began = {index: executions[0].start for index, executions in runs.items()}

    final = {index: e.outcome for index, e in run.items()}
    final.update({i: "skipped" for i in result.skipped if i not in run})

    # Dependencies: a test starts only after each of its dependencies passed.
    for index in run:
        for pred in plan.predecessors.get(index, ()):
            if pred not in plan.batch_of:
                continue
            assert pred in run, f"{nodeids[index]} ran although {nodeids[pred]} did not"
            assert run[pred].stop <= began[index], (
                f"{nodeids[index]} started at {began[index]}, "
                f"before its dependency {nodeids[pred]} stopped at {run[pred].stop}"
            )
            assert final[pred] in SATISFYING_OUTCOMES, (nodeids[index], nodeids[pred])

    # after= barriers, transitively (through batches without tests too): no test
    # of a batch starts before every test of each batch it comes after is done.
    @cache
    def upstream(batch: str) -> frozenset[str]:
        direct = [a for a in policies[batch].after if a in policies]
        return frozenset(direct).union(*(upstream(a) for a in direct))

    for index in run:
        for before in upstream(plan.batch_of[index]):
            for earlier in tests_of[before]:
                done = run[earlier].stop if earlier in run else result.skipped_at[earlier]
                assert done <= began[index], (
                    f"{nodeids[index]} (batch {plan.batch_of[index]!r}) started at "
                    f"{began[index]}, before {nodeids[earlier]} (batch {before!r}, "
                    f"which it comes after) was done at {done}"
                )

    # Modes and caps.
    for batch in plan.batches:
        policy = batch.policy
        # Every attempt holds its batch's slot (and its locks, below).
        mine = sorted(
            (e for i in batch.tests for e in runs.get(i, [])), key=lambda e: (e.start, e.stop)
        )
        if policy.mode in ("serial", "exclusive"):
            for first, second in pairwise(mine):
                assert first.stop <= second.start, (
                    f"{policy.mode} batch {batch.name!r}: {nodeids[first.index]} and "
                    f"{nodeids[second.index]} overlap"
                )
            started = list(dict.fromkeys(e.index for e in mine))
            assert started == [i for i in batch.tests if i in run], (
                f"{policy.mode} batch {batch.name!r} did not start in plan order"
            )
        if policy.mode == "exclusive" and mine:
            first_start, last_stop = mine[0].start, max(e.stop for e in mine)
            for other in result.executions:
                if plan.batch_of[other.index] != batch.name:
                    assert other.stop <= first_start or other.start >= last_stop, (
                        f"{nodeids[other.index]} ran ({other.start}-{other.stop}) while "
                        f"exclusive batch {batch.name!r} ran ({first_start}-{last_stop})"
                    )
        if policy.workers is not None:
            assert most_at_once(mine) <= policy.workers, f"batch {batch.name!r} over its cap"

    # Locks.
    holders: dict[str, list[Execution]] = defaultdict(list)
    for execution in result.executions:
        for lock in scenario.locks.get(execution.index, ()):
            holders[lock].append(execution)
    for lock, executions in holders.items():
        for a, b in pairwise(sorted(executions, key=lambda e: e.start)):
            assert not overlap(a, b), f"{nodeids[a.index]} and {nodeids[b.index]} share {lock!r}"

    # Memory and CPUs: at any moment the tests counting against the budget
    # (not light) need at most the budget together, and CPUs of busy workers
    # plus the extra CPUs of those tests stay within its CPUs; a test needing
    # more than the whole budget runs with nothing else.
    budget = scenario.budget
    if budget is not None:
        needs_of = {i: scenario.needs.get(i, Needs()) for i in plan.order}
        for execution in result.executions:
            wanted = needs_of[execution.index]
            beside = [e for e in result.executions if e is not execution and overlap(e, execution)]
            if budget.exceeds(wanted):
                assert not beside, f"{nodeids[execution.index]} needs more than the budget"
                continue
            instants = [execution.start] + [e.start for e in beside if e.start > execution.start]
            for instant in instants:
                at = [e for e in [execution, *beside] if e.start <= instant < e.stop]
                heavy = [needs_of[e.index] for e in at if not budget.light(needs_of[e.index])]
                if budget.memory is not None:
                    assert sum(n.memory for n in heavy) <= budget.memory, (
                        f"over the memory budget at {instant}: "
                        + ", ".join(nodeids[e.index] for e in at)
                    )
                assert len(at) + sum(n.cpus - 1 for n in heavy) <= max(
                    budget.cpus, scenario.workers
                ), f"over the CPU budget at {instant}"

    # Skips: exactly the tests that the rules skip, with the first rule's reason.
    failures = Counter(
        plan.batch_of[index] for index, outcome in final.items() if outcome in FAILING_OUTCOMES
    )

    @cache
    def blocked(batch: str) -> str | None:
        if policies[batch].on_upstream_failure == "run":
            return None
        for before in policies[batch].after:
            if before not in policies:
                continue
            if failures[before]:
                return f"upstream batch {before!r} had {plural(failures[before], 'failure')}"
            if blocked(before) is not None:
                return f"upstream batch {before!r} was skipped"
        return None

    def failed_at(index: int) -> float:
        """When the test's failure counted: a given-up rerun's when it was given up."""
        return result.skipped_at[index] if index in result.skipped else run[index].stop

    def failures_before(batch: str, moment: float, *, inclusive: bool) -> int:
        return sum(
            1
            for index, execution in run.items()
            if plan.batch_of[index] == batch
            and execution.outcome in FAILING_OUTCOMES
            and (failed_at(index) <= moment if inclusive else failed_at(index) < moment)
        )

    for index in plan.order:
        name = plan.batch_of[index]
        maxfail = policies[name].maxfail
        reason = blocked(name)
        if reason is None:
            for pred in plan.predecessors.get(index, ()):
                if pred in plan.batch_of and final[pred] not in SATISFYING_OUTCOMES:
                    reason = f"depends on {nodeids[pred]}, which {WORDS[final[pred]]}"
                    break
        if index in run and index not in result.skipped:
            assert reason is None, f"{nodeids[index]} ran, but {reason}"
            if maxfail is not None:
                count = failures_before(name, began[index], inclusive=False)
                assert count < maxfail, (
                    f"{nodeids[index]} started after {count} failures of batch {name!r} "
                    f"(maxfail={maxfail})"
                )
            continue
        actual = result.skipped[index]
        if reason is not None:
            assert actual == reason, nodeids[index]
            continue
        assert maxfail is not None, f"{nodeids[index]} skipped for no reason: {actual!r}"
        moment = result.skipped_at[index]
        match = re.fullmatch(
            rf"batch {re.escape(repr(name))} stopped after (\d+) failures? "
            rf"\(maxfail={maxfail}\)",
            actual,
        )
        assert match is not None, (nodeids[index], actual)
        count = int(match[1])
        low = failures_before(name, moment, inclusive=False)
        high = failures_before(name, moment, inclusive=True)
        assert count >= maxfail, (nodeids[index], actual)
        assert low <= count <= high, (nodeids[index], actual, low, high)

    # The end: every worker still there was told to shut down, once nothing was left.
    last_start = max((e.start for e in result.executions), default=0.0)
    for worker in result.workers:
        if worker in result.crashed_workers:
            continue
        assert worker in result.shutdowns, f"{worker} was never told to shut down"
    for worker, moment in result.shutdowns.items():
        later = [e for e in result.executions if e.start > moment and e.worker == worker]
        assert not later, f"{worker} ran tests after it was told to shut down"
    assert result.makespan >= last_start


# -- scenarios -----------------------------------------------------------------


class TestDependencies:
    def test_diamond_runs_its_middle_at_the_same_time(self) -> None:
        run = simulate(["a", "b", "c", "d"], edges={"b": ["a"], "c": ["a"], "d": ["b", "c"]})
        a, b, c, d = (run.one(name) for name in "abcd")
        assert overlap(b, c)
        assert (b.start, b.stop) == (c.start, c.stop) == (1.0, 2.0)
        assert b.worker != c.worker
        assert a.stop <= b.start
        assert c.stop <= d.start
        assert run.makespan == 3.0 == run.plan.lower_bound(2)

    def test_chain_runs_in_order_on_many_workers(self) -> None:
        run = simulate(["d", "c", "b", "a"], workers=4, edges={"b": ["a"], "c": ["b"], "d": ["c"]})
        chain = [run.one(name) for name in "abcd"]
        for first, second in pairwise(chain):
            assert first.stop <= second.start
        assert [e.start for e in chain] == [0.0, 1.0, 2.0, 3.0]
        assert run.makespan == 4.0

    def test_dependents_of_a_failure_are_skipped_transitively(self) -> None:
        run = simulate(
            ["a", "b", "c", "d"],
            edges={"b": ["a"], "c": ["b"]},
            outcomes={"a": "failed"},
        )
        assert run.skipped == {
            "b": "depends on t.py::a, which failed",
            "c": "depends on t.py::b, which was skipped",
        }
        assert sorted(run.executed) == ["a", "d"]

    @pytest.mark.parametrize(
        ("outcome", "words"),
        [("error", "errored"), ("skipped", "was skipped"), ("xfailed", "xfailed")],
    )
    def test_only_a_pass_meets_a_dependency(self, outcome: str, words: str) -> None:
        run = simulate(["a", "b"], edges={"b": ["a"]}, outcomes={"a": outcome})
        assert run.skipped == {"b": f"depends on t.py::a, which {words}"}

    def test_xpassed_meets_a_dependency(self) -> None:
        run = simulate(["a", "b"], edges={"b": ["a"]}, outcomes={"a": "xpassed"})
        assert run.one("a").stop <= run.one("b").start
        assert run.skipped == {}

    def test_longest_remaining_path_goes_first(self) -> None:
        shorts = [f"s{n}" for n in range(8)]
        chain = ["c1", "c2", "c3", "c4"]
        run = simulate(
            shorts + chain,  # collected first, so first in plan order
            edges={"c2": ["c1"], "c3": ["c2"], "c4": ["c3"]},
        )
        assert run.one("c1").start == 0.0
        assert run.makespan == 6.0 == run.plan.lower_bound(2)

    def test_longest_test_goes_first_among_equal_paths(self) -> None:
        run = simulate(["short1", "short2", "long"], workers=2, durations={"long": 2.0})
        assert run.one("long").start == 0.0
        assert run.makespan == 2.0

    @pytest.mark.parametrize("workers", [1, 2, 4])
    def test_fast_tests_keep_their_plan_order_on_each_worker(self, workers: int) -> None:
        # Estimates a microsecond apart, the later tests "longer": noise at this
        # scale, which longest-first would turn into the reverse order.
        names = [f"f{n:02}" for n in range(60)]
        durations = {name: 0.001 + n * 1e-6 for n, name in enumerate(names)}
        run = simulate(names, workers=workers, durations=durations)
        for worker in {e.worker for e in run.result.executions}:
            ran = sorted(
                (e for e in run.result.executions if e.worker == worker), key=lambda e: e.start
            )
            assert [e.index for e in ran] == sorted(e.index for e in ran)

    def test_a_test_above_the_priority_floor_still_goes_first(self) -> None:
        names = [f"f{n}" for n in range(6)] + ["slow"]
        durations = dict.fromkeys(names, 0.001) | {"slow": 10 * PRIORITY_FLOOR}
        run = simulate(names, workers=2, durations=durations)
        assert run.one("slow").start == 0.0

    @pytest.mark.parametrize("workers", [1, 3])
    def test_fast_tests_keep_their_order_when_a_later_batch_waits_on_them(
        self, workers: int
    ) -> None:
        # Every path of batch a ends with batch b's second: the fast tests'
        # paths differ only by their own noise-sized estimates, which count
        # as nothing (longest-first turned them into the reverse order).
        names = [f"f{n:02}" for n in range(20)]
        durations = {name: 0.001 + n * 1e-6 for n, name in enumerate(names)} | {"z": 1.0}
        run = simulate(
            dict.fromkeys(names, "a") | {"z": "b"},
            [Policy("a"), Policy("b", after=("a",))],
            workers=workers,
            durations=durations,
        )
        for worker in {e.worker for e in run.result.executions}:
            ran = sorted(
                (e for e in run.result.executions if e.worker == worker and e.index < 20),
                key=lambda e: e.start,
            )
            assert [e.index for e in ran] == sorted(e.index for e in ran)

    def test_a_fast_test_with_a_slow_dependent_still_goes_first(self) -> None:
        names = [f"f{n}" for n in range(6)]
        durations = dict.fromkeys(names, 0.001) | {"slow": 10 * PRIORITY_FLOOR}
        run = simulate(
            [*names, "slow"],
            workers=1,
            durations=durations,
            edges={"slow": ["f5"]},
        )
        assert run.one("f5").start == 0.0


class TestBatches:
    def test_after_is_a_barrier(self) -> None:
        run = simulate(
            {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b"},
            [Policy("a"), Policy("b", after=("a",))],
            workers=3,
            durations={"a1": 1.0, "a2": 2.0, "a3": 3.0, "b1": 0.5, "b2": 0.5},
        )
        last_a = max(run.one(name).stop for name in ("a1", "a2", "a3"))
        assert all(run.one(name).start >= last_a for name in ("b1", "b2"))
        assert last_a == 3.0
        assert run.makespan == 3.5

    def test_batches_without_after_run_side_by_side(self) -> None:
        run = simulate({"a1": "a", "b1": "b"}, [Policy("a"), Policy("b")])
        assert overlap(run.one("a1"), run.one("b1"))

    def test_upstream_failure_skips_the_downstream_batch(self) -> None:
        run = simulate(
            {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c"},
            [Policy("a"), Policy("b", after=("a",)), Policy("c", after=("b",))],
            outcomes={"a1": "failed"},
        )
        assert sorted(run.executed) == ["a1", "a2"]
        assert run.skipped == {
            "b1": "upstream batch 'a' had 1 failure",
            "b2": "upstream batch 'a' had 1 failure",
            "c1": "upstream batch 'b' was skipped",
        }

    def test_on_upstream_failure_run_runs_the_downstream_batch(self) -> None:
        run = simulate(
            {"a1": "a", "b1": "b"},
            [Policy("a"), Policy("b", after=("a",), on_upstream_failure="run")],
            outcomes={"a1": "failed"},
        )
        assert run.one("a1").stop <= run.one("b1").start
        assert run.skipped == {}

    def test_serial_batch_runs_one_at_a_time_in_plan_order(self) -> None:
        tests = {"p1": "p", "p2": "p", "s1": "s", "s2": "s", "s3": "s", "s4": "s"}
        run = simulate(
            tests,
            [Policy("p"), Policy("s", mode="serial")],
            workers=4,
            # Longer tests later in the batch would go first if the order were free.
            durations={"s1": 0.5, "s2": 1.0, "s3": 1.5, "s4": 2.0, "p1": 3.0, "p2": 3.0},
        )
        serial = [run.one(name) for name in ("s1", "s2", "s3", "s4")]
        for first, second in pairwise(serial):
            assert first.stop <= second.start
        assert serial[0].start == 0.0
        assert overlap(run.one("p1"), serial[0])

    def test_exclusive_batch_runs_alone_on_the_cluster(self) -> None:
        tests = {"p1": "p", "p2": "p", "p3": "p", "x1": "x", "x2": "x", "q1": "q"}
        run = simulate(
            tests,
            [Policy("p"), Policy("x", mode="exclusive"), Policy("q")],
            workers=3,
        )
        exclusive = [run.one("x1"), run.one("x2")]
        first_start, last_stop = exclusive[0].start, exclusive[1].stop
        assert exclusive[0].stop <= exclusive[1].start
        for name in ("p1", "p2", "p3", "q1"):
            other = run.one(name)
            assert other.stop <= first_start or other.start >= last_stop, name

    @pytest.mark.parametrize("cap", [1, 2])
    def test_workers_caps_a_batch(self, cap: int) -> None:
        tests = {f"c{n}": "c" for n in range(6)}
        run = simulate(tests, [Policy("c", workers=cap)], workers=4)
        assert most_at_once(run.one(name) for name in tests) == cap
        assert run.makespan == 6 / cap

    def test_capped_batch_leaves_the_other_workers_to_others(self) -> None:
        tests = {"c1": "c", "c2": "c", "o1": "o", "o2": "o"}
        run = simulate(tests, [Policy("c", workers=1), Policy("o")], workers=3)
        assert run.makespan == 2.0
        assert not overlap(run.one("c1"), run.one("c2"))

    def test_tests_sharing_a_lock_never_overlap(self) -> None:
        run = simulate(
            ["a", "b", "c", "d"],
            workers=4,
            locks={"a": {"db"}, "b": {"db", "net"}, "c": {"net"}},
        )
        assert not overlap(run.one("a"), run.one("b"))
        assert not overlap(run.one("b"), run.one("c"))
        assert overlap(run.one("a"), run.one("c"))
        assert run.one("d").start == 0.0

    def test_maxfail_stops_the_rest_of_the_batch(self) -> None:
        tests = {"f": "x", "t1": "x", "t2": "x", "t3": "x", "o": "other"}
        run = simulate(
            tests,
            [Policy("x", maxfail=1), Policy("other")],
            workers=1,
            outcomes={"f": "failed"},
        )
        stopped = "batch 'x' stopped after 1 failure (maxfail=1)"
        assert run.skipped == {"t1": stopped, "t2": stopped, "t3": stopped}
        assert sorted(run.executed) == ["f", "o"]

    def test_maxfail_lets_running_tests_finish(self) -> None:
        run = simulate(
            {"f": "x", "t1": "x", "t2": "x"},
            [Policy("x", maxfail=1)],
            workers=2,
            durations={"f": 1.0, "t1": 2.0, "t2": 1.0},
            outcomes={"f": "failed"},
        )
        assert run.one("t1").stop == 2.0
        assert run.skipped == {"t2": "batch 'x' stopped after 1 failure (maxfail=1)"}


class TestWorkers:
    def test_crash_fails_the_test_and_skips_its_dependents(self) -> None:
        run = simulate(
            ["a", "b", "c", "d", "e"],
            workers=2,
            edges={"b": ["a"]},
            durations={"a": 2.0},
            crashes={"a"},
        )
        crash = run.one("a")
        assert crash.crashed
        assert (crash.start, crash.stop) == (0.0, 1.0)
        assert run.skipped == {"b": "depends on t.py::a, which failed"}
        assert sorted(run.executed) == ["a", "c", "d", "e"]
        assert all(run.one(name).worker != crash.worker for name in "cde")
        assert run.result.restarts == 1
        assert run.result.blamed == {crash.worker: run.ids["a"]}

    def test_crash_counts_towards_maxfail_and_upstream_failure(self) -> None:
        run = simulate(
            {"a1": "a", "a2": "a", "b1": "b"},
            [Policy("a", maxfail=1), Policy("b", after=("a",))],
            workers=1,
            crashes={"a1"},
        )
        assert run.skipped == {
            "a2": "batch 'a' stopped after 1 failure (maxfail=1)",
            "b1": "upstream batch 'a' had 1 failure",
        }

    def test_crash_of_the_last_test_ends_the_run(self) -> None:
        run = simulate(["a"], workers=1, crashes={"a"})
        assert run.one("a").crashed
        assert run.result.blamed == {"gw0": run.ids["a"]}
        assert run.result.workers == ["gw0", "gw1"]
        # gw0's shutdown follows its last test; the replacement has nothing to do.
        assert run.result.shutdowns == {"gw0": 0.0, "gw1": 0.5}

    def test_every_worker_is_told_to_shut_down(self) -> None:
        run = simulate(["a", "b", "c"], workers=4)
        # Nothing can come back (no rerun budget): each worker's shutdown goes
        # right behind its last test, which then has no next item.
        assert run.result.shutdowns == {"gw0": 0.0, "gw1": 0.0, "gw2": 0.0, "gw3": 0.0}
        assert not any(isinstance(item, Idle) for _, items in run.result.sends for item in items)

    def test_a_plugin_that_reads_the_next_item_gets_a_test_behind_each_test(self) -> None:
        # A first run (no history): every test is of unknown length. Where a
        # plugin reads the next item, each test gets the next one behind it
        # (as xdist's load commits them) and each worker's last test its
        # shutdown: no release item is ever a test's next item.
        names = [f"t{n}" for n in range(7)]
        run = simulate(names, workers=2, history=False, release_at_top=True)
        assert not any(isinstance(item, Idle) for _, items in run.result.sends for item in items)
        assert set(run.result.shutdowns) == {"gw0", "gw1"}
        assert sorted(run.executed) == sorted(names)
        # Without such a plugin a test of unknown length goes out alone.
        run = simulate(names, workers=2, history=False)
        assert any(isinstance(items[-1], Idle) for _, items in run.result.sends)

    def test_with_a_rerun_budget_workers_stop_only_once_idle(self) -> None:
        # A failure could hand a test back: the worker that runs it must still
        # take work, so a release item follows each test and the shutdown
        # comes once the worker is done.
        run = simulate(["a", "b", "c"], workers=4, budgets={"a": 1})
        assert run.result.shutdowns == {"gw0": 1.0, "gw1": 1.0, "gw2": 1.0, "gw3": 0.0}
        assert all(isinstance(items[-1], Idle) for _, items in run.result.sends)

    def test_no_tests_shuts_every_worker_down_at_once(self) -> None:
        run = simulate([], workers=2)
        assert run.result.shutdowns == {"gw0": 0.0, "gw1": 0.0}


def sizes_of_sends(run: Run) -> list[int]:
    return [sum(isinstance(item, int) for item in items) for _, items in run.result.sends]


class TestPipelining:
    """Short tests go several at a time, so that workers never wait for the controller."""

    def names(self, count: int) -> list[str]:
        return [f"t{n}" for n in range(count)]

    def test_short_tests_go_several_at_a_time(self) -> None:
        names = self.names(1000)
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.001))
        sends = sizes_of_sends(run)
        assert max(sends) == PIPELINE_DEPTH
        # A top-up when half the queue is left: a send per 64 tests while many
        # are left, then smaller ones, shrinking by about a third each, down
        # to single tests at the very end.
        assert len(sends) <= 1000 // (PIPELINE_DEPTH // 2) + 30
        assert sends[-3:] == [1, 1, 1]
        for _, items in run.result.sends:
            # Tests sent together follow one another: a release item goes only
            # behind a test sent alone, or alone behind a worker's last test.
            assert not any(isinstance(item, Idle) for item in items[:-1])
            if isinstance(items[-1], Idle):
                assert len(items) <= 2
        # Only where a worker ran out of tests (one release item each time).
        assert sum(isinstance(items[-1], Idle) for _, items in run.result.sends) <= 8
        # The tail: both workers run out of work together.
        assert run.makespan == pytest.approx(0.5)

    def test_workers_busy_with_long_tests_take_no_share_of_the_short_ones(self) -> None:
        # Three workers run a 10 s test each; the fourth runs 2,000 tests of
        # 1 ms. Counted as sharing them, the busy workers would shrink its
        # sends to a quarter of what it can take (96 sends, not 45).
        durations = {f"long{n}": 10.0 for n in range(3)} | {f"t{n}": 0.001 for n in range(2000)}
        run = simulate(list(durations), workers=4, durations=durations)
        assert len(sizes_of_sends(run)) <= 50
        assert run.makespan == pytest.approx(10.0)

    @pytest.mark.parametrize("workers", [2, 3, 4])
    def test_workers_run_out_of_work_together_before_a_later_batch(self, workers: int) -> None:
        # 600 tests of 1 ms, then a batch that comes after them: a full queue
        # (0.25 s) on one worker where the first batch runs out would leave the
        # others idle for up to that long at the barrier, and at the end.
        tests = {f"a{n}": "a" for n in range(600)} | {f"b{n}": "b" for n in range(600)}
        run = simulate(
            tests,
            [Policy("a"), Policy("b", after=("a",))],
            workers=workers,
            durations=dict.fromkeys(tests, 0.001),
        )
        first = {run.ids[f"a{n}"] for n in range(600)}
        ends: dict[str, float] = {}
        for execution in run.result.executions:
            if execution.index in first:
                ends[execution.worker] = max(ends.get(execution.worker, 0.0), execution.stop)
        assert len(ends) == workers
        # Each worker's last test of the first batch ends within a test of the others'.
        assert max(ends.values()) - min(ends.values()) <= 0.001 + 1e-9
        assert run.makespan == pytest.approx(2 * 600 * 0.001 / workers, abs=0.0021)

    @settings(MODEST, max_examples=25)
    @given(
        per_worker=st.integers(600, 800),
        workers=st.integers(1, 3),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_the_quick_no_decision_decides_as_the_full_one(
        self, per_worker: int, workers: int, seed: int
    ) -> None:
        # Deep queues of short tests, some failing, crashing or depending on
        # another: the quick answer (nothing to decide) must change no send,
        # skip or shutdown, so both runs are the same to the last event. (Many
        # tests: a queue holds at most half a worker's share of the work.)
        count = per_worker * workers
        draw = random.Random(seed)
        names = self.names(count)
        durations = {name: draw.uniform(0.0001, 0.001) for name in names}
        outcomes = dict.fromkeys(draw.sample(names, count // 50), "failed")
        edges = {
            names[i]: [names[i - draw.randint(1, 20)]] for i in draw.sample(range(20, count), 5)
        }
        crashes = draw.sample(names, 1)
        quick = Counter[bool]()
        answer = Dispatcher._nothing_to_decide

        def counted(dispatcher: Dispatcher) -> bool:
            quick[answer(dispatcher)] += 1
            return answer(dispatcher)

        kwargs: dict[str, Any] = {
            "workers": workers,
            "durations": durations,
            "outcomes": outcomes,
            "edges": edges,
            "crashes": crashes,
        }
        with patch.object(Dispatcher, "_nothing_to_decide", counted):
            fast = simulate(names, **kwargs).result
        with patch.object(Dispatcher, "_nothing_to_decide", lambda _: False):
            full = simulate(names, **kwargs).result
        assert quick[True] > 0  # the quick answer was given
        assert fast == full

    def test_queued_work_stays_within_the_horizon(self) -> None:
        names = self.names(60)
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.03))
        # The running test and at most the horizon's worth of tests behind it.
        assert max(sizes_of_sends(run)) == 1 + int(PIPELINE_HORIZON / 0.03)

    def test_long_tests_go_one_at_a_time(self) -> None:
        names = self.names(12)
        run = simulate(names, workers=3)
        assert set(sizes_of_sends(run)) == {1}

    def test_without_history_the_run_measures_first(self) -> None:
        names = self.names(100)
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.001), history=False)
        sends = sizes_of_sends(run)
        # One at a time until MIN_OBSERVATIONS tests have finished, then several.
        assert sends[: MIN_OBSERVATIONS + 1] == [1] * (MIN_OBSERVATIONS + 1)
        assert max(sends) > MIN_OBSERVATIONS

    def test_without_history_long_tests_stay_one_at_a_time(self) -> None:
        names = self.names(30)
        run = simulate(names, workers=2, history=False)
        assert set(sizes_of_sends(run)) == {1}

    @pytest.mark.parametrize(
        ("policy", "locks"),
        [
            (Policy("default", mode="serial"), None),
            (Policy("default", workers=2), None),
            (Policy("default", maxfail=3), None),
            (Policy("default", timeout=10.0), None),
            (Policy("default"), "all"),
        ],
        ids=["serial", "capped", "maxfail", "timeout", "locks"],
    )
    def test_tests_under_rules_go_one_at_a_time(self, policy: Policy, locks: str | None) -> None:
        names = self.names(50)
        run = simulate(
            names,
            [policy],
            workers=2,
            durations=dict.fromkeys(names, 0.001),
            locks={name: [f"lock{n}"] for n, name in enumerate(names)} if locks else None,
        )
        assert set(sizes_of_sends(run)) == {1}

    def test_tests_others_depend_on_go_one_at_a_time(self) -> None:
        names = self.names(40)
        edges = {name: ["t0"] for name in names[20:]}
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.001), edges=edges)
        first = next(i for i, (_, items) in enumerate(run.result.sends) if run.ids["t0"] in items)
        assert sizes_of_sends(run)[first] == 1
        assert max(sizes_of_sends(run)) > 1

    def test_horizon_zero_turns_pipelining_off(self) -> None:
        names = self.names(100)
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.001), horizon=0)
        assert set(sizes_of_sends(run)) == {1}

    def test_a_crash_in_a_pipeline_blames_the_running_test_only(self) -> None:
        names = self.names(40)
        run = simulate(names, workers=2, durations=dict.fromkeys(names, 0.001), crashes={"t5"})
        assert run.one("t5").crashed
        assert run.result.blamed == {run.one("t5").worker: run.ids["t5"]}
        assert sorted(run.executed) == sorted(names)


def parent_switches(run: Run, worker: str) -> int:
    parents = [
        name.partition("::")[0]
        for name, execution in zip(run.executed, run.result.executions, strict=True)
        if execution.worker == worker
    ]
    return sum(a != b for a, b in pairwise(parents))


class TestAffinity:
    """A worker stays with the module it runs, unless that could lengthen the run."""

    def test_one_worker_runs_each_module_in_one_go(self) -> None:
        # By remaining path alone the modules would alternate: 3.0 a, 2.9 b, 2.8 a, ...
        durations = {f"{'ab'[n % 2]}.py::t{n}": 3.0 - 0.1 * n for n in range(10)}
        run = simulate(list(durations), workers=1, durations=durations)
        assert [name[0] for name in run.executed] == list("aaaaabbbbb")
        assert parent_switches(run, "gw0") == 1

    def test_the_critical_path_goes_first_all_the_same(self) -> None:
        names = ["b.py::t0", "a.py::long", "b.py::t1", "b.py::t2", "b.py::t3", "b.py::t4"]
        run = simulate(
            names,
            workers=2,
            edges={"a.py::long": ["b.py::t0"]},
            durations={"a.py::long": 4.0},
        )
        # At 1.0 both workers come from module b; staying there would start
        # the long test at 2.0 and end the run at 6.0 instead of 5.0.
        assert run.one("a.py::long").start == 1.0
        assert run.makespan == 5.0 == run.plan.lower_bound(2)

    def test_modules_stay_together_on_several_workers(self) -> None:
        durations = {f"m{n % 4}.py::t{n}": 0.5 + (n * 7919 % 13) / 10 for n in range(80)}
        run = simulate(list(durations), workers=2, durations=durations)
        # Each worker leaves a module only when it runs out of ready tests there.
        assert parent_switches(run, "gw0") + parent_switches(run, "gw1") <= 8
        assert run.makespan <= run.plan.lower_bound(2) * 1.05


def with_setup_costs(
    durations: Mapping[str, float], costs: Mapping[str, float], *, workers: int, known: bool
) -> tuple[Cluster, Outcome]:
    """Run tests whose modules cost ``costs`` to set up; the dispatcher knows them or not."""
    nodeids = list(durations)
    ids = {nodeid: i for i, nodeid in enumerate(nodeids)}
    scenario = Scenario(
        nodeids=nodeids,
        batches=list(ONE_BATCH),
        batch_of=dict.fromkeys(ids.values(), "default"),
        predecessors={},
        run_order=list(ids.values()),
        durations={ids[n]: d for n, d in durations.items()},
        workers=workers,
        horizon=0.0,
    )
    plan = scenario.plan()
    state = RunState(plan, dict(enumerate(nodeids)), {}, {})
    parents = {i: nodeid.partition("::")[0] for i, nodeid in enumerate(nodeids)}
    dispatcher = Dispatcher(
        plan, state, parents, {}, horizon=0.0, setup_costs=costs if known else None
    )
    cluster = Cluster(dispatcher, state, workers, scenario.durations, setup_costs=costs)
    result = cluster.run()
    assert Counter(e.index for e in result.executions) == dict.fromkeys(ids.values(), 1)
    return cluster, result


class TestSetupCosts:
    """Measured fixture setup costs: keep a costly module on one worker, not a free one."""

    def test_a_costly_module_is_not_set_up_on_a_second_worker(self) -> None:
        durations = {f"{m}.py::t{n}": 0.5 for m in "abcd" for n in range(6)}
        costs = {"a.py": 3.0, "b.py": 0.0, "c.py": 0.0, "d.py": 0.0}
        blind, blind_run = with_setup_costs(durations, costs, workers=2, known=False)
        aware, aware_run = with_setup_costs(durations, costs, workers=2, known=True)
        # Unaware, the second worker starts on a.py too (the next test in order).
        assert blind.setups["a.py"] == 2
        assert aware.setups["a.py"] == 1
        assert aware_run.makespan < blind_run.makespan

    def test_a_module_measured_free_does_not_hold_its_worker(self) -> None:
        # By remaining path the modules alternate: 3.0 a, 2.9 b, 2.8 a, ...
        durations = {f"{'ab'[n % 2]}.py::t{n}": 3.0 - 0.1 * n for n in range(10)}
        free = {"a.py": 0.0, "b.py": 0.0}
        _, run = with_setup_costs(durations, free, workers=1, known=True)
        order = [e.index for e in sorted(run.executions, key=lambda e: e.start)]
        assert order == list(range(10))
        # Unknown costs: a worker stays with its module, as before.
        _, run = with_setup_costs(durations, free, workers=1, known=False)
        order = [e.index for e in sorted(run.executions, key=lambda e: e.start)]
        assert order == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]

    def test_a_cheap_setup_holds_its_worker_when_the_tests_are_cheaper_still(self) -> None:
        # Estimates a microsecond apart alternate the modules by priority. A 3 ms
        # module setup, done again at every switch, would make 1 ms tests 4 times
        # slower: the worker stays with its module.
        durations = {f"{'ab'[n % 2]}.py::t{n}": 0.001 - n * 1e-6 for n in range(100)}
        costs = {"a.py": 0.003, "b.py": 0.003}
        cluster, _ = with_setup_costs(durations, costs, workers=1, known=True)
        assert cluster.setups == {"a.py": 1, "b.py": 1}
        # Against tests a hundred times longer, it is not worth keeping: priority rules.
        slow = {nodeid: seconds * 100 for nodeid, seconds in durations.items()}
        cluster, run = with_setup_costs(slow, costs, workers=1, known=True)
        order = [e.index for e in sorted(run.executions, key=lambda e: e.start)]
        assert order == list(range(100))
        assert cluster.setups == {"a.py": 50, "b.py": 50}

    def test_when_only_the_costly_module_is_left_both_workers_run_it(self) -> None:
        durations = {f"a.py::t{n}": 1.0 for n in range(10)}
        cluster, run = with_setup_costs(durations, {"a.py": 1.0}, workers=2, known=True)
        assert cluster.setups["a.py"] == 2
        assert run.makespan == 6.0  # 5 tests and one setup each, not 10 and one

    def test_keeping_apart_never_delays_the_critical_path(self) -> None:
        # b.py::long must start at once; a.py is costly and set up on gw0.
        durations = {"a.py::t0": 1.0, "b.py::long": 6.0, "a.py::t1": 1.0, "c.py::t0": 1.0}
        costs = {"a.py": 2.0, "b.py": 0.0, "c.py": 0.0}
        _, run = with_setup_costs(durations, costs, workers=2, known=True)
        long = next(e for e in run.executions if e.index == 1)
        assert long.start == 0.0


#: Each parent's nodes from the session down, as a worker's collection gives them.
CHAINS = {"m.py::C": ("", "m.py", "m.py::C"), "m.py": ("", "m.py"), "n.py": ("", "n.py")}


class TestReleasePoints:
    """Behind a test, the release item sits where the worker may stop tearing down."""

    NODEIDS = ("m.py::C::t0", "m.py::C::t1", "m.py::t2", "n.py::t0")

    def released(self, workers: int, chains: Mapping[str, Sequence[str]] | None) -> list[str]:
        """The release items in the order sent, each test finishing at once."""
        nodeids = list(self.NODEIDS)
        scenario = Scenario(
            nodeids=nodeids,
            batches=list(ONE_BATCH),
            batch_of=dict.fromkeys(range(len(nodeids)), "default"),
            predecessors={},
            run_order=list(range(len(nodeids))),
            durations=dict.fromkeys(range(len(nodeids)), 1.0),
            workers=workers,
            horizon=0.0,
        )
        plan = scenario.plan()
        state = RunState(plan, dict(enumerate(nodeids)), {}, {})
        parents = {i: nodeid.rpartition("::")[0] for i, nodeid in enumerate(nodeids)}
        dispatcher = Dispatcher(plan, state, parents, {}, horizon=0.0, chains=chains)
        for worker in range(workers):
            dispatcher.add_worker(f"gw{worker}")
        released: list[str] = []
        now = 0.0
        while not dispatcher.finished:
            sent = dispatcher.decide(now).send
            for worker, items in sorted(sent.items()):
                assert isinstance(items[-1], Idle)
                released.append(items[-1].parent)
                for test in items[:-1]:
                    assert isinstance(test, int)
                    state.test_finished(test, "passed")
                    dispatcher.test_complete(worker, test, 1.0)
            now += 1.0
        return released

    def test_it_rises_above_a_parent_with_no_test_left_to_send(self) -> None:
        # t0 leaves t1 in the class; t1 leaves only the module's t2, so the
        # class's fixtures end in t1's teardown; t2 and n.py's test leave
        # nothing under their module: the session's fixtures alone stay.
        assert self.released(1, CHAINS) == ["m.py::C", "m.py", "", ""]

    def test_tests_sent_at_once_count_as_sent(self) -> None:
        # On two workers t0 and t1 go out together: neither keeps the class.
        assert self.released(2, CHAINS)[:2] == ["m.py", "m.py"]

    def test_without_chains_it_stays_under_the_parent(self) -> None:
        assert self.released(1, None) == ["m.py::C", "m.py::C", "m.py", "n.py"]


def test_a_crashed_test_waits_for_a_new_worker_when_the_others_are_stopping() -> None:
    nodeids = ["a.py::t0", "a.py::t1"]
    scenario = Scenario(
        nodeids=nodeids,
        batches=list(ONE_BATCH),
        batch_of={0: "default", 1: "default"},
        predecessors={},
        run_order=[0, 1],
        durations={0: 1.0, 1: 1.0},
        workers=2,
        horizon=0.0,
    )
    plan = scenario.plan()
    state = RunState(plan, dict(enumerate(nodeids)), {}, {})
    dispatcher = Dispatcher(plan, state, {0: "a.py", 1: "a.py"}, {}, horizon=0.0)
    dispatcher.add_worker("gw0")
    dispatcher.add_worker("gw1")
    sent = dispatcher.decide(0.0).send
    assert sorted(item for items in sent.values() for item in items if isinstance(item, int)) == [
        0,
        1,
    ]
    crashing = next(worker for worker, items in sent.items() if 0 in items)
    done = "gw1" if crashing == "gw0" else "gw0"
    state.test_finished(1, "passed")
    dispatcher.test_complete(done, 1, 1.0)
    assert dispatcher.decide(1.0).shutdown == [done]  # nothing left for it
    # The other worker crashes in its test, whose rerun the budget allows.
    assert dispatcher.remove_worker(crashing, lambda index: 1.5) == 0

    assert dispatcher.decide(2.0).send == {}  # no worker can take it yet: no stall
    dispatcher.add_worker("gw2")  # xdist's replacement for the crashed worker
    assert 0 in dispatcher.decide(2.0).send["gw2"]


def test_a_crash_after_xdist_s_own_shutdown_blames_the_last_test() -> None:
    # xdist stops the session (-x): it tells every worker to shut down and
    # the dispatcher decides nothing more. A worker's shutdown then follows
    # its last test, which runs, with nothing queued behind it; a crash
    # there is that test's, as when the dispatcher had sent the shutdown.
    nodeids = [f"t.py::t{n}" for n in range(3)]
    scenario = one_batch(nodeids, dict.fromkeys(range(3), 0.001))
    plan = scenario.plan()
    state = RunState(plan, dict(enumerate(nodeids)), {}, {})
    dispatcher = Dispatcher(plan, state, dict.fromkeys(range(3), "t.py"), {}, may_rerun=False)
    dispatcher.add_worker("gw0")
    *ran, last = dispatcher.decide(0.0).send["gw0"]
    assert ran  # short tests go together, with nothing behind the last
    for test in ran:
        state.test_finished(test, "passed")
        dispatcher.test_complete("gw0", test, 0.001)
    assert dispatcher.queues["gw0"] == [last]
    assert dispatcher.remove_worker("gw0", shut_down=True) == last
    assert state.outcomes[last] == "failed"


class TestReruns:
    def attempts_of(self, run: Run, name: str) -> list[Execution]:
        return [e for e in run.result.executions if e.index == run.ids[name]]

    def test_a_rerun_goes_elsewhere_even_where_its_module_costs_a_setup(self) -> None:
        # a.py costs 5 s to set up and only gw0 has it; the rerun avoids gw0,
        # where it failed, and gw1 (idle, kept for the later batch) found the
        # setup not worth it for 1 s of a.py's tests: before, neither took the
        # rerun (SchedulerStalled).
        nodeids = ["a.py::t0", "b.py::t0", "c.py::t0"]
        scenario = Scenario(
            nodeids=nodeids,
            batches=[Policy("default"), Policy("later", after=("default",))],
            batch_of={0: "default", 1: "default", 2: "later"},
            predecessors={},
            run_order=[0, 1, 2],
            durations={0: 1.0, 1: 0.5, 2: 0.5},
            workers=2,
            horizon=0.0,
            attempts={0: ["failed", "passed"]},
            budgets={0: 1},
            setup_costs={"a.py": 5.0, "b.py": 0.0, "c.py": 0.0},
        )
        plan, result = scenario.simulate()
        first, second = [e for e in result.executions if e.index == 0]
        assert (first.outcome, second.outcome) == ("failed", "passed")
        assert (first.worker, second.worker) == ("gw0", "gw1")
        assert (first.stop, second.start) == (6.0, 6.0)  # 5 s of setup, then the test
        check_run(scenario, plan, result)

    def test_a_delay_that_has_passed_does_not_hide_one_to_come(self) -> None:
        # p fails and waits 0.5 s for its rerun; meanwhile the exclusive batch
        # starts (nothing runs) and owns the cluster. Its first test fails too
        # and waits for its own rerun. With nothing running, p may not start
        # though its delay has passed, e1's delay is still to come: the run
        # waits for it. Before, it took p's passed delay as the soonest and
        # raised SchedulerStalled.
        run = simulate(
            {"p": "p", "e1": "x", "e2": "x"},
            [Policy("p", priority=1), Policy("x", mode="exclusive")],
            workers=2,
            attempts={"p": ["failed", "passed"], "e1": ["failed", "passed"]},
            budgets={"p": 1, "e1": 1},
            rerun_delay=0.5,
        )
        assert [e.start for e in self.attempts_of(run, "p")] == [0.0, 4.5]
        assert [e.start for e in self.attempts_of(run, "e1")] == [1.0, 2.5]
        assert run.one("e2").start == 3.5

    def test_a_rerun_goes_to_another_worker_and_dependents_wait(self) -> None:
        run = simulate(
            ["a", "b", "c"],
            workers=2,
            edges={"c": ["a"]},
            attempts={"a": ["failed", "passed"]},
            budgets={"a": 1},
            durations={"b": 3.0},
        )
        first, second = self.attempts_of(run, "a")
        assert (first.outcome, first.rerun, second.outcome, second.rerun) == (
            "failed",
            True,
            "passed",
            False,
        )
        assert first.worker != second.worker
        # gw1 is busy with b until 3.0: the rerun waits for it rather than run on gw0.
        assert second.start == 3.0
        assert run.one("c").start >= second.stop
        assert run.skipped == {}

    def test_with_one_worker_the_rerun_runs_there(self) -> None:
        run = simulate(
            ["a", "b"], workers=1, attempts={"a": ["failed", "passed"]}, budgets={"a": 1}
        )
        assert [e.worker for e in self.attempts_of(run, "a")] == ["gw0", "gw0"]

    def test_the_delay_doubles_and_the_run_waits_for_it(self) -> None:
        run = simulate(
            ["a"],
            workers=2,
            attempts={"a": ["failed", "failed", "passed"]},
            budgets={"a": 2},
            rerun_delay=2.0,
        )
        starts = [e.start for e in self.attempts_of(run, "a")]
        assert starts == [0.0, 3.0, 8.0]  # 1 s runs, then 2 s and 4 s of delay

    def test_a_spent_budget_leaves_the_failure_and_skips_dependents(self) -> None:
        run = simulate(
            ["a", "b"],
            workers=2,
            edges={"b": ["a"]},
            attempts={"a": ["failed"]},
            budgets={"a": 2},
        )
        assert [e.outcome for e in self.attempts_of(run, "a")] == ["failed"] * 3
        assert run.skipped == {"b": "depends on t.py::a, which failed"}

    def test_a_rerun_the_batch_stopped_for_leaves_its_error_standing(self) -> None:
        # a errors and waits 0.5 s for its rerun; b's failure meanwhile stops the batch.
        run = simulate(
            ["a", "b", "c"],
            [Policy("default", maxfail=1)],
            workers=2,
            edges={"c": ["a"]},
            outcomes={"a": "error", "b": "failed"},
            budgets={"a": 1},
            rerun_delay=0.5,
        )
        assert [e.outcome for e in self.attempts_of(run, "a")] == ["error"]
        assert run.skipped["c"] == "depends on t.py::a, which errored"

    def test_a_crashed_test_is_rerun_within_its_budget(self) -> None:
        run = simulate(["a", "b"], workers=2, crashes={"a"}, budgets={"a": 1})
        crashed, rerun = self.attempts_of(run, "a")
        assert crashed.crashed
        assert crashed.rerun
        assert rerun.outcome == "passed"
        assert rerun.worker != crashed.worker

    def test_a_rerun_the_batch_stopped_for_is_given_up_as_failed(self) -> None:
        run = simulate(
            {"a": "x", "b": "x", "c": "y"},
            [Policy("x", maxfail=1), Policy("y", after=("x",))],
            workers=2,
            attempts={"a": ["failed", "passed"]},
            budgets={"a": 1},
            durations={"a": 1.0, "b": 1.0},
            outcomes={"b": "failed"},
            rerun_delay=1.0,
        )
        assert [e.outcome for e in self.attempts_of(run, "a")] == ["failed"]
        assert run.skipped == {
            "a": "batch 'x' stopped after 1 failure (maxfail=1)",
            "c": "upstream batch 'x' had 2 failures",
        }


class TestReportedBugs:
    """Minimal runs that the dispatcher gets wrong (see the report of these tests)."""

    def test_exclusive_batch_whose_longest_test_is_not_its_first(self) -> None:
        # The longest test x2 heads the ready heap; it may not start before x1
        # (plan order), and _pick stops at it instead of trying x1.
        run = simulate(
            {"x1": "x", "x2": "x"},
            [Policy("x", mode="exclusive")],
            workers=1,
            durations={"x1": 1.0, "x2": 5.0},
        )
        assert run.executed == ["x1", "x2"]

    def test_exclusive_batch_waiting_for_a_test_of_a_concurrent_batch(self) -> None:
        # x1 starts first (longest path); x2 needs p, of a batch that x does not
        # come after, but p may not start while batch x is underway.
        run = simulate(
            {"p": "p", "x1": "x", "x2": "x"},
            [Policy("p"), Policy("x", mode="exclusive")],
            workers=2,
            edges={"x2": ["p"]},
            durations={"p": 1.0, "x1": 5.0, "x2": 1.0},
        )
        assert sorted(run.executed) == ["p", "x1", "x2"]

    def test_crash_between_tests_blames_none_and_the_next_test_runs_elsewhere(self) -> None:
        # gw0 runs a, then receives b; the release token after a runs first and
        # tears down a's fixtures, and the worker dies there. b never started.
        run = simulate(["a", "b"], workers=1, teardown_crashes={"a"})
        assert run.result.blamed == {"gw0": None}
        b = run.one("b")
        assert (b.worker, b.outcome) == ("gw1", "passed")

    def test_serial_test_deferred_behind_a_test_skipped_in_the_same_pick(self) -> None:
        # s2 heads the ready heap but must wait for s1 (plan order) and is set
        # aside; then x is skipped (maxfail), which skips s1, and s2 is not
        # looked at again although nothing runs any more.
        run = simulate(
            {"f": "p", "x": "p", "s1": "s", "s2": "s"},
            [Policy("p", maxfail=1), Policy("s", mode="serial")],
            workers=1,
            edges={"s1": ["x"]},
            durations={"f": 3.0, "x": 1.0, "s1": 1.0, "s2": 5.0},
            outcomes={"f": "failed"},
        )
        assert run.executed == ["f", "s2"]
        assert run.skipped == {
            "x": "batch 'p' stopped after 1 failure (maxfail=1)",
            "s1": "depends on t.py::x, which was skipped",
        }

    def test_after_chain_through_a_batch_without_tests(self) -> None:
        # b comes after a, a after c; a has no test in this run. The plan's
        # critical path and RunState.upstream_block both see b after c.
        run = simulate(
            {"c1": "c", "b1": "b"},
            [Policy("c"), Policy("a", after=("c",)), Policy("b", after=("a",))],
            workers=2,
        )
        assert run.one("c1").stop <= run.one("b1").start

    def test_failure_skips_through_a_batch_without_tests(self) -> None:
        # As on one worker (the serial runner): b is skipped because a "was skipped".
        run = simulate(
            {"c1": "c", "b1": "b"},
            [Policy("c"), Policy("a", after=("c",)), Policy("b", after=("a",))],
            workers=2,
            outcomes={"c1": "failed"},
        )
        assert run.skipped == {"b1": "upstream batch 'a' was skipped"}


# -- properties ----------------------------------------------------------------

RUNTIME_OUTCOMES = ["passed"] * 6 + ["failed", "error", "skipped", "xfailed", "xpassed"]
LOCK_SETS = [
    frozenset(),
    frozenset(),
    frozenset({"db"}),
    frozenset({"net"}),
    frozenset({"db", "net"}),
]


@st.composite
def scenarios(draw: st.DrawFn, *, plain: bool = False) -> Scenario:
    """A random plan on a random cluster.

    ``plain``: only dependencies and batch barriers constrain the run (no locks,
    modes, caps, failures or crashes), so Graham's bound applies.
    """
    count = draw(st.integers(1, 40))
    predecessors: dict[int, tuple[int, ...]] = {}
    for node in range(1, count):
        preds = draw(st.lists(st.integers(0, node - 1), max_size=3, unique=True))
        if preds:
            predecessors[node] = tuple(preds)

    batch_count = draw(st.integers(1, 4))
    policies = []
    for number in range(batch_count):
        after = draw(st.lists(st.integers(0, number - 1), unique=True)) if number else []
        policies.append(
            Policy(
                f"b{number}",
                after=tuple(f"b{a}" for a in after),
                priority=draw(st.integers(-1, 1)),
                mode="parallel"
                if plain
                else draw(st.sampled_from(["parallel", "serial", "exclusive"])),
                workers=None if plain else draw(st.none() | st.integers(1, 3)),
                maxfail=None if plain else draw(st.none() | st.integers(1, 3)),
                on_upstream_failure=draw(st.sampled_from(["skip", "run"])),
            )
        )
    batches = draw(st.permutations(policies))
    ordered = order_batches(batches)
    # Lower labels get batches no later than higher labels, so that every edge
    # (which points to a lower label) agrees with the batch order.
    ranks = sorted(draw(st.lists(st.integers(0, batch_count - 1), min_size=count, max_size=count)))
    batch_of = {label: ordered[rank].name for label, rank in enumerate(ranks)}

    durations = draw(
        st.lists(
            st.floats(0.01, 5.0) | st.sampled_from([0.5, 1.0, 2.0]) | st.floats(0.001, 0.04),
            min_size=count,
            max_size=count,
        )
    )
    if plain:
        outcomes: dict[int, str] = {}
        crashes: frozenset[int] = frozenset()
        locks: dict[int, frozenset[str]] = {}
        budgets: dict[int, int] = {}
        attempts: dict[int, list[str]] = {}
    else:
        drawn = draw(st.lists(st.sampled_from(RUNTIME_OUTCOMES), min_size=count, max_size=count))
        outcomes = {i: outcome for i, outcome in enumerate(drawn) if outcome != "passed"}
        crashes = frozenset(draw(st.lists(st.integers(0, count - 1), max_size=3, unique=True)))
        budgets = draw(
            st.dictionaries(st.integers(0, count - 1), st.integers(0, 2), max_size=count)
        )
        attempts = draw(
            st.dictionaries(
                st.sampled_from(sorted(budgets)) if budgets else st.nothing(),
                st.lists(st.sampled_from(RUNTIME_OUTCOMES), min_size=1, max_size=3),
            )
        )
        held = draw(st.lists(st.sampled_from(LOCK_SETS), min_size=count, max_size=count))
        locks = {i: lock_set for i, lock_set in enumerate(held) if lock_set}
    return Scenario(
        nodeids=[f"tests/m{label % 3}.py::test_{label}" for label in range(count)],
        batches=list(batches),
        batch_of=batch_of,
        predecessors=predecessors,
        run_order=list(draw(st.permutations(range(count)))),
        durations=dict(enumerate(durations)),
        workers=draw(st.integers(1, 6)),
        outcomes=outcomes,
        crashes=crashes,
        locks=locks,
        horizon=draw(st.sampled_from([PIPELINE_HORIZON, 0.0])),
        history=True if plain else draw(st.booleans()),
        attempts=attempts,
        budgets=budgets,
        rerun_delay=0.0 if plain else draw(st.sampled_from([0.0, 0.0, 0.3])),
        setup_costs={}
        if plain
        else draw(
            st.dictionaries(
                st.sampled_from([f"tests/m{module}.py" for module in range(3)]),
                st.sampled_from([0.0, 0.005, 0.05, 0.5, 3.0]),
            )
        ),
        **({} if plain else draw(memory(count))),
        release_at_top=draw(st.booleans()),
    )


@st.composite
def memory(draw: st.DrawFn, count: int) -> dict[str, object]:
    """No budget, or a budget (100 units of memory, 1-6 CPUs) and tests' needs:
    light, up to the whole budget, or beyond it."""
    if not draw(st.booleans()):
        return {}
    budget = Budget(memory=100, cpus=draw(st.integers(1, 6)))
    drawn = draw(
        st.dictionaries(
            st.integers(0, count - 1),
            st.builds(
                Needs,
                memory=st.sampled_from([0, 0.5, 10, 40, 60, 100, 150]).map(int),
                cpus=st.integers(1, 3),
            ),
            max_size=count,
        )
    )
    return {"needs": drawn, "budget": budget}


@settings(MODEST, max_examples=300)
@given(scenarios())
def test_every_rule_holds_on_any_cluster(scenario: Scenario) -> None:
    plan, result = scenario.simulate()  # ends, without SchedulerStalled
    check_run(scenario, plan, result)


@settings(MODEST, max_examples=200)
@given(scenarios(plain=True))
def test_makespan_within_grahams_bound(scenario: Scenario) -> None:
    plan, result = scenario.simulate()
    workers = scenario.workers
    # A pipelined test waits for at most the rest of a short running test and
    # the horizon's work queued before it; each batch barrier can pass that on.
    slack = 2 * scenario.horizon * len(plan.batches)
    bound = (2 - 1 / workers) * plan.lower_bound(workers) + slack
    assert result.makespan <= bound + 1e-9, (result.makespan, plan.lower_bound(workers))
    check_run(scenario, plan, result)


class TestProbe:
    """``--batchflow-probe``: every test N times, in rounds, spread over the workers."""

    def probe(
        self,
        names: Sequence[str],
        runs: int,
        *,
        workers: int,
        edges: Mapping[str, Sequence[str]] | None = None,
        attempts: Mapping[str, list[str]] | None = None,
    ) -> tuple[dict[str, int], Outcome, RunState]:
        ids = {name: i for i, name in enumerate(names)}
        scenario = Scenario(
            nodeids=[f"t{i % 2}.py::{name}" for i, name in enumerate(names)],
            batches=list(ONE_BATCH),
            batch_of=dict.fromkeys(ids.values(), "default"),
            predecessors={ids[d]: tuple(ids[p] for p in ps) for d, ps in (edges or {}).items()},
            run_order=list(ids.values()),
            durations=dict.fromkeys(ids.values(), 1.0),
            workers=workers,
            horizon=0.0,
        )
        plan = scenario.plan()
        state = RunState(plan, dict(enumerate(scenario.nodeids)), {}, {})
        parents = {i: nodeid.partition("::")[0] for i, nodeid in enumerate(scenario.nodeids)}
        dispatcher = Dispatcher(plan, state, parents, {}, horizon=0.0, interleave=True)
        cluster = Cluster(
            dispatcher,
            state,
            workers,
            scenario.durations,
            attempts={ids[n]: a for n, a in (attempts or {}).items()},
            probe=runs,
        )
        return ids, cluster.run(), state

    def test_runs_come_in_rounds(self) -> None:
        ids, result, _ = self.probe(["a", "b", "c"], 3, workers=1)
        names = {i: name for name, i in ids.items()}
        order = [names[e.index] for e in sorted(result.executions, key=lambda e: e.start)]
        # Each round runs every test once, in plan order: pytest's, which here
        # interleaves the modules (a and c share t0.py) and stays so.
        assert order == ["a", "b", "c"] * 3

    def test_a_test_s_runs_spread_over_the_workers(self) -> None:
        ids, result, _ = self.probe(["a", "b", "c", "d"], 4, workers=2)
        for index in ids.values():
            workers = {e.worker for e in result.executions if e.index == index}
            assert workers == {"gw0", "gw1"}
        assert Counter(e.index for e in result.executions) == dict.fromkeys(ids.values(), 4)

    def test_dependents_wait_for_every_run_and_see_any_failure(self) -> None:
        ids, result, state = self.probe(
            ["a", "b", "c", "d"],
            3,
            workers=2,
            edges={"b": ["a"], "d": ["c"]},
            attempts={"a": ["passed", "failed", "passed"]},
        )
        assert not any(e.index == ids["b"] for e in result.executions)
        assert state.outcomes[ids["a"]] == "failed"
        assert state.outcomes[ids["b"]] == "skipped"
        first_d = min(e.start for e in result.executions if e.index == ids["d"])
        last_c = max(e.stop for e in result.executions if e.index == ids["c"])
        assert first_d >= last_c


@settings(MODEST, max_examples=200)
@given(scenarios())
def test_the_critical_path_is_the_longest_remaining_path(scenario: Scenario) -> None:
    # Two computations of the longest chain (test edges and batch barriers):
    # forwards from the start, and backwards from the end.
    plan = scenario.plan()
    longest = max(plan.remaining_paths().values(), default=0.0)
    assert plan.critical_path() == pytest.approx(longest)


def test_tests_of_a_later_order_class_wait_while_their_batch_has_others_ready() -> None:
    """pytest-django's transactional tests (order class 1) empty the worker's
    database: none goes out while a test of its batch without one is ready,
    even the longest, which would go first."""
    nodeids = [f"a.py::t{i}" for i in range(4)]
    scenario = one_batch(nodeids, {0: 5.0, 1: 1.0, 2: 1.0, 3: 1.0}, horizon=0.0)
    plan = scenario.plan()
    parents = dict.fromkeys(range(4), "a.py")
    for order_classes, first, last in (({0: 1}, 1, 0), ({}, 0, 3)):
        state = RunState(plan, dict(enumerate(nodeids)), {}, {})
        dispatcher = Dispatcher(plan, state, parents, {}, horizon=0.0, order_classes=order_classes)
        dispatcher.add_worker("gw0")
        order: list[int] = []
        now = 0.0
        while len(order) < 4:
            sent = dispatcher.decide(now).send.get("gw0", [])
            for index in (i for i in sent if isinstance(i, int)):
                order.append(index)
                now += 1.0
                state.test_finished(index, "passed")
                dispatcher.test_complete("gw0", index, 1.0)
        assert (order[0], order[-1]) == (first, last), order
