"""The plugin object registered when ``--batchflow`` is on (serial runs).

It turns the collection into a plan, reorders the items to it, skips tests
whose dependencies or batch policies forbid them to run (before any fixture
is set up), and turns pytest's reports into the results model, the history
store and the terminal summary.
"""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from . import __version__
from .core.graph import TestSpec, resolve_dependencies
from .core.plan import BatchRule, Plan, PlanError, assign_batch, build_plan
from .core.scheduler import RunState
from .history import Attempt, HistoryError, HistoryStore
from .items import MarkerError, describe_item
from .results import BatchResult, Environment, PhaseResult, RunResult, TestResult
from .settings import Settings
from .terminal import batch_table, format_plan

__all__ = ["Orchestrator"]

INDEX_KEY = pytest.StashKey[int]()
T = TypeVar("T")
WORKER = "main"


def _git_commit(rootpath: Path) -> str | None:
    for variable in ("BATCHFLOW_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=rootpath,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def _test_outcome(phases: Sequence[pytest.TestReport]) -> str:
    by_when: dict[str, pytest.TestReport] = {str(report.when): report for report in phases}
    for when, word in (("setup", "error"), ("call", "failed"), ("teardown", "error")):
        report = by_when.get(when)
        if report is not None and report.failed:
            return word
    for when in ("setup", "call"):
        report = by_when.get(when)
        if report is not None and report.skipped:
            return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    call = by_when.get("call")
    return "xpassed" if call is not None and hasattr(call, "wasxfail") else "passed"


def _attempt(result: TestResult) -> Attempt:
    failing = next((phase for phase in result.phases if phase.outcome == "failed"), None)
    return Attempt(
        nodeid=result.nodeid,
        batch=result.batch,
        outcome=result.outcome,
        phase=failing.when if failing else None,
        duration=result.duration,
        started=result.start,
        stopped=result.stop,
        worker=result.worker,
        longrepr=failing.longrepr if failing else None,
    )


def _phase(report: pytest.TestReport) -> PhaseResult:
    longrepr = None
    if report.failed:
        longrepr = report.longreprtext
    elif report.skipped and isinstance(report.longrepr, tuple):
        longrepr = str(report.longrepr[2]).removeprefix("Skipped: ")
    return PhaseResult(
        when=report.when,
        outcome=report.outcome,
        duration=report.duration,
        start=report.start,
        stop=report.stop,
        longrepr=longrepr,
    )


class Orchestrator:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.started = time.time()
        self.commit = _git_commit(config.rootpath)
        self.notes: list[str] = []
        self.history: HistoryStore | None = None
        self.run_id: int | None = None
        self.plan: Plan | None = None
        self.state: RunState | None = None
        self.specs: dict[int, TestSpec] = {}
        self.deselected = 0
        self.reports: dict[int, list[pytest.TestReport]] = {}
        self.failed_subtests: set[int] = set()
        self.results: dict[int, TestResult] = {}
        self.index_of: dict[str, int] = {}
        # A plan only reads durations: it creates no store where there is none.
        if not settings.no_history and not (
            settings.plan_only and not settings.history_path.exists()
        ):
            self._open_history()

    def _open_history(self) -> None:
        try:
            self.history, warning = HistoryStore.open(self.settings.history_path)
        except HistoryError as error:
            self.notes.append(f"running without history: {error}")
            return
        if warning:
            self.notes.append(warning)

    # -- collection -------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        collected = list(items)
        result = yield
        try:
            self._plan(collected, items)
        except (PlanError, MarkerError) as error:
            raise pytest.UsageError(f"batchflow: {error}") from None
        return result

    def _plan(self, collected: list[pytest.Item], items: list[pytest.Item]) -> None:
        settings = self.settings
        rootpath = self.config.rootpath
        specs = [describe_item(i, item, rootpath) for i, item in enumerate(collected)]
        for item, spec in zip(collected, specs, strict=True):
            item.stash[INDEX_KEY] = spec.index
        self.specs = {spec.index: spec for spec in specs}
        policies = settings.policies
        known = {policy.name for policy in policies}
        rules = [BatchRule.from_policy(policy) for policy in policies]
        batch_of = {spec.index: assign_batch(spec, rules) for spec in specs}
        for spec in specs:
            if batch_of[spec.index] not in known:
                raise MarkerError(
                    f"{spec.nodeid}: @pytest.mark.batch({batch_of[spec.index]!r}) names an "
                    f"unknown batch; known batches: {', '.join(sorted(known))}"
                )
        if self.config.pluginmanager.has_plugin("dependency") and any(
            spec.dependency is not None for spec in specs
        ):
            self.notes.append(
                "pytest-dependency is active too; batchflow orders and skips its dependents "
                "itself, so disable that plugin with -p no:dependency (its markers keep working)"
            )
        resolution = resolve_dependencies(specs)
        if resolution.unresolved and settings.missing_dependency == "error":
            first = resolution.unresolved[0]
            raise PlanError(
                f"{self.specs[first.dependent].nodeid} depends on {first.target!r}, which "
                "matches no collected test; fix the name, select that test too, or set "
                "batchflow_missing_dependency = skip"
            )
        unresolved: dict[int, str] = {}
        for target in resolution.unresolved:
            unresolved.setdefault(target.dependent, target.target)

        kept = {item.stash[INDEX_KEY] for item in items}
        if settings.select is not None:
            selected = set(settings.select)
            dropped = [item for item in items if batch_of[item.stash[INDEX_KEY]] not in selected]
            if dropped:
                self.config.hook.pytest_deselected(items=dropped)
                items[:] = [item for item in items if batch_of[item.stash[INDEX_KEY]] in selected]
        self.deselected = len(collected) - len(items)
        durations: dict[str, float] = self._use_history(lambda h: h.durations(), {})
        plan = build_plan(
            specs,
            policies,
            batch_of,
            resolution.predecessors,
            [item.stash[INDEX_KEY] for item in items],
            durations,
        )
        # Set together, once nothing can fail any more: the later hooks use both.
        self.state = RunState(
            plan,
            {spec.index: spec.nodeid for spec in specs},
            self._external_reasons(plan, kept, batch_of),
            unresolved,
        )
        self.plan = plan
        by_index = {item.stash[INDEX_KEY]: item for item in items}
        items[:] = [by_index[i] for i in plan.order]
        self.index_of = {item.nodeid: item.stash[INDEX_KEY] for item in items}

    def _external_reasons(
        self, plan: Plan, kept: set[int], batch_of: dict[int, str]
    ) -> dict[int, str | None]:
        """Why each dependency outside the plan is missing; None if it passed before.

        A dependency in a batch left out by --batchflow-batches counts as met
        when the history has it passing at this same commit (an earlier CI stage).
        """
        outside = {pred for preds in plan.external.values() for pred in preds}
        unselected = {pred for pred in outside if pred in kept}
        passed: set[str] = set()
        commit = self.commit
        if unselected and commit is not None:
            nodeids = [self.specs[pred].nodeid for pred in unselected]
            passed = self._use_history(lambda h: h.passed_at_commit(commit, nodeids), set())
        reasons: dict[int, str | None] = {}
        for pred in outside:
            nodeid = self.specs[pred].nodeid
            if pred not in kept:
                reasons[pred] = "was deselected"
            elif nodeid in passed:
                reasons[pred] = None
            elif self.settings.missing_dependency == "skip":
                reasons[pred] = (
                    f"is in batch {batch_of[pred]!r}, not selected, and has not passed at "
                    "this commit"
                )
            else:
                dependent = next(i for i, preds in plan.external.items() if pred in preds)
                raise PlanError(
                    f"{self.specs[dependent].nodeid} depends on {nodeid} in batch "
                    f"{batch_of[pred]!r}, which --batchflow-batches leaves out and the history "
                    f"has not seen pass at commit {self.commit or '(unknown)'}; select "
                    f"{batch_of[pred]!r} too or run it first"
                )
        return reasons

    # -- reporting in the header ------------------------------------------------

    def pytest_report_header(self) -> list[str]:
        return [f"batchflow: warning: {note}" for note in self.notes]

    def pytest_report_collectionfinish(self) -> list[str]:
        if self.plan is None:
            return []
        batches = [batch for batch in self.plan.batches if batch.tests]
        tests = len(self.plan.order)
        return [
            f"batchflow: {len(batches)} batch{'es' if len(batches) != 1 else ''}, "
            f"{tests} test{'s' if tests != 1 else ''}, "
            f"{self.plan.edge_count} dependenc{'ies' if self.plan.edge_count != 1 else 'y'}"
        ]

    # -- running -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if not self.settings.plan_only or self.plan is None:
            return None
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        lines = format_plan(self.plan, self.specs, workers=1)
        if terminal is not None:
            for line in lines:
                terminal.write_line(line)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        if self.state is not None and INDEX_KEY in item.stash:
            index = item.stash[INDEX_KEY]
            now = time.monotonic()
            reason = self.state.skip_reason(index, now)
            if reason is not None:
                # A skip marker makes pytest's own skipping plugin skip the test
                # before any fixture is set up, reported at the test's location.
                item.add_marker(pytest.mark.skip(reason=f"batchflow: {reason}"))
            else:
                self.state.test_started(index, now)
        return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        index = self.index_of.get(report.nodeid)
        if index is None:
            return
        # Subtest reports (pytest's subtests fixture, unittest's subTest) carry a
        # ``context`` and, for unittest, no times: they decide the outcome only.
        if hasattr(report, "context"):
            if report.failed:
                self.failed_subtests.add(index)
        else:
            self.reports.setdefault(index, []).append(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        index = self.index_of.get(nodeid)
        if index is None or self.state is None or self.plan is None:
            return
        phases = self.reports.pop(index, [])
        if not phases:
            return
        outcome = _test_outcome(phases)
        if index in self.failed_subtests and outcome in ("passed", "xpassed"):
            outcome = "failed"
        self.state.test_finished(index, outcome)
        result = self._test_result(index, outcome, phases)
        self.results[index] = result
        run_id = self.run_id
        if run_id is not None:
            attempt = _attempt(result)
            self._use_history(lambda h: h.record_attempt(run_id, self.commit, attempt), None)

    def _test_result(
        self, index: int, outcome: str, reports: list[pytest.TestReport]
    ) -> TestResult:
        assert self.plan is not None
        phases = [_phase(report) for report in reports]
        decisive = next((p for p in phases if p.outcome == "failed"), None) or next(
            (p for p in phases if p.outcome == "skipped"), None
        )
        return TestResult(
            nodeid=self.specs[index].nodeid,
            batch=self.plan.batch_of[index],
            outcome=outcome,
            duration=sum(p.duration for p in phases),
            start=min(p.start for p in phases),
            stop=max(p.stop for p in phases),
            worker=WORKER,
            dependencies=[self.specs[p].nodeid for p in self.plan.predecessors.get(index, ())],
            phases=phases,
            longrepr=decisive.longrepr if decisive else None,
            # pytest gives each report the output of all phases so far.
            stdout=reports[-1].capstdout,
            stderr=reports[-1].capstderr,
            log=reports[-1].caplog,
        )

    # -- history, results and summary --------------------------------------------

    def close(self) -> None:
        """Release the history store, however the session ended (usage errors too)."""
        if self.history is not None:
            self.history.close()
            self.history = None

    def _use_history(self, action: Callable[[HistoryStore], T], fallback: T) -> T:
        """One read or write of the store; a failing store is dropped, never the run."""
        if self.history is None:
            return fallback
        try:
            return action(self.history)
        except sqlite3.Error as error:
            self.notes.append(f"history store failed ({error}); the rest of this run is not stored")
            self.history.close()
            self.history = None
            return fallback

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.settings.plan_only:
            return
        self.run_id = self._use_history(
            lambda h: h.start_run(
                self.started,
                self.commit,
                socket.gethostname(),
                platform.python_version(),
                " ".join(self.config.invocation_params.args),
            ),
            None,
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.plan is None or self.settings.plan_only:
            return
        stopped = time.time()
        self.run_result = RunResult(
            started=self.started,
            stopped=stopped,
            duration=stopped - self.started,
            exitstatus=int(exitstatus),
            environment=self._environment(),
            batches=self._batch_results(),
            tests=[self.results[i] for i in self.plan.order if i in self.results],
            deselected=self.deselected,
        )
        if self.settings.json_path is not None:
            self.run_result.write(self.settings.json_path)
        run_id = self.run_id
        if run_id is not None:
            self._use_history(lambda h: h.finish_run(run_id, stopped, int(exitstatus)), None)

    def _batch_results(self) -> list[BatchResult]:
        assert self.plan is not None
        assert self.state is not None
        batches = []
        for batch in self.plan.batches:
            if self.settings.select is not None and batch.name not in self.settings.select:
                continue
            results = [self.results[i] for i in batch.tests if i in self.results]
            outcomes = Counter(result.outcome for result in results)
            failed = outcomes["failed"] + outcomes["error"]
            blocked = self.state.upstream_block(batch.name) if batch.tests else None
            if not batch.tests:
                status = "empty"
            elif blocked is not None:
                status = "skipped"
            elif failed:
                status = "failed"
            else:
                status = "passed"
            policy = batch.policy
            batches.append(
                BatchResult(
                    name=batch.name,
                    kind=policy.kind,
                    mode=policy.mode,
                    after=list(policy.after),
                    priority=policy.priority,
                    workers=policy.workers,
                    reruns=policy.reruns,
                    timeout=policy.timeout,
                    maxfail=policy.maxfail,
                    cov=policy.cov,
                    on_upstream_failure=policy.on_upstream_failure,
                    status=status,
                    skip_reason=blocked,
                    tests=len(batch.tests),
                    outcomes=dict(sorted(outcomes.items())),
                    duration=(max(r.stop for r in results) - min(r.start for r in results))
                    if results
                    else 0.0,
                    estimated=self.plan.batch_estimate(batch.name) if self.plan.measured else None,
                )
            )
        return batches

    def _environment(self) -> Environment:
        plugins = sorted(
            {
                f"{dist.project_name}=={dist.version}"
                for _, dist in self.config.pluginmanager.list_plugin_distinfo()
            }
        )
        return Environment(
            python=platform.python_version(),
            implementation=platform.python_implementation(),
            platform=platform.platform(),
            pytest=pytest.__version__,
            batchflow=__version__,
            plugins=plugins,
            rootdir=str(self.config.rootpath),
            invocation=list(self.config.invocation_params.args),
            hostname=socket.gethostname(),
            git_commit=self.commit,
        )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.settings.plan_only:
            return
        result = getattr(self, "run_result", None)
        if result is None:
            return
        terminalreporter.write_sep("=", "batchflow")
        for line in batch_table([batch for batch in result.batches if batch.tests]):
            terminalreporter.write_line(line)
        for note in self.notes:
            terminalreporter.write_line(f"batchflow: warning: {note}", yellow=True)
        if self.settings.json_path is not None:
            terminalreporter.write_line(f"batchflow: JSON result: {self.settings.json_path}")
