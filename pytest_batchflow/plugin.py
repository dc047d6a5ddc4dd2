"""The ``pytest11`` entry point: options, ini keys, markers.

Kept cheap to import: pydantic, sqlite3 and the orchestration code load only
when batchflow is switched on, so an installed but unused plugin costs close
to nothing and changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import (
    ALONE_ENV,
    BATCHES_INI,
    BATCHES_INI_HELP,
    COV_OFF,
    HTML_OFF,
    OPTIONS,
    SWITCHES,
    Option,
    is_auto_quarantine,
)

if TYPE_CHECKING:
    import argparse

    from .bench import Bench
    from .orchestrator import Role
    from .settings import RawValue, Settings

_ORCHESTRATOR_NAME = "batchflow-orchestrator"
_XDIST_HOOKS_NAME = "batchflow-xdist"
_OUTPUT_LINES_NAME = "batchflow-output-lines"
_LAST_FAILED_NAME = "batchflow-last-failed"
_JUNIT_NAME = "batchflow-junitxml"
_COMPAT_NAME = "batchflow-benchmark-compat"

_MARKERS = (
    "batch(name): put the test (or class/module via pytestmark) in the named batchflow batch; "
    "beats the batchflow_batches lines.",
    "depends_on(*targets): run only after these tests passed, else skip; a target is a test "
    "name in the same module, a node id, or a parametrized base name (all its instances).",
    "locks(*names): tests holding a common lock never run at the same time.",
    "reruns(n): rerun this test up to n times when it fails (batchflow); beats the batch "
    "line's reruns= and --batchflow-reruns.",
    "resources(memory=SIZE, cpus=N): what the test needs while it runs (e.g. memory='2GB'), "
    "for batchflow's memory-aware scheduling (the larger of this and its measured peak "
    "counts).",
)
_DEPENDENCY_MARKER = (
    "dependency(name=None, depends=[], scope='module'): pytest-dependency's marker, "
    "honoured by batchflow."
)
_BENCHMARK_MARKER = (
    "benchmark(min_rounds=5, max_time=1.0, disable_gc=False, warmup=True): pytest-benchmark's "
    "marker, honoured by batchflow's compatible benchmark fixture."
)
_PATH_FIELDS = frozenset({"json_path", "html_path", "junit_path", "history_path"})
#: xdist modes batchflow's scheduler replaces: they only balance load.
_REPLACED_DIST_MODES = frozenset({"load", "worksteal"})


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Bench:
    """Time a function: ``result = bench(function, *args, **kwargs)``.

    Calibrated rounds, statistics and baselines under ``--batchflow``; without
    it the function is called once and nothing is measured.
    """
    from .bench import Bench, BenchOptions

    item = request.node
    assert isinstance(item, pytest.Item)
    orchestrator = request.config.pluginmanager.get_plugin(_ORCHESTRATOR_NAME)
    if orchestrator is None:
        return Bench(item, BenchOptions(), active=False)
    return Bench(item, orchestrator.bench_options, active=True)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("batchflow", "batch jobs, dependencies and run history (batchflow)")
    for option in OPTIONS:
        if option.is_flag:
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.dest, help=option.help
            )
            parser.addini(option.ini, help=option.help, type="bool", default=None)
        else:
            group.addoption(
                option.flag,
                action="append" if option.repeatable else "store",
                default=None,
                dest=option.dest,
                help=option.help,
                metavar=option.metavar,
            )
            parser.addini(option.ini, help=option.help, type=_ini_type(option), default=None)
    parser.addini(BATCHES_INI, help=BATCHES_INI_HELP, type="linelist", default=[])


#: Options whose value may be a number, and which: pytest 9's native TOML
#: (``[tool.pytest]``) checks a value's type, and from pytest 9.2 an ini key
#: may take a number as well as a string (``batchflow_reruns = 2``). String
#: formats give the text as written (``str`` comes first), validated as
#: every other value is.
_NUMBERS: dict[str, type] = {
    "reruns": int,
    "reruns_delay": float,
    "flaky_window": int,
    "history_runs": int,
    "quarantine_release": int,
    "probe": int,
    "cov_fail_under": float,
    "bench_compare": int,
    "bench_max_time": float,
    "bench_min_rounds": int,
    "max_memory": int,
    "test_memory_limit": int,
    "leak_threshold": int,
}


def _ini_type(option: Option) -> Any:
    number = _NUMBERS.get(option.field)
    if number is None or pytest.version_tuple < (9, 2):
        return "string"
    return str | number


def _cov_source(item: str, base: Path) -> str:
    """One --batchflow-cov source: a folder as an absolute path (relative to
    ``base``, where the value was written; ``~`` expanded), else a package name
    as it is. With a slash or a ``~`` it can only be a folder: made absolute
    even when there is none, for the settings to name the folder they miss."""
    expanded = os.path.expanduser(item)
    folder = base / expanded
    if item and (folder.is_dir() or expanded != item or "/" in item or "\\" in item):
        return str(folder)
    return item


def _ini_source(config: pytest.Config, option: Option) -> str:
    """Where an ini value came from, for messages: ``-o`` or the ini file's name."""
    for override in getattr(config.option, "override_ini", None) or ():
        if override.partition("=")[0].strip() == option.ini:
            return "-o"
    return config.inipath.name if config.inipath else "ini"


def _getini(config: pytest.Config, option: Option) -> object:
    """pytest parses typed ini keys itself; say which key a bad value was in."""
    toml = config.inipath is not None and config.inipath.suffix == ".toml"
    try:
        value = config.getini(option.ini)
    except (ValueError, TypeError, pytest.UsageError, pytest.PytestDeprecationWarning) as error:
        # pytest >= 9.1 raises UsageError; its deprecation of a list where a
        # string is due (PytestRemovedIn10Warning), under -W error, is raised too.
        where = _ini_source(config, option)
        example = option.example
        if toml and not option.is_flag and not example.startswith('"'):
            example = f'"{example}"'
        if isinstance(error, Warning):
            reason = (
                "pytest deprecates a value that is not a string here (PytestRemovedIn10Warning)"
            )
        else:
            reason = " ".join(str(error).split())
            if config.inipath is not None:  # pytest's TOML errors name the file: once is enough
                reason = reason.removeprefix(f"{config.inipath}: ")
        raise pytest.UsageError(
            f"batchflow: {option.ini} ({where}): {reason}; e.g. {option.ini} = {example}"
        ) from None
    if not option.is_flag and (isinstance(value, bool) or (toml and value in ("True", "False"))):
        # A TOML boolean where none is due (pytest may have made it a string):
        # named in messages as it was written.
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)  # a TOML number, validated as the same text would be
    return value


def _cov_off(value: object) -> bool:
    """``--batchflow-cov=off``: no coverage for this run, whatever the ini file says."""
    return isinstance(value, str) and value.strip().lower() == COV_OFF


def _cli_value(config: pytest.Config, option: Option, early: bool) -> object:
    """The command line's value; ``early``: before pytest parsed all arguments."""
    if early:
        return getattr(config.known_args_namespace, option.dest, None)
    return config.getoption(option.dest)


def _raw_values(config: pytest.Config, early: bool = False) -> dict[str, RawValue]:
    """Each setting from the first source that gives it: command line, env, ini.

    Relative paths are taken from where they were written: the invocation
    directory for the command line and environment, the ini file's folder for ini.
    An empty environment variable counts as unset.
    """
    from .settings import RawValue

    inidir = config.inipath.parent if config.inipath else config.rootpath
    raw: dict[str, RawValue] = {}
    for option in OPTIONS:
        cli_value = _cli_value(config, option, early)
        env_value = os.environ.get(option.env) or None
        ini_value = _getini(config, option)
        if isinstance(cli_value, list):  # a repeatable flag
            cli_value = ",".join(cli_value)
        if cli_value is not None:
            given = RawValue(cli_value, "cli", "command line")
        elif env_value is not None:
            given = RawValue(env_value, "env", "environment")
        elif ini_value is not None:
            # Native TOML may hold a list where a comma-separated string is meant.
            if isinstance(ini_value, list):
                ini_value = ",".join(str(value) for value in ini_value)
            given = RawValue(ini_value, "ini", _ini_source(config, option))
        else:
            continue
        value = given.value
        base = inidir if given.origin == "ini" else config.invocation_params.dir
        if (
            option.field in _PATH_FIELDS
            and isinstance(value, str)
            and value.strip()
            and not (option.field == "html_path" and value.strip().lower() == HTML_OFF)
        ):
            given = replace(given, value=str(base / os.path.expanduser(value)))
        elif option.field == "cov_source" and isinstance(value, str) and not _cov_off(value):
            # A directory relative to where it was written; else a package name.
            items = [item.strip() for item in value.replace("\n", ",").split(",")]
            given = replace(given, value=",".join(_cov_source(item, base) for item in items))
        elif option.field == "quarantine" and isinstance(value, str):
            # Files relative to where the value was written; auto[:SCORE] as it is.
            items = [item.strip() for item in value.split(",")]
            given = replace(
                given,
                value=",".join(
                    item
                    if not item or is_auto_quarantine(item)
                    else str(base / os.path.expanduser(item))
                    for item in items
                ),
            )
        raw[option.field] = given
    for field, name in (("history_path", "history.sqlite"), ("html_path", "report.html")):
        if field not in raw:
            default = config.rootpath / ".batchflow" / name
            raw[field] = RawValue(str(default), "default", "default")
    return raw


def _wants_batchflow(config: pytest.Config, early: bool = False) -> bool:
    """Whether any source mentions a switch: only then is anything heavy loaded."""
    if os.environ.get(ALONE_ENV):
        return False  # a probe's run of one test alone (see probing.py)
    return any(
        _cli_value(config, option, early) is not None
        or os.environ.get(option.env)
        or _getini(config, option) is not None
        for option in SWITCHES
    )


class _IgnoredOptions:
    """Says, after the summary, which command-line options did nothing."""

    def __init__(self, flags: list[str]) -> None:
        self.flags = flags

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(
            f"batchflow: warning: {', '.join(self.flags)} given without --batchflow, so "
            "ignored; add --batchflow (or set BATCHFLOW=1, or batchflow = true in the ini file)",
            yellow=True,
        )


#: The parser pytest read the command line with (:func:`pytest_load_initial_conftests`).
_PARSER_KEY = pytest.StashKey[pytest.Parser]()


def _rereadable(args: list[str], where: Path) -> list[str]:
    """The arguments, each ``@file`` (pytest 8.2+) made absolute from ``where``,
    the directory pytest started in. Regular files only: pytest has read a
    pipe or ``@/dev/stdin`` already, and a second read would wait for a second
    end of input; those are left out."""
    readable: list[str] = []
    for arg in args:
        if arg[:1] == "@":
            path = where / arg[1:]
            if not path.is_file():
                continue
            arg = f"@{path}"
        readable.append(arg)
    return readable


def _may_set_an_option(arg: str) -> bool:
    """Whether a command-line argument may give a batchflow option: the parse
    again runs every plugin's argparse actions and types a second time (one
    that counts, or opens a file, would see it), so it is left to the runs that
    need it; a path or ``-k`` expression naming batchflow does not."""
    if arg[:1] == "@":
        return pytest.version_tuple >= (8, 2)  # pytest before 8.2 takes it for a path
    return any(
        option.flag in arg or f"{option.ini}=" in arg
        for option in OPTIONS
        if option not in SWITCHES
    )


def _command_line(config: pytest.Config) -> argparse.Namespace | None:
    """The options the command line itself gave (not ``addopts`` nor
    ``PYTEST_ADDOPTS``), read by pytest's own parser: every spelling pytest
    takes (``-o k=v``, ``-qok=v``, ``--override-ini=k=v``, ``@file`` from
    pytest 8.2) reads as pytest read it. None when nothing in it may concern
    batchflow, or it cannot be read again (pytest refused it already, or
    ``--help`` stops the parse)."""
    parser = config.stash.get(_PARSER_KEY, None)
    # pytest.main() takes paths as well as strings.
    args = [os.fspath(arg) for arg in config.invocation_params.args]
    if parser is None or not any(map(_may_set_an_option, args)):
        return None
    try:
        return parser.parse_known_args(_rereadable(args, config.invocation_params.dir))
    except Exception:  # pytest 8.0's --help raises PrintHelp here: no line then
        return None


def _warn_of_options_ignored(config: pytest.Config) -> None:
    """Options typed on the command line while nothing switches batchflow on do
    nothing: say so (once, on the process the user started), rather than let
    ``--batchflow-json`` write no file without a word. Not those of ``addopts``
    or ``PYTEST_ADDOPTS``, which a project may set for the runs that switch
    batchflow on; a line, not a warning, which ``filterwarnings = error``
    would make an internal error."""
    if os.environ.get(ALONE_ENV) or hasattr(config, "workerinput"):
        return
    given = _command_line(config)
    if given is None:
        return
    flags = [
        option.flag
        for option in OPTIONS
        if option not in SWITCHES and getattr(given, option.dest, None) is not None
    ]
    overridden = {
        value.partition("=")[0].strip() for value in getattr(given, "override_ini", None) or ()
    }
    flags += [
        f"-o {option.ini}"
        for option in OPTIONS
        if option not in SWITCHES and option.ini in overridden
    ]
    if flags:
        config.pluginmanager.register(_IgnoredOptions(flags), "batchflow-ignored-options")


#: The settings load_settings validated for this session, and the raw values
#: they came from (where each was written, for the outputs' messages).
_SETTINGS_KEY = pytest.StashKey["Settings"]()
_RAW_KEY = pytest.StashKey["dict[str, RawValue]"]()


def load_settings(config: pytest.Config) -> Settings:
    """Resolve and validate all settings; a bad value is a pytest.UsageError.

    Once a session: ``-n auto`` asks for them (xdist's command-line hook)
    before pytest_configure does.
    """
    settings = config.stash.get(_SETTINGS_KEY, None)
    if settings is not None:
        return settings
    from .gcpause import collector_paused
    from .settings import SettingsError, parse_settings

    raw = _raw_values(config)
    inifile = str(config.inipath) if config.inipath else "no ini file"
    try:
        # Importing pydantic and building the models allocate only what lives
        # on: without the collections they trigger, xdist starts its workers
        # some 15 ms sooner.
        with collector_paused():
            settings = parse_settings(raw, config.getini(BATCHES_INI), inifile)
    except SettingsError as error:
        raise pytest.UsageError(f"batchflow: {error}") from None
    config.stash[_SETTINGS_KEY] = settings
    config.stash[_RAW_KEY] = raw
    return settings


#: Other plugins' output options (their ``config.option`` names) and how to name them.
_OTHER_OUTPUTS = {"xmlpath": "pytest's --junitxml", "htmlpath": "pytest-html's --html"}


def _check_outputs(config: pytest.Config, settings: Settings) -> None:
    """A run that writes its outputs: each can be written, replaces no file
    batchflow did not write, and shares its file with no other output; a
    problem is a usage error before anything is collected."""
    from .settings import SettingsError
    from .validation import check_outputs

    others = {}
    for name, whose in _OTHER_OUTPUTS.items():
        value = getattr(config.option, name, None)
        if isinstance(value, str) and value:
            # Relative to where pytest started, as those plugins take them.
            others[config.invocation_params.dir / os.path.expanduser(value)] = whose
    try:
        raw = config.stash[_RAW_KEY]
        check_outputs(raw, settings, others)
    except SettingsError as error:
        raise pytest.UsageError(f"batchflow: {error}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> None:
    """Start measuring coverage before conftests import the measured code,
    and before other plugins' hooks here (pytest-django sets Django up in
    one, importing the project's apps), as pytest-cov does.

    Only with --batchflow and a coverage source; pytest_configure validates
    every setting later and stops this measurement on a usage error. Also
    keeps pytest's parser, for the line on options given without the switch.
    """
    early_config.stash[_PARSER_KEY] = parser
    if not _wants_batchflow(early_config, early=True):
        return
    raw = _raw_values(early_config, early=True)
    if "cov_source" not in raw or _cov_off(raw["cov_source"].value):
        return
    from .coverage_measure import start_early

    _pythonpath_first(early_config)
    start_early(early_config, str(raw["cov_source"].value).split(","))


def _pythonpath_first(config: pytest.Config) -> None:
    """pytest before 8.4 puts its ``pythonpath`` on ``sys.path`` in a hook of
    this same event, after ours: coverage.py's plugins and sources named in
    its configuration may live there. Put them there now, and take back at
    the end what pytest did not."""
    if pytest.version_tuple >= (8, 4):
        return
    import sys

    added = [str(path) for path in config.getini("pythonpath") if str(path) not in sys.path]
    sys.path[:0] = added

    def take_back() -> None:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)

    config.add_cleanup(take_back)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    if not _wants_batchflow(config):
        _warn_of_options_ignored(config)
        return
    settings = _worker_settings(config) or load_settings(config)
    if not settings.enabled:
        return
    from .gcpause import register_fast_exit

    # pytest-testmon keeps its SQLite database open to the process's end, in
    # write-ahead-log mode: only the collection of its objects at exit closes
    # it and folds the log into .testmondata. Frozen, its data would stay in
    # .testmondata-wal, which a CI cache of .testmondata leaves behind.
    testmon = getattr(config, "testmon_data", None) is not None
    register_fast_exit(wanted=not settings.no_fast_exit and not testmon)
    if not config.pluginmanager.has_plugin("dependency"):
        config.addinivalue_line("markers", _DEPENDENCY_MARKER)
    from .orchestrator import Orchestrator, OutputLines

    role: Role = "serial"
    workers = 1
    if hasattr(config, "workerinput"):
        role = "worker"
        # The controller decides which failures are reruns (and counts -x and
        # --maxfail from its relabelled reports); a worker counting its own raw
        # failures would stop at a failure that is only going to be rerun.
        config.option.maxfail = 0
    elif _xdist_distributes(config):
        workers = _check_xdist_mode(config)
        if settings.plan_only:
            # A plan runs nothing: collect here, in one process, as --collect-only
            # does under xdist, and show the lower bound for the workers asked for.
            config.option.dist, config.option.tx = "no", []
            if config.pluginmanager.has_plugin("dsession"):
                config.pluginmanager.unregister(name="dsession")
        else:
            role = "controller"
    orchestrator = Orchestrator(config, settings, role, workers)
    if orchestrator.recording:
        _check_outputs(config, settings)
    if settings.cov_source:
        from .coverage_measure import set_up

        orchestrator.coverage_rundir = set_up(config, orchestrator)
    config.pluginmanager.register(orchestrator, _ORCHESTRATOR_NAME)
    if role != "worker":
        config.pluginmanager.register(OutputLines(orchestrator), _OUTPUT_LINES_NAME)
        if config.pluginmanager.has_plugin("lfplugin") and not settings.plan_only:
            from .lastfailed import LastFailedKept

            config.pluginmanager.register(LastFailedKept(config, orchestrator), _LAST_FAILED_NAME)
        if getattr(config.option, "xmlpath", None):
            from .junit_reruns import RerunsLeftOut

            config.pluginmanager.register(RerunsLeftOut(config, orchestrator), _JUNIT_NAME)
    if settings.bench_compat:
        from .bench import BenchmarkCompat

        if not config.pluginmanager.has_plugin("benchmark"):
            config.addinivalue_line("markers", _BENCHMARK_MARKER)
        config.pluginmanager.register(BenchmarkCompat(orchestrator.bench_options), _COMPAT_NAME)
    if role == "controller":
        from .xdist_scheduler import XdistHooks

        config.pluginmanager.register(XdistHooks(orchestrator), _XDIST_HOOKS_NAME)


#: Why ``-n auto`` chose its number of workers, for the header.
AUTO_WORKERS_KEY = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Generator[None, int, int]:
    """``-n auto`` under batchflow: no more workers than the memory budget holds.

    xdist's answer (the CPU count, or PYTEST_XDIST_AUTO_NUM_WORKERS) comes
    first; an explicit PYTEST_XDIST_AUTO_NUM_WORKERS is left as it is.
    """
    cpus = yield
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not _wants_batchflow(config):
        return cpus
    settings = load_settings(config)
    if not settings.enabled or settings.no_resources:
        return cpus
    from .resources import auto_workers, available_memory, describe_auto_workers

    budget = settings.memory_budget(available_memory())
    count = auto_workers(settings, cpus, budget)
    config.stash[AUTO_WORKERS_KEY] = describe_auto_workers(count, budget)
    return count.workers


def _worker_settings(config: pytest.Config) -> Settings | None:
    """On an xdist worker: the settings the controller validated, sent as plain values.

    The same sources would give the same values; taking them saves each
    worker importing pydantic and validating them again.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    from .xdist_scheduler import SETTINGS_KEY

    plain = workerinput.get(SETTINGS_KEY)
    if plain is None:
        return None
    from .settings import from_plain

    return from_plain(plain)


def _xdist_distributes(config: pytest.Config) -> bool:
    """Whether xdist will run this session on workers (its own test, whichever
    of its configure hook and ours runs first)."""
    return (
        config.pluginmanager.has_plugin("xdist")
        and not config.option.collectonly
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
    )


def _check_xdist_mode(config: pytest.Config) -> int:
    """Refuse the xdist modes batchflow cannot honour; return the number of workers."""
    dist = config.getoption("dist")
    if dist not in _REPLACED_DIST_MODES:
        raise pytest.UsageError(
            f"batchflow: --dist {dist} cannot be combined with --batchflow, whose scheduler "
            "decides where each test runs; drop --dist (use -n alone), or use batch lines, "
            "@pytest.mark.locks or mode=serial to keep tests apart"
        )
    return len(config.getoption("tx") or ()) or 1


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in (
        _COMPAT_NAME,
        _LAST_FAILED_NAME,
        _JUNIT_NAME,
        _OUTPUT_LINES_NAME,
        _XDIST_HOOKS_NAME,
        _ORCHESTRATOR_NAME,
    ):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            if hasattr(plugin, "close"):
                plugin.close()
            config.pluginmanager.unregister(plugin)
