"""Coverage measurement in the processes that run tests: serial, or each xdist worker.

Measurement starts from ``pytest_load_initial_conftests`` (see ``plugin.py``),
before conftests and test modules are imported, so that the module-level code
of the measured sources counts, under the context :data:`COLLECTION_CONTEXT`.
Then the context is switched to the batch of the test about to run (when the
batch changes) or to the test's node id (``--batchflow-cov-context=test``);
tests of a batch with ``cov=off`` run with measurement paused.

Data goes to ``.coverage.<worker>.<pid>`` in a run directory the controller
(or the serial process) made and passed down in :data:`RUN_DIR_ENV`. A context
switch writes the data gathered so far, and so does the end of a test when
the last write is :data:`SAVE_EVERY` seconds old: a worker that crashes loses
at most that much, and each teardown report says how many finished tests of
its worker are not yet saved (``batchflow_cov_pending``) so that the
controller can say what a crash cost.

Every write is committed before the next test starts, so that it survives a
crash, but the SQLite connection stays open between writes: coverage.py opens
and sets up a connection for each write of its own (0.1 to 0.2 ms), which
with per-test contexts is once a test.

Contexts need coverage.py's C tracer: the ``sysmon`` core (the default on
Python 3.14) records each line once and cannot attribute it to a second
context, so ``core = ctrace`` is set here whatever the configuration says.
A configured ``dynamic_context`` (``test_function``) is set aside, with a
warning: coverage.py would switch to a context of its own at every test and
leave the batches' contexts empty.

With ``concurrency = multiprocessing`` configured, coverage.py starts the
measurement of each ``multiprocessing`` child from a configuration file
alone, named in :data:`RCFILE_ENV`: the user's would send the child's data
to the current folder and measure other sources. Such a process reads its
configuration from a file batchflow writes in the run directory instead (the
user's settings with batchflow's data file and sources), and that file is
what its children read: their data files land beside its own and are
combined with them. Their lines carry no context of batchflow's.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import clock
from .core.coverage import COLLECTION_CONTEXT
from .core.coveragerc import rcfile_text
from .files import remove_run_directory, run_directory

if TYPE_CHECKING:
    import coverage

    from .orchestrator import Orchestrator

__all__ = [
    "PENDING",
    "RCFILE_ENV",
    "RUN_DIR_ENV",
    "SAVE_EVERY",
    "Measurement",
    "MeasurementHooks",
    "set_up",
    "start_early",
]

#: Where the measuring processes write their data files (set by the process
#: that combines them, inherited by xdist's workers).
RUN_DIR_ENV = "BATCHFLOW_COV_RUN"
#: ``workeroutput`` key: what coverage.py warned of in a worker (Measurement.warnings).
WARNINGS_KEY = "batchflow_cov_warnings"
#: The configuration file coverage.py's multiprocessing children read (set
#: by coverage.py as it first starts measuring in a process, and by batchflow).
RCFILE_ENV = "COVERAGE_RCFILE"
#: Options coverage.py adds to others as it reads them (``exclude_also`` to
#: ``exclude_lines``): written again, they would be added twice.
_MERGED_OPTIONS = ("report:exclude_also", "report:partial_also")
#: Seconds between writes of the data while the context stays the same.
SAVE_EVERY = 1.0
#: The attribute of setup and teardown reports: finished tests of this worker
#: whose data is not yet saved.
PENDING = "batchflow_cov_pending"


def configured_coverage(config_file: str | bool = True, **options: Any) -> coverage.Coverage:
    """coverage.py's object with the user's configuration (``.coveragerc``,
    ``setup.cfg``, ``tox.ini``, ``pyproject.toml``); a configuration it cannot
    read is a usage error, before any process measures."""
    import coverage

    try:
        return coverage.Coverage(config_file=config_file, **options)
    except coverage.exceptions.ConfigError as error:
        reason = " ".join(str(error).split())  # one line: a parser's message may hold several
        raise pytest.UsageError(
            f"batchflow: coverage.py cannot read its configuration: {reason}; fix it, or run "
            "without a coverage source (--batchflow-cov)"
        ) from None


def measures_multiprocessing(cov: coverage.Coverage) -> bool:
    """Whether coverage.py measures this configuration's multiprocessing children."""
    concurrency = cov.get_option("run:concurrency")
    return isinstance(concurrency, list) and "multiprocessing" in concurrency


def write_rcfile(cov: coverage.Coverage, path: Path) -> bool:
    """Write ``cov``'s configuration, as it was read and given, to ``path``.

    Every option coverage.py reads from a file, ``[paths]`` and the sections
    of the configured plugins; a value that cannot be written is a usage error.
    False, and nothing written, where coverage.py does not list its options
    (``CoverageConfig.CONFIG_FILE_OPTIONS``, not a public name).
    """
    from coverage.config import CoverageConfig

    known = getattr(CoverageConfig, "CONFIG_FILE_OPTIONS", None)
    if not isinstance(known, list | tuple):
        return False
    sections: dict[str, dict[str, object]] = {}
    regexes: set[str] = set()
    for spec in known:
        where = spec[1]
        if where in _MERGED_OPTIONS:
            continue
        section, _, option = where.partition(":")
        sections.setdefault(section, {})[option] = cov.get_option(where)
        if spec[2:] == ("regexlist",):
            regexes.add(where)
    paths = cov.get_option("paths")
    sections["paths"] = dict(paths) if isinstance(paths, dict) else {}
    plugins = cov.get_option("run:plugins")
    for plugin in plugins if isinstance(plugins, list) else ():
        sections[plugin] = dict(cov.config.get_plugin_options(plugin))
    try:
        text = rcfile_text(sections, regexes)
    except ValueError as error:
        raise pytest.UsageError(
            f"batchflow: coverage.py's configuration cannot be handed to multiprocessing "
            f"children ({error}); write that setting otherwise, or measure without "
            "concurrency = multiprocessing"
        ) from None
    path.write_text(text, encoding="utf-8")
    return True


class Measurement:
    """One process's coverage.py measurement, with batchflow's contexts."""

    def __init__(self, sources: list[str], rundir: Path, name: str) -> None:
        self.rundir = rundir
        #: What coverage.py warned of as it saved ("Module x was never imported"),
        #: each once: the run shows them at its end, not as a test's warnings.
        self.warnings: dict[str, None] = {}
        options: dict[str, Any] = {
            "data_file": str(rundir / ".coverage"),
            "data_suffix": f"{name}.{os.getpid()}",
            "source": sources or None,
        }
        self.cov: coverage.Coverage = configured_coverage(**options)
        #: The configuration file of this process's multiprocessing children,
        #: and what RCFILE_ENV was before (restored when measurement ends).
        self.rcfile: Path | None = None
        self._rcfile_before = os.environ.get(RCFILE_ENV)
        if measures_multiprocessing(self.cov):
            rcfile = rundir / f"coveragerc.{name}.{os.getpid()}"
            if write_rcfile(self.cov, rcfile):
                self.rcfile = rcfile
                self.cov = configured_coverage(config_file=str(rcfile), **options)
            else:
                self.warnings[
                    "this version does not list its settings "
                    "(coverage.config.CoverageConfig.CONFIG_FILE_OPTIONS), so batchflow "
                    "does not count what multiprocessing children run"
                ] = None
        self.cov.set_option("run:core", "ctrace")
        dynamic = self.cov.get_option("run:dynamic_context")
        if dynamic:
            # coverage.py would switch to a context of its own at every test
            # function, and batchflow's batch contexts would hold nothing.
            self.cov.set_option("run:dynamic_context", None)
            self.warnings[
                f"its setting dynamic_context = {dynamic} is set aside: batchflow's "
                "contexts are the batches (per-test contexts: run coverage.py without "
                "--batchflow-cov)"
            ] = None
        self.cov.start()
        if self.rcfile is not None:
            # coverage.py sets it when it first patches multiprocessing in a
            # process, and not again for a later measurement in that process.
            os.environ[RCFILE_ENV] = str(self.rcfile)
        self.cov.switch_context(COLLECTION_CONTEXT)
        self.context: str | None = COLLECTION_CONTEXT
        self.measuring = True
        self.pending = 0
        self._saved_at = clock.monotonic()
        self._connection: Any = None  # coverage.py's SqliteDb, held open after the first write
        self._can_hold = True

    def enter(self, context: str | None) -> None:
        """The next test's context; None pauses measurement (a batch with cov=off)."""
        if context is None:
            if self.measuring:
                self.cov.stop()
                self.measuring = False
            return
        if not self.measuring:
            self.cov.start()
            self.measuring = True
        if context != self.context:
            with self._warnings_kept():
                self.cov.switch_context(context)  # writes what the old context gathered
            self._commit()
            self.context = context
            self._saved()

    def test_done(self) -> int:
        """A test finished: save if due; how many finished tests are not saved yet."""
        self.pending += 1
        if clock.monotonic() - self._saved_at >= SAVE_EVERY:
            with self._warnings_kept():
                self.cov.get_data()  # flushes the tracer's data to the data file
            self._commit()
            self._saved()
        return self.pending

    @contextlib.contextmanager
    def _warnings_kept(self) -> Generator[None, None, None]:
        """coverage.py's checks run at every save, inside a test's warning
        capture: its warnings are kept here instead of failing or marking that
        test (an error under ``filterwarnings = error``)."""
        from coverage.exceptions import CoverageWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CoverageWarning)
            yield
        for warning in caught:
            if issubclass(warning.category, CoverageWarning):
                self.warnings[str(warning.message)] = None
            else:  # not ours to keep: shown as it was raised
                warnings.warn_explicit(
                    warning.message,
                    warning.category,
                    warning.filename,
                    warning.lineno,
                    source=warning.source,
                )

    def _saved(self) -> None:
        self.pending = 0
        self._saved_at = clock.monotonic()

    def _commit(self) -> None:
        """Make the last write reach the file, so that a crash after it keeps it.

        coverage.py's ``SqliteDb`` connects at its outermost ``with`` and
        commits and closes at the end of it. After the first write, one
        ``with`` is held open (:meth:`_hold_connection`): every later write is
        an inner one, committed here. coverage.py closes that connection itself
        when it starts a data file afresh (its first write erases the file);
        such a write used a connection of its own, already committed, and the
        new one is held instead.
        """
        connection = self._connection
        if connection is not None and connection.con is not None:
            connection.con.commit()
        elif self._can_hold:
            self._connection = None
            self._hold_connection()

    def _hold_connection(self) -> None:
        """Keep coverage.py's connection to an existing data file open.

        Private parts of coverage.py's data layer; with a coverage.py whose
        data layer is not of that shape, each write connects as coverage.py
        does it: slower, as safe.
        """
        data = getattr(self.cov, "_data", None)
        connect = getattr(data, "_connect", None)
        if connect is None:
            self._can_hold = False
            return
        if not os.path.exists(data.data_filename()):  # type: ignore[union-attr]
            return  # nothing written yet
        connection = connect()
        if not hasattr(connection, "__exit__"):
            self._can_hold = False
            return
        connection.__enter__()
        if not hasattr(getattr(connection, "con", None), "commit"):
            connection.__exit__(None, None, None)
            self._can_hold = False
            return
        self._connection = connection

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.con is not None:
            connection.__exit__(None, None, None)  # commits and closes

    def _children_unmeasured(self) -> None:
        """Later multiprocessing children no longer read the run directory's
        configuration file, soon removed (nor the combining child, which
        reads the user's)."""
        if self.rcfile is None or os.environ.get(RCFILE_ENV) != str(self.rcfile):
            return
        if self._rcfile_before is None:
            del os.environ[RCFILE_ENV]
        else:
            os.environ[RCFILE_ENV] = self._rcfile_before

    def finish(self) -> None:
        """Stop and write the rest; idempotent."""
        if self.measuring:
            self.cov.stop()
            self.measuring = False
        self._children_unmeasured()
        self._release_connection()
        if self.context is not None:
            with self._warnings_kept():
                self.cov.save()
            self.context = None

    def discard(self) -> None:
        """Stop without writing (the xdist controller runs no test).

        Not ``Coverage.erase``: with ``parallel = true`` configured, that would
        delete the workers' data files too.
        """
        if self.measuring:
            self.cov.stop()
            self.measuring = False
        self._children_unmeasured()
        self._release_connection()
        self.context = None


class MeasurementHooks:
    """Switches contexts around each test; saves at the end of the session.

    ``context_of`` gives a test item's context label, or None to pause
    (cov=off), or ``...`` to keep the current one (xdist release items).
    """

    def __init__(
        self,
        measurement: Measurement,
        context_of: Callable[[pytest.Item], str | None],
        keeps_context: Callable[[pytest.Item], bool],
        report_warnings: Callable[[list[str]], None],
    ) -> None:
        self.measurement = measurement
        self.context_of = context_of
        self.keeps_context = keeps_context
        self.report_warnings = report_warnings

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not self.keeps_context(item):
            self.measurement.enter(self.context_of(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not self.keeps_context(item):
            if call.when == "teardown":
                setattr(report, PENDING, self.measurement.test_done())
            elif call.when == "setup":
                # What a crash in this test would lose besides the test itself.
                setattr(report, PENDING, self.measurement.pending)
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        # First: an xdist worker tells the controller it finished in its own
        # sessionfinish, and the controller combines the data files then.
        self.measurement.finish()
        if self.measurement.warnings:
            self.report_warnings(list(self.measurement.warnings))


_MEASUREMENT = pytest.StashKey[Measurement]()
_RUN_DIR = pytest.StashKey[Path]()
#: What start_early took this process for: "worker", "serial" or "controller".
_GUESS = pytest.StashKey[str]()
_HOOKS_NAME = "batchflow-coverage"


def _early_worker() -> str | None:
    """An xdist worker of a run that measures coverage: its id.

    Both variables: a pytest run inside a worker's test (pytester) inherits
    the worker's ``PYTEST_XDIST_WORKER`` but is no worker.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return worker if worker and os.environ.get(RUN_DIR_ENV) else None


def _make_rundir(config: pytest.Config) -> Path:
    """The directory the data files go to; removed when pytest unconfigures."""
    existing = config.stash.get(_RUN_DIR, None)
    if existing is not None:
        return existing
    rundir = run_directory("batchflow-cov-")
    config.stash[_RUN_DIR] = rundir
    os.environ[RUN_DIR_ENV] = str(rundir)  # xdist's workers inherit it

    def clean_up() -> None:
        if os.environ.get(RUN_DIR_ENV) == str(rundir):
            del os.environ[RUN_DIR_ENV]
        remove_run_directory(rundir)

    config.add_cleanup(clean_up)
    return rundir


def _other_tracer(config: pytest.Config, early: bool) -> str | None:
    """Who else measures coverage in this process, if anyone."""
    options = config.known_args_namespace if early else config.option
    if getattr(options, "cov_source", None) and not getattr(options, "no_cov", False):
        return "pytest-cov's --cov"
    if "coverage" not in sys.modules:
        # Nothing measures without it imported; importing it only to ask would
        # cost an xdist controller, which measures nothing, before its workers start.
        return None
    import coverage

    current = coverage.Coverage.current()
    ours = config.stash.get(_MEASUREMENT, None)
    if current is not None and (ours is None or current is not ours.cov):
        return "another coverage.py measurement (coverage run?)"
    return None


def _start(config: pytest.Config, sources: list[str], rundir: Path, name: str) -> Measurement:
    measurement = Measurement(sources, rundir, name)
    config.stash[_MEASUREMENT] = measurement
    config.add_cleanup(measurement.discard)  # after a usage error; else a no-op
    return measurement


def _drop(config: pytest.Config) -> None:
    measurement = config.stash.get(_MEASUREMENT, None)
    if measurement is not None:
        measurement.discard()
        del config.stash[_MEASUREMENT]


def start_early(config: pytest.Config, sources: list[str]) -> None:
    """From pytest_load_initial_conftests: measure from here on, if this process runs tests.

    A guess made before pytest has parsed everything: :func:`set_up` settles it.
    """
    worker = _early_worker()
    namespace = config.known_args_namespace
    if worker is None:
        rundir = _make_rundir(config)
        if getattr(namespace, "numprocesses", None) or getattr(namespace, "tx", None):
            config.stash[_GUESS] = "controller"
            configured_coverage()  # its workers would each fail to start
            return  # an xdist controller runs no test
        config.stash[_GUESS] = "serial"
    else:
        rundir = Path(os.environ[RUN_DIR_ENV])
        config.stash[_GUESS] = "worker"
    if _other_tracer(config, early=True) is None:
        _start(config, sources, rundir, worker or "main")


def set_up(config: pytest.Config, orchestrator: Orchestrator) -> Path | None:
    """At pytest_configure: refuse a second tracer, settle who measures, hook the contexts.

    Returns the run directory to combine at the end (serial process and xdist
    controller), None in a worker or a run that runs no test.
    """
    from .orchestrator import INDEX_KEY

    settings = orchestrator.settings
    other = _other_tracer(config, early=False)
    if other is not None:
        _drop(config)
        raise pytest.UsageError(
            f"batchflow: --batchflow-cov and {other} would both trace this run; drop one "
            "(--batchflow-cov=off drops batchflow's, set in an ini file too; batchflow's "
            "coverage is per batch and writes coverage's own HTML, XML and JSON)"
        )
    role = orchestrator.role
    if config.stash.get(_GUESS, role) != role or role == "controller":
        _drop(config)  # guessed wrong early, or this process runs no test
    if role == "worker":
        rundir = Path(os.environ.get(RUN_DIR_ENV) or _make_rundir(config))
    else:
        rundir = _make_rundir(config)
        if not orchestrator.recording:
            _drop(config)
        if role == "controller":
            return rundir
        if not orchestrator.recording:
            return None
    measurement = config.stash.get(_MEASUREMENT, None)
    if measurement is None:  # too late for the conftests; the test modules still count
        name = str(config.workerinput["workerid"]) if role == "worker" else "main"  # type: ignore[attr-defined]
        measurement = _start(config, list(settings.cov_source), rundir, name)
    policies = {policy.name: policy for policy in settings.policies}
    by_test = settings.cov_context == "test"

    def context_of(item: pytest.Item) -> str | None:
        batch = orchestrator.batch_of.get(item.stash[INDEX_KEY])
        if batch is None or not policies[batch].cov:
            return None
        return item.nodeid if by_test else batch

    def keeps_context(item: pytest.Item) -> bool:
        return INDEX_KEY not in item.stash  # xdist release items

    def report_warnings(messages: list[str]) -> None:
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:  # to the controller, which prints
            # One worker may well have run nothing measured; the combined data
            # tells whether the run did (coverage's report then says so).
            kept = [m for m in messages if not m.startswith("No data was collected")]
            workeroutput[WARNINGS_KEY] = kept
        else:
            orchestrator.add_coverage_warnings(messages)

    config.pluginmanager.register(
        MeasurementHooks(measurement, context_of, keeps_context, report_warnings), _HOOKS_NAME
    )
    return rundir if role == "serial" else None
