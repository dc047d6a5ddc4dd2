"""Run-time decisions: what may still run, where, and why a test is skipped instead.

:class:`RunState` follows the run as tests finish; the serial runner asks it
before each test. :class:`Dispatcher` applies the same rules to W workers that
obey pytest-xdist's last-item rule: a worker starts the last test it was sent
only once it receives another one (pytest needs the next item to decide what
to tear down). The dispatcher therefore follows a worker's last test with a
release token, :class:`Idle`, a no-op item, so that a test runs as soon as it
is sent and nothing is committed to a worker before it is needed (tests sent
several at a time follow one another, and only the last gets one). It sits under
the test's parent while the parent has tests left to send, so that the
parent's fixtures stay set up for them; otherwise higher up (the module, ...,
the session), so that the test's teardown ends what nothing to come needs,
as in a run without batchflow.

Short tests are the exception: waiting for the controller between two
tests of a millisecond would cost more than the tests. A worker that runs
tests known to be short (from the history, or from the tests measured so
far in this run) is kept supplied with a few of them at once, never more
than :data:`PIPELINE_HORIZON` seconds of estimated work behind the running
test, and only tests no rule could still hold back (see
:meth:`Dispatcher._pipelinable`).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .plan import Plan
from .resources import Budget, Needs
from .words import count_of

__all__ = [
    "FAILING_OUTCOMES",
    "PIPELINE_DEPTH",
    "PIPELINE_HORIZON",
    "PRIORITY_FLOOR",
    "SATISFYING_OUTCOMES",
    "Decision",
    "Dispatcher",
    "Idle",
    "Outcome",
    "RunState",
    "SchedulerStalled",
    "SkipKind",
]

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]

#: A dependency is met only by these outcomes (as in pytest-dependency).
SATISFYING_OUTCOMES: frozenset[str] = frozenset({"passed", "xpassed"})
#: These count as failures of a batch (for maxfail and its downstream batches).
FAILING_OUTCOMES: frozenset[str] = frozenset({"failed", "error"})

#: A ready test's priority, smallest first: its round (a probe's runs, else 0),
#: minus its remaining path, minus its estimate, its place in the plan.
_Key = tuple[int, float, float, int]
_OUTCOME_WORDS = {
    "failed": "failed",
    "error": "errored",
    "skipped": "was skipped",
    "xfailed": "xfailed",
}

#: Why the run's rules skipped a test: a failure kept it from running (a
#: failed or errored dependency, directly or through tests skipped so, an
#: upstream batch's failures, its batch's maxfail); it did not get its turn (a
#: dependency that did not run or is not in the run, the batch's timeout); or a
#: dependency's own outcome (it skipped itself, or xfailed).
SkipKind = Literal["failure", "turn", "outcome"]


#: The most tests a worker holds at once (the running one included).
PIPELINE_DEPTH = 128
#: Seconds of class/module fixture setup from which a parent counts as costly:
#: it is kept together for it and not set up on a second worker lightly
#: (measured from the setup phase, see ``setup_costs``).
AFFINITY_MIN_COST = 0.01
#: A cheaper setup still keeps a worker under its parent when it costs at least
#: this share of the parent's mean test: set up again and again, it would add
#: that much to each test it is set up for.
AFFINITY_SHARE = 0.1
#: Estimated seconds of work that may wait on a worker behind the running test.
PIPELINE_HORIZON = 0.25
#: Remaining paths and estimates shorter than this many seconds count as equal
#: in the dispatch order, so such tests keep their place in the plan: for fast
#: tests the history's durations are noise, and ordering by them shuffled a
#: module's tests from run to run, which breaks suites whose tests lean on the
#: order they are written in (as a plain xdist run keeps it within a worker).
PRIORITY_FLOOR = 0.01
#: Tests the run must have measured before their mean stands for unknown tests.
MIN_OBSERVATIONS = 8


def _floored(seconds: float) -> float:
    """A duration as the dispatch order weighs it: nothing below PRIORITY_FLOOR."""
    return seconds if seconds >= PRIORITY_FLOOR else 0.0


class RunState:
    """Outcomes so far, batch clocks and failure counts, for one run.

    ``external_reasons`` gives, for a dependency outside the planned tests, why
    it is missing (``None`` when it is known to have passed, e.g. earlier in a
    CI pipeline at the same commit). ``unresolved`` maps a test to a target
    that matched no test, when such tests are to be skipped rather than refused.
    """

    def __init__(
        self,
        plan: Plan,
        nodeids: Mapping[int, str],
        external_reasons: Mapping[int, str | None],
        unresolved: Mapping[int, str],
    ) -> None:
        self.plan = plan
        self.nodeids = nodeids
        self.external_reasons = external_reasons
        self.unresolved = unresolved
        self.outcomes: dict[int, str] = {}
        self.batch_started: dict[str, float] = {}
        self.batch_failures: Counter[str] = Counter()
        self.blocked: dict[str, str] = {}
        #: The tests the rules skipped (:meth:`skip`), and why (:data:`SkipKind`).
        self.skipped: dict[int, SkipKind] = {}
        self._policies = {batch.name: batch.policy for batch in plan.batches}

    def skip_reason(self, index: int, now: float) -> str | None:
        """Why the test must not run now, or None when it may start."""
        cause = self._skip_cause(index, now)
        return None if cause is None else cause[0]

    def skip(self, index: int, now: float) -> str | None:
        """:meth:`skip_reason` for a test that is to be skipped when there is one:
        what kind of reason it is, at this moment, is kept in :attr:`skipped`."""
        cause = self._skip_cause(index, now)
        if cause is None:
            return None
        self.skipped[index] = cause[1]
        return cause[0]

    def _skip_cause(self, index: int, now: float) -> tuple[str, SkipKind] | None:
        batch = self.plan.batch_of[index]
        policy = self._policies[batch]
        blocked = self.upstream_block(batch)
        if blocked is not None:
            return blocked, "failure"
        if index in self.unresolved:
            target = self.unresolved[index]
            return f"depends on {target!r}, which matches no collected test", "turn"
        for pred in self.plan.predecessors.get(index, ()):
            cause = self._dependency_cause(pred)
            if cause is not None:
                return cause
        if policy.maxfail is not None and self.batch_failures[batch] >= policy.maxfail:
            failures = count_of(self.batch_failures[batch], "failure")
            return f"batch {batch!r} stopped after {failures} (maxfail={policy.maxfail})", "failure"
        started = self.batch_started.get(batch)
        if policy.timeout is not None and started is not None and now - started >= policy.timeout:
            return f"batch {batch!r} spent its timeout of {policy.timeout:g}s", "turn"
        return None

    def upstream_block(self, batch: str) -> str | None:
        """Why a whole batch is skipped because of its ``after`` batches, if it is."""
        if batch in self.blocked:
            return self.blocked[batch]
        policy = self._policies[batch]
        if policy.on_upstream_failure == "run":
            return None
        for upstream in policy.after:
            if upstream not in self._policies:
                continue  # a plan made for fewer batches than the lines name
            if self.batch_failures[upstream]:
                failures = count_of(self.batch_failures[upstream], "failure")
                self.blocked[batch] = f"upstream batch {upstream!r} had {failures}"
            elif self.upstream_block(upstream) is not None:
                self.blocked[batch] = f"upstream batch {upstream!r} was skipped"
            else:
                continue
            return self.blocked[batch]
        return None

    def _dependency_cause(self, pred: int) -> tuple[str, SkipKind] | None:
        nodeid = self.nodeids[pred]
        if pred in self.external_reasons:
            reason = self.external_reasons[pred]
            return None if reason is None else (f"depends on {nodeid}, which {reason}", "turn")
        outcome = self.outcomes.get(pred)
        if outcome is None:
            return f"depends on {nodeid}, which has not run", "turn"
        if outcome in SATISFYING_OUTCOMES:
            return None
        # A dependency the rules skipped passes its kind on: a chain is held back
        # by the failure at its start.
        kind = "failure" if outcome in FAILING_OUTCOMES else self.skipped.get(pred, "outcome")
        return f"depends on {nodeid}, which {_OUTCOME_WORDS[outcome]}", kind

    def test_started(self, index: int, now: float) -> None:
        self.batch_started.setdefault(self.plan.batch_of[index], now)

    def test_finished(self, index: int, outcome: str) -> None:
        """Record a test's final outcome; the first record wins (a crash is final)."""
        if index in self.outcomes:
            return
        self.outcomes[index] = outcome
        if outcome in FAILING_OUTCOMES:
            self.batch_failures[self.plan.batch_of[index]] += 1


@dataclass(frozen=True)
class Idle:
    """A no-op item under ``parent`` (a node id): sent behind a test so that it starts at once."""

    parent: str


Sendable = int | Idle


class SchedulerStalled(RuntimeError):
    """Tests remain but none can ever be sent: a bug, reported instead of a hang."""


@dataclass
class Decision:
    """What to do after an event: items to send, tests to skip, workers to stop."""

    send: dict[str, list[Sendable]] = field(default_factory=dict)
    skip: list[tuple[int, str]] = field(default_factory=list)
    shutdown: list[str] = field(default_factory=list)
    #: Nothing runs and only reruns waiting for their delay are left: ask again
    #: after this many seconds.
    wait: float | None = None


class Dispatcher:
    """Decides which test goes to which worker, and when.

    Every rule of the plan holds on any number of workers: a test is sent only
    once its dependencies and the batches it comes after are done; a test whose
    dependency failed is skipped without being sent; ``mode=serial`` batches
    run one test at a time in plan order; ``mode=exclusive`` batches run alone
    on the whole cluster; ``workers=k`` caps a batch's concurrency; tests
    sharing a lock never overlap. With a ``budget``, the memory ``needs`` of
    the tests running at one moment add up to at most the budget, and their
    CPUs to at most its CPUs (a worker running light tests counts one); a test
    needing more than the whole budget runs alone. Among the tests that may
    start, the one with the longest remaining path (critical path) goes first,
    then the longest; a test that waits for memory to free up keeps its place
    (only light tests start before it), so it is not starved.
    ``horizon`` bounds the estimated work queued behind a worker's running
    test (0 turns pipelining of short tests off). With ``interleave`` a test
    that is to run again (a probe's next run) goes behind every test that has
    run fewer times, so the runs come in rounds, spread over the workers.
    ``chains`` gives each parent's node ids from the top down to it, where a
    release item may sit (without it, only under the parent). Without
    ``may_rerun`` (no test can be handed back to run again), a worker's
    shutdown follows its last test once nothing is left to send. With
    ``release_at_top`` release items sit under the top node only, so that a
    test's next item never claims the worker goes on under its parent
    (plugins that read it end their own per-class state on it).

    It only reacts: the caller reports events (worker added or lost, test
    finished) and then asks :meth:`decide` what to do.
    """

    def __init__(
        self,
        plan: Plan,
        state: RunState,
        parents: Mapping[int, str],
        locks: Mapping[int, frozenset[str]],
        horizon: float = PIPELINE_HORIZON,
        interleave: bool = False,
        setup_costs: Mapping[str, float] | None = None,
        needs: Mapping[int, Needs] | None = None,
        budget: Budget | None = None,
        chains: Mapping[str, Sequence[str]] | None = None,
        order_classes: Mapping[int, int] | None = None,
        keep_order: bool = False,
        may_rerun: bool = True,
        release_at_top: bool = False,
    ) -> None:
        self.plan = plan
        #: Release items under the top node only: plugins read a test's next
        #: item, and one under a node would tell them the worker goes on there.
        self.release_at_top = release_at_top
        #: Whether a test may be handed back to run again (a rerun budget, a
        #: probe): if not, a worker is stopped right behind its last test.
        self.may_rerun = may_rerun
        #: Tests another plugin orders after the rest of their batch on every
        #: process (pytest-django's transactional tests); none is sent while a
        #: test of its batch without one is ready (``_first_class_ready``).
        self._order_class = dict(order_classes or {})
        self._first_class_ready: Counter[str] = Counter()
        self.needs = needs or {}
        self.budget = budget
        #: Tests sent and not finished that count against the budget (not light).
        self._reserved: dict[int, Needs] = {}
        self._memory_in_use = 0
        self._extra_cpus = 0
        self._alone_running = 0
        self.setup_costs = setup_costs or {}
        self.horizon = horizon
        self.interleave = interleave
        self._observed = 0.0
        self._observations = 0
        self.state = state
        self.parents = parents
        self.locks = locks
        self.queues: dict[str, list[Sendable]] = {}
        self.pending: set[int] = set(plan.order)
        self.running: dict[int, str] = {}
        #: Tests sent to each worker and not finished (queued or running); of
        #: these, the estimated seconds of the short ones (as estimated when
        #: sent) and how many others.
        self._load: Counter[str] = Counter()
        self._queued_work: dict[str, float] = defaultdict(float)
        self._unbounded: Counter[str] = Counter()
        self._sent_estimate: dict[int, float | None] = {}
        self.done: set[int] = set()
        self.stopping: set[str] = set()
        self._policies = {batch.name: batch.policy for batch in plan.batches}
        self._exclusive = [b.name for b in plan.batches if b.policy.mode == "exclusive"]
        self._batch_tests = {batch.name: batch.tests for batch in plan.batches}
        self._serial_next = {batch.name: 0 for batch in plan.batches}
        self._batch_left = Counter(plan.batch_of[i] for i in plan.order)
        self._batch_running: Counter[str] = Counter()
        self._held: Counter[str] = Counter()
        remaining = plan.remaining_paths()
        position = {index: i for i, index in enumerate(plan.order)}
        # keep_order: ready tests go in the plan's order (collection order
        # within a batch), whatever the history says of their durations.
        if keep_order:
            self._key: dict[int, _Key] = {i: (0, 0.0, 0.0, position[i]) for i in plan.order}
        else:
            # Paths through tests under the floor weigh nothing (each path is 0 or
            # at least the floor): fast tests keep the plan's order even when a
            # later batch waits on them all.
            paths = plan.remaining_paths(floor=PRIORITY_FLOOR)
            self._key = {
                i: (0, -paths[i], -_floored(plan.estimates.get(i, 0.0)), position[i])
                for i in plan.order
            }
        self._planned = planned = set(plan.order)
        # Only tests with dependents have an entry: a list per test would be
        # thousands of objects for the garbage collector to walk all run long.
        self._successors: dict[int, list[int]] = {}
        self._waiting: dict[int, int] = {}
        for index in plan.order:
            preds = [p for p in set(plan.predecessors.get(index, ())) if p in planned]
            self._waiting[index] = len(preds)
            for pred in preds:
                self._successors.setdefault(pred, []).append(index)
        self._upstream = {batch.name: self._nonempty_upstream(batch.name) for batch in plan.batches}
        self._downstream: dict[str, list[str]] = {batch.name: [] for batch in plan.batches}
        for batch in plan.batches:
            for upstream in self._upstream[batch.name]:
                self._downstream[upstream].append(batch.name)
        self._fresh: list[int] = [
            i for i in plan.order if not self._upstream[plan.batch_of[i]] and not self._waiting[i]
        ]
        self._ready: list[tuple[_Key, int]] = []
        #: The ready tests (made ready, not yet sent or skipped) and, of those
        #: measured in earlier runs, how many and their estimates' sum: the
        #: work that may be sent now, which the queues share (see _top_up).
        self._ready_set: set[int] = set()
        self._ready_measured = 0
        self._ready_measured_work = 0.0
        # Affinity: the parent (module or class) each worker ran last, the ready
        # tests of each parent (entries go stale once a test leaves ``pending``)
        # and the estimated work not yet sent.
        self._remaining = remaining
        self._last_parent: dict[str, str] = {}
        self._ready_in: dict[str, list[tuple[_Key, int]]] = {}
        self._work_left = sum(plan.estimates.get(i, 0.0) for i in plan.order)
        self._parent_work: dict[str, float] = defaultdict(float)
        tests_under: Counter[str] = Counter()
        for i in plan.order:
            self._parent_work[parents[i]] += plan.estimates.get(i, 0.0)
            tests_under[parents[i]] += 1
        # Release points: each parent's nodes from the top down to it, and how
        # many tests not yet sent each node holds (see _release_point).
        self._chains: dict[str, tuple[str, ...]] = {
            parent: tuple(chains[parent]) if chains and parent in chains else (parent,)
            for parent in set(parents.values())
        }
        self._unsent_under: Counter[str] = Counter()
        for parent, count in tests_under.items():
            for node in self._chains[parent]:
                self._unsent_under[node] += count
        #: The mean estimate of each parent's tests, against which a cheap setup counts.
        self._parent_mean = {
            parent: work / tests_under[parent] for parent, work in self._parent_work.items()
        }
        # Reruns: the workers a test failed on, and when it may run again;
        # the outcome that stands if it may not.
        self._failed_on: dict[int, set[str]] = {}
        self._not_before: dict[int, float] = {}
        self._standing: dict[int, str] = {}

    def _nonempty_upstream(self, batch: str) -> set[str]:
        """The batches with tests that ``batch`` comes after, through empty ones too."""
        found: set[str] = set()
        for upstream in self._policies[batch].after:
            if self._batch_left[upstream]:
                found.add(upstream)
            else:
                found |= self._nonempty_upstream(upstream)
        return found

    # -- events -------------------------------------------------------------

    def add_worker(self, worker: str) -> None:
        self.queues.setdefault(worker, [])

    def remove_worker(
        self,
        worker: str,
        rerun_at: Callable[[int], float | None] | None = None,
        shut_down: bool = False,
    ) -> int | None:
        """Forget a worker that went away; return the test it was running, if any.

        That test counts as failed (its worker crashed) unless ``rerun_at``
        gives a time to run it again (its rerun budget allows); tests that had
        not started go back to be sent elsewhere. ``shut_down``: the worker
        was told to shut down by someone else (xdist, when the session stops),
        so its last test ran with the shutdown behind it.
        """
        queue = self.queues.pop(worker, [])
        # Only the head of a queue can have started, and only with something
        # behind it (an item, or the worker's shutdown); a crash in a release
        # item (tearing down fixtures) blames none.
        followed = len(queue) >= 2 or shut_down or worker in self.stopping
        started = queue[0] if queue and followed and not isinstance(queue[0], Idle) else None
        self.stopping.discard(worker)
        self._last_parent.pop(worker, None)
        for item in queue:
            if isinstance(item, int):
                self._release(item)
                if item != started:
                    self._requeue(item)
        if started is not None:
            when = rerun_at(started) if rerun_at is not None else None
            if when is None:
                self.state.test_finished(started, "failed")
                self._complete(started)
            else:
                self._rerun(started, worker, when)
        return started

    def test_complete(
        self,
        worker: str,
        item: Sendable,
        duration: float | None = None,
        rerun_at: float | None = None,
        standing: str = "failed",
    ) -> None:
        """The worker finished ``item`` in ``duration`` seconds, if known.

        A test's outcome is already in the run state, unless it is to run
        again (a failed attempt's rerun, a probe's next run): then
        ``rerun_at`` says when it may start again (on another worker when
        there is one), and ``standing`` is its outcome should it never run
        again; its dependents wait.
        """
        self.queues[worker].remove(item)
        if isinstance(item, int):
            self._release(item)
            if rerun_at is None:
                self._complete(item)
            else:
                self._standing[item] = standing
                self._rerun(item, worker, rerun_at)
            if duration is not None:
                self._observed += duration
                self._observations += 1

    def unscheduled(self, worker: str, items: Sequence[int]) -> None:
        """Tests taken back from a worker before they started."""
        for item in items:
            self.queues[worker].remove(item)
            self._release(item)
            self._requeue(item)

    # -- decisions ----------------------------------------------------------

    @property
    def finished(self) -> bool:
        return not self.pending and not self.running

    def decide(self, now: float) -> Decision:
        """Send work to every worker that has none, skip what can never run."""
        decision = Decision()
        if self._nothing_to_decide():
            return decision
        workers = sorted(self.queues, key=lambda w: (self._busy(w), w))
        for worker in workers:
            if worker in self.stopping or self._busy(worker):
                continue
            test = self._pick_for(worker, now, decision)
            if test is None:
                continue  # another worker may take what this one must not (a rerun)
            self._send(decision, worker, test, now)
        if self.horizon > 0:
            self._top_up(now, decision)
        self._take_fresh(now, decision)
        self._follow_last_tests(now, decision)
        if not self.pending:
            for worker in workers:
                if worker not in self.stopping and not self._busy(worker):
                    self.stopping.add(worker)
                    decision.shutdown.append(worker)
        elif not self.running and any(worker not in self.stopping for worker in self.queues):
            # Workers told to stop take nothing more; with only those left (a
            # crash's rerun after the others were done), xdist's replacement
            # for the crashed worker will take it.
            # Only delays still to come: a test whose delay has passed may be
            # held back by one whose delay has not (an exclusive batch's rerun).
            delayed = [
                self._not_before[i]
                for i in self.pending
                if i in self._not_before and self._not_before[i] > now
            ]
            if delayed:
                decision.wait = min(delayed) - now
                return decision
            waiting = sorted(self.pending, key=self._key.__getitem__)[:3]
            raise SchedulerStalled(
                f"{len(self.pending)} tests wait but none can start; first: "
                + ", ".join(self.state.nodeids[i] for i in waiting)
            )
        return decision

    def _follow_last_tests(self, now: float, decision: Decision) -> None:
        """Send what follows each worker's last test once it is the only test
        the worker has left: another short test, a release item, or the
        worker's shutdown when nothing can come after it.

        A worker starts a test only once it holds the next item, so a test sent
        alone gets a release item behind it and starts at once. Tests sent
        several at a time get none: each runs with the test after it as its
        next item, as in a plain xdist run, and the last one, once it is the
        worker's only test, gets a short test to follow it (one is ready and
        free of rules: committing it costs at most a short test's wait), else
        a release item. With ``release_at_top`` (plugins read the next item),
        a test of unknown length gets any ready test free of rules to follow
        it, as xdist's ``load`` commits tests: in a first run every test is
        of unknown length. A release item between two tests would be their next
        item instead: plugins that follow the next item (SQLAlchemy's ends its
        per-class state when the next item is in another class) would read it
        as the parent going on. When nothing is left to send and no test can
        be handed back (no rerun budget, no probe), the worker's shutdown
        follows its last test, which then has no next item, as the last test
        of a plain xdist worker has (pytest-testmon saves its data then).
        """
        for worker, queue in self.queues.items():
            if worker in self.stopping or self._load[worker] != 1:
                continue
            last = queue[-1]
            if not isinstance(last, int):
                continue  # followed already
            # With plugins that read the next item, a test of unknown length
            # (before the run knows how long tests take) gets one too: its
            # release item would be the worker's last test's next item
            # whenever the other workers take the tests left.
            unknown = self.release_at_top and self._estimate(last) is None
            if self.pending and (self._sent_estimate[last] is not None or unknown):
                test = self._pick_for(worker, now, decision)
                if test is not None:
                    known = self._estimate(test) is not None
                    if (known or self.release_at_top) and self._pipelinable(test):
                        self._send(decision, worker, test, now)
                        continue
                    self._make_ready(test)  # picked, not sent: back in line
            if not self.pending and not self.may_rerun:
                self.stopping.add(worker)
                decision.shutdown.append(worker)
                continue
            idle = Idle(self._release_point(last))
            queue.append(idle)
            decision.send.setdefault(worker, []).append(idle)

    def _nothing_to_decide(self) -> bool:
        """Whether :meth:`decide` would do nothing, found cheaply: no test newly
        free to start, every worker that takes work holds more than half its
        queue's depth (nothing to send or top up), and tests remain and run.

        The usual answer while short tests stream through full queues: a
        decision after each test then costs one look at each worker.
        """
        if self._fresh or not self.pending or not self.running:
            return False
        half = PIPELINE_DEPTH // 2
        load = self._load
        for worker in self.queues:
            if load[worker] <= half and worker not in self.stopping:
                return False
        return True

    def _busy(self, worker: str) -> bool:
        return self._load[worker] > 0

    def _top_up(self, now: float, decision: Decision) -> None:
        """Queue more short tests on workers that run short tests and are running low.

        Running low is at half the depth or half the limit queued; then the
        queue is filled to the depth or the limit, so that sends carry many
        tests each. The limit is the horizon, or less where the work that may
        be sent now (ready, or queued on the workers) runs out: before a batch
        that comes ``after`` this one, or at the end of the run. There, a full
        queue on one worker would leave the others idle while it works through
        it; so a queue holds at most half of a worker's share of that work,
        and sends get smaller as it shrinks (xdist's ``load`` does the same).

        Workers take turns, so the most critical of these tests spread out; it
        stops at the first test that is not short or free of rules (it waits
        for a worker with nothing queued).
        """
        limit = min(self.horizon, self._fair_share() / 2)
        backlog: dict[str, float] = {}
        for worker in sorted(self.queues):
            if worker not in self.stopping and 0 < self._queued(worker) <= PIPELINE_DEPTH // 2:
                queued = self._backlog(worker)
                # Only at half the limit: a send per test would cost more than it saves.
                if queued is not None and queued <= limit / 2:
                    backlog[worker] = queued
        while backlog:
            for worker in list(backlog):
                test = self._pick_for(worker, now, decision)
                if test is None:
                    return
                estimate = self._estimate(test)
                if estimate is None or not self._pipelinable(test):
                    self._make_ready(test)  # picked, not sent: back in line
                    return
                if backlog[worker] + estimate > limit:
                    self._make_ready(test)
                    del backlog[worker]  # full: the others may still take some
                    continue
                self._send(decision, worker, test, now)
                backlog[worker] += estimate
                if self._queued(worker) >= PIPELINE_DEPTH:
                    del backlog[worker]

    def _fair_share(self) -> float:
        """Estimated work per worker, of the tests ready to send and those queued,
        among the workers not running a long test.

        Tests not measured in earlier runs count with this run's mean (or
        nothing before it is known: such tests are not queued then anyway).
        """
        # Workers busy with a long (or unknown) test take no short ones for a
        # while: they share none of this work.
        workers = [
            worker
            for worker in self.queues
            if worker not in self.stopping and not self._unbounded[worker]
        ]
        queued = 0.0
        for worker in workers:
            if self._load[worker]:
                queued += self._backlog(worker) or 0.0
        unmeasured = len(self._ready_set) - self._ready_measured
        mean = self._observed / self._observations if self._observations >= MIN_OBSERVATIONS else 0
        ready = self._ready_measured_work + unmeasured * mean
        return (ready + queued) / max(len(workers), 1)

    def _queued(self, worker: str) -> int:
        return self._load[worker]

    def _backlog(self, worker: str) -> float | None:
        """Estimated work queued behind the running test; None unless all of it is short.

        Each test counts with its estimate when it was sent (kept up to date
        as tests are sent and finish, so this costs no walk over the queue).
        """
        if self._unbounded[worker]:
            return None
        head = next(item for item in self.queues[worker] if isinstance(item, int))
        return max(0.0, self._queued_work[worker] - (self._sent_estimate[head] or 0.0))

    def _estimate(self, index: int) -> float | None:
        """The test's expected duration: history, else this run's mean, else unknown."""
        if index in self.plan.measured:
            return self.plan.estimates[index]
        if self._observations >= MIN_OBSERVATIONS:
            return self._observed / self._observations
        return None

    def _pipelinable(self, index: int) -> bool:
        """Whether the test may wait in a worker's queue.

        Tests with locks, in serial, exclusive or capped batches, or in batches
        with ``maxfail`` or ``timeout`` (which may stop a batch while a test
        waits in a queue), and tests others depend on (a wait would delay a
        whole chain) are sent only to a worker with nothing queued. So a
        pipelined test waits for at most the rest of the running test and the
        horizon's worth of tests ahead of it.
        """
        policy = self._policies[self.plan.batch_of[index]]
        return (
            not self._successors.get(index)
            and policy.mode == "parallel"
            and policy.workers is None
            and policy.maxfail is None
            and policy.timeout is None
            and not self.locks.get(index)
            and self._light(index)
        )

    def _light(self, index: int) -> bool:
        """Whether the test is too small to count against the budget."""
        needs = self.needs.get(index)
        return self.budget is None or needs is None or self.budget.light(needs)

    def _fits(self, index: int) -> bool:
        """Whether the budget lets the test start now, beside what runs."""
        if self.budget is None:
            return True
        if self._alone_running:
            return False
        light = self._light(index)
        if light and not self._extra_cpus:
            return True  # the common case, on the hot path of short tests
        busy = sum(1 for load in self._load.values() if load > 0)
        if light:
            # A light test on a worker with nothing to do adds that worker's CPU.
            return busy + self._extra_cpus + 1 <= self.budget.cpus
        return self.budget.fits(
            self.needs[index],
            self._memory_in_use,
            busy + self._extra_cpus,
            alone=not self.running,
        )

    def _take_fresh(self, now: float, decision: Decision) -> None:
        """Tests whose dependencies and upstream batches are done: skip or make ready."""
        while self._fresh:
            index = self._fresh.pop()
            if index not in self.pending:
                continue
            reason = self.state.skip(index, now)
            if reason is None:
                self._make_ready(index)
            else:
                self._skip(index, reason, decision)

    def _pick(self, now: float, decision: Decision, worker: str) -> int | None:
        """The best ready test that may start now, skipping those that must not run."""
        self._take_fresh(now, decision)
        if any(self._batch_running[batch] for batch in self._exclusive):
            return None
        while True:
            skipped = len(decision.skip)
            chosen = self._scan_ready(now, decision, worker)
            # A skip may have cleared the way for a test set aside (the next
            # test of a serial batch): look again until nothing changes.
            if chosen is not None or len(decision.skip) == skipped:
                return chosen

    def _pick_for(self, worker: str, now: float, decision: Decision) -> int | None:
        """The test for ``worker``: the best one, or one that saves a fixture setup.

        Staying under the same parent (module or class) keeps that parent's
        fixtures set up on the worker; a parent whose fixtures cost time to
        set up (``setup_costs``, measured in earlier runs) is best not set up
        on a second worker while another has it. So the worker takes, instead
        of the best test, a test under the parent it ran last (unless that
        parent's setup was measured as free), or else, when the best test's
        parent is costly and set up on another worker, the best test under a
        parent set up nowhere else. Only when that cannot lengthen the run: the
        best test's remaining path, delayed by the other test, still ends
        before the estimated work left could, spread over the workers.
        """
        best = self._pick(now, decision, worker)
        if best is None:
            return None
        parent = self._last_parent.get(worker)
        chosen = None
        if parent is not None and self.parents[best] != parent and self._worth_keeping(parent):
            chosen = self._ready_under(parent, now, worker)
        if (
            chosen is None
            and self.parents[best] != parent
            and self.setup_costs.get(self.parents[best], 0.0) >= AFFINITY_MIN_COST
            and self._workers_with(self.parents[best], besides=worker)
        ):
            chosen = self._ready_apart(worker, now)
            if chosen is None and not self._worth_joining(best):
                heapq.heappush(self._ready, (self._key[best], best))
                return None  # the workers that have the fixtures finish sooner alone
        if chosen is None:
            return best
        if not self._safe_instead(best, chosen):
            if parent is not None and self.parents[chosen] == parent:
                heapq.heappush(self._ready_in[parent], (self._key[chosen], chosen))
            return best
        heapq.heappush(self._ready, (self._key[best], best))
        return chosen

    def _worth_keeping(self, parent: str) -> bool:
        """Whether staying under ``parent`` may save a setup worth saving: not
        measured, costly, or not small against the parent's tests (a 3 ms module
        fixture of 0.1 ms tests, set up again each time a worker comes back to
        the module, would make them 30 times slower). A parent measured as free
        (no shared fixtures) holds no worker: the tests go by priority."""
        cost = self.setup_costs.get(parent)
        if cost is None or cost >= AFFINITY_MIN_COST:
            return True
        return cost > 0.0 and cost >= AFFINITY_SHARE * self._parent_mean.get(parent, 0.0)

    def _workers_with(self, parent: str, besides: str | None = None) -> list[str]:
        """The live workers (other than ``besides``) whose last test was under ``parent``."""
        return [
            other
            for other, last in self._last_parent.items()
            if last == parent and other != besides and other not in self.stopping
        ]

    def _worth_joining(self, index: int) -> bool:
        """Whether setting up the test's costly parent on one more worker can pay off.

        With ``k`` workers having it and ``U`` seconds of its tests not yet
        sent, they finish in ``U / k``; one more finishes in ``c + U / (k + 1)``
        after paying the setup ``c``: sooner only when ``U > c k (k + 1)``. A
        test others depend on is always worth it (its chain may be critical),
        and so is a rerun: it avoids the worker it failed on, which may be the
        only one with the parent set up.
        """
        if self._successors.get(index) or index in self._failed_on:
            return True
        parent = self.parents[index]
        having = len(self._workers_with(parent))
        cost = self.setup_costs.get(parent, 0.0)
        return self._parent_work[parent] > cost * having * (having + 1)

    def _safe_instead(self, best: int, other: int) -> bool:
        """Whether running ``other`` first cannot make the run end later."""
        workers = max(len(self.queues) - len(self.stopping), 1)
        delayed = self._remaining[best] + self.plan.estimates.get(other, 0.0)
        return delayed <= self._work_left / workers

    def _ready_apart(self, worker: str, now: float, looks: int = 32) -> int | None:
        """The best ready test free of rules whose parent no other worker has set up.

        Looks at the ``looks`` best ready tests only; the test stays in the
        ready heap (it leaves ``pending`` when sent).
        """
        for _, index in heapq.nsmallest(looks, self._ready):
            if (
                index in self.pending
                and not self._workers_with(self.parents[index], besides=worker)
                and self._free_to_take(index, now)
            ):
                return index
        return None

    def _ready_under(self, parent: str, now: float, worker: str) -> int | None:
        """The best ready test under ``parent`` if it may start now and needs no rule."""
        heap = self._ready_in.get(parent)
        while heap and heap[0][1] not in self.pending:
            heapq.heappop(heap)
        if not heap:
            return None
        index = heap[0][1]
        if not self._free_to_take(index, now):
            return None
        heapq.heappop(heap)
        return index

    def _free_to_take(self, index: int, now: float) -> bool:
        """Whether a ready test may be taken out of priority order: no rule can hold it."""
        return (
            self._pipelinable(index)
            and index not in self._failed_on
            and self._allowed(index)
            and self._fits(index)
            and self.state.skip_reason(index, now) is None
        )

    def _scan_ready(self, now: float, decision: Decision, worker: str) -> int | None:
        deferred: list[tuple[_Key, int]] = []
        chosen = None
        waits_for_memory = False
        while self._ready:
            entry = heapq.heappop(self._ready)
            index = entry[1]
            if index not in self.pending:
                continue
            reason = self.state.skip(index, now)
            if reason is not None:
                self._skip(index, reason, decision)
                self._take_fresh(now, decision)
                continue
            if self._not_before.get(index, now) > now or self._avoids(index, worker):
                deferred.append(entry)  # a rerun: not yet, or rather elsewhere
                continue
            if self._allowed(index):
                if self._fits(index) and (not waits_for_memory or self._light(index)):
                    chosen = index
                    break
                deferred.append(entry)
                if not self._fits(index) and not waits_for_memory:
                    # The first test held back by memory keeps its place: only
                    # light tests go before it, until enough has finished.
                    waits_for_memory = True
                    needs = self.needs.get(index, Needs())
                    if self.budget is not None and self.budget.exceeds(needs):
                        break  # it runs alone: let the cluster drain
                continue
            deferred.append(entry)
            if self._waits_only_for_the_cluster(index):
                break  # an exclusive test is next in line: let the cluster drain
        for entry in deferred:
            heapq.heappush(self._ready, entry)
        return chosen

    def _allowed(self, index: int) -> bool:
        batch = self.plan.batch_of[index]
        if self._order_class.get(index) and self._first_class_ready[batch]:
            return False  # after the batch's other tests, as pytest-django orders them
        policy = self._policies[batch]
        if policy.mode == "exclusive" and (self.running or not self._needs_met(batch)):
            return False
        if policy.mode in ("serial", "exclusive") and (
            self._batch_running[batch] or self._next_in_order(batch) != index
        ):
            return False
        if policy.workers is not None and self._batch_running[batch] >= policy.workers:
            return False
        if any(self._held[lock] for lock in self.locks.get(index, ())):
            return False
        return all(name == batch for name in self._exclusive_underway())

    def _waits_only_for_the_cluster(self, index: int) -> bool:
        """An exclusive test that could start as soon as the running tests end."""
        batch = self.plan.batch_of[index]
        return (
            self._policies[batch].mode == "exclusive"
            and bool(self.running)
            and not self._batch_running[batch]
            and self._next_in_order(batch) == index
            and self._needs_met(batch)
        )

    def _needs_met(self, batch: str) -> bool:
        """Whether every test of the batch has its dependencies outside it done.

        An exclusive batch starts only then: once it runs, nothing else may,
        so nothing it waits for could ever finish.
        """
        return all(
            pred in self.done or pred not in self._planned
            for index in self._batch_tests[batch]
            if index in self.pending
            for pred in self.plan.predecessors.get(index, ())
            if self.plan.batch_of.get(pred) != batch
        )

    def _exclusive_underway(self) -> list[str]:
        """Exclusive batches that started and still have tests to run: they own the cluster."""
        return [
            name
            for name, policy in self._policies.items()
            if policy.mode == "exclusive"
            and name in self.state.batch_started
            and self._batch_left[name]
        ]

    def _next_in_order(self, batch: str) -> int | None:
        tests = self._batch_tests[batch]
        position = self._serial_next[batch]
        while position < len(tests) and tests[position] not in self.pending:
            position += 1
        self._serial_next[batch] = position
        return tests[position] if position < len(tests) else None

    def _send(self, decision: Decision, worker: str, index: int, now: float) -> None:
        batch = self.plan.batch_of[index]
        self.pending.discard(index)
        self._not_ready(index)
        self._count_unsent(index, -1)
        self._last_parent[worker] = self.parents[index]
        self.running[index] = worker
        self._load[worker] += 1
        estimate = self._estimate(index)
        if estimate is None or estimate > self.horizon or not self._pipelinable(index):
            self._unbounded[worker] += 1
            self._sent_estimate[index] = None
        else:
            self._queued_work[worker] += estimate
            self._sent_estimate[index] = estimate
        self._batch_running[batch] += 1
        self._held.update(self.locks.get(index, ()))
        if not self._light(index):
            needs = self._reserved[index] = self.needs[index]
            self._memory_in_use += needs.memory
            self._extra_cpus += needs.cpus - 1
            assert self.budget is not None
            self._alone_running += self.budget.exceeds(needs)
        self.state.test_started(index, now)
        self.queues[worker].append(index)
        decision.send.setdefault(worker, []).append(index)

    def _skip(self, index: int, reason: str, decision: Decision) -> None:
        """Never send the test; a rerun that may not run leaves its failure standing."""
        self.pending.discard(index)
        self._not_ready(index)
        self._count_unsent(index, -1)
        standing = self._standing.get(index, "failed") if index in self._failed_on else "skipped"
        self.state.test_finished(index, standing)
        decision.skip.append((index, reason))
        self._complete(index)

    def _rerun(self, index: int, worker: str, when: float) -> None:
        if self.interleave:
            # Behind every test that has run fewer times: runs come in rounds.
            rounds, remaining, estimate, position = self._key[index]
            self._key[index] = (rounds + 1, remaining, estimate, position)
        self._failed_on.setdefault(index, set()).add(worker)
        self._not_before[index] = when
        self._requeue(index)

    def _avoids(self, index: int, worker: str) -> bool:
        """Whether the test failed on this worker and another one could take it."""
        failed_on = self._failed_on.get(index)
        return (
            failed_on is not None
            and worker in failed_on
            and any(w not in failed_on and w not in self.stopping for w in self.queues)
        )

    def _requeue(self, index: int) -> None:
        self.pending.add(index)
        self._count_unsent(index, +1)
        self._make_ready(index)

    def _count_unsent(self, index: int, sign: int) -> None:
        """Add the test (and its estimate) to, or take it from, the work not yet sent."""
        parent = self.parents[index]
        estimate = sign * self.plan.estimates.get(index, 0.0)
        self._work_left += estimate
        self._parent_work[parent] += estimate
        for node in self._chains[parent]:
            self._unsent_under[node] += sign

    def _release_point(self, index: int) -> str:
        """Where the release item behind ``index`` sits: the lowest node above
        the test that still holds a test not yet sent, or else the top one.

        The worker runs ``index`` with the release item as the next item, so
        the test's own teardown ends what nothing to come needs (its module's
        fixtures after the module's last test), as in a run without batchflow,
        and a finalizer's error is that test's, in its teardown report. What
        the release item keeps is torn down when the worker moves on.
        """
        chain = self._chains[self.parents[index]]
        if self.release_at_top:
            return chain[0]
        for node in reversed(chain):
            if self._unsent_under[node]:
                return node
        return chain[0]

    def _make_ready(self, index: int) -> None:
        if index not in self._ready_set:
            self._ready_set.add(index)
            if self._order_class and not self._order_class.get(index):
                self._first_class_ready[self.plan.batch_of[index]] += 1
            if index in self.plan.measured:
                self._ready_measured += 1
                self._ready_measured_work += self.plan.estimates[index]
        entry = (self._key[index], index)
        heapq.heappush(self._ready, entry)
        heapq.heappush(self._ready_in.setdefault(self.parents[index], []), entry)

    def _not_ready(self, index: int) -> None:
        """The test leaves the ready ones: sent or skipped."""
        if index in self._ready_set:
            self._ready_set.discard(index)
            if self._order_class and not self._order_class.get(index):
                self._first_class_ready[self.plan.batch_of[index]] -= 1
            if index in self.plan.measured:
                self._ready_measured -= 1
                self._ready_measured_work -= self.plan.estimates[index]
                if not self._ready_measured:
                    self._ready_measured_work = 0.0  # no rounding left over

    def _release(self, index: int) -> None:
        worker = self.running.pop(index, None)
        if worker is None:
            return
        self._load[worker] -= 1
        estimate = self._sent_estimate.pop(index)
        if estimate is None:
            self._unbounded[worker] -= 1
        elif self._load[worker]:
            self._queued_work[worker] -= estimate
        else:
            self._queued_work[worker] = 0.0  # no rounding left over
        self._batch_running[self.plan.batch_of[index]] -= 1
        self._held.subtract(self.locks.get(index, ()))
        needs = self._reserved.pop(index, None)
        if needs is not None:
            self._memory_in_use -= needs.memory
            self._extra_cpus -= needs.cpus - 1
            assert self.budget is not None
            self._alone_running -= self.budget.exceeds(needs)

    def _complete(self, index: int) -> None:
        self.done.add(index)
        for successor in self._successors.get(index, ()):
            self._waiting[successor] -= 1
            if not self._waiting[successor] and not self._upstream[self.plan.batch_of[successor]]:
                self._fresh.append(successor)
        batch = self.plan.batch_of[index]
        self._batch_left[batch] -= 1
        if self._batch_left[batch]:
            return
        for downstream in self._downstream[batch]:
            self._upstream[downstream].discard(batch)
            if not self._upstream[downstream]:
                self._fresh.extend(i for i in self._batch_tests[downstream] if not self._waiting[i])
