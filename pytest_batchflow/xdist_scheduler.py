"""pytest-xdist adapter: batchflow's scheduler over the pure core dispatcher.

The controller collects nothing. Each worker writes its analysis of the
collection (batches, dependencies, locks, parents) as JSON into a run
directory the controller passes through ``workerinput``; the first one
becomes the plan. After that the scheduler only translates: xdist's calls
become dispatcher events, the dispatcher's decisions become ``runtests``,
``shutdown`` and, for tests that must not run, skipped reports the
controller emits itself without sending the test anywhere.

Positions in the collection identify tests on the wire. Past the end of the
collection each worker holds one no-op release item under each node above a
test: its parent, module, package, directory, the session (see
:class:`pytest_batchflow.orchestrator.IdleItem`), in sorted node id order.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import clock
from .collection import Analysis, analyse
from .core.plan import PlanError
from .core.scheduler import Decision, Dispatcher, Idle, Sendable
from .files import remove_run_directory, run_directory
from .settings import to_plain

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

    from .orchestrator import Orchestrator

__all__ = ["BatchflowScheduling", "XdistHooks", "write_worker_analysis"]

RUNDIR_KEY = "batchflow_rundir"
#: The controller's validated settings, as plain values (see ``settings.to_plain``).
SETTINGS_KEY = "batchflow_settings"


def _analysis_path(rundir: Path, worker: str) -> Path:
    return rundir / f"analysis-{worker}.json"


def _error_path(rundir: Path, worker: str) -> Path:
    return rundir / f"error-{worker}.txt"


def write_worker_analysis(
    config: pytest.Config, analysis: Analysis | None, error: str | None
) -> None:
    """On a worker: leave the analysis (or why there is none) for the controller."""
    workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    rundir, worker = Path(workerinput[RUNDIR_KEY]), str(workerinput["workerid"])
    if analysis is not None:
        _analysis_path(rundir, worker).write_bytes(analysis.to_json())
    else:
        _error_path(rundir, worker).write_text(str(error), encoding="utf-8")


def _read_worker_analysis(rundir: Path, worker: str) -> Analysis | None:
    """On the controller; a worker's planning error becomes the usage error it is.

    None when the worker left neither: pytest stopped its collection before
    the plugins saw the items (a path or node id that does not exist).
    """
    error = _error_path(rundir, worker)
    if error.exists():
        raise pytest.UsageError(f"batchflow: {error.read_text(encoding='utf-8')}")
    try:
        return Analysis.from_json(_analysis_path(rundir, worker).read_bytes())
    except FileNotFoundError:
        return None


class XdistHooks:
    """The controller's xdist hooks, registered only when xdist runs batchflow."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.rundir = run_directory("batchflow-run-")
        #: Workers started and workers that finished or crashed, by id.
        self.started: set[str] = set()
        self.down: set[str] = set()

    def pytest_configure_node(self, node: WorkerController) -> None:
        node.workerinput[RUNDIR_KEY] = str(self.rundir)
        node.workerinput[SETTINGS_KEY] = to_plain(self.orchestrator.settings)

    def pytest_testnodeready(self, node: WorkerController) -> None:
        self.started.add(str(node.gateway.id))

    def pytest_testnodedown(self, node: WorkerController, error: object) -> None:
        # A worker sends its last report, and saves its coverage data, before
        # it says it finished; a crashed one sends nothing more either.
        self.down.add(str(node.gateway.id))
        from .orchestrator import TEARDOWN_OUTPUT

        # What its last release item printed, after its last report.
        workeroutput = getattr(node, "workeroutput", {})
        output = workeroutput.get(TEARDOWN_OUTPUT)
        if output is not None:
            self.orchestrator.add_teardown_output(str(node.gateway.id), output)
        from .coverage_measure import WARNINGS_KEY

        warned = workeroutput.get(WARNINGS_KEY)
        if isinstance(warned, list):
            self.orchestrator.add_coverage_warnings([str(message) for message in warned])

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_handlecrashitem(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        """A crashed test's report stays a failure: batchflow decides its rerun.

        pytest-rerunfailures' handler makes it a ``rerun`` and asks the
        scheduler to send the test again (:meth:`BatchflowScheduling.mark_test_pending`,
        which declines); left so, the failure would count as a rerun that
        never comes, and the run would pass. A rerun within batchflow's own
        budget relabels the report as xdist logs it, as for any crash.
        """
        try:
            return (yield)
        finally:
            outcome: str = report.outcome  # "rerun" is no outcome pytest's types know
            if outcome == "rerun":  # another one a plugin chose stays
                report.outcome = "failed"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Sum the run up before xdist's ``pytest_sessionfinish`` waits for the
        workers' processes to end (a few tenths of a second: their own session
        end, then their interpreters'), so that both happen at once.

        Only when every worker has finished: after an interruption a worker
        may still run, and the orchestrator sums up after xdist's wait, as a
        plain hook. An error here is raised there too, once xdist has waited.
        """
        if self.started and self.started <= self.down:
            self.orchestrator.finish(session, exitstatus, early=True)

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> BatchflowScheduling:
        return BatchflowScheduling(self.orchestrator, self.rundir)

    def close(self) -> None:
        remove_run_directory(self.rundir)


#: Tests at the head of a worker's queue left to it when the session stops
#: (see BatchflowScheduling._withdraw_queued).
_KEPT_WHEN_STOPPING = 3


class BatchflowScheduling:
    """xdist's ``Scheduling`` protocol, answered by the core dispatcher."""

    def __init__(self, orchestrator: Orchestrator, rundir: Path) -> None:
        self.orchestrator = orchestrator
        #: xdist's schedulers have it; crash handlers of other plugins read it.
        self.config = orchestrator.config
        self.rundir = rundir
        self.collections: dict[WorkerController, list[str] | None] = {}
        self.collection: list[str] | None = None
        self.dispatcher: Dispatcher | None = None
        self.aborted = False
        self._scheduled = False  # xdist has asked for the first tests
        self._collected_once = False
        self._collected = 0  # workers present whose collection arrived
        #: Collections that arrived, from workers present or gone: a worker whose
        #: pytest stopped at collection (a node id that does not exist) sends an
        #: empty one and finishes at once.
        self._collections_sent = 0
        self.item_at: dict[int, Sendable] = {}
        self.position_of: dict[Sendable, int] = {}
        #: Once xdist stops the session: workers asked to give back the tests
        #: they hold and have not started, and those that did (or held none).
        self._withdrawing: set[str] = set()
        self._withdrawn: set[str] = set()

    # -- state xdist asks about ------------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self.collections)

    @property
    def collection_is_completed(self) -> bool:
        """Every expected worker has collected (as xdist's load scheduling counts).

        Once true it stays true while the workers present have collected:
        workers the dispatcher shut down leave early, and the run goes on.
        """
        # xdist asks at every event: counted as collections arrive, not here.
        if self._collections_sent >= self.orchestrator.workers:
            self._collected_once = True
        return self._collected_once and self._collected == len(self.collections)

    @property
    def tests_finished(self) -> bool:
        # xdist asks after every event: the dispatcher's answer, usually no, first.
        if self.aborted:
            return True
        dispatcher = self.dispatcher
        return dispatcher is not None and dispatcher.finished and self.collection_is_completed

    @property
    def has_pending(self) -> bool:
        # xdist asks only when every worker has collected, and prints its
        # "2 workers [5 items]" status when nothing is pending yet: as for its
        # own schedulers, nothing is until it first asks for tests to be sent.
        return self._scheduled and self.dispatcher is not None and not self.dispatcher.finished

    # -- events -----------------------------------------------------------------

    def add_node(self, node: WorkerController) -> None:
        self.collections[node] = None
        if self.dispatcher is not None:
            self.dispatcher.add_worker(node.gateway.id)

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        if self.collections.get(node) is None:
            self._collected += 1
            self._collections_sent += 1
        self.collections[node] = list(collection)
        if self.collection is None:
            self._start(node.gateway.id, list(collection))
        elif list(collection) != self.collection:
            self._report_collection_difference(node, collection)

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        assert self.dispatcher is not None
        item = self.item_at[item_index]
        rerun_at = None
        standing = "failed"
        if isinstance(item, int):
            self.orchestrator.settle_withheld(item)
            delay = self.orchestrator.take_rerun(item)
            if delay is not None:
                rerun_at = clock.monotonic() + delay
                standing = self.orchestrator.standing_outcome(item)
        self.dispatcher.test_complete(node.gateway.id, item, duration, rerun_at, standing)
        self._decide()

    def mark_test_pending(self, item: str) -> None:
        """Asked by a crash handler (pytest-rerunfailures) to run a crashed test again.

        Batchflow decides reruns itself (``--batchflow-reruns``); this request is noted.
        """
        index = self.orchestrator.open_tests.get(item)
        if index is not None and index in self.orchestrator.rerunning:
            return  # rerun within batchflow's budget anyway: nothing to say
        self.orchestrator.add_note(
            f"a plugin asked to rerun the crashed test {item}; batchflow's scheduler "
            "reruns crashed tests within their --batchflow-reruns budget only"
        )

    def remove_pending_tests_from_node(
        self, node: WorkerController, indices: Sequence[int]
    ) -> None:
        """The worker's answer to :meth:`_withdraw_queued`: the tests it gave back."""
        assert self.dispatcher is not None
        worker = node.gateway.id
        if worker in self._withdrawing:
            self._withdrawing.discard(worker)
            if indices:  # none: it had started one of them; asked again below
                self._withdrawn.add(worker)
        tests = [item for item in map(self.item_at.__getitem__, indices) if isinstance(item, int)]
        self.dispatcher.unscheduled(worker, tests)
        self._decide()

    def remove_node(self, node: WorkerController) -> str | None:
        if self.collections.pop(node, None) is not None:
            self._collected -= 1
        if self.dispatcher is None:
            return None
        worker = node.gateway.id

        def rerun_at(index: int) -> float | None:
            delay = self.orchestrator.rerun_after_crash(index, worker)
            return None if delay is None else clock.monotonic() + delay

        # After -x xdist itself tells each worker to shut down, and the
        # dispatcher sends nothing more: a worker's last test runs then with
        # that shutdown behind it, as behind one the dispatcher sent.
        crashed = self.dispatcher.remove_worker(worker, rerun_at, shut_down=node.shutting_down)
        coverage = self.orchestrator.coverage_rundir is not None
        if crashed is None:
            if coverage and node.shutting_down is False:
                self.orchestrator.coverage_crash(worker, None)
            self._decide()
            return None
        nodeid = self.orchestrator.analysis_nodeid(crashed)
        if coverage:
            self.orchestrator.coverage_crash(worker, nodeid)
        # xdist reports the crash next, with no position and no worker id: say
        # which test it was, and where.
        self.orchestrator.open_tests[nodeid] = crashed
        self.orchestrator.crashed_on[crashed] = worker
        self._decide()
        return nodeid

    def schedule(self) -> None:
        self._scheduled = True
        if self.dispatcher is not None and not self.aborted:
            self._decide()

    # -- helpers ----------------------------------------------------------------

    def _start(self, worker: str, collection: list[str]) -> None:
        """Plan the run from the first worker's collection and analysis."""
        try:
            analysis = _read_worker_analysis(self.rundir, worker)
            if analysis is None and collection:
                if not self.rundir.is_dir():
                    pytest.exit(
                        f"batchflow: the run's folder {self.rundir} was removed while the "
                        "run went on (a clean-up of the temporary folder?); run again",
                        returncode=pytest.ExitCode.INTERNAL_ERROR,
                    )
                # The worker's collection hooks failed before batchflow's part ran
                # (another plugin's error): xdist reports that error next, or the
                # next worker's collection starts the run.
                return
            if analysis is None:
                # Nothing collected, as xdist reports it: an empty plan.
                analysis = analyse([], [], self.orchestrator.settings, self.config.rootpath)
            plan, state = self.orchestrator.make_plan(analysis)
        except PlanError as error:
            raise pytest.UsageError(f"batchflow: {error}") from None
        self.collection = collection
        expected = [analysis.specs[index].nodeid for index in analysis.run]
        if expected != self.collection:
            raise RuntimeError(
                f"batchflow: worker {worker} sent a collection that differs from its analysis"
            )
        self.orchestrator.position_index = list(analysis.run)
        for position, index in enumerate(analysis.run):
            self.item_at[position] = index
            self.position_of[index] = position
        parents = {index: analysis.parents[index] for index in analysis.run}
        chains = {parent: analysis.chains[parent] for parent in set(parents.values())}
        nodes = {node for chain in chains.values() for node in chain}
        for offset, node in enumerate(sorted(nodes)):
            position = len(collection) + offset
            self.item_at[position] = Idle(node)
            self.position_of[Idle(node)] = position
        self.dispatcher = Dispatcher(
            plan,
            state,
            parents,
            analysis.locks,
            chains=chains,
            order_classes=analysis.order_classes,
            interleave=self.orchestrator.settings.probe is not None,
            keep_order=self.orchestrator.settings.keep_order,
            may_rerun=self.orchestrator.reruns_possible,
            release_at_top=bool(analysis.follows_next_item),
            setup_costs=self.orchestrator.setup_costs,
            **self.orchestrator.memory_rules(analysis),
        )
        for node in self.collections:
            self.dispatcher.add_worker(node.gateway.id)
        for line in self.orchestrator.header_lines(plan):
            self.orchestrator.write_line(line)
        if analysis.follows_next_item and self.config.get_verbosity() >= 0:
            self.orchestrator.write_line(
                f"batchflow: {', '.join(analysis.follows_next_item)} "
                f"{'reads' if len(analysis.follows_next_item) == 1 else 'read'} the next item "
                "of a test: a worker that waits for work tears down its class and module "
                "fixtures first"
            )

    def _decide(self) -> None:
        # Nothing goes out before xdist asks (schedule()): a worker lost while
        # the others collect must not start the run early.
        if not self._scheduled or self.dispatcher is None or self.aborted:
            return
        if self._xdist_stopping():
            self._withdraw_queued()
            return
        decision: Decision = self.dispatcher.decide(clock.monotonic())
        self._apply(decision)
        while decision.wait is not None:
            # Only reruns waiting out their delay are left: xdist calls in only
            # on events, and none will come, so wait here.
            time.sleep(decision.wait)
            decision = self.dispatcher.decide(clock.monotonic())
            self._apply(decision)

    def _apply(self, decision: Decision) -> None:
        for index, reason in decision.skip:
            self.orchestrator.emit_skip(index, reason)
        if not (decision.send or decision.shutdown):
            return
        nodes = {node.gateway.id: node for node in self.collections}
        for worker, items in decision.send.items():
            nodes[worker].send_runtest_some([self.position_of[item] for item in items])
        for worker in decision.shutdown:
            nodes[worker].shutdown()

    def _withdraw_queued(self) -> None:
        """xdist stops the session (-x, --maxfail): take back the tests each
        worker holds and has not started, as its ``worksteal`` mode takes them.

        A worker holds up to :data:`PIPELINE_DEPTH` short tests, and xdist lets
        each run what it holds before it shuts down: the run ended with dozens
        of failures after ``-x``, where xdist's own modes hold a few. The
        running test, the one the worker took as the next, and one more it may
        have reached by the time it reads the request stay; xdist 3.6+ gives
        back all of the tests asked for or none, so a refused request is made
        again, for what is then left, at the next event.
        """
        assert self.dispatcher is not None
        for node in self.collections:
            worker = node.gateway.id
            if worker in self._withdrawing or worker in self._withdrawn:
                continue
            held = self.dispatcher.queues.get(worker, [])[_KEPT_WHEN_STOPPING:]
            tests = [self.position_of[item] for item in held if isinstance(item, int)]
            if not tests:
                self._withdrawn.add(worker)
                continue
            try:
                node.send_steal(tests)
            except OSError:  # the worker is gone already
                self._withdrawn.add(worker)
                continue
            self._withdrawing.add(worker)

    def _xdist_stopping(self) -> bool:
        """xdist shuts the session down (-x, a crash too many): send nothing more."""
        assert self.dispatcher is not None
        for node in self.collections:
            if node.shutting_down and node.gateway.id not in self.dispatcher.stopping:
                return True
        return False

    def _report_collection_difference(
        self, node: WorkerController, collection: Sequence[str]
    ) -> None:
        """As xdist's own schedulers do: a collection error, and no test is run."""
        from xdist.report import report_collection_diff

        assert self.collection is not None
        first = next(iter(self.collections))
        message = report_collection_diff(
            self.collection, collection, first.gateway.id, node.gateway.id
        )
        if message:
            self.aborted = True
            self.orchestrator.config.hook.pytest_collectreport(
                report=pytest.CollectReport(
                    nodeid=node.gateway.id, outcome="failed", longrepr=message, result=[]
                )
            )
