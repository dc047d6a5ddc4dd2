"""A simulated xdist cluster: fake workers that obey pytest-xdist's last-item rule.

A worker starts the head of its queue only when something is queued behind it
or it was told to shut down (pytest needs the next item before it runs one).
Time is simulated: a test takes its given duration, an ``Idle`` item none.

A test in ``attempts`` has an outcome per attempt (its last one repeats); one
that fails with rerun budget left (``budgets``) is handed back for a rerun, as
the controller does, after ``rerun_delay`` doubled per rerun. With ``probe``
every test runs that many times, whatever its outcomes, as under
``--batchflow-probe``. A test whose parent is in ``setup_costs`` takes that much
longer when its worker ran another parent's test last (or none): the parent's
fixtures are set up first.

A test in ``crashes`` kills its worker halfway through its duration (the first
time it runs): the dispatcher hears of it only then, as xdist would, and a
replacement worker joins at that moment. A test in ``teardown_crashes`` passes,
but its worker dies while running the release token that follows it, where
pytest tears down the test's fixtures (its next item is then known).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pytest_batchflow.core.probe import overall_outcome
from pytest_batchflow.core.scheduler import (
    FAILING_OUTCOMES,
    Dispatcher,
    Idle,
    RunState,
    Sendable,
)


@dataclass
class Execution:
    index: int
    worker: str
    start: float
    stop: float
    crashed: bool = False
    outcome: str = "passed"
    #: This attempt failed and the test was handed back for a rerun.
    rerun: bool = False


@dataclass
class Worker:
    name: str
    queue: list[Sendable] = field(default_factory=list)
    busy_until: float | None = None
    shutting_down: bool = False
    alive: bool = True


@dataclass
class Outcome:
    executions: list[Execution]
    skipped: dict[int, str]
    makespan: float
    restarts: int
    #: When each skip was decided.
    skipped_at: dict[int, float] = field(default_factory=dict)
    #: Every worker that ever joined, in order.
    workers: list[str] = field(default_factory=list)
    #: Workers that crashed.
    crashed_workers: set[str] = field(default_factory=set)
    #: When each worker was told to shut down.
    shutdowns: dict[str, float] = field(default_factory=dict)
    #: What the dispatcher named as the crashed test of each crashed worker.
    blamed: dict[str, int | None] = field(default_factory=dict)
    #: Every send, in order: the worker and the items sent to it at once.
    sends: list[tuple[str, list[Sendable]]] = field(default_factory=list)


EventKind = Literal["finish", "crash", "wake"]


class Cluster:
    """Runs a dispatcher against ``workers`` simulated workers until the end."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        state: RunState,
        workers: int,
        durations: Mapping[int, float],
        outcomes: Mapping[int, str] | None = None,
        crashes: frozenset[int] = frozenset(),
        max_restarts: int = 10,
        teardown_crashes: frozenset[int] = frozenset(),
        attempts: Mapping[int, Sequence[str]] | None = None,
        budgets: Mapping[int, int] | None = None,
        rerun_delay: float = 0.0,
        probe: int = 0,
        setup_costs: Mapping[str, float] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        #: Seconds each parent's fixtures take to set up on a worker that
        #: does not have them (pytest tears them down when a worker moves on).
        self.setup_costs = setup_costs or {}
        self.fixtures_of: dict[str, str | None] = {}
        self.setups: Counter[str] = Counter()
        #: A probe's runs per test (0: no probe): every test runs this many times.
        self.probe = probe
        self.attempts = attempts or {}
        self.budgets = budgets or {}
        self.rerun_delay = rerun_delay
        #: Attempts each test has started; a probe's outcomes so far.
        self.tries: Counter[int] = Counter()
        self.probe_outcomes: dict[int, list[str]] = {}
        self.state = state
        self.durations = durations
        self.outcomes = outcomes or {}
        self.crashes = set(crashes)
        self.teardown_crashes = set(teardown_crashes)
        #: The test each worker ran last, whose fixtures its next item tears down.
        self.last_test: dict[str, int] = {}
        #: What the dispatcher named as the crashed test of each crashed worker.
        self.blamed: dict[str, int | None] = {}
        self.sends: list[tuple[str, list[Sendable]]] = []
        self.max_restarts = max_restarts
        self.names = (f"gw{n}" for n in itertools.count())
        self.workers: dict[str, Worker] = {}
        self.events: list[tuple[float, int, EventKind, str, Sendable]] = []
        self.sequence = itertools.count()
        self.executions: list[Execution] = []
        self.started: dict[str, tuple[Sendable, float]] = {}
        self.skipped: dict[int, str] = {}
        self.skipped_at: dict[int, float] = {}
        self.shutdowns: dict[str, float] = {}
        self.crashed_workers: set[str] = set()
        self.restarts = 0
        for _ in range(workers):
            self._add_worker()

    def _add_worker(self) -> None:
        name = next(self.names)
        self.workers[name] = Worker(name)
        self.dispatcher.add_worker(name)

    def run(self, limit: int = 1_000_000) -> Outcome:
        now = 0.0
        self._decide(now)
        for _ in range(limit):
            if not self.events:
                break
            now, _, kind, name, item = heapq.heappop(self.events)
            if kind == "wake":
                self._decide(now)
                continue
            worker = self.workers[name]
            if not worker.alive:
                continue
            if kind == "crash":
                self._crash(worker, item, now)
            else:
                self._finish(worker, item, now)
            self._decide(now)
        else:
            raise AssertionError("simulation did not end")
        assert self.dispatcher.finished, "cluster went quiet with tests left"
        stops = [e.stop for e in self.executions]
        return Outcome(
            self.executions,
            self.skipped,
            max(stops, default=0.0),
            self.restarts,
            skipped_at=self.skipped_at,
            workers=list(self.workers),
            crashed_workers=self.crashed_workers,
            shutdowns=self.shutdowns,
            blamed=self.blamed,
            sends=self.sends,
        )

    def _decide(self, now: float) -> None:
        decision = self.dispatcher.decide(now)
        for index, reason in decision.skip:
            assert index not in self.skipped, f"{index} skipped twice"
            self.skipped[index] = reason
            self.skipped_at[index] = now
        for name, items in decision.send.items():
            worker = self.workers[name]
            assert worker.alive, f"items sent to {name}, which is gone"
            assert not worker.shutting_down, f"items sent to {name} after its shutdown"
            worker.queue.extend(items)
            self.sends.append((name, list(items)))
        if decision.wait is not None:
            assert decision.wait > 0
            heapq.heappush(self.events, (now + decision.wait, next(self.sequence), "wake", "", 0))
        for name in decision.shutdown:
            assert name not in self.shutdowns, f"{name} told to shut down twice"
            self.shutdowns[name] = now
            self.workers[name].shutting_down = True
        for worker in list(self.workers.values()):
            self._try_start(worker, now)

    def _try_start(self, worker: Worker, now: float) -> None:
        if not worker.alive or worker.busy_until is not None:
            return
        if not worker.queue:
            if worker.shutting_down:  # nothing left to run: the worker exits
                worker.alive = False
                self.dispatcher.remove_worker(worker.name)
            return
        if len(worker.queue) < 2 and not worker.shutting_down:
            return  # the last-item rule: pytest needs the next item first
        item = worker.queue[0]
        duration = 0.0 if isinstance(item, Idle) else self.durations[item]
        if isinstance(item, int):
            parent = self.dispatcher.parents[item]
            if self.fixtures_of.get(worker.name) != parent and parent in self.setup_costs:
                # The parent's fixtures are set up on this worker first.
                duration += self.setup_costs[parent]
                self.setups[parent] += 1
            # A release item above the parent (none of its tests left to
            # send) has the test's teardown end the parent's fixtures.
            after = worker.queue[1] if len(worker.queue) > 1 else None
            kept = after is None or not isinstance(after, Idle) or after.parent == parent
            self.fixtures_of[worker.name] = parent if kept else None
        kind: EventKind = "finish"
        if isinstance(item, int) and item in self.crashes:
            self.crashes.discard(item)
            kind = "crash"
            duration /= 2
        elif isinstance(item, Idle) and self.last_test.get(worker.name) in self.teardown_crashes:
            self.teardown_crashes.discard(self.last_test[worker.name])
            kind = "crash"
        worker.busy_until = now + duration
        self.started[worker.name] = (item, now)
        heapq.heappush(self.events, (now + duration, next(self.sequence), kind, worker.name, item))

    def _finish(self, worker: Worker, item: Sendable, now: float) -> None:
        _, start = self.started.pop(worker.name)
        worker.busy_until = None
        assert worker.queue.pop(0) == item
        rerun_at = None
        if isinstance(item, int):
            self.last_test[worker.name] = item
            self.tries[item] += 1
            outcome = self._outcome(item)
            final = outcome
            if self.probe:
                rerun_at = now if self.tries[item] < self.probe else None
                self.probe_outcomes.setdefault(item, []).append(outcome)
                final = overall_outcome(self.probe_outcomes[item])
            else:
                rerun_at = self._rerun_at(item, now) if outcome in FAILING_OUTCOMES else None
            self.executions.append(
                Execution(
                    item, worker.name, start, now, outcome=outcome, rerun=rerun_at is not None
                )
            )
            # xdist delivers a test's reports before mark_test_complete; an
            # attempt to be rerun is not the test's outcome.
            if rerun_at is None:
                self.state.test_finished(item, final)
        standing = final if isinstance(item, int) else "failed"
        self.dispatcher.test_complete(worker.name, item, now - start, rerun_at, standing)
        if worker.shutting_down and not worker.queue:
            worker.alive = False
            self.dispatcher.remove_worker(worker.name)

    def _outcome(self, index: int) -> str:
        attempts = self.attempts.get(index)
        if attempts:
            return attempts[min(self.tries[index], len(attempts)) - 1]
        return self.outcomes.get(index, "passed")

    def _rerun_at(self, index: int, now: float) -> float | None:
        """When a failed attempt runs again, or None: the budget is spent."""
        reruns = self.tries[index]  # the rerun this would be
        if reruns > self.budgets.get(index, 0):
            return None
        return now + self.rerun_delay * 2 ** (reruns - 1)

    def _crash(self, worker: Worker, item: Sendable, now: float) -> None:
        _, start = self.started.pop(worker.name)
        worker.alive = False
        self.crashed_workers.add(worker.name)
        if isinstance(item, int):
            self.tries[item] += 1
        rerun: dict[int, float | None] = {}

        def rerun_at(index: int) -> float | None:
            rerun[index] = self._rerun_at(index, now)
            return rerun[index]

        self.blamed[worker.name] = self.dispatcher.remove_worker(worker.name, rerun_at)
        if isinstance(item, int):  # else a release token: no test was running
            self.executions.append(
                Execution(
                    item,
                    worker.name,
                    start,
                    now,
                    crashed=True,
                    outcome="failed",
                    rerun=rerun.get(item) is not None,
                )
            )
        if self.restarts < self.max_restarts:
            self.restarts += 1
            self._add_worker()
