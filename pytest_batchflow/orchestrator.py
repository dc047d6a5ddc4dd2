"""The plugin object registered when ``--batchflow`` is on.

It plays one of three roles. *Serial* (no xdist): it turns the collection into
a plan, reorders the items to it and skips, before any fixture is set up, the
tests whose dependencies or batch policies forbid them to run. *Worker* (an
xdist worker): it analyses its collection for the controller and runs what it
is sent, including the no-op release items of the dispatcher. *Controller*
(xdist's main process): it plans from a worker's analysis and dispatches
through :mod:`pytest_batchflow.xdist_scheduler`. Serial and controller turn
pytest's reports into the results model, the history store, the JSON file and
the terminal summary.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import platform
import re
import shlex
import socket
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, overload

import pytest

from . import __version__, clock
from .bench import SAMPLES_ATTRIBUTE, SAMPLES_KEY, BenchOptions
from .collection import Analysis, analyse, misspelt_paths
from .core.flaky import RerunPolicy, RunRecord, budget_for, final_outcome, flakiness
from .core.plan import Plan, PlanError, build_plan
from .core.probe import ALONE_RUNS, MAX_ALONE_TESTS, overall_outcome
from .core.reads import reads_argument
from .core.resources import Budget, Needs, ResourceSample, find_leaks, format_size
from .core.scheduler import RunState
from .core.words import count_of
from .files import ignore_in_git, why_not_written
from .gcpause import collector_paused
from .gitstate import commit_under_test
from .items import MarkerError
from .options import GATE_ACCEPT, GATE_OFF, misspelt_setting, misspelt_variables
from .resources import RESOURCES_ATTRIBUTE, Figures, pack_figures, unpack_figures
from .settings import Settings
from .terminal import batch_table, collection_line, format_header, format_plan, resource_lines

if TYPE_CHECKING:  # imported where they are used, never on an xdist worker
    from threading import Thread

    from .coverage_report import CoverageChild
    from .history import Attempt, HistoryStore
    from .results import (
        AttemptResult,
        BatchResult,
        BenchmarkResult,
        CoverageResult,
        Environment,
        PhaseResult,
        ResourcesResult,
        RunResult,
        TestResult,
    )

__all__ = ["INDEX_KEY", "IdleItem", "Orchestrator", "OutputLines", "Role", "run_idle"]

#: A test's index in the full collection (the core's name for it).
INDEX_KEY = pytest.StashKey[int]()
T = TypeVar("T")
Role = Literal["serial", "worker", "controller"]
SERIAL_WORKER = "main"


class _RerunPlugin(NamedTuple):
    """A plugin that reruns a failed test at once, in its own protocol."""

    name: str  #: its plugin name
    options: tuple[str, ...]  #: the options that turn its reruns on for every test
    ini: str | None  #: the ini setting that does, read when the first option is not given
    zero_unset: bool  #: whether the first option at 0 leaves the ini setting on
    what: str  #: what its reruns are called


#: A ``flaky`` marker turns each one's reruns on for one test. pytest-retry
#: reads ``--retries or retries``: 0 on the command line leaves the ini on.
_OTHER_RERUNS = (
    _RerunPlugin(
        "rerunfailures", ("reruns", "force_reruns"), "reruns", False, "pytest-rerunfailures' reruns"
    ),
    _RerunPlugin("pytest-retry", ("retries",), "retries", True, "pytest-retry's retries"),
    _RerunPlugin(
        "flaky", ("force_flaky",), None, False, "flaky's reruns (its @flaky decorator or marker)"
    ),
)
#: Their hooks that take a test's next item pass it on to pytest (see
#: ``next_item_followers``).
_RERUN_PLUGIN_NAMES = frozenset(plugin.name for plugin in _OTHER_RERUNS)
_OTHER_RERUNS_NOTE = {
    plugin.name: f"{plugin.what} are on too: it reruns a failure at once, before batchflow's "
    f"reruns see it; use one plugin's reruns, e.g. -p no:{plugin.name} with --batchflow-reruns"
    for plugin in _OTHER_RERUNS
}

#: The outcome of a failed attempt that is rerun (as pytest-rerunfailures calls it).
RERUN = "rerun"
#: The outcome of a quarantined test's failure: reported, but it fails nothing.
QUARANTINED = "quarantined"
#: Under xdist, attempts reach the history store in batches: after this many, or this long.
SAVE_EVERY_ATTEMPTS = 500
SAVE_EVERY_SECONDS = 2.0
#: The setup report's attribute (it travels from xdist workers with the report):
#: seconds spent setting up class, module and package fixtures in that setup.
SHARED_SETUP = "batchflow_shared_setup"
_SHARED_SCOPES = frozenset({"class", "module", "package"})
#: A benchmark's trend in the report: its medians in this many recent runs.
TREND_RUNS = 20
#: An idle item's failure report (a finalizer that raised as the run moved on)
#: names the test that ran before it: [index, path, line, domain]. That
#: test's teardown is where pytest reports it; the xdist worker must send it
#: under the idle item's node id, and the controller moves it back.
TEARDOWN_OF = "batchflow_teardown_of"
#: A report's attribute, and the worker's output key at its end: what a release
#: item's passing teardown printed or logged, for the test before it
#: (``[index, [[section title, text], ...]]``, see :func:`run_idle`).
TEARDOWN_OUTPUT = "batchflow_teardown_output"
#: A phase report's (start, stop) by the real clock, where pytest's times are
#: off it by more than a second: a test froze or moved the clock (freezegun,
#: time-machine, pytest-freezer) across the phase.
REAL_TIMES = "batchflow_real_times"
#: pytest 9's count of each test's failed subtests (see _forget_subtest_failures);
#: None on pytest 8, which has no subtests of its own.
_FAILED_SUBTESTS_KEY: Any
try:
    from _pytest.subtests import failed_subtests_key as _FAILED_SUBTESTS_KEY
except ImportError:
    _FAILED_SUBTESTS_KEY = None


class IdleItem(pytest.Item):
    """A no-op item a worker runs after a test, so that the test starts at once.

    A worker holds one under each node above its tests (the session, a
    directory, a package, a module, a class); the dispatcher sends the one
    under the lowest node that still has tests to send. The test's teardown
    keeps that node's fixtures and ends those below it, and the idle item
    tears down only what the next item sent does not need (:func:`run_idle`).
    It produces no report, and only pytest's own plugins set it up and tear
    it down. It carries the marks of the test it follows (see
    ``Orchestrator.pytest_runtest_protocol``).
    """

    def runtest(self) -> None:
        """Nothing: only its place between two tests matters."""

    def reportinfo(self) -> tuple[Path, int, str]:
        # A line: pytest's report of a skip that takes the item's location needs one.
        return self.path, 0, "batchflow idle"


def _failed(report: pytest.TestReport) -> bool:
    """A failure, including one batchflow turned into a rerun or a quarantined one."""
    return report.failed or report.outcome in (RERUN, QUARANTINED)


def _test_outcome(reports: Sequence[pytest.TestReport]) -> str:
    """One outcome word from the reports of one attempt of a test."""
    if all(report.outcome == "passed" for report in reports):  # the usual case
        call = next((report for report in reports if report.when == "call"), None)
        return "xpassed" if call is not None and hasattr(call, "wasxfail") else "passed"
    by_when = {str(report.when): report for report in reports}
    if any(_failed(report) for when, report in by_when.items() if when not in _PHASES):
        return "failed"  # a crashed worker's report: when="???"
    for when, word in (("setup", "error"), ("call", "failed"), ("teardown", "error")):
        failed = by_when.get(when)
        if failed is not None and _failed(failed):
            return word
    for when in ("setup", "call"):
        skipped = by_when.get(when)
        if skipped is not None and skipped.skipped:
            return "xfailed" if hasattr(skipped, "wasxfail") else "skipped"
    call = by_when.get("call")
    return "xpassed" if call is not None and hasattr(call, "wasxfail") else "passed"


_PHASES = ("setup", "call", "teardown")


def _clean(text: str) -> str:
    """A text every output can encode: lone surrogates (from undecodable bytes in an
    assertion message, say) become backslash escapes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: The line pytest-xdist puts before a worker's failure ("[gw0] linux -- Python 3.12.1 ...").
_WORKER_LINE = re.compile(r"\A\[[^\]\n]+\] [^\n]* -- Python [^\n]*(\n|\Z)")


def _without_worker_line(text: str) -> str:
    """A failure's text as a serial run gives it: without xdist's worker line."""
    # pytest strips a report's text (``longreprtext``): the worker's line stood first.
    rest, found = _WORKER_LINE.subn("", text, count=1)
    return rest.strip() if found else text


def _strict_xpass(report: pytest.TestReport) -> bool:
    """Whether the report is a strict xfail's pass, which pytest fails with
    ``[XPASS(strict)] reason`` (from pytest 8.0 to 9.2 at least)."""
    longrepr = report.longrepr
    return isinstance(longrepr, str) and longrepr.startswith("[XPASS(strict)]")


def _subtest_failure(report: pytest.TestReport) -> str:
    """A failed subtest's description and error, as the JSON result keeps it."""
    describe = getattr(report, "_sub_test_description", None)
    description = describe() if callable(describe) else ""
    return _clean(f"SUBFAILED{description}: {_without_worker_line(report.longreprtext)}")


#: The failed subtests of one attempt whose errors are kept (the rest are counted).
_SUBTESTS_KEPT = 10


def _with_subtests(longrepr: str | None, subtests: list[str]) -> str | None:
    """A failed test's error with its failed subtests' (pytest's own says only how many)."""
    if not subtests:
        return longrepr
    own = [] if not longrepr or longrepr.startswith("contains ") else [longrepr]
    return "\n\n".join(subtests + own)


def _skip_reason(longrepr: object) -> str:
    """A skip's reason: its report's longrepr is (path, line, "Skipped: REASON")."""
    text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _after(text: str, earlier: str) -> str:
    """``text`` without the earlier attempts' output it starts with."""
    return text[len(earlier) :] if earlier and text.startswith(earlier) else text


def _joined(kept: str, text: str, log: bool) -> str:
    """More captured output after ``kept``: log records on lines of their own,
    as pytest joins a test's log sections; stdout and stderr as they came."""
    return f"{kept}\n{text}" if log and kept else kept + text


#: The order of a phase's sections as pytest's capture and logging plugins add them.
_SECTION_RANK = {"stdout": 0, "stderr": 1, "log": 2}


def _section_rank(title: str) -> int:
    """``Captured stdout teardown`` -> 0; sections of other kinds come after."""
    words = title.split()
    return (
        _SECTION_RANK.get(words[1], len(_SECTION_RANK)) if len(words) == 3 else len(_SECTION_RANK)
    )


def _with_teardown_output(
    sections: list[tuple[str, str]], added: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """A teardown report's sections with more teardown output, as one teardown
    phase would have captured it all: a title once, its texts joined (log
    records on lines of their own, as pytest joins a phase's), a new title
    where pytest puts it (stdout, stderr, log)."""
    merged = list(sections)
    for title, text in added:
        at = next((i for i, (name, _) in enumerate(merged) if name == title), None)
        if at is not None:
            log = _section_rank(title) == _SECTION_RANK["log"]
            merged[at] = (title, _joined(merged[at][1], text, log))
            continue
        rank = _section_rank(title)
        at = len(merged)
        while (
            at
            and merged[at - 1][0].endswith(" teardown")
            and _section_rank(merged[at - 1][0]) > rank
        ):
            at -= 1
        merged.insert(at, (title, text))
    return merged


class _Phase(NamedTuple):
    """A phase report's values, as :class:`~pytest_batchflow.results.PhaseResult` takes them."""

    when: str
    outcome: str
    duration: float
    start: float
    stop: float
    longrepr: str | None
    shared_setup: float | None


def _phase_values(report: pytest.TestReport) -> _Phase:
    longrepr = None
    outcome = report.outcome
    if outcome != "passed":
        if _failed(report):
            longrepr = _clean(_without_worker_line(report.longreprtext))
        elif report.skipped and hasattr(report, "wasxfail"):
            longrepr = _clean(f"xfail: {report.wasxfail}" if report.wasxfail else "xfail")
        elif report.skipped and isinstance(report.longrepr, tuple):
            longrepr = _clean(_skip_reason(report.longrepr))
    start, stop, duration = _phase_times(report)
    if not (start and stop):
        # xdist's report of a crashed worker carries no times: it happened now.
        now = clock.wall()
        start, stop = start or now, stop or now
    when = str(report.when)
    return _Phase(
        when=when,
        outcome=outcome,
        duration=duration,
        start=start,
        stop=stop,
        longrepr=longrepr,
        shared_setup=getattr(report, SHARED_SETUP, None) if when == "setup" else None,
    )


def _phase_times(report: pytest.TestReport) -> tuple[float, float, float]:
    """A phase's start, stop and duration: pytest's, unless the test moved its clock.

    freezegun and time-machine freeze or move the clocks pytest times phases
    with; the real clock's times (taken in the process that ran the test) then.
    """
    real = getattr(report, REAL_TIMES, None)
    if real is None:
        return report.start, report.stop, report.duration
    start, stop = real
    return start, stop, max(stop - start, 0.0)


def _clock_moved(
    start: float, stop: float, duration: float, real_start: float, real_stop: float
) -> bool:
    """Whether pytest's times of a phase are off the real clock by more than a second.

    pytest takes a phase's stop just before this hook, so only a moved clock
    parts them; its start may follow the real one (the previous phase's
    report) by the time other plugins' hooks took, which is not compared, but
    it must agree with its stop and its duration (``perf_counter``, which
    time-machine leaves alone while it moves ``time.time``).
    """
    return (
        duration < 0
        or stop < start
        or abs(stop - real_stop) > 1.0
        or abs(stop - start - duration) > 1.0
        or duration > real_stop - real_start + 1.0
    )


def _phase(report: pytest.TestReport) -> PhaseResult:
    from .results import PhaseResult

    return PhaseResult(**_phase_values(report)._asdict())


class _Series(Sequence[ResourceSample]):
    """One process's memory over its tests, in arrival order: columns, not a tuple
    per test, so that keeping them allocates nothing the garbage collector counts
    (see :class:`_Finished`). Read as the samples :func:`find_leaks` takes, each
    made when it is read (its node id looked up then): only those of a process
    that grew are. :meth:`Orchestrator._note_resources` appends to the columns."""

    __slots__ = ("indexes", "nodeid_of", "rss_end", "rss_start", "stops")

    def __init__(self, nodeid_of: Callable[[int], str]) -> None:
        self.nodeid_of = nodeid_of
        self.indexes = array("q")
        self.rss_start = array("q")
        self.rss_end = array("q")
        self.stops = array("d")

    def __len__(self) -> int:
        return len(self.indexes)

    @overload
    def __getitem__(self, at: int) -> ResourceSample: ...
    @overload
    def __getitem__(self, at: slice) -> list[ResourceSample]: ...
    def __getitem__(self, at: int | slice) -> ResourceSample | list[ResourceSample]:
        if isinstance(at, slice):
            return [self[i] for i in range(len(self))[at]]
        nodeid = self.nodeid_of(self.indexes[at])
        return ResourceSample(nodeid, self.rss_start[at], self.rss_end[at])


#: Tests whose models :meth:`Orchestrator._build_results` makes at a time.
_BUILD_SLICE = 1000


class _Finished(NamedTuple):
    """A finished test's result as plain values; its model is built when it is read.

    A model per test, with its phases and lists, is over a dozen objects the
    garbage collector tracks, and each full collection during the run walked
    all of them. It keeps the :meth:`plain` form: plain tuples of plain values,
    which the collector stops tracking (it keeps tracking a tuple subclass).
    Few of them, too: each allocation that outlives the next collection brings
    the collections on sooner, so the phases' values go in one flat tuple.
    """

    nodeid: str
    file: str
    line: int | None
    batch: str
    outcome: str
    duration: float
    start: float
    stop: float
    worker: str
    dependencies: tuple[str, ...]
    phases: tuple[_Phase, ...]
    longrepr: str | None
    stdout: str
    stderr: str
    log: str
    attempts: tuple[AttemptResult, ...]
    resources: Figures | None = None
    memory_limit_exceeded: bool = False

    def plain(self) -> tuple[Any, ...]:
        values: list[Any] = list(self)
        values[_PHASES_AT] = tuple(chain.from_iterable(self.phases))
        if self.resources is not None:
            values[_RESOURCES_AT] = tuple(self.resources)
        return tuple(values)


_PHASES_AT = _Finished._fields.index("phases")
_PHASE_WIDTH = len(_Phase._fields)
_RESOURCES_AT = _Finished._fields.index("resources")
#: A test's outputs, as the result names them.
_OUTPUTS = ("stdout", "stderr", "log")
#: Where a :meth:`_Finished.plain` tuple holds each output.
_FINISHED_AT = {kind: _Finished._fields.index(kind) for kind in _OUTPUTS}


def _plain_values(plain: tuple[Any, ...]) -> dict[str, Any]:
    """A :meth:`_Finished.plain` tuple's fields as
    :class:`~pytest_batchflow.results.TestResult` validates them (its lists
    as tuples: pydantic takes those)."""
    values = dict(zip(_Finished._fields, plain, strict=True))
    flat = plain[_PHASES_AT]
    values["phases"] = [
        dict(zip(_Phase._fields, flat[at : at + _PHASE_WIDTH], strict=True))
        for at in range(0, len(flat), _PHASE_WIDTH)
    ]
    resources = plain[_RESOURCES_AT]
    if resources is not None:
        values["resources"] = dict(zip(Figures._fields, resources, strict=True))
    return values


#: The outcomes that make a phase the attempt's failing one.
_FAILING_PHASE = frozenset(("failed", RERUN, QUARANTINED))


def _attempt(result: _Finished | AttemptResult, nodeid: str, batch: str) -> Attempt:
    """The history's record of one attempt (a flaky test's last one passed)."""
    from .history import Attempt

    failing = setup = None
    for phase in result.phases:
        if failing is None and phase.outcome in _FAILING_PHASE:
            failing = phase
        if setup is None and phase.when == "setup":
            setup = phase
    measured = result.resources if isinstance(result, _Finished) else None
    return Attempt(
        nodeid=nodeid,
        batch=batch,
        outcome="passed" if result.outcome == "flaky" else result.outcome,
        phase=None if failing is None else failing.when,
        duration=result.duration,
        started=result.start,
        stopped=result.stop,
        worker=result.worker,
        longrepr=None if failing is None else failing.longrepr,
        shared_setup=None if setup is None else setup.shared_setup,
        memory=None if measured is None else measured.memory,
        peak_rss=None if measured is None else measured.peak_rss,
        cpu=None if measured is None else measured.cpu,
        rss_start=None if measured is None else measured.rss_start,
    )


@dataclass(frozen=True)
class _Pick:
    """What the command line picked besides ``-k``, ``-m`` and ``--deselect``
    (``Orchestrator._pick``): node ids, ``--lf``'s record when it narrows
    the run, ``--sw``'s test to start from."""

    node_ids: bool
    last_failed: frozenset[str] | None
    stepwise_from: str | None

    @property
    def narrowed(self) -> bool:
        """Whether a dependency may be missing because the pick left it out."""
        return self.node_ids or self.last_failed is not None or self.stepwise_from is not None

    def left_out(self, analysis: Analysis) -> Callable[[int], bool]:
        """Whether ``--lf`` or ``--sw`` deselected a collected test, by index
        (``-k``, ``-m`` and ``--deselect`` deselect the others)."""
        specs, last_failed = analysis.specs, self.last_failed
        start = None
        if self.stepwise_from is not None:  # looked up once, not for each test asked of
            start = next((s.index for s in specs if s.nodeid == self.stepwise_from), None)

        def left_out(index: int) -> bool:
            if last_failed is not None and specs[index].nodeid not in last_failed:
                return True
            return start is not None and index < start

        return left_out


def _with_items_put_in(
    collected: list[pytest.Item], items: list[pytest.Item], deselected: set[int]
) -> list[pytest.Item]:
    """pytest's collection with the items other plugins' ``pytest_collection_modifyitems``
    put in ``items`` (SQLAlchemy's plugin collects its test classes again, into
    new items): one with the node id of a collected item that left ``items``
    takes that item's place; the others come last, in their order. Then a
    collected item that left ``items`` unreported (not in ``deselected``, the
    ids of the items passed to ``pytest_deselected``) was put in again under
    another node id (``TestX`` as ``TestX_sqlite``): not a test of the run,
    and not deselected, as pytest counts it."""
    before = {id(item) for item in collected}
    added = [item for item in items if id(item) not in before]
    if not added:
        return collected
    after = {id(item) for item in items}
    replacements: dict[str, pytest.Item] = {}
    for item in added:
        replacements.setdefault(item.nodeid, item)
    placed: set[int] = set()
    merged = []
    for item in collected:
        if id(item) not in after:
            replacement = replacements.get(item.nodeid)
            if replacement is not None and id(replacement) not in placed:
                placed.add(id(replacement))
                item = replacement
            elif id(item) not in deselected:
                continue
        merged.append(item)
    merged.extend(item for item in added if id(item) not in placed)
    return merged


def _run_without_dependencies(plan: Plan, analysis: Analysis, pick: _Pick) -> list[str]:
    """The note for a run that picked tests: which run without dependencies it left out."""
    specs = analysis.specs
    left_out: dict[int, list[str]] = {}
    for dependent, target in analysis.unresolved.items():
        if dependent in plan.batch_of:
            left_out.setdefault(dependent, []).append(repr(target))
    kept, picked_out = set(analysis.kept), pick.left_out(analysis)
    for dependent, preds in plan.external.items():
        for pred in preds:
            if pred not in kept and picked_out(pred):
                left_out.setdefault(dependent, []).append(specs[pred].nodeid)
    if not left_out:
        return []
    shown = [
        f"{specs[dependent].nodeid} (needs {', '.join(targets)})"
        for dependent, targets in list(left_out.items())[:3]
    ]
    more = f" and {len(left_out) - 3} more" if len(left_out) > 3 else ""
    return [
        f"running {count_of(len(left_out), 'test')} without dependencies that the selection "
        f"(a node id, --lf or --sw) left out: {'; '.join(shown)}{more}"
    ]


class Orchestrator:
    def __init__(
        self, config: pytest.Config, settings: Settings, role: Role, workers: int = 1
    ) -> None:
        self.config = config
        self.settings = settings
        self.role = role
        self.started = clock.wall()
        #: The .batchflow folders the outputs go to that exist already: they
        #: are left as they are; one this run makes is ignored in git.
        self._folders_before = (
            set() if role == "worker" else {f for f in self._output_folders() if f.exists()}
        )
        self.notes: list[str] = []
        self.plan: Plan | None = None
        self.state: RunState | None = None
        self.analysis: Analysis | None = None
        self.workers = workers
        self.reports: dict[int, list[pytest.TestReport]] = {}
        #: Each running test's failed subtests: their descriptions and errors.
        self.failed_subtests: dict[int, list[str]] = {}
        #: Failed subtests beyond the first _SUBTESTS_KEPT of a running test, counted.
        self._more_subtests: dict[int, int] = {}
        #: The report that has just ended an attempt that is rerun (its teardown,
        #: or xdist's report of a crashed worker), for pytest's --junitxml to
        #: leave that attempt out (junit_reruns.py).
        self.rerun_ended: pytest.TestReport | None = None
        #: Each flaky test's passing call and teardown, for pytest's -rp/-rP/-rA
        #: lines (OutputLines._flaky_as_passed).
        self.flaky_passes: list[tuple[pytest.TestReport, pytest.TestReport]] = []
        #: Each running test's subtest reports: taken out of pytest's tally when
        #: their attempt is rerun (see _untally_subtests).
        self._subtest_reports: dict[int, list[pytest.TestReport]] = {}
        self.results: dict[int, TestResult] = {}
        #: Finished tests whose result model is not built yet (``_Finished.plain``).
        self._finished: dict[int, tuple[Any, ...]] = {}
        self.run_result: RunResult | None = None
        # Which test a report belongs to: the item being run (serially) or, on
        # the controller, the collection position xdist puts on every report.
        self.current: int | None = None
        #: The last test this process ran (the idle item after it reports for it).
        self._last_run: pytest.Item | None = None
        #: A worker's: what release items printed after the test that ran last,
        #: for the next report it sends (or its output at the end).
        self._idle_output: tuple[int, list[tuple[str, str]]] | None = None
        #: The controller's (and a serial run's): each worker's last teardown report.
        self._last_teardown: dict[str, tuple[int, int, pytest.TestReport]] = {}
        self.position_index: list[int] = []
        self.open_tests: dict[str, int] = {}
        self._history: HistoryStore | None = None
        self._history_opened = False
        #: The history the plan reads (durations, shared setups), and the thread reading it.
        self._history_read: tuple[dict[str, float], dict[str, float]] | None = None
        self._reading: Thread | None = None
        self.run_id: int | None = None
        self.rerun_policy = RerunPolicy(
            only=settings.reruns_only, never=settings.reruns_except, delay=settings.reruns_delay
        )
        #: Each rerun test's earlier (failed) attempts, oldest first.
        self.earlier: dict[int, list[AttemptResult]] = {}
        #: Tests whose earlier attempts are another plugin's reruns
        #: (pytest-rerunfailures): pytest's status of the last stays theirs.
        self.reran_by_others: set[int] = set()
        #: The ids of the items deselected during the collection (pytest_deselected).
        self._deselected: set[int] = set()
        #: The tests of each node id that more than one test has (the controller's).
        self._copies: dict[str, tuple[int, ...]] = {}
        #: Tests whose last attempt ended with no call report: another plugin ran
        #: the call, kept its report back and runs the test again at once, in the
        #: same protocol (the flaky package's reruns). See pytest_runtest_logfinish.
        self._withheld: set[int] = set()
        #: What such an attempt reported failing (a teardown error), for the test's result.
        self._withheld_errors: dict[int, list[pytest.TestReport]] = {}
        #: The output a test's last attempt that another plugin reran ended with,
        #: and where it ran: its next attempt's reports start with it, as the
        #: item's output sections pile up in that plugin's loop (batchflow's own
        #: reruns start afresh: _forget_earlier_output).
        self.output_before: dict[int, tuple[str, str, str, str]] = {}
        #: Tests whose current attempt failed and will be rerun.
        self.rerunning: set[int] = set()
        #: Tests waiting for a rerun, with the delay before it (seconds).
        self.rerun_due: dict[int, float] = {}
        #: Tests whose failure stood because the run stopped before their rerun.
        self.reruns_not_run: list[int] = []
        #: Reruns that could not run (the batch stopped): their failure stands.
        self.given_up: dict[int, str] = {}
        #: Tests whose running attempt had a failure that is not rerun (see _to_rerun).
        self._final_attempt: set[int] = set()
        #: Lines for tests that entered or left quarantine in this run.
        self.quarantine_news: list[str] = []
        #: Probed tests whose runs stopped early (the batch stopped), and why.
        self.probe_cut: dict[int, str] = {}
        #: The worker each crashed test was running on (its report does not say).
        self.crashed_on: dict[int, str] = {}
        #: Quarantined tests and why; those quarantined by their score.
        self.quarantined: dict[int, str] = {}
        self.auto_quarantined: set[int] = set()
        #: Shared fixture setup time in the current test's setup (serial, worker),
        #: and how deep in nested shared fixture setups we are.
        self._shared_setup = 0.0
        self._shared_depth = 0
        #: By the real clock (serial and worker): when the phase being run
        #: began (at the report before it), which phase that is (a subtest's
        #: report is one of the call phase's), and when the last report came.
        self._phase_mark: float | None = None
        self._phase_when: str | None = None
        self._last_report_at: float | None = None
        #: Measured setup cost of each parent's shared fixtures, from history.
        self.setup_costs: dict[str, float] = {}
        #: Each collected test's batch (every role; the plan has it only where it is made).
        self.batch_of: Mapping[int, str] = {}
        #: Where the measuring processes write coverage data, to combine at the end.
        self.coverage_rundir: Path | None = None
        #: Per worker: finished tests whose coverage data it had not saved yet.
        self.coverage_pending: dict[str, int] = {}
        self.coverage: CoverageResult | None = None
        self.coverage_lost: list[str] = []
        #: The child process writing coverage.py's HTML and XML reports, until it ends.
        self.coverage_child: CoverageChild | None = None
        #: Why coverage's child could not start (its folder could not be written).
        self.coverage_problem: str | None = None
        #: Each benchmark's measurement as its call report brought it, and the worker.
        self.bench_raw: dict[int, tuple[dict[str, Any], str]] = {}
        self.bench_options = BenchOptions(
            max_time=settings.bench_max_time,
            min_rounds=settings.bench_min_rounds,
            disable_gc=settings.bench_disable_gc,
        )
        #: The outputs written at the end of the run (what, where), for the summary.
        self.written: list[tuple[str, Path]] = []
        #: Where tests run: each test's memory and CPU, measured (see resources.py).
        self.meter = None
        if role != "controller" and not settings.no_resources:
            from .resources import ResourceMeter

            self.meter = ResourceMeter()
        #: Serial and controller: each worker process's tests in the order they
        #: ran (for leaks and the memory timeline), and the tests over the limit.
        #: Per (worker, pid), a :class:`_Series` of node id, rss at start and at
        #: end, and stop time: columns, nothing kept per test.
        self.resource_series: dict[tuple[str, int], _Series] = {}
        #: The figures of each test's current attempt, read from its teardown report.
        self._figures: dict[int, Figures] = {}
        #: Serially: the teardown report last made and its figures, read when that
        #: report is logged (packing them onto a report that never travels is
        #: waste). Logged later, not next: pytest-rerunfailures makes all three
        #: reports before it logs them, and logs no failed attempt's teardown.
        self._measured_here: tuple[pytest.TestReport, Figures] | None = None
        self.over_limit: dict[int, int] = {}
        #: Serial and controller: what pytest could not collect or skipped while
        #: collecting, (node id, "error" or "skipped") -> text, in its order.
        self.collection_problems: dict[tuple[str, str], str] = {}
        #: Tests that needed more than the whole memory budget (they run alone).
        self.alone: list[str] = []
        self.budget: Budget | None = None
        #: Each test's memory need from the history, read with the plan's figures.
        self._memory_read: dict[str, int] | None = None
        #: The memory available when the session started (the controller's thread reads it).
        self._available_memory: int | None = None
        #: Whether the run was summed up (see finish).
        self.run_finished = False
        self._finish_error: BaseException | None = None
        #: Attempts not yet in the history store, and when it was last written.
        self._unsaved: list[Attempt] = []
        #: Attempts staged in the history store and not yet moved (serial runs).
        self._staged = 0
        self._saved_at = clock.monotonic()
        option = config.option
        # Runs that execute no test bodies leave no results and no history.
        self.recording = role != "worker" and not (
            settings.plan_only
            or getattr(option, "help", False)
            or getattr(option, "markers", False)
            or option.collectonly
            or getattr(option, "setuponly", False)
            or getattr(option, "setupplan", False)
            or getattr(option, "showfixtures", False)
            or getattr(option, "show_fixtures_per_test", False)
        )

    # -- history ---------------------------------------------------------------

    @cached_property
    def commit(self) -> str | None:
        """The code under test (:mod:`~pytest_batchflow.gitstate`): batchflow's
        own files kept in git are no change to it."""
        settings = self.settings
        own = (settings.history_path, settings.json_path, settings.html_path, settings.junit_path)
        return commit_under_test(self.config.rootpath, [p for p in own if p is not None])

    @property
    def history(self) -> HistoryStore | None:
        """The store to read, opened on first use; None without history."""
        return self._open_history(create=False)

    def _open_history(self, create: bool) -> HistoryStore | None:
        """The store, opened on first use; None without history.

        A store that does not exist yet is created by the first write, as the
        first test's result starts the run in it: reads before (the plan's
        durations, the quarantine) find nothing in it anyway. A run refused
        after collecting (a dependency cycle, ``--strict-config``'s unknown
        key) so leaves no empty store, and no ``.batchflow`` folder, behind.
        """
        if not self._history_opened:
            path = self.settings.history_path
            if self.settings.no_history:
                self._history_opened = True
                return None
            if not path.exists() and not (create and self.recording):
                # Nothing to read yet; left unopened for a later write to create
                # (a plan or a collection never writes).
                return None
            self._history_opened = True
            from .history import HistoryError, HistoryStore

            try:
                self._history, warning = HistoryStore.open(path)
            except HistoryError as error:
                self.notes.append(f"running without history: {error}")
                return None
            if warning:
                self.notes.append(warning)
        return self._history

    def _history_writable(self) -> bool:
        """A store to record in, created if need be: open, and not read-only.

        A method, not a property: pytest 8.0 reads every attribute of a plugin
        when it registers (looking for fixtures), which would create the store.
        """
        history = self._open_history(create=True)
        return history is not None and not history.read_only

    def _use_history(self, action: Callable[[HistoryStore], T], fallback: T) -> T:
        """One read or write of the store; a failing store is dropped, never the run."""
        history = self.history
        if history is None:
            return fallback
        import sqlite3

        try:
            return action(history)
        except (sqlite3.Error, OSError) as error:
            self.notes.append(f"history store failed ({error}); the rest of this run is not stored")
            self._close_history()
            return fallback

    def _close_history(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None
        self._history_opened = True

    def close(self) -> None:
        """When pytest unconfigures: release the history store, however the session
        ended (usage errors too), and the run's results.

        pytest collects garbage as it unconfigures, and Python again at exit;
        each full collection walks every live object, and the results of a
        large run are tens of thousands of them. Nothing reads them any more.
        """
        self._join_reading()
        self._close_history()
        child, self.coverage_child = self.coverage_child, None
        if child is not None:  # the summing-up stopped before it waited: no child outlives pytest
            child.finish()
        if self.meter is not None:
            self.meter.close()
        self.results = {}
        self._finished = {}
        self.run_result = None
        self.analysis = None
        self.batch_of = {}

    # -- collection (serial and worker) -----------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        # Outermost wrapper: what other plugins deselect or reorder (-k, -m,
        # --lf, --ff) is in ``items`` by the time the plan is made.
        collected = list(items)
        result = yield
        try:
            # Paused: just after pytest's collection every item is still young,
            # and a full collection falls due; one triggered by the analysis's
            # own objects (some 60 ms in a worker of 5,000 tests) comes later
            # with pytest's own, once instead of twice.
            with collector_paused():
                collected = _with_items_put_in(collected, items, self._deselected)
                self._deselected = set()
                self._plan_collection(collected, items)
        except (PlanError, MarkerError) as error:
            if self.role != "worker":
                raise pytest.UsageError(f"batchflow: {error}") from None
            self._write_for_controller(error=str(error))
        return result

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        """Which items other plugins deselect (``-k``, ``-m``, ``--deselect``,
        their own), to tell them from items they put in again under another
        node id (:func:`_with_items_put_in`)."""
        self._deselected.update(map(id, items))

    def _plan_collection(self, collected: list[pytest.Item], items: list[pytest.Item]) -> None:
        analysis = analyse(collected, items, self.settings, self.config.rootpath)
        self.batch_of = analysis.batch_of
        for index, item in enumerate(collected):
            item.stash[INDEX_KEY] = index
        analysis.check(self.settings, narrowed=self._pick.narrowed)
        run = set(analysis.run)
        dropped = [item for item in items if item.stash[INDEX_KEY] not in run]
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
        by_index = {item.stash[INDEX_KEY]: item for item in items}
        if self.role == "worker":
            followers = next_item_followers(self.config)
            if followers:
                analysis = dataclasses.replace(analysis, follows_next_item=followers)
            self._write_for_controller(analysis=analysis)
            items[:] = [by_index[i] for i in analysis.run]
            return
        plan = self.make_plan(analysis)[0]
        items[:] = [by_index[i] for i in plan.order]

    @cached_property
    def _pick(self) -> _Pick:
        """What the command line picked besides ``-k``, ``-m`` and ``--deselect``.

        A picked test runs without the dependencies the pick left out, as
        without batchflow: ``file::test`` does not collect them, ``--lf`` and
        ``--sw`` deselect them (only when their records narrow the run). Read
        once: the cache's records do not change during the run.
        """
        option, cache = self.config.option, getattr(self.config, "cache", None)
        last_failed: frozenset[str] | None = None
        stepwise_from: str | None = None
        if cache is not None and getattr(option, "lf", False):
            recorded = cache.get("cache/lastfailed", {})
            last_failed = frozenset(recorded) if isinstance(recorded, dict) and recorded else None
        if cache is not None and getattr(option, "stepwise", False):
            recorded = cache.get("cache/stepwise", None)  # a dict from pytest 8.4, a node id before
            if isinstance(recorded, dict):
                recorded = recorded.get("last_failed")
            stepwise_from = recorded if isinstance(recorded, str) else None
        return _Pick(
            node_ids=any("::" in str(arg) for arg in self.config.args),
            last_failed=last_failed,
            stepwise_from=stepwise_from,
        )

    def _others_rerunning(self, plan: Plan, analysis: Analysis) -> list[str]:
        """The other plugins (of :data:`_OTHER_RERUNS`) whose reruns are on for a
        test batchflow may rerun too: their options, ini settings or ``flaky``
        marker, and batchflow's settings, batch lines or ``reruns`` marker. (The
        flaky package's ``@flaky`` decorator shows only as a test runs:
        pytest_runtest_logfinish.)"""
        option = self.config.option
        ours = {
            batch.name: bool(self.settings.reruns or batch.policy.reruns) for batch in plan.batches
        }
        found = []
        for plugin in _OTHER_RERUNS:
            if not self.config.pluginmanager.has_plugin(plugin.name):
                continue
            theirs = [getattr(option, name, None) for name in plugin.options]
            given = (theirs[0] or None) if plugin.zero_unset else theirs[0]
            if plugin.ini is not None and given is None:  # the ini setting, unless overridden
                with contextlib.suppress(TypeError, ValueError):
                    theirs.append(int(self.config.getini(plugin.ini)))
            theirs_on = any(n is True or (isinstance(n, int) and n > 0) for n in theirs)
            # A test both would rerun: not one marked for each plugin's reruns apiece.
            if any(
                (theirs_on or "flaky" in analysis.specs[index].marker_names)
                and (ours[batch] or "reruns" in analysis.specs[index].marker_names)
                for index, batch in plan.batch_of.items()
            ):
                found.append(plugin.name)
        return found

    def make_plan(self, analysis: Analysis) -> tuple[Plan, RunState]:
        """Plan the run from an analysis; history gives durations and earlier passes."""
        durations, shared = self._history_for_plan()
        if self.role == "controller":  # only the xdist scheduler uses them
            self.setup_costs = self._setup_costs(analysis, shared)
        plan = build_plan(
            analysis.specs,
            self.settings.policies,
            analysis.batch_of,
            analysis.predecessors,
            analysis.run,
            durations,
        )
        pick = self._pick
        state = RunState(
            plan,
            {spec.index: spec.nodeid for spec in analysis.specs},
            self._external_reasons(plan, analysis, pick),
            {} if pick.narrowed else analysis.unresolved,
        )
        # Set together, once nothing can fail any more: the later hooks use all three.
        self.analysis, self.plan, self.state = analysis, plan, state
        if self.role == "controller":
            indexes: dict[str, list[int]] = {}
            for spec in analysis.specs:
                indexes.setdefault(spec.nodeid, []).append(spec.index)
            self._copies = {n: tuple(i) for n, i in indexes.items() if len(i) > 1}
        # Here, where a serial run and an xdist controller both plan: the workers,
        # which run the marks, cannot print it.
        if analysis.uses_dependency_marks and self.config.pluginmanager.has_plugin("dependency"):
            self.notes.append(
                "pytest-dependency is active too; batchflow orders and skips its dependents "
                "itself, so disable that plugin with -p no:dependency (its markers keep working)"
            )
        for note in misspelt_variables(os.environ):
            self.add_note(note)
        for plugin in self._others_rerunning(plan, analysis):
            self.add_note(_OTHER_RERUNS_NOTE[plugin])
        self.notes.extend(misspelt_paths(analysis, self.settings, self.config.rootpath))
        if pick.narrowed:
            self.notes.extend(_run_without_dependencies(plan, analysis, pick))
        if self.role == "serial":
            # Before the first test: git started between tests would leave this
            # process's peak in the kernel's figure for ended children, which
            # then hides the smaller children of the tests after it (resources.py).
            _ = self.commit
        if self.settings.quarantine is not None and self.recording:
            self._load_quarantine(plan, analysis)
        return plan, state

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionstart(self) -> Generator[None, None, None]:
        # After the others: the header is printed (a note the thread adds shows
        # at the end, as it would have), and xdist has started the workers.
        result = yield
        if self.role == "controller" and not (
            self.settings.no_history and self.settings.no_resources
        ):
            import threading

            self._reading = threading.Thread(
                target=self._read_at_start, name="batchflow-history", daemon=True
            )
            self._reading.start()
        return result

    def _read_at_start(self) -> None:
        """On the xdist controller, in a thread started with the workers: the
        memory available (importing psutil takes some 15 ms), the history, and
        the commit it is kept under (``git rev-parse``, which the plan would wait for)."""
        if not self.settings.no_history:
            _ = self.commit
        if not self.settings.no_resources:
            from .resources import available_memory

            self._available_memory = available_memory()
        if not self.settings.no_history:
            self._read_history()

    def _read_history(self) -> None:
        """What the plan reads of the history; on the xdist controller, in a thread
        started with the workers: they start and collect while it reads (on a long
        history the queries take a good part of a second)."""
        if self.role != "controller":
            durations: dict[str, float] = self._use_history(lambda h: h.durations(), {})
            self._history_read = (durations, {})
            return
        # Only the xdist scheduler uses shared setups and memory needs: all
        # three in one query.
        from .history import PlanFigures

        figures = self._use_history(lambda h: h.plan_figures(), PlanFigures({}, {}, {}))
        if not self.settings.no_resources:
            self._memory_read = figures.memory_needs
        self._history_read = (figures.durations, figures.shared_setups)

    def _history_for_plan(self) -> tuple[dict[str, float], dict[str, float]]:
        """Each test's mean duration and its last shared fixture setup time."""
        self._join_reading()
        if self._history_read is None:
            self._read_history()
        assert self._history_read is not None
        return self._history_read

    def _join_reading(self) -> None:
        if self._reading is not None:
            self._reading.join()
            self._reading = None

    def _setup_costs(self, analysis: Analysis, shared: Mapping[str, float]) -> dict[str, float]:
        """Each parent's shared fixture setup cost: the most any of its tests last paid."""
        costs: dict[str, float] = {}
        for index in analysis.run:
            seconds = shared.get(analysis.specs[index].nodeid)
            if seconds is not None:
                parent = analysis.parents[index]
                costs[parent] = max(costs.get(parent, 0.0), seconds)
        return costs

    def _load_quarantine(self, plan: Plan, analysis: Analysis) -> None:
        """Who is quarantined: tests the files list, and tests whose score is too high."""
        quarantine = self.settings.quarantine
        assert quarantine is not None
        planned = {analysis.specs[index].nodeid: index for index in plan.order}
        for nodeid, path in quarantine.node_ids().items():
            if nodeid in planned:
                self.quarantined[planned[nodeid]] = f"listed in {path.name}"
        threshold = quarantine.auto
        if threshold is None:
            return
        nothing: tuple[dict[str, tuple[float, int]], dict[str, int]] = ({}, {})
        inside, released = self._use_history(lambda h: h.quarantine(), nothing)
        no_records: dict[str, list[RunRecord]] = {}
        window = self.settings.flaky_window
        scored = [nodeid for nodeid in planned if nodeid not in inside]
        records = self._use_history(lambda h: h.recent_run_records(scored, window), no_records)
        entering: dict[str, float] = {}
        for nodeid, index in planned.items():
            if nodeid in inside:
                score = inside[nodeid][0]
            else:
                since = released.get(nodeid, -1)
                recent = [r for r in records.get(nodeid, []) if r.run > since]
                score = flakiness(recent, window).score
                if score < threshold:
                    continue
                entering[nodeid] = score
                self.quarantine_news.append(
                    f"{nodeid} enters quarantine (flakiness score {score:.2f} >= {threshold:g})"
                )
            self.auto_quarantined.add(index)
            self.quarantined.setdefault(index, f"flakiness score {score:.2f}")
        if entering and self._history_writable():
            self._use_history(lambda h: h.enter_quarantine(entering, clock.wall()), None)

    def _settle_quarantine(self) -> None:
        """Count this run for automatically quarantined tests; release the clean ones."""
        run_id = self.run_id
        if not self.auto_quarantined or run_id is None:
            return
        ran = {i: self.results[i] for i in self.auto_quarantined if i in self.results}
        clean = [r.nodeid for r in ran.values() if r.outcome == "passed" and not r.attempts]
        dirty = [r.nodeid for r in ran.values() if r.nodeid not in clean]
        release = self.settings.quarantine_release
        none: list[str] = []
        leaving = self._use_history(
            lambda h: h.settle_quarantine(clean, dirty, release, run_id), none
        )
        for nodeid in leaving:
            self.quarantine_news.append(f"{nodeid} leaves quarantine after {release} clean runs")

    def _external_reasons(
        self, plan: Plan, analysis: Analysis, pick: _Pick
    ) -> dict[int, str | None]:
        """Why each dependency outside the plan is missing; None if it counts as met.

        A dependency in a batch left out by --batchflow-batches counts as met
        when the history has it passing at this same commit (an earlier CI stage);
        one that ``--lf`` or ``--sw`` left out (``pick``), always.
        """
        kept = set(analysis.kept)
        outside = {pred for preds in plan.external.values() for pred in preds}
        selected = self.settings.select
        # In a batch left out: an earlier stage's business, whatever -k or -m
        # say of it (they apply to this stage's tests).
        unselected = {
            pred
            for pred in outside
            if pred in kept or (selected is not None and analysis.batch_of[pred] not in selected)
        }
        passed: set[str] = set()
        # Asked only when needed: ``git rev-parse`` here would delay the first tests.
        commit = self.commit if unselected else None
        if commit is not None:
            nodeids = [analysis.specs[pred].nodeid for pred in unselected]
            passed = self._use_history(lambda h: h.passed_at_commit(commit, nodeids), set())
        # Without a commit no earlier stage's pass can be found, whatever ran before.
        no_commit = "no commit is known to look its pass up at (set BATCHFLOW_COMMIT)"
        picked_out = pick.left_out(analysis)
        reasons: dict[int, str | None] = {}
        for pred in outside:
            nodeid = analysis.specs[pred].nodeid
            batch = analysis.batch_of[pred]
            if pred not in unselected:
                reasons[pred] = None if picked_out(pred) else "was deselected"
            elif nodeid in passed:
                reasons[pred] = None
            elif self.settings.missing_dependency == "skip":
                why = "has not passed at this commit" if commit is not None else no_commit
                reasons[pred] = f"is in batch {batch!r}, not selected, and {why}"
            else:
                dependent = next(i for i, preds in plan.external.items() if pred in preds)
                head = (
                    f"{analysis.specs[dependent].nodeid} depends on {nodeid} in batch "
                    f"{batch!r}, which --batchflow-batches leaves out"
                )
                if commit is None:
                    raise PlanError(
                        f"{head}, and no commit is known (no BATCHFLOW_COMMIT, and `git rev-parse "
                        "HEAD` gave none) to look up its pass in an earlier stage: set "
                        "BATCHFLOW_COMMIT to the commit under "
                        f"test in every stage, or select {batch!r} too"
                    )
                edited = " (HEAD with uncommitted changes)" if "+" in commit else ""
                raise PlanError(
                    f"{head} and the history has not seen pass at commit {commit}{edited}; "
                    f"select {batch!r} too or run it first"
                )
        return reasons

    # -- the worker's side of the channel --------------------------------------

    def _write_for_controller(
        self, analysis: Analysis | None = None, error: str | None = None
    ) -> None:
        from .xdist_scheduler import write_worker_analysis

        write_worker_analysis(self.config, analysis, error)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.role == "worker":
            # Release items go after the collection the controller knows, one
            # under each node above a test (its parent, the module, ..., the
            # session), in the order the controller expects them.
            from .collection import release_nodes

            nodes = release_nodes(session.items)
            session.items.extend(
                IdleItem.from_parent(nodes[key], name=IDLE_NAME) for key in sorted(nodes)
            )
            return None
        if self.plan is None:
            return None
        if not self.settings.plan_only:
            if self.role == "serial" and self.reruns_possible:
                from .serial import SerialLoop

                SerialLoop(self, session).run()
                return True
            return None
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            errors = session.testsfailed
            raise session.Interrupted(f"{count_of(errors, 'error')} during collection")
        self.print_plan()
        return True

    @pytest.hookimpl(wrapper=True, specname="pytest_runtestloop")
    def pytest_runtestloop_reruns_cut(
        self, session: pytest.Session
    ) -> Generator[None, object, object]:
        """A run that ``-x`` or ``--maxfail`` stopped before some reruns: each
        such failure stands, and pytest hears of it as a failure (as of a rerun
        a batch's ``maxfail`` gave up), so that its line, its ``--junitxml``
        and the table agree.

        So too when xdist shut its workers down with reruns still due: its
        ``--max-worker-restart`` reached, the loop ends as if the run had
        finished, and the run exited 0 without the failures.

        Not on Ctrl-C, ``pytest.exit`` or another plugin's stop
        (``--stepwise`` would take the last failure heard of for the one to
        resume from): nothing more is reported then, and the batchflow section
        names those failures (_reruns_not_run_summary).
        """
        option = self.config.option
        stepwise = getattr(option, "stepwise", False) or getattr(option, "stepwise_skip", False)
        try:
            result = yield
        except BaseException as stopped:
            maxfail = option.maxfail
            # pytest stops with session.Failed or session.Interrupted, xdist's
            # controller with its own Interrupted: KeyboardInterrupts all but
            # Failed; Ctrl-C's is a plain one.
            if (
                self.role != "worker"
                and not stepwise
                and maxfail
                and session.testsfailed >= maxfail
                and isinstance(stopped, (KeyboardInterrupt, session.Failed))
                and type(stopped) is not KeyboardInterrupt
            ):
                # pytest's stop line keeps the count that stopped the run.
                shouldfail, shouldstop = session.shouldfail, session.shouldstop
                for index in self._reruns_not_run():
                    self.give_up_rerun(index, f"the run stopped ({stopped})")
                if shouldfail:
                    session.shouldfail = shouldfail
                if shouldstop:
                    session.shouldstop = shouldstop
            raise
        if self.role == "controller" and not stepwise:
            pending = self._reruns_not_run()
            if pending:
                dsession = self.config.pluginmanager.getplugin("dsession")
                why = getattr(dsession, "_summary_report", None) or "xdist shut its workers down"
                for index in pending:
                    self.give_up_rerun(index, f"the run stopped ({why})")
        return result

    def print_plan(self) -> None:
        assert self.plan is not None
        assert self.analysis is not None
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            specs = {spec.index: spec for spec in self.analysis.specs}
            # No store yet (a first run) is history with no durations in it.
            path = self.settings.history_path
            history = not self.settings.no_history and (
                self._history is not None or not path.exists()
            )
            for line in format_plan(self.plan, specs, workers=self.workers, history=history):
                terminal.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        if isinstance(item, IdleItem):
            previous = self._last_run
            output = run_idle(item, nextitem, previous)
            index = previous.stash.get(INDEX_KEY, None) if previous is not None else None
            if output and index is not None:
                # Release items in a row all follow the same test (a test's
                # report goes out in between otherwise, and takes the output).
                pending = self._idle_output[1] if self._idle_output is not None else []
                self._idle_output = (index, pending + output)
            return True
        if self._withheld:
            # pytest's own loop (no batchflow reruns, so no SerialLoop): the test
            # before kept its call back and was not run again. Before this test's
            # setup, which may depend on it.
            for index in list(self._withheld):
                self.settle_withheld(index)
        self._last_run = item
        self._last_report_at, self._phase_when = clock.wall(), None
        if _FAILED_SUBTESTS_KEY is not None:
            _forget_subtest_failures(item, _FAILED_SUBTESTS_KEY)
        _forget_earlier_output(item)
        if isinstance(nextitem, IdleItem):
            # The idle item finishes this test's teardown (its parents' finalizers):
            # the wrappers of its protocol, called before this hook, read this
            # test's marks there, as in a plain run (pytest's filterwarnings,
            # pytest-timeout's timeout).
            nextitem.own_markers = list(item.own_markers)
        self.current = item.stash.get(INDEX_KEY, None)
        if self.meter is not None:
            self._measured_here = None
            self.meter.start()
        return None

    # -- measuring shared fixture setups (serial and worker) ----------------------

    # An old-style wrapper: a fixture's error does not pass through it, so its
    # traceback is the fixture's, as without batchflow (a new-style wrapper's
    # frame showed there, or was all that showed of an error raised in pytest).
    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, None]:
        if fixturedef.scope not in _SHARED_SCOPES:
            yield
            return
        self._shared_depth += 1
        started = clock.monotonic()
        try:
            yield
        finally:
            self._shared_depth -= 1
            if not self._shared_depth:  # a fixture it requests is counted once, with it
                self._shared_setup += clock.monotonic() - started

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if self._idle_output is not None:  # a worker's: the first report after them
            setattr(report, TEARDOWN_OUTPUT, list(self._idle_output))
            self._idle_output = None
        if self.role != "controller":
            now = clock.wall()
            if call.when != self._phase_when:  # a new phase: it began at the last report
                self._phase_when, self._phase_mark = call.when, self._last_report_at or now
            began, self._last_report_at = self._phase_mark or now, now
            if _clock_moved(report.start, report.stop, report.duration, began, now):
                setattr(report, REAL_TIMES, (began, now))
        if call.when == "setup" and self.role != "controller":
            setattr(report, SHARED_SETUP, round(self._shared_setup, 6))
        elif call.when == "call" and SAMPLES_KEY in item.stash:
            setattr(report, SAMPLES_ATTRIBUTE, item.stash[SAMPLES_KEY])
            del item.stash[SAMPLES_KEY]
        elif call.when == "teardown" and self.meter is not None:
            measured = self.meter.stop()
            if measured is not None:
                if self.role == "serial":
                    self._measured_here = (report, measured)
                else:
                    setattr(report, RESOURCES_ATTRIBUTE, pack_figures(measured))
                if self.settings.test_memory_fail:
                    self._enforce_memory_limit(report, measured.memory)
        self._shared_setup = 0.0
        return report

    def _enforce_memory_limit(self, report: pytest.TestReport, memory: int) -> None:
        """With --batchflow-test-memory-fail, a test over the limit errors in its teardown."""
        limit = self.settings.test_memory_limit
        if limit is None or memory <= limit:
            return
        if report.passed:
            report.outcome = "failed"
            report.longrepr = (
                f"batchflow: the test needed {format_size(memory)} of memory, over the "
                f"limit of {format_size(limit)} (--batchflow-test-memory-limit)"
            )

    # -- the controller's side ------------------------------------------------------

    @property
    def _own_worker_name(self) -> str:
        return SERIAL_WORKER if self.role == "serial" else "controller"

    def _location(self, index: int) -> tuple[str, int | None, str]:
        """Where pytest would say the test is (see ``Analysis.locations``)."""
        assert self.analysis is not None
        spec = self.analysis.specs[index]
        return self.analysis.locations.get(index) or (spec.path, None, spec.name)

    def analysis_nodeid(self, index: int) -> str:
        assert self.analysis is not None
        return self.analysis.specs[index].nodeid

    def write_line(self, line: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.ensure_newline()  # a serial run's module line
            # xdist's progress leaves its line open ("[100%]"), which
            # ensure_newline does not see: the writer knows.
            writer = self.config.get_terminal_writer()
            if writer.width_of_current_line:
                writer.line()
            terminal.write_line(line)

    def emit_skip(self, index: int, reason: str) -> None:
        """Report a test the dispatcher will never send as skipped, as pytest would."""
        assert self.analysis is not None
        if index in self.earlier:
            self.give_up_rerun(index, reason)
            return
        nodeid = self.analysis.specs[index].nodeid
        location = self._location(index)
        hook = self.config.hook
        now = clock.wall()
        # The path absolute, as a skip marker's is: pytest's short summary shows it
        # relative to where pytest was started, not to the rootdir.
        path = os.path.normpath(self.config.rootpath / location[0])
        longrepr = (path, (location[1] or 0) + 1, f"Skipped: batchflow: {reason}")
        # The keywords make the short summary fold it as a skip marker's would be
        # in a serial run: by file, or by line where the test's function carries
        # marks (pytest's short summary tells these apart by "pytestmark").
        keywords: dict[str, Literal[1]] = {"skip": 1, self.analysis.specs[index].name: 1}
        if index in self.analysis.skips_by_line:
            keywords["pytestmark"] = 1
        self.open_tests[nodeid] = index
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        setup = pytest.TestReport(
            nodeid, location, keywords, "skipped", longrepr, "setup", start=now, stop=now
        )
        teardown = pytest.TestReport(
            nodeid, location, keywords, "passed", None, "teardown", start=now, stop=now
        )
        hook.pytest_runtest_logreport(report=setup)
        hook.pytest_runtest_logreport(report=teardown)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    # -- the serial run ----------------------------------------------------------

    def pytest_report_collectionfinish(self) -> list[str]:
        # A plan's own first line says the same (batchflow plan: ...).
        if self.plan is None or self.role != "serial" or self.settings.plan_only:
            return []
        return self.header_lines(self.plan)

    def header_lines(self, plan: Plan) -> list[str]:
        """The plan's one-line summary after collection; none with ``-q``, which
        also hides pytest's ``collected N items`` (``--co -q`` lists only node ids)."""
        if self.config.get_verbosity() < 0:
            return []
        return [format_header(plan)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.role != "serial" or self.state is None or INDEX_KEY not in item.stash:
            return
        index = item.stash[INDEX_KEY]
        now = clock.monotonic()
        reason = self.state.skip(index, now)
        if reason is None:
            self.state.test_started(index, now)
            return
        if self.config.pluginmanager.has_plugin("skipping"):
            # The skipping plugin (tryfirst too, registered earlier, so called
            # after us) then skips before any fixture, at the test's location.
            item.add_marker(pytest.mark.skip(reason=f"batchflow: {reason}"))
        else:
            # At the test's location, as the skipping plugin's skips (pytest's
            # fixtures module marks its own skips so too).
            raise pytest.skip.Exception(f"batchflow: {reason}", _use_item_location=True)

    # -- reports (serial and controller) -----------------------------------------

    def _report_index(self, report: pytest.TestReport) -> int | None:
        if self.role == "serial":
            return self.current
        position = getattr(report, "item_index", None)
        if isinstance(position, int) and 0 <= position < len(self.position_index):
            index = self.position_index[position]
            self.open_tests[report.nodeid] = index
            return index
        return self.open_tests.get(report.nodeid)

    def _teardown_of(self, report: pytest.TestReport, moved: object) -> int | None:
        """An idle item's failure, moved to the test whose teardown pytest reports it in."""
        assert self.analysis is not None
        specs = self.analysis.specs
        if not (isinstance(moved, list) and len(moved) == 4 and isinstance(moved[0], int)):
            return None
        index: int = moved[0]
        path, line, domain = moved[1:]
        if not 0 <= index < len(specs):
            return None
        report.nodeid = specs[index].nodeid
        report.location = (path, line, domain)
        return index

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self.role == "worker" or report.passed:
            return
        # Each problem once: a controller hears of the workers' failed and
        # skipped collectors, and xdist passes on each worker's copy of one
        # unless its text is a plain string (a conftest's import error, a bad
        # parametrize come once per worker).
        outcome = "error" if report.failed else "skipped"
        key = (report.nodeid, outcome)
        if key not in self.collection_problems:
            text = report.longreprtext if report.failed else _skip_reason(report.longrepr)
            self.collection_problems[key] = _clean(text)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # First, so that a failure to be rerun reaches pytest (the terminal,
        # the failure count, -x) as a rerun.
        if self.role == "worker":
            _drop_release_items(report)
            return
        if self.state is None:
            return
        output = getattr(report, TEARDOWN_OUTPUT, None)
        if output is not None:  # another test's: not left on this report for other plugins
            delattr(report, TEARDOWN_OUTPUT)
            self.add_teardown_output(str(getattr(report, "worker_id", SERIAL_WORKER)), output)
        moved = getattr(report, TEARDOWN_OF, None)
        if moved is not None:
            index = self._teardown_of(report, moved)
            # The attempt it follows is over: a finished test becomes an error;
            # one waiting for its rerun keeps its next attempt's reports apart.
            if index is not None and self._has_result(index):
                self._late_report(index, report)
            return
        index = self._report_index(report)
        if index is None:
            return
        if index in self._withheld:
            # The next attempt of a test another plugin runs again at once: the
            # attempt whose setup or call it kept back leaves no trace (the
            # plugin reports the last attempt's), but a failure it did report
            # (a teardown error) pytest counted: it stays, as a late error.
            self._withheld.discard(index)
            errors = [kept for kept in self.reports.pop(index, ()) if kept.failed]
            if errors:
                self._withheld_errors.setdefault(index, []).extend(errors)
        if report.when == "teardown":  # with the number of attempts kept before it
            attempt = len(self.earlier.get(index, ()))
            self._last_teardown[self._worker_of(index, report)] = (index, attempt, report)
        pending = getattr(report, "batchflow_cov_pending", None)
        if pending is not None:
            self.coverage_pending[str(getattr(report, "worker_id", SERIAL_WORKER))] = pending
        if hasattr(report, "context"):
            # Subtest reports (pytest's subtests fixture, unittest's subTest)
            # carry no times of their own: they decide the outcome only.
            self._subtest_reports.setdefault(index, []).append(report)
            if report.failed:
                texts = self.failed_subtests.setdefault(index, [])
                if len(texts) < _SUBTESTS_KEPT:
                    texts.append(_subtest_failure(report))
                else:  # counted, not kept: thousands of tracebacks would swell the outputs
                    self._more_subtests[index] = self._more_subtests.get(index, 0) + 1
                # Within the rerun budget the attempt is rerun: its failed
                # subtest is an "R" too, not a failure of the run.
                if self._to_rerun(index, report.longreprtext):
                    report.outcome = RERUN  # type: ignore[assignment]
                elif index in self.quarantined:
                    report.outcome = QUARANTINED  # type: ignore[assignment]
            return
        if self._has_result(index):
            self._late_report(index, report)
            return
        measured = getattr(report, SAMPLES_ATTRIBUTE, None)
        if measured is not None:
            self.bench_raw[index] = (measured, str(getattr(report, "worker_id", SERIAL_WORKER)))
        if self.role == "serial":
            made = self._measured_here
            used = made[1] if made is not None and made[0] is report else None
        else:
            used = unpack_figures(getattr(report, RESOURCES_ATTRIBUTE, None))
        if used is not None:
            self._figures[index] = used
            self._note_resources(index, report, used)
        # A call whose subtests failed passes here; pytest fails it only later,
        # in pytest_report_teststatus ("contains 1 failed subtest").
        # (A call that skips after a failed subtest of an attempt to be rerun is
        # a rerun too: the attempt is over.)
        failed = report.failed or (
            report.when == "call"
            and index in self.failed_subtests
            and (report.passed or index in self.rerunning)
        )
        if failed and _strict_xpass(report) and index not in self.rerunning:
            # It failed by passing, as xpasses are never rerun: the attempt stands.
            self._final_attempt.add(index)
        if failed and self._to_rerun(index, report.longreprtext or "contains failed subtests"):
            report.outcome = RERUN  # type: ignore[assignment]
        elif failed and index in self.quarantined:
            report.outcome = QUARANTINED  # type: ignore[assignment]
        elif (
            index in self.earlier
            and index not in self.reran_by_others
            and self.settings.probe is None
            and report.passed
            and not failed
        ):
            # Passed after a failure: flaky, once its teardown passes too. The
            # call says nothing (one status a test), its teardown says FLAKY.
            if report.when == "call":
                report.batchflow_flaky_call = True  # type: ignore[attr-defined]
            elif report.when == "teardown":
                calls = [
                    earlier
                    for earlier in self.reports.get(index, ())
                    if getattr(earlier, "batchflow_flaky_call", False)
                ]
                if calls:
                    report.batchflow_flaky = True  # type: ignore[attr-defined]
                    self.flaky_passes.append((calls[-1], report))
        self.reports.setdefault(index, []).append(report)
        if index in self.rerunning and report.when not in ("setup", "call"):
            self.rerun_ended = report
        if report.when not in _PHASES:  # a crashed worker: no logfinish follows
            self.open_tests.pop(report.nodeid, None)
            self._finalize(index)

    def _note_resources(self, index: int, report: pytest.TestReport, used: Figures) -> None:
        """A test's resources as they arrive: the worker's memory over time, the limit."""
        key = (str(getattr(report, "worker_id", SERIAL_WORKER)), used.pid)
        series = self.resource_series.get(key)
        if series is None:
            series = self.resource_series[key] = _Series(self.analysis_nodeid)
        # Written out (once a test): the index, not the node id (a property of
        # the report), and _phase_times's stop without its call.
        series.indexes.append(index)
        series.rss_start.append(used.rss_start)
        series.rss_end.append(used.rss_end)
        real = getattr(report, REAL_TIMES, None)
        series.stops.append(report.stop if real is None else real[1])
        limit = self.settings.test_memory_limit
        if limit is not None and used.memory > limit:
            self.over_limit[index] = used.memory

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.role == "worker":
            return
        index = self.current if self.role == "serial" else self.open_tests.pop(nodeid, None)
        if self.role == "controller" and nodeid in self._copies:
            index = self._copy_that_ended(nodeid, index)
        if index is None or self._has_result(index):
            return
        if self._call_withheld(index):
            # Not the test's end: the plugin that kept the call's report back
            # runs it again now, and that attempt says (settle_withheld if not).
            self._withheld.add(index)
            if self.rerun_budget(index):
                self.add_note(_OTHER_RERUNS_NOTE["flaky"])
            return
        self._finalize(index)

    def _copy_that_ended(self, nodeid: str, index: int | None) -> int | None:
        """Of the tests sharing a node id (``--keep-duplicates``, a plugin's copy
        of a test), the one whose attempt just ended: its teardown came and it
        has no result. ``open_tests`` holds one index a node id, the last one a
        report named: another copy's, when two run at once on two workers."""
        for candidate in self._copies[nodeid]:
            reports = self.reports.get(candidate)
            if reports and reports[-1].when == "teardown" and not self._has_result(candidate):
                return candidate
        return index

    def _call_withheld(self, index: int) -> bool:
        """Whether the test's attempt logged no call though its setup did not fail
        or skip: another plugin's loop ran the call and will run the test again
        (the flaky package logs only the last attempt's call). The flaky package
        keeps a setup's report back too: a failed one it reruns, and a passed one
        while the test needs more passes (``min_passes``). ``--setup-only`` runs
        no call."""
        reports = self.reports.get(index, ())
        # The call's report first: every usual attempt has one, and stops here.
        return (
            not any(report.when == "call" for report in reports)
            and bool(reports)
            and all(report.passed for report in reports if report.when == "setup")
            and not getattr(self.config.option, "setuponly", False)
        )

    def settle_withheld(self, index: int) -> None:
        """After the test's whole protocol: an attempt whose call another plugin
        kept back, with no attempt after it, is the test's last after all."""
        if index in self._withheld:
            self._withheld.discard(index)
            if not self._has_result(index):
                self._finalize(index)

    # -- reruns ----------------------------------------------------------------------

    def rerun_budget(self, index: int) -> int:
        assert self.plan is not None
        assert self.analysis is not None
        policy = self.plan.batch(self.plan.batch_of[index]).policy
        return budget_for(
            self.analysis.reruns.get(index),
            policy.reruns,
            self.settings.reruns,
            benchmark=policy.kind == "benchmark",
        )

    @property
    def reruns_possible(self) -> bool:
        """Whether any test may run more than once (a rerun budget, or a probe)."""
        assert self.plan is not None
        if self.settings.probe is not None:
            return any(self.probe_runs(index) > 1 for index in self.plan.order)
        return any(self.rerun_budget(index) for index in self.plan.order)

    def probe_runs(self, index: int) -> int:
        """How many times a probe runs the test: all but benchmark batches' tests."""
        assert self.plan is not None
        if self.settings.probe is None:
            return 1
        kind = self.plan.batch(self.plan.batch_of[index]).policy.kind
        return 1 if kind == "benchmark" else self.settings.probe

    def standing_outcome(self, index: int) -> str:
        """The outcome of a test whose next attempt may never run: the failure stands.

        A probed test's runs so far decide (they need not have failed).
        """
        if self.settings.probe is None:
            earlier = self.earlier.get(index)
            return earlier[-1].outcome if earlier else "failed"
        return overall_outcome([attempt.outcome for attempt in self.earlier.get(index, [])])

    def _to_rerun(self, index: int, error: str) -> bool:
        """Whether this failure of the test's current attempt means a rerun.

        Decided at the attempt's first failing report; its later failing
        reports (a teardown error after a failed call) belong to the same rerun.
        """
        if index in self.rerunning:
            return True
        if index in self.given_up or self.settings.probe is not None:
            return False
        if index in self._final_attempt:  # an earlier failure of it was not to be rerun
            return False
        earlier = len(self.earlier.get(index, ()))
        if earlier < self.rerun_budget(index) and self.rerun_policy.allows(error):
            self.rerunning.add(index)
            return True
        # This attempt stands: a later failure in it (a second failed subtest,
        # a teardown error) does not make it a rerun after all.
        self._final_attempt.add(index)
        return False

    def rerun_after_crash(self, index: int, worker: str) -> float | None:
        """On the controller: the crashed worker's test, rerun in how many seconds, or None."""
        if self.settings.probe is not None:
            # A probe runs on after a crash: it counts as one failed run.
            return 0.0 if len(self.earlier.get(index, ())) + 1 < self.probe_runs(index) else None
        nodeid = self.analysis_nodeid(index)
        if not self._to_rerun(index, f"worker {worker!r} crashed while running {nodeid!r}"):
            return None
        return self.rerun_policy.delay_before(len(self.earlier.get(index, ())) + 1)

    def take_rerun(self, index: int) -> float | None:
        """On the controller: whether the test just finished is to be rerun, and its delay."""
        return self.rerun_due.pop(index, None)

    def _finalize(self, index: int) -> None:
        assert self.state is not None
        assert self.plan is not None
        reports = self.reports.pop(index, [])
        self._final_attempt.discard(index)
        if not reports:
            return
        subtests = self.failed_subtests.pop(index, None)
        more = self._more_subtests.pop(index, 0)
        if subtests is not None and more:
            subtests = [*subtests, f"... and {more} more failed subtests"]
        subtest_failed = subtests is not None
        subtest_reports = self._subtest_reports.pop(index, None)
        if index in self.rerunning:
            self.rerunning.discard(index)
            # batchflow's rerun runs the item afresh (_forget_earlier_output):
            # another plugin's earlier attempts are no prefix of its output.
            self.output_before.pop(index, None)
            if subtest_reports:
                self._untally_subtests(subtest_reports)
            self._unfile_passed_phases(reports)
            self._rerun_attempt(index, reports, subtests)
            return
        if any(report.outcome == RERUN for report in reports):
            # Another plugin's rerun, at once and in this process: pytest-rerunfailures
            # logs the failed attempt as "rerun", then runs the test again. An
            # earlier attempt, as batchflow's own reruns keep theirs; pytest's
            # status of the last attempt stays the plugin's ("passed", not flaky).
            self.reran_by_others.add(index)
            self._keep_attempt(index, reports, _test_outcome(reports))
            last = reports[-1]
            where = self._worker_of(index, last)
            self.output_before[index] = (where, last.capstdout, last.capstderr, last.caplog)
            return
        outcome = _test_outcome(reports)
        if subtest_failed and outcome in ("passed", "xpassed"):
            outcome = "failed"
        earlier = self.earlier.get(index, [])
        if self.settings.probe is not None:
            if outcome != "skipped" and len(earlier) + 1 < self.probe_runs(index):
                self._keep_attempt(index, reports, outcome)
                if all(str(report.when) in _PHASES for report in reports):
                    self.rerun_due[index] = 0.0  # a crashed worker's test is requeued already
                return
            verdict = overall_outcome([attempt.outcome for attempt in earlier] + [outcome])
        else:
            verdict = final_outcome([attempt.outcome for attempt in earlier], outcome)
        self.state.test_finished(index, "passed" if verdict == "flaky" else verdict)
        verdict = self._quarantined(index, verdict)
        result = self._test_result(index, verdict, reports)
        if subtests and verdict in ("failed", QUARANTINED):
            result = result._replace(longrepr=_with_subtests(result.longrepr, subtests))
        if result.longrepr is None and verdict in ("failed", "error", QUARANTINED):
            # A probed test whose last run passed: the failure of an earlier run.
            failure = next((a.longrepr for a in earlier if a.longrepr), None)
            result = result._replace(longrepr=failure)
        self._finished[index] = result.plain()
        if self.recording and index not in self.given_up:
            self._record(result, result.nodeid, result.batch)
        for error in self._withheld_errors.pop(index, ()):
            self._late_report(index, error)

    def _has_result(self, index: int) -> bool:
        return index in self._finished or index in self.results

    def _build_results(self) -> None:
        """The result models of every finished test, from here on in ``self.results``.

        With the garbage collector paused: every model built lives to the end
        of the run, and the collections their allocations trigger would walk
        the whole heap for nothing (half the time of building them).
        """
        from .results import validate_tests

        finished, self._finished = list(self._finished.items()), {}
        with collector_paused():
            # In slices, each test's plain values let go as its model is made: the
            # values of every test and their models at once were the run's peak of
            # memory (some 2 KB a test more).
            while finished:
                piece = finished[:_BUILD_SLICE]
                del finished[:_BUILD_SLICE]
                built = validate_tests([_plain_values(plain) for _, plain in piece])
                self.results.update(zip((index for index, _ in piece), built, strict=True))

    def _untally_subtests(self, subtest_reports: list[pytest.TestReport]) -> None:
        """Take the subtests of an attempt that is rerun out of pytest's tally.

        The rerun runs them all again, and the attempt counts as one rerun (its
        call's "R"), as pytest-rerunfailures counts: without this, ``-q`` or
        ``-v`` said "9 subtests passed, 6 rerun" of three attempts of three
        subtests. The terminal shows each as it came; only the counts change.
        """
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        gone = {id(report) for report in subtest_reports}
        # Neither the passed tests nor the passed phases ("") hold subtest
        # reports, and they are the long lists.
        for category in [key for key in terminal.stats if key not in ("", "passed")]:
            kept = [report for report in terminal.stats[category] if id(report) not in gone]
            if kept:
                terminal.stats[category] = kept
            else:  # pytest's colour and summaries look at which categories there are
                del terminal.stats[category]

    def _unfile_passed_phases(self, reports: list[pytest.TestReport]) -> None:
        """Take the passed setup and teardown of an attempt that is rerun out of
        the terminal's uncounted reports.

        pytest shows a test's teardown output under FAILURES and PASSES from
        the passed teardowns it filed there: the test's final failure showed
        the teardown output of every attempt.
        """
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        uncounted = terminal.stats.get("") if terminal is not None else None
        passed = {id(r) for r in reports if r.passed and r.when != "call"}
        if not uncounted or not passed:
            return
        # The attempt's reports are among the last filed: look from the end.
        for at in range(len(uncounted) - 1, -1, -1):
            if id(uncounted[at]) in passed:
                passed.discard(id(uncounted[at]))
                del uncounted[at]
                if not passed:
                    break

    def _rerun_attempt(
        self, index: int, reports: list[pytest.TestReport], subtests: list[str] | None = None
    ) -> None:
        """Keep a failed attempt; the test is due for a rerun (a crashed one is already)."""
        # A failed subtest failed the attempt, whatever its call did after it.
        outcome = "failed" if subtests else _test_outcome(reports)
        attempts = self._keep_attempt(index, reports, outcome, subtests)
        if all(str(report.when) in _PHASES for report in reports):
            self.rerun_due[index] = self.rerun_policy.delay_before(len(attempts))

    def _keep_attempt(
        self,
        index: int,
        reports: list[pytest.TestReport],
        outcome: str,
        subtests: list[str] | None = None,
    ) -> list[AttemptResult]:
        """Keep an attempt that is not the test's last, in the results and the history."""
        from .results import AttemptResult

        assert self.plan is not None
        phases = [_phase(report) for report in reports]
        failing = next((p for p in phases if p.outcome in ("failed", RERUN, QUARANTINED)), None)
        attempt = AttemptResult(
            outcome=outcome,
            worker=self._worker_of(index, reports[-1]),
            duration=sum(p.duration for p in phases),
            start=min(p.start for p in phases),
            stop=max(p.stop for p in phases),
            phases=phases,
            longrepr=_with_subtests(failing.longrepr if failing else None, subtests or []),
        )
        attempts = self.earlier.setdefault(index, [])
        attempts.append(attempt)
        self._figures.pop(index, None)  # this attempt's, not the next one's
        if self.recording:
            self._record(attempt, self.analysis_nodeid(index), self.plan.batch_of[index])
        return attempts

    def _own_output(self, index: int, last: pytest.TestReport) -> tuple[str, str, str]:
        """An attempt's stdout, stderr and log, from its last report.

        pytest gives each report the output of all phases so far and, when
        another plugin reran the test in the same process (pytest-rerunfailures),
        of the item's earlier runs: those are left out. batchflow's own reruns
        start afresh (_forget_earlier_output).
        """
        kept = self.output_before.get(index)
        if kept is not None and kept[0] == self._worker_of(index, last):
            before = kept[1:]
        else:
            before = ("", "", "")
        return (
            _clean(_after(last.capstdout, before[0])),
            _clean(_after(last.capstderr, before[1])),
            _clean(_after(last.caplog, before[2])),
        )

    def _worker_of(self, index: int, report: pytest.TestReport) -> str:
        """Where the reports come from; the controller for tests it skipped itself."""
        worker = getattr(report, "worker_id", None)
        if worker is None and str(report.when) not in _PHASES:
            worker = self.crashed_on.get(index)
        return str(worker or self._own_worker_name)

    def give_up_rerun(self, index: int, reason: str) -> None:
        """A rerun the rules no longer allow (maxfail, timeout): its last failure stands.

        pytest hears of it as a failure of the test, so that it counts as one.
        """
        assert self.analysis is not None
        attempts = self.earlier[index]
        self.rerun_due.pop(index, None)
        if self.settings.probe is not None:
            self._cut_probe(index, reason)
            return
        self.given_up[index] = reason
        nodeid = self.analysis.specs[index].nodeid
        location = self._location(index)
        now = clock.wall()
        # The first line is what pytest's short summary shows.
        longrepr = (
            f"batchflow: the rerun of this failure did not run: {reason}\n\n"
            f"{attempts[-1].longrepr or ''}"
        )
        hook = self.config.hook
        self.open_tests[nodeid] = index
        self.current = index
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        # An error (setup or teardown) stays an error, a failure a failure.
        when: Literal["setup", "call"] = "setup" if attempts[-1].outcome == "error" else "call"
        report = pytest.TestReport(
            nodeid, location, {}, "failed", longrepr, when, start=now, stop=now
        )
        if self.role == "controller":
            # The result is of the worker its last attempt ran on, not the controller's.
            report.worker_id = attempts[-1].worker  # type: ignore[attr-defined]
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    def _cut_probe(self, index: int, reason: str) -> None:
        """A probed test's next run may not run (its batch stopped): its runs so far stand."""
        self.probe_cut[index] = reason
        self._attempts_stand(index)

    def _attempts_stand(self, index: int) -> None:
        """The test's attempts so far are all it gets: the last one is its result.

        pytest heard of each attempt as it ended; only the result is left to make.
        """
        from .results import TestResult

        assert self.plan is not None
        assert self.state is not None
        assert self.analysis is not None
        *earlier, last = self.earlier.pop(index)
        if self.settings.probe is not None:
            outcome = overall_outcome([attempt.outcome for attempt in [*earlier, last]])
        else:
            outcome = final_outcome([attempt.outcome for attempt in earlier], last.outcome)
        self.state.test_finished(index, outcome)
        specs = self.analysis.specs
        self.results[index] = TestResult(
            nodeid=specs[index].nodeid,
            batch=self.plan.batch_of[index],
            outcome=self._quarantined(index, outcome),
            duration=last.duration,
            start=last.start,
            stop=last.stop,
            worker=last.worker,
            dependencies=[specs[p].nodeid for p in self.plan.predecessors.get(index, ())],
            phases=last.phases,
            longrepr=next((a.longrepr for a in [*earlier, last] if a.longrepr), None),
            attempts=earlier,
        )

    def _quarantined(self, index: int, outcome: str) -> str:
        """A quarantined test's failure is reported as quarantined."""
        if outcome in ("failed", "error") and index in self.quarantined:
            return QUARANTINED
        return outcome

    def _record(self, result: _Finished | AttemptResult, nodeid: str, batch: str) -> None:
        """Queue an attempt for the history store; nothing is made without one."""
        if not self.recording:
            return
        if self.run_id is None:
            if not self._history_writable():
                return
            self.run_id = self._use_history(
                lambda h: h.start_run(
                    self.started,
                    self.commit,
                    socket.gethostname(),
                    platform.python_version(),
                    shlex.join(map(str, self.config.invocation_params.args)),
                ),
                None,
            )
        run_id = self.run_id
        if run_id is not None:
            attempt = _attempt(result, nodeid, batch)
            if self.role == "serial":
                # A serial run executes tests in this process, which a test may
                # kill: each attempt is stored at once, staged (one page a commit).
                self._use_history(lambda h: h.stage_attempts(run_id, self.commit, [attempt]), None)
                self._staged += 1
                due = self._staged >= SAVE_EVERY_ATTEMPTS
            else:  # a controller only receives reports
                self._unsaved.append(attempt)
                due = len(self._unsaved) >= SAVE_EVERY_ATTEMPTS
            if due or clock.monotonic() - self._saved_at >= SAVE_EVERY_SECONDS:
                self._save_attempts()

    def _save_attempts(self) -> None:
        """Bring the attempts so far where the history's readers look: move the
        staged ones, write those gathered in memory, in one transaction each."""
        run_id, attempts, staged = self.run_id, self._unsaved, self._staged
        self._unsaved, self._staged, self._saved_at = [], 0, clock.monotonic()
        if run_id is None:
            return
        if staged:
            self._use_history(lambda h: h.fold_staged(), 0)
        if attempts:
            self._use_history(lambda h: h.record_attempts(run_id, self.commit, attempts), None)

    def _late_report(self, index: int, report: pytest.TestReport) -> None:
        """A teardown error reported after the test finished (fixtures torn down late)."""
        if not report.failed:
            return
        self._build_results()
        result = self.results[index]
        outcome = result.outcome if result.outcome in ("failed", "error") else "error"
        update: dict[str, Any] = {
            "outcome": outcome,
            "phases": [*result.phases, _phase(report)],
            "longrepr": result.longrepr or report.longreprtext,
        }
        # What the finalizers printed as they failed, after the test's own output.
        late = {"stdout": report.capstdout, "stderr": report.capstderr, "log": report.caplog}
        for kind, text in late.items():
            if text:
                update[kind] = _joined(getattr(result, kind), _clean(text), kind == "log")
        self.results[index] = result.model_copy(update=update)
        run_id = self.run_id
        if run_id is not None:
            self._save_attempts()  # under xdist the attempt may still wait in memory
            nodeid, text = result.nodeid, report.longreprtext
            self._use_history(lambda h: h.record_late_error(run_id, nodeid, outcome, text), None)

    def _test_result(self, index: int, outcome: str, reports: list[pytest.TestReport]) -> _Finished:
        assert self.plan is not None
        assert self.analysis is not None
        specs = self.analysis.specs
        phases = tuple(map(_phase_values, reports))
        decisive = None
        if outcome != "passed":
            decisive = next(
                (p for p in phases if p.outcome in ("failed", QUARANTINED)), None
            ) or next((p for p in phases if p.outcome == "skipped"), None)
        path, lineno, _ = reports[0].location
        stdout, stderr, log = self._own_output(index, reports[-1])
        return _Finished(
            nodeid=specs[index].nodeid,
            file=path,
            line=None if lineno is None else lineno + 1,
            batch=self.plan.batch_of[index],
            outcome=outcome,
            duration=sum([p.duration for p in phases]),
            start=min([p.start for p in phases]),
            stop=max([p.stop for p in phases]),
            # Tests the controller skipped itself never reached a worker.
            worker=self._worker_of(index, reports[-1]),
            dependencies=tuple(specs[p].nodeid for p in self.plan.predecessors.get(index, ())),
            phases=phases,
            longrepr=decisive.longrepr if decisive else None,
            stdout=stdout,
            stderr=stderr,
            log=log,
            attempts=tuple(self.earlier.get(index, ())),
            resources=self._figures.pop(index, None),
            memory_limit_exceeded=index in self.over_limit,
        )

    # -- the end of the run ------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if self._idle_output is not None and workeroutput is not None:
            # The last release item ran after the last report: with the worker's end.
            workeroutput[TEARDOWN_OUTPUT] = list(self._idle_output)
            self._idle_output = None
        self.finish(session, exitstatus)

    def add_teardown_output(self, worker: str, moved: object) -> None:
        """What a release item printed or logged, added to the teardown of the
        test before it, as if that test's teardown had printed it: pytest's
        ``-rP`` and ``-rA`` show it there, and the JSON result has it when that
        attempt is the test's result.

        ``moved`` is ``[index, [[section title, text], ...]]``
        (:data:`TEARDOWN_OUTPUT`). Plugins that write a test's output when its
        teardown is reported (pytest's ``--junitxml``) miss it.
        """
        if not (isinstance(moved, list) and len(moved) == 2 and isinstance(moved[0], int)):
            return
        index, sections = moved
        last = self._last_teardown.get(worker)
        if last is None or last[0] != index or not isinstance(sections, list):
            return
        _, attempt, report = last
        added = [
            (str(section[0]), str(section[1]))
            for section in sections
            if isinstance(section, list | tuple) and len(section) == 2
        ]
        report.sections[:] = _with_teardown_output(report.sections, added)
        if len(self.earlier.get(index, ())) != attempt:
            return  # a later attempt is the result (a rerun that ended elsewhere first)
        output = dict(zip(_OUTPUTS, self._own_output(index, report), strict=True))
        plain = self._finished.get(index)
        if plain is not None:
            values = list(plain)
            for kind, text in output.items():
                values[_FINISHED_AT[kind]] = text
            self._finished[index] = tuple(values)
        elif index in self.results:
            self.results[index] = self.results[index].model_copy(update=output)

    def add_note(self, note: str) -> None:
        """A warning line for the end of the run, once however often it comes."""
        if note not in self.notes:
            self.notes.append(note)

    def add_coverage_warnings(self, messages: list[str]) -> None:
        """What coverage.py warned of while it measured, shown once at the end."""
        for message in messages:
            self.add_note(f"coverage.py: {message}")

    def finish(self, session: pytest.Session, exitstatus: int, early: bool = False) -> None:
        """Sum the run up and write its outputs, once.

        On an xdist controller :class:`~pytest_batchflow.xdist_scheduler.XdistHooks`
        calls it ``early``, before xdist's own ``pytest_sessionfinish``, when
        every worker has finished, so that it works while xdist waits for their
        processes to end; otherwise it runs here, as a plain session-finish
        hook, after xdist's. An error of the early call is raised by the plain
        one: xdist's wait for its workers happens whatever goes wrong here.
        """
        error, self._finish_error = self._finish_error, None
        if error is not None:
            raise error
        if self.plan is None or self.role == "worker" or self.run_finished:
            return
        if exitstatus == pytest.ExitCode.USAGE_ERROR and not (self.reports or self.results):
            # pytest refused the run before its first test (--strict-config's
            # unknown key, found once collection is over): nothing ran, and
            # nothing but pytest's error is said, as without batchflow.
            return
        self.run_finished = True
        try:
            # What the end of the run builds lives to its end: collections it
            # would trigger walk the whole heap (every result) for nothing, one
            # of them some 50 ms on 5,000 tests.
            with collector_paused():
                self._finish(session, exitstatus)
        except BaseException as raised:
            if not early:
                raise
            self._finish_error = raised

    def _reruns_not_run(self) -> list[int]:
        """The tests that failed, were to be rerun and have no result: a stopped
        run never ran their rerun."""
        return [index for index in self.earlier if not self._has_result(index)]

    def _settle_unfinished(self) -> None:
        """Results for the tests a stopped run left halfway (Ctrl-C or ``pytest.exit``
        during a test, a rerun that never came): what pytest counted of them.

        A test whose teardown never reported keeps the phases that did (a failed
        call is a failure, a passed one a pass, as pytest counts them); one that
        only passed its setup was not counted by pytest and has no result. A
        test whose rerun never ran keeps its last attempt.
        """
        for index in list(self.reports):
            if all(report.when == "setup" and report.passed for report in self.reports[index]):
                del self.reports[index]
            else:  # one failing to be rerun keeps the attempt, and it stands below
                self._finalize(index)
        for index in self._reruns_not_run():
            self.rerun_due.pop(index, None)
            self._attempts_stand(index)
            self.reruns_not_run.append(index)

    def _finish(self, session: pytest.Session, exitstatus: int) -> None:
        assert self.plan is not None
        self._settle_unfinished()
        if self.recording and self.coverage_rundir is not None:
            from .coverage_report import OUTPUT_DIR, start_child

            # coverage.py combines the data and writes its reports in a child
            # process while this one builds batchflow's results.
            outdir = self.config.rootpath / OUTPUT_DIR
            try:
                self.coverage_child = start_child(self.coverage_rundir, outdir)
            except OSError as error:  # a read-only folder: the other results still count
                self.coverage_problem = (
                    f"could not write to {outdir}: {why_not_written(error, outdir)}"
                )
        self._build_results()
        if self.settings.strict_flaky and self.flaky and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
        if not self.recording:
            return
        from .results import CollectionProblem, RunResult, collection_or_tests

        stopped = clock.wall()
        self._save_attempts()
        self._settle_quarantine()
        run_id = self.run_id
        if run_id is not None:
            keep = self.settings.history_runs
            self._use_history(lambda h: h.finish_run(run_id, stopped, int(exitstatus), keep), None)
        assert self.analysis is not None
        tests = [self.results[i] for i in self.plan.order if i in self.results]
        probe = None
        if self.settings.probe is not None:
            from .probing import probe_result

            failing = sum(1 for t in tests if t.outcome in ("failed", "error", QUARANTINED))
            # After Ctrl-C the user wants the run to end, not more runs.
            alone = exitstatus != pytest.ExitCode.INTERRUPTED
            if failing and alone:
                running = count_of(min(failing, MAX_ALONE_TESTS), "failing test")
                self.write_line(
                    f"batchflow: probe: running {running} alone, {ALONE_RUNS} times each"
                )
            probe = probe_result(self.config, self.settings.probe, tests, alone)
        failures = {"failed", "error", *(["flaky"] if self.settings.strict_flaky else [])}
        failed_by: list[Literal["collection", "tests", "coverage", "benchmarks"]] = [
            *collection_or_tests(
                uncollected=any(outcome == "error" for _, outcome in self.collection_problems),
                failed=exitstatus != pytest.ExitCode.OK,
                tests_failed=any(t.outcome in failures for t in tests),
            )
        ]
        benchmarks = self._benchmarks(tests)
        if any(b.comparison is not None and b.comparison.failed for b in benchmarks):
            failed_by.append("benchmarks")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.coverage_rundir is not None:
            self.coverage = self._coverage()
            if self.coverage.failed:
                failed_by.append("coverage")
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
        tests = self._with_history_trail(tests)
        known = bool(self.plan.measured)
        planned = set(self.plan.order)
        deselected = [spec.nodeid for spec in self.analysis.specs if spec.index not in planned]
        result = RunResult(
            started=self.started,
            stopped=stopped,
            duration=stopped - self.started,
            exitstatus=int(exitstatus),
            environment=self._environment(),
            batches=self._batch_results(),
            tests=tests,
            collection=[
                CollectionProblem(nodeid=nodeid, outcome=outcome, longrepr=text)
                for (nodeid, outcome), text in self.collection_problems.items()
            ],
            deselected=len(deselected),
            deselected_nodeids=deselected,
            probe=probe,
            coverage=self.coverage,
            benchmarks=benchmarks,
            resources=self._resources(tests),
            failed_by=failed_by,
            estimated=self.plan.total_estimate if known else None,
            lower_bound=self.plan.lower_bound(self.workers) if known else None,
        )
        self.run_result = _with_hook_additions(self.config, result)
        self._write_outputs(self.run_result)
        self._wait_for_coverage_child()

    def _benchmarks(self, tests: Sequence[TestResult]) -> list[BenchmarkResult]:
        """Statistics, baselines and gates of the tests that used the bench fixture.

        A benchmark whose test failed has no result: its timings may be of
        anything. The run's benchmarks go to the history after the baselines
        are read, so a run is never its own baseline.
        """
        from .benchmarking import benchmark_results

        assert self.plan is not None
        ran = {self.analysis_nodeid(i): i for i in self.bench_raw}
        measured = [
            (test, *self.bench_raw[ran[test.nodeid]])
            for test in tests
            if test.nodeid in ran and test.outcome in ("passed", "flaky", "xpassed")
        ]
        if not measured:
            return []
        # A batch line's gate wins over the run's; the run's "off" or "accept"
        # (no gate in this run) over both, a line's "off" over the run's gate.
        run_gate = self.settings.bench_fail
        accept = run_gate == GATE_ACCEPT
        gates = {
            batch.name: None if accept or GATE_OFF in (run_gate, gate) else gate
            for batch in self.plan.batches
            for gate in [batch.policy.bench_fail or run_gate]
        }
        results, rows = benchmark_results(
            measured,
            gates,
            self.settings.bench_compare,
            lambda action: self._use_history(action, None),
            self.run_id,
            accept=accept,
        )
        run_id = self.run_id
        if run_id is not None and rows:
            self._use_history(lambda h: h.record_benchmarks(run_id, rows), None)
            trends: dict[str, list[tuple[int, float]]] = self._use_history(
                lambda h: {r.nodeid: h.benchmark_trend(r.nodeid, TREND_RUNS) for r in results}, {}
            )
            results = [r.model_copy(update={"trend": trends.get(r.nodeid, [])}) for r in results]
        return results

    def _written(self, what: str) -> Path | None:
        return next((path for done, path in self.written if done == what), None)

    def _with_history_trail(self, tests: list[TestResult]) -> list[TestResult]:
        """Flakiness score and recent outcomes for the tests a reader will ask about."""
        wanted = {t.nodeid for t in tests if t.outcome in _TRAIL_OUTCOMES}
        if not wanted or self.history is None:
            return tests
        none: dict[str, list[RunRecord]] = {}
        window = self.settings.flaky_window
        records = self._use_history(lambda h: h.recent_run_records(wanted, window), none)
        trailed = []
        for test in tests:
            runs = records.get(test.nodeid) if test.nodeid in wanted else None
            if runs:
                test = test.model_copy(
                    update={
                        "flakiness": flakiness(runs, window).score,
                        "recent": [_run_word(run) for run in runs[-window:]],
                    }
                )
            trailed.append(test)
        return trailed

    def _write_outputs(self, result: RunResult) -> None:
        """JSON, HTML, JUnit and the CI summary; a failure to write one is a note, not a crash."""
        settings = self.settings
        writers: list[tuple[str, Path | None, Callable[[Path], None]]] = [
            ("the JSON result", settings.json_path, result.write),
        ]
        if settings.html_path is not None:
            from .report.html import write_html

            writers.append(
                (
                    "the HTML report",
                    settings.html_path,
                    lambda p: write_html(result, p, passed_output=settings.html_passed_output),
                )
            )
        if settings.junit_path is not None:
            from .report.junit import write_junit

            writers.append(("the JUnit XML", settings.junit_path, lambda p: write_junit(result, p)))
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            from .report.github import append_step_summary

            writers.append(
                (
                    "the GitHub step summary",
                    Path(summary),
                    lambda p: append_step_summary(result, p, self._written("the HTML report")),
                )
            )
        for what, path, write in writers:
            if path is None:
                continue
            try:
                write(path)
            except OSError as error:
                self.notes.append(
                    f"could not write {what} to {path}: {why_not_written(error, path)}"
                )
            else:
                self.written.append((what, path))
        for folder in self._output_folders() - self._folders_before:
            if folder.is_dir():
                ignore_in_git(folder)

    def _output_folders(self) -> set[Path]:
        """The .batchflow folders the report, the results and coverage's reports go to."""
        settings = self.settings
        paths = (settings.json_path, settings.html_path, settings.junit_path)
        folders = {path.parent for path in paths if path is not None}
        if settings.cov_source:
            folders.add(self.config.rootpath / ".batchflow")
        return {folder for folder in folders if folder.name == ".batchflow"}

    def coverage_crash(self, worker: str, nodeid: str | None) -> None:
        """On the controller: a worker died; what of its coverage data is lost."""
        pending = self.coverage_pending.pop(worker, 0)
        earlier = count_of(pending, "earlier test")
        if nodeid is None:
            if pending:
                self.coverage_lost.append(
                    f"worker {worker} died between tests: the coverage of the {earlier} it "
                    "ran since its last save is missing"
                )
            return
        also = f" and of the {earlier} it ran since its last save" if pending else ""
        self.coverage_lost.append(
            f"worker {worker} crashed running {nodeid}: the coverage of that test{also} is missing"
        )

    def _wait_for_coverage_child(self) -> None:
        """Wait for coverage.py's HTML and XML reports before pytest ends; a note if they failed."""
        child, self.coverage_child = self.coverage_child, None
        if child is None or self.coverage is None:
            return
        from .coverage_report import finish_child_reports

        self.coverage, problems = finish_child_reports(child, self.coverage)
        self.notes.extend(problems)

    def _coverage(self) -> CoverageResult:
        """Combine the measuring processes' data and sum it up (serial, controller)."""
        from .coverage_report import no_figures, sum_up

        assert self.plan is not None
        assert self.analysis is not None
        assert self.coverage_rundir is not None
        settings = self.settings
        selected = settings.select
        measured = [
            batch.name
            for batch in self.plan.batches
            if batch.policy.cov and batch.tests and (selected is None or batch.name in selected)
        ]
        thresholds: dict[str | None, float] = {}
        if settings.cov_fail_under is not None:
            thresholds[None] = settings.cov_fail_under
        for batch in self.plan.batches:
            if batch.name in measured and batch.policy.cov_fail_under is not None:
                thresholds[batch.name] = batch.policy.cov_fail_under
        if settings.cov_context == "test":
            batch_by_nodeid = {
                spec.nodeid: self.plan.batch_of[spec.index]
                for spec in self.analysis.specs
                if spec.index in self.plan.batch_of
            }
            batch_of: Callable[[str], str | None] = batch_by_nodeid.get
        else:
            names = set(measured)

            def batch_of(context: str) -> str | None:
                return context if context in names else None

        # The child goes on with coverage.py's HTML and XML reports, which
        # _wait_for_coverage_child waits for after batchflow's outputs.
        child = self.coverage_child
        if child is None:
            assert self.coverage_problem is not None
            return no_figures(
                settings.cov_source, settings.cov_context, self.coverage_lost, self.coverage_problem
            )
        return sum_up(
            child,
            settings.cov_source,
            settings.cov_context,
            measured,
            batch_of,
            thresholds,
            self.coverage_lost,
        )

    def _batch_results(self) -> list[BatchResult]:
        from .results import BatchResult, batch_resources, span

        assert self.plan is not None
        assert self.state is not None
        batches = []
        selected = self.settings.select
        for batch in self.plan.batches:
            if selected is not None and batch.name not in selected:
                continue
            results = [self.results[i] for i in batch.tests if i in self.results]
            cpu, peak_memory = batch_resources(results)
            outcomes = Counter(result.outcome for result in results)
            blocked = self.state.upstream_block(batch.name) if batch.tests else None
            if not batch.tests:
                status = "empty"
            elif blocked is not None:
                status = "skipped"
            elif outcomes["failed"] + outcomes["error"] or (
                self.settings.strict_flaky and outcomes["flaky"]
            ):
                status = "failed"
            elif len(results) < len(batch.tests):
                status = "incomplete"
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
                    reruns=budget_for(
                        None,
                        policy.reruns,
                        self.settings.reruns,
                        benchmark=policy.kind == "benchmark",
                    ),
                    timeout=policy.timeout,
                    maxfail=policy.maxfail,
                    cov=policy.cov,
                    on_upstream_failure=policy.on_upstream_failure,
                    status=status,
                    skip_reason=blocked,
                    tests=len(batch.tests),
                    not_run=len(batch.tests) - len(results),
                    not_run_nodeids=[
                        self.analysis_nodeid(i) for i in batch.tests if i not in self.results
                    ],
                    outcomes=dict(sorted(outcomes.items())),
                    duration=span(results),
                    estimated=self.plan.batch_estimate(batch.name) if self.plan.measured else None,
                    cpu=cpu,
                    peak_memory=peak_memory,
                )
            )
        return batches

    def _resources(self, tests: Sequence[TestResult]) -> ResourcesResult | None:
        """The run's memory and CPU figures: limit, leaks, budget, timeline."""
        if self.settings.no_resources:
            return None
        from .results import ResourceLeak, ResourcesResult

        threshold = self.settings.leak_threshold
        # A worker replaced after a crash is another process: named WORKER/PID then.
        processes = Counter(worker for worker, _ in self.resource_series)
        names = {
            key: key[0] if processes[key[0]] == 1 else f"{key[0]}/{key[1]}"
            for key in self.resource_series
        }
        series = {names[key]: samples for key, samples in self.resource_series.items()}
        pids = {names[key]: key[1] for key in self.resource_series}
        leaks = [
            ResourceLeak(
                worker=leak.worker,
                pid=pids[leak.worker],
                growth=leak.growth,
                tests=leak.tests,
                culprits=list(leak.culprits),
            )
            for leak in find_leaks(series, threshold)
        ]
        budget = self.budget
        return ResourcesResult(
            budget=budget.memory if budget is not None else None,
            cpus=budget.cpus if budget is not None else 1,
            memory_limit=self.settings.test_memory_limit,
            over_limit=[t.nodeid for t in tests if t.memory_limit_exceeded],
            alone=self.alone,
            leak_threshold=threshold,
            leaks=leaks,
            cpu=round(sum(t.resources.cpu for t in tests if t.resources is not None), 6),
            timeline={
                names[key]: list(zip(samples.stops, samples.rss_end, strict=True))
                for key, samples in self.resource_series.items()
            },
        )

    def memory_rules(self, analysis: Analysis) -> dict[str, Any]:
        """The dispatcher's ``needs`` and ``budget`` (none with --batchflow-no-resources).

        Tests needing more than the whole budget are named: they will run alone.
        """
        if self.settings.no_resources:
            return {}
        self._join_reading()
        available = self._available_memory
        if available is None:
            from .resources import available_memory

            available = available_memory()
        budget = self.budget = Budget(
            memory=self.settings.memory_budget(available),
            cpus=max(os.cpu_count() or 1, self.workers),
        )
        needs = self.resource_needs(analysis)
        for index in analysis.run:
            if index in needs and budget.exceeds(needs[index]):
                nodeid = analysis.specs[index].nodeid
                self.alone.append(nodeid)
                wanted = needs[index]
                over = []  # only what is over the budget, with what sets it
                if budget.memory is not None and wanted.memory > budget.memory:
                    over.append(
                        f"{format_size(wanted.memory)} of memory, more than the budget of "
                        f"{format_size(budget.memory)} (--batchflow-max-memory)"
                    )
                if wanted.cpus > budget.cpus:
                    over.append(
                        f"{wanted.cpus} CPUs, more than the {budget.cpus} of this machine "
                        "and its workers"
                    )
                self.notes.append(f"{nodeid} needs {' and '.join(over)}: it runs alone")
        return {"needs": needs, "budget": budget}

    def resource_needs(self, analysis: Analysis) -> dict[int, Needs]:
        """What each test to run needs: the larger of its measured and declared memory."""
        self._join_reading()
        measured = self._memory_read
        if measured is None:
            no_needs: dict[str, int] = {}
            measured = self._use_history(lambda h: h.memory_needs(), no_needs)
        needs = {}
        for index in analysis.run:
            memory = measured.get(analysis.specs[index].nodeid, 0)
            declared_memory, cpus = analysis.needs.get(index, (0, 1))
            if memory or declared_memory or cpus != 1:
                needs[index] = Needs(memory=max(memory, declared_memory), cpus=cpus)
        return needs

    def _environment(self) -> Environment:
        from .results import Environment

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
            workers=self.workers,
        )

    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> tuple[str, str, str | tuple[str, Mapping[str, bool]]] | None:
        if report.outcome == RERUN:
            return "rerun", "R", ("RERUN", {"yellow": True})
        if getattr(report, "batchflow_flaky", False):
            return "flaky", "K", ("FLAKY", {"yellow": True})
        if getattr(report, "batchflow_flaky_call", False):
            return "", "", ""  # its teardown tells: FLAKY, or its error
        if report.outcome == QUARANTINED:
            return QUARANTINED, "Q", ("QUARANTINED", {"yellow": True})
        return None

    @property
    def flaky(self) -> list[TestResult]:
        assert self.plan is not None
        return [
            self.results[i]
            for i in self.plan.order
            if i in self.results and self.results[i].outcome == "flaky"
        ]

    def _reruns_not_run_summary(self, terminal: pytest.TerminalReporter) -> None:
        """The failures that stand because the run stopped before their rerun:
        pytest counted them as reruns, and shows no failure for them."""
        from .results import error_line

        for index in self.reruns_not_run:
            result = self.results.get(index)
            if result is not None and result.outcome in ("failed", "error"):
                terminal.write_line(
                    f"batchflow: {result.nodeid} {result.outcome} and the run stopped before "
                    f"its rerun: {error_line(result.longrepr)}",
                    red=True,
                )

    def _flaky_summary(self, terminal: pytest.TerminalReporter) -> None:
        """Each flaky test with the error of each failed attempt; strict mode says it fails."""
        from .results import error_line

        flaky = self.flaky
        if not flaky:
            return
        terminal.write_sep("=", "flaky tests (failed, then passed on a rerun)", yellow=True)
        for result in flaky:
            terminal.write_line(
                f"FLAKY {result.nodeid}: passed at attempt {len(result.attempts) + 1}"
            )
            for number, attempt in enumerate(result.attempts, 1):
                terminal.write_line(
                    f"  attempt {number} ({attempt.outcome} on {attempt.worker}): "
                    f"{error_line(attempt.longrepr)}"
                )
        if self.settings.strict_flaky:
            count = "1 flaky test fails" if len(flaky) == 1 else f"{len(flaky)} flaky tests fail"
            terminal.write_line(f"batchflow: {count} the run (--batchflow-strict-flaky)", red=True)

    def _quarantine_summary(self, terminal: pytest.TerminalReporter) -> None:
        """Quarantined failures, apart from the others; tests leaving quarantine."""
        from .results import error_line

        assert self.plan is not None
        failed = [
            (i, self.results[i])
            for i in self.plan.order
            if i in self.results and self.results[i].outcome == QUARANTINED
        ]
        if failed:
            terminal.write_sep("=", "quarantined tests (failures that do not fail the run)")
            for index, result in failed:
                terminal.write_line(
                    f"QUARANTINED {result.nodeid} ({self.quarantined[index]}): "
                    f"{error_line(result.longrepr)}"
                )
        for line in self.quarantine_news:
            terminal.write_line(f"batchflow: {line}", yellow=True)

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage, when: str) -> None:
        # pytest warns of an unknown ini key once collection is over: a misspelt
        # batchflow setting gets the name it was meant to have.
        if when == "config" and self.role != "worker":
            note = misspelt_setting(str(warning_message.message))
            if note is not None:
                self.add_note(note)

    def pytest_report_header(self) -> list[str]:
        from .plugin import AUTO_WORKERS_KEY

        auto = self.config.stash.get(AUTO_WORKERS_KEY, None)
        return ([auto] if auto else []) + [f"batchflow: warning: {note}" for note in self.notes]

    # After other plugins' summaries (a pytest-benchmark table would read as
    # part of batchflow's section), just before pytest's short test summary.
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        result = self.run_result
        if result is not None:
            rows = [batch for batch in result.batches if batch.tests]
            outside = collection_line(result.collection)
            if rows or outside:
                terminalreporter.write_sep("=", "batchflow")
                for line in batch_table(rows) if rows else []:
                    terminalreporter.write_line(line)
                if outside:
                    terminalreporter.write_line(outside)
        if self.plan is not None and self.role != "worker":
            self._reruns_not_run_summary(terminalreporter)
            self._flaky_summary(terminalreporter)
            self._quarantine_summary(terminalreporter)
        if result is not None and result.probe is not None:
            from .probing import probe_lines

            terminalreporter.write_sep("=", f"probe: every test run {result.probe.runs} times")
            cut = [(self.analysis_nodeid(i), reason) for i, reason in self.probe_cut.items()]
            for line in probe_lines(result.probe, cut):
                terminalreporter.write_line(line)
        if result is not None and result.benchmarks:
            from .benchmarking import benchmark_lines

            terminalreporter.write_sep("=", "batchflow benchmarks")
            for line in benchmark_lines(result.benchmarks):
                terminalreporter.write_line(line, red=" FAILED" in line)
            if "benchmarks" in result.failed_by:
                # A pinned baseline stays what it is: accepting starts no new one there.
                meant = (
                    "compare with a run that measured it (--batchflow-bench-compare=RUN)"
                    if isinstance(self.settings.bench_compare, int)
                    else "run once with --batchflow-bench-fail=accept"
                )
                terminalreporter.write_line(
                    "batchflow: benchmarks failed the run (a significant slowdown beyond a "
                    f"gate, not a test); a slowdown you meant: {meant}",
                    red=True,
                )
            if self.settings.bench_fail == GATE_ACCEPT:
                if self.run_id is not None:
                    accepted = count_of(len(result.benchmarks), "benchmark")
                    line = f"the timings of {accepted} are their new baseline"
                else:
                    line = "accepted nothing: this run is not recorded in the history"
                terminalreporter.write_line(f"batchflow: --batchflow-bench-fail=accept: {line}")
        if result is not None and result.resources is not None:
            lines = resource_lines(result.resources, result.tests, self.settings.max_memory)
            if lines:
                terminalreporter.write_sep("=", "batchflow resources")
                for line, red in lines:
                    terminalreporter.write_line(line, red=red)
        if self.coverage is not None:
            from .coverage_report import coverage_lines

            terminalreporter.write_sep("=", "batchflow coverage")
            for line in coverage_lines(self.coverage):
                terminalreporter.write_line(line, red="FAILED" in line or " lost: " in line)
            if self.coverage.failed:
                terminalreporter.write_line(
                    "batchflow: coverage failed the run (a coverage gate, not a test)", red=True
                )
        for note in self.notes:
            terminalreporter.write_line(f"batchflow: warning: {note}", yellow=True)
        if result is not None and os.environ.get("GITHUB_ACTIONS") == "true":
            from .report.github import annotations

            workspace = os.environ.get("GITHUB_WORKSPACE")
            # pytest-github-actions-annotate-failures annotates failed calls: not twice.
            theirs = self.config.pluginmanager.has_plugin("pytest_github_actions_annotate_failures")
            cwd = self.config.invocation_params.dir
            for line in annotations(result, cwd, workspace, failures=not theirs):
                terminalreporter.write_line(line)


class OutputLines:
    """Where the outputs went, as the last lines before pytest's closing line;
    and the flaky tests' passes, for pytest's own passed lines.

    A separate plugin because it must run around the terminal reporter's own
    summary (short test summary included), where the orchestrator's summary
    runs inside it.
    """

    _LABELS = (
        ("the JSON result", "JSON result"),
        ("the HTML report", "HTML report"),
        ("the JUnit XML", "JUnit XML"),
    )

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @contextlib.contextmanager
    def _flaky_as_passed(self, terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
        """A flaky test passed in the end: -rp and -rA list it as PASSED, with its
        passing attempt's output under PASSES (-rP), as pytest-rerunfailures
        shows it; its teardown, filed as FLAKY, joins the passed phases for its
        output there. Only while the summary is written (the closing line counts
        it as flaky, not passed), and only when asked for: other plugins'
        summaries read the same stats, and count it twice then."""
        stats = terminalreporter.stats
        had = {category: category in stats for category in ("passed", "")}
        wanted = terminalreporter.hasopt("p") or terminalreporter.hasopt("P")
        added: dict[str, list[pytest.TestReport]] = {"passed": [], "": []}
        for call, teardown in self.orchestrator.flaky_passes if wanted else ():
            call, teardown = copy.copy(call), copy.copy(teardown)
            call.batchflow_flaky_call = False  # type: ignore[attr-defined]
            teardown.batchflow_flaky = False  # type: ignore[attr-defined]
            added["passed"].append(call)  # pytest's word for it then: PASSED
            added[""].append(teardown)
        for category, reports in added.items():
            if reports:
                stats.setdefault(category, []).extend(reports)
        try:
            yield
        finally:
            for category, reports in added.items():
                if reports:
                    gone = {id(report) for report in reports}
                    kept = stats.get(category, [])
                    kept[:] = [report for report in kept if id(report) not in gone]
                    if not kept and not had[category]:
                        del stats[category]

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> Generator[None, None, None]:
        with self._flaky_as_passed(terminalreporter):
            yield
        written = dict(self.orchestrator.written)
        for what, label in self._LABELS:
            if what in written:
                terminalreporter.write_line(f"batchflow: {label}: {written[what]}")


#: Outcomes whose flakiness score and recent runs the result carries.
_TRAIL_OUTCOMES = frozenset({"flaky", QUARANTINED, "failed", "error"})


def _run_word(run: RunRecord) -> str:
    """One earlier run of a test in a word: passed, failed, flaky or skipped."""
    if run.flaky:
        return "flaky"
    return {"pass": "passed", "fail": "failed"}.get(run.verdict or "", "skipped")


def _with_hook_additions(config: pytest.Config, result: RunResult) -> RunResult:
    """Report sections and row notes from ``pytest_batchflow_report_*`` hooks."""
    from .results import ReportSection

    hook = config.hook
    sections = [
        ReportSection(title=str(title), html=str(html))
        for returned in hook.pytest_batchflow_report_sections(config=config, result=result)
        for title, html in returned
    ]
    tests = result.tests
    if hook.pytest_batchflow_report_test.get_hookimpls():
        tests = []
        for test in result.tests:
            notes = [str(n) for n in hook.pytest_batchflow_report_test(config=config, test=test)]
            tests.append(test.model_copy(update={"notes": notes}) if notes else test)
    if not sections and tests is result.tests:
        return result
    return result.model_copy(update={"sections": sections, "tests": tests})


def _plugin_module(plugin: object) -> str:
    """The module a plugin is, or whose class it is an object of."""
    return plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__


def _pytests_own(plugin: object) -> bool:
    """Whether a plugin is one of pytest's own (a module or an object of ``_pytest``)."""
    return _plugin_module(plugin).partition(".")[0] == "_pytest"


#: The name of every release item (:class:`IdleItem`), the last part of its node id.
IDLE_NAME = "batchflow-idle"


def _drop_release_items(report: pytest.TestReport) -> None:
    """Take release items out of what pytest-testmon sends from a worker.

    testmon's ``pytest_runtest_protocol`` wrapper meets release items too
    (xdist runs them) and records each as a test; on the controller it reads
    a test's file from the node id, and one under the session named none
    (``IsADirectoryError`` for the rootdir, an internal error).
    """
    recorded = getattr(report, "nodes_files_lines", None)
    if not isinstance(recorded, dict):
        return
    tests = {
        key: value
        for key, value in recorded.items()
        if not (isinstance(key, str) and key.rpartition("::")[2] == IDLE_NAME)
    }
    if len(tests) < len(recorded):
        report.nodes_files_lines = tests  # type: ignore[attr-defined]


def next_item_followers(config: pytest.Config) -> tuple[str, ...]:
    """The plugins and conftests, besides pytest's own and batchflow, that may
    read the next item of a test: a ``pytest_runtest_teardown`` hook, or a
    wrapper of ``pytest_runtest_protocol``, that takes ``nextitem``.

    SQLAlchemy's test plugin ends its per-class set-up (tables it creates for
    the class) in its teardown hook when the next item is in another class;
    pytest-testmon saves a worker's last tests' data when there is no next
    item. A release item under a node with tests left to send tells them the
    worker goes on there, where it may not: the xdist dispatcher then puts
    release items at the top (see ``Dispatcher``). A plugin that runs the
    protocol itself (pytest-rerunfailures, flaky) passes the next item on to
    pytest, which follows release items; it is not counted, nor is
    pytest-rerunfailures' teardown hook, which keeps the next item only to
    hand it to pytest's teardown after a rerun, nor a hook that takes
    ``nextitem`` and never reads it (see :mod:`pytest_batchflow.core.reads`).
    """
    found: dict[str, None] = {}
    for name in ("pytest_runtest_teardown", "pytest_runtest_protocol"):
        for impl in getattr(config.hook, name).get_hookimpls():
            if "nextitem" not in impl.argnames or impl.plugin_name in _RERUN_PLUGIN_NAMES:
                continue
            if name == "pytest_runtest_protocol" and not (impl.hookwrapper or impl.wrapper):
                continue
            module = _plugin_module(impl.plugin)
            if module.partition(".")[0] in ("_pytest", "pytest_batchflow"):
                continue
            if not reads_argument(impl.function, "nextitem"):
                continue  # the signature copied whole, the argument unused (Pygments' conftest)
            found[_plugin_label(impl.plugin_name, module, config.rootpath)] = None
    return tuple(found)


def _plugin_label(name: str, module: str, root: Path) -> str:
    """A plugin's name as a user knows it: a conftest by its path from the rootdir,
    an object registered under its own name with its package (``TestmonCollect
    (testmon)``)."""
    path = Path(name)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.relative_to(root).as_posix()
    package = module.partition(".")[0]
    return name if package in name else f"{name} ({package})"


def run_idle(
    item: IdleItem, nextitem: pytest.Item | None, previous: pytest.Item | None
) -> list[tuple[str, str]]:
    """Tear down what ``nextitem`` does not need through pytest's own setup and
    teardown hooks only, without reports.

    Only pytest's plugins see the idle item, and not its skipping plugin (which
    would skip it under a ``skipif`` mark of its module or class): its runner
    sets the item up (its parents are up already) and tears down, and its
    capture, logging, thread and unraisable exception plugins do what they do
    at a test's setup and teardown. The suite's and other plugins' hooks would
    meet an item that is not a test (a conftest hook reading
    ``item.fixturenames`` raised).

    What that brings is told as pytest tells it at the teardown of
    ``previous``, the test that ran last: warnings recorded under it, and a
    failure reported for it (its traceback cut as that test's; the report
    carries :data:`TEARDOWN_OF` for the controller, since an xdist worker must
    send it under the idle item's node id).

    Returns what it printed and logged that no failure's report carries, as
    the report sections of a teardown (``("Captured stdout teardown", text)``),
    for the caller to add to ``previous``'s teardown (see
    ``Orchestrator.add_teardown_output``).
    """
    # A worker runs the same release item again and again, and an item's
    # reports carry all its runs' output: only this run's counts.
    seen = len(_captured(item))
    manager = item.config.pluginmanager
    skipping = manager.get_plugin("skipping")
    others = [p for p in manager.get_plugins() if p is skipping or not _pytests_own(p)]
    nodeid = item.nodeid if previous is None else previous.nodeid
    for when, arguments in (("setup", {}), ("teardown", {"nextitem": nextitem})):
        hook = manager.subset_hook_caller(f"pytest_runtest_{when}", others)
        caught: list[warnings.WarningMessage] = []
        call = pytest.CallInfo.from_call(
            partial(_idle_phase, hook, item, arguments, caught),
            when=when,  # type: ignore[arg-type]
            reraise=(pytest.exit.Exception, KeyboardInterrupt),
        )
        for message in caught:
            recorded = {"warning_message": message, "nodeid": nodeid, "when": "runtest"}
            item.ihook.pytest_warning_recorded.call_historic(kwargs={**recorded, "location": None})
        if call.excinfo is not None:
            _report_idle_failure(item, call, previous, seen)
            seen = len(_captured(item))  # told with the failure
    return [
        (f"{title.rsplit(' ', 1)[0]} teardown", text)
        for title, text in _captured(item)[seen:]
        if text
    ]


def _captured(item: IdleItem) -> list[tuple[str, str]]:
    """The report sections pytest would give the item's report now (the output
    captured in all its runs so far, ``("Captured stdout setup", text)``)."""
    passing = pytest.CallInfo.from_call(lambda: None, when="teardown")
    return pytest.TestReport.from_item_and_call(item, passing).sections


def _idle_phase(
    hook: Callable[..., object],
    item: IdleItem,
    arguments: dict[str, Any],
    caught: list[warnings.WarningMessage],
) -> None:
    """One of :func:`run_idle`'s hooks, its warnings kept in ``caught``."""
    __tracebackhide__ = True
    # The warning filters stay those pytest's warnings plugin set for the idle item.
    with warnings.catch_warnings(record=True) as recorded:
        try:
            hook(item=item, **arguments)
        finally:
            caught.extend(recorded)


def _report_idle_failure(
    item: IdleItem, call: pytest.CallInfo[None], previous: pytest.Item | None, seen: int
) -> None:
    """The failure's report, with what this run captured (``seen``: the
    sections of the item's earlier runs, left out)."""
    report = pytest.TestReport.from_item_and_call(item, call)
    report.sections = report.sections[seen:]
    index = previous.stash.get(INDEX_KEY, None) if previous is not None else None
    if previous is not None and index is not None:
        if report.failed:
            report.longrepr = previous.repr_failure(call.excinfo)  # type: ignore[arg-type]
        setattr(report, TEARDOWN_OF, [index, *previous.location])
    item.ihook.pytest_runtest_logreport(report=report)


def _forget_earlier_output(item: pytest.Item) -> None:
    """Forget the output an earlier attempt of ``item`` captured in this process.

    pytest's reports take their "Captured ..." sections from a list the item
    keeps, which only grows: the report of a rerun in the same process showed
    every attempt's output, under the same titles. Each attempt's report now
    carries its own, as a test that runs once does (the list is empty when
    an item first runs).
    """
    sections: list[tuple[str, str, str]] | None = getattr(item, "_report_sections", None)
    if sections:
        sections.clear()


def _forget_subtest_failures(item: pytest.Item, key: Any) -> None:
    """Forget the failed subtests pytest counted for an earlier attempt of ``item``.

    pytest (9+) fails a test whose subtests failed from a count per node kept
    for the whole session (``key``): a rerun in the same process would inherit it.
    """
    counts: dict[Any, int] | None = item.config.stash.get(key, None)
    if counts:
        counts.pop(getattr(item, "id", item.nodeid), None)
        counts.pop(item.nodeid, None)
