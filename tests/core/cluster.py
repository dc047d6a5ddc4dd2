"""A simulated xdist cluster: fake workers that obey pytest-xdist's last-item rule.

A worker starts the head of its queue only when something is queued behind it
or it was told to shut down (pytest needs the next item before it runs one).
Time is simulated: a test takes its given duration, an ``Idle`` item none.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_batchflow.core.scheduler import Dispatcher, Idle, RunState, Sendable


@dataclass
class Execution:
    index: int
    worker: str
    start: float
    stop: float
    crashed: bool = False


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
    ) -> None:
        self.dispatcher = dispatcher
        self.state = state
        self.durations = durations
        self.outcomes = outcomes or {}
        self.crashes = set(crashes)
        self.max_restarts = max_restarts
        self.names = (f"gw{n}" for n in itertools.count())
        self.workers: dict[str, Worker] = {}
        self.events: list[tuple[float, int, str, Sendable]] = []
        self.sequence = itertools.count()
        self.executions: list[Execution] = []
        self.started: dict[str, tuple[Sendable, float]] = {}
        self.skipped: dict[int, str] = {}
        self.restarts = 0
        for _ in range(workers):
            self._add_worker(0.0)

    def _add_worker(self, now: float) -> None:
        name = next(self.names)
        self.workers[name] = Worker(name)
        self.dispatcher.add_worker(name)

    def run(self, limit: int = 1_000_000) -> Outcome:
        now = 0.0
        self._decide(now)
        for _ in range(limit):
            if not self.events:
                break
            now, _, name, item = heapq.heappop(self.events)
            worker = self.workers[name]
            if not worker.alive:
                continue
            self._finish(worker, item, now)
            self._decide(now)
        else:
            raise AssertionError("simulation did not end")
        assert self.dispatcher.finished, "cluster went quiet with tests left"
        stops = [e.stop for e in self.executions]
        return Outcome(self.executions, self.skipped, max(stops, default=0.0), self.restarts)

    def _decide(self, now: float) -> None:
        decision = self.dispatcher.decide(now)
        for index, reason in decision.skip:
            assert index not in self.skipped
            self.skipped[index] = reason
        for name, items in decision.send.items():
            self.workers[name].queue.extend(items)
        for name in decision.shutdown:
            self.workers[name].shutting_down = True
        for worker in list(self.workers.values()):
            self._try_start(worker, now)

    def _try_start(self, worker: Worker, now: float) -> None:
        if not worker.alive or worker.busy_until is not None or not worker.queue:
            return
        if len(worker.queue) < 2 and not worker.shutting_down:
            return  # the last-item rule: pytest needs the next item first
        item = worker.queue[0]
        duration = 0.0 if isinstance(item, Idle) else self.durations[item]
        if isinstance(item, int) and item in self.crashes:
            self.crashes.discard(item)
            self._crash(worker, item, now, now + duration / 2)
            return
        worker.busy_until = now + duration
        self.started[worker.name] = (item, now)
        heapq.heappush(self.events, (now + duration, next(self.sequence), worker.name, item))

    def _finish(self, worker: Worker, item: Sendable, now: float) -> None:
        _, start = self.started.pop(worker.name)
        worker.busy_until = None
        worker.queue.pop(0)
        if isinstance(item, int):
            self.executions.append(Execution(item, worker.name, start, now))
            self.state.test_finished(item, self.outcomes.get(item, "passed"))
        self.dispatcher.test_complete(worker.name, item)
        if worker.shutting_down and not worker.queue:
            worker.alive = False
            self.dispatcher.remove_worker(worker.name)

    def _crash(self, worker: Worker, item: int, start: float, when: float) -> None:
        worker.alive = False
        crashed = self.dispatcher.remove_worker(worker.name)
        assert crashed == item, (crashed, item, worker.queue)
        self.executions.append(Execution(item, worker.name, start, when, crashed=True))
        if self.restarts < self.max_restarts:
            self.restarts += 1
            self._add_worker(when)
