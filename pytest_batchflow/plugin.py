"""The ``pytest11`` entry point: options, ini keys, markers.

Kept cheap to import: pydantic, sqlite3 and the orchestration code load only
when batchflow is switched on, so an installed but unused plugin costs close
to nothing and changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .settings import RawValue, Settings

_BATCHES_INI = "batchflow_batches"
_ORCHESTRATOR_NAME = "batchflow-orchestrator"

_MARKERS = (
    "batch(name): put the test (or class/module via pytestmark) in the named batchflow batch; "
    "beats the batchflow_batches lines.",
    "depends_on(*targets): run only after these tests passed, else skip; a target is a test "
    "name in the same module, a node id, or a parametrized base name (all its instances).",
    "locks(*names): tests holding a common lock never run at the same time.",
)
_DEPENDENCY_MARKER = (
    "dependency(name=None, depends=[], scope='module'): pytest-dependency's marker, "
    "honoured by batchflow."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import BATCHES_INI, BATCHES_INI_HELP, OPTIONS

    group = parser.getgroup("batchflow", "batch jobs, dependencies and run history (batchflow)")
    for option in OPTIONS:
        dest = option.flag.lstrip("-").replace("-", "_")
        if option.is_flag:
            group.addoption(
                option.flag, action="store_true", default=None, dest=dest, help=option.help
            )
        else:
            group.addoption(
                option.flag,
                default=None,
                dest=dest,
                help=option.help,
                metavar=option.field.split("_")[0].upper(),
            )
        if option.is_flag:
            parser.addini(option.ini, help=option.help, type="bool", default=None)
        else:
            parser.addini(option.ini, help=option.help, type="string", default=None)
    parser.addini(BATCHES_INI, help=BATCHES_INI_HELP, type="linelist", default=[])


_PATH_FIELDS = frozenset({"json_path", "history_path"})


def _raw_values(config: pytest.Config) -> dict[str, RawValue]:
    """Each setting from the first source that gives it: command line, env, ini.

    Relative paths are taken from where they were written: the invocation
    directory for the command line and environment, the ini file's folder for ini.
    """
    from .options import OPTIONS
    from .settings import RawValue

    inidir = config.inipath.parent if config.inipath else config.rootpath
    inifile = config.inipath.name if config.inipath else "ini"
    raw: dict[str, RawValue] = {}
    for option in OPTIONS:
        dest = option.flag.lstrip("-").replace("-", "_")
        cli_value = config.getoption(dest)
        env_value = os.environ.get(option.env)
        ini_value = _getini(config, option.ini)
        if cli_value is not None:
            given = RawValue(cli_value, "cli", "command line")
        elif env_value is not None:
            given = RawValue(env_value, "env", "environment")
        elif ini_value is not None:
            given = RawValue(ini_value, "ini", inifile)
        else:
            continue
        value = given.value
        if option.field in _PATH_FIELDS and isinstance(value, str) and value.strip():
            base = inidir if given.origin == "ini" else config.invocation_params.dir
            given = replace(given, value=str(base / os.path.expanduser(value)))
        raw[option.field] = given
    if "history_path" not in raw:
        default = config.rootpath / ".batchflow" / "history.sqlite"
        raw["history_path"] = RawValue(str(default), "default", "default")
    return raw


def _getini(config: pytest.Config, name: str) -> object:
    """pytest parses bool ini keys itself; say which key a bad one was."""
    try:
        return config.getini(name)
    except (ValueError, pytest.UsageError) as error:  # pytest >= 9.1 raises UsageError
        where = config.inipath.name if config.inipath else "ini"
        raise pytest.UsageError(
            f"batchflow: {name} ({where}): {error}; e.g. {name} = true"
        ) from None


def _wants_batchflow(config: pytest.Config) -> bool:
    """Whether any source mentions the switch: only then is anything heavy loaded."""
    return any(
        config.getoption(dest) is not None
        or variable in os.environ
        or _getini(config, ini) is not None
        for dest, variable, ini in (
            ("batchflow", "BATCHFLOW", "batchflow"),
            ("batchflow_plan", "BATCHFLOW_PLAN", "batchflow_plan"),
        )
    )


def load_settings(config: pytest.Config) -> Settings:
    """Resolve and validate all settings; a bad value is a pytest.UsageError."""
    from .settings import SettingsError, parse_settings

    raw = _raw_values(config)
    inifile = str(config.inipath) if config.inipath else "no ini file"
    try:
        return parse_settings(raw, config.getini(_BATCHES_INI), inifile)
    except SettingsError as error:
        raise pytest.UsageError(f"batchflow: {error}") from None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    if not _wants_batchflow(config):
        return
    settings = load_settings(config)
    if not settings.enabled:
        return
    if not config.pluginmanager.has_plugin("dependency"):
        config.addinivalue_line("markers", _DEPENDENCY_MARKER)
    xdist_words = _xdist_request(config)
    if xdist_words:
        raise pytest.UsageError(
            f"batchflow: --batchflow does not run under pytest-xdist yet ({xdist_words}); "
            "drop -n/--dist, or drop --batchflow"
        )
    from .orchestrator import Orchestrator

    config.pluginmanager.register(Orchestrator(config, settings), _ORCHESTRATOR_NAME)


def _xdist_request(config: pytest.Config) -> str:
    """How the user asked for xdist workers, in their words; empty if they did not."""
    if not config.pluginmanager.has_plugin("xdist"):
        return ""
    words = []
    if config.getoption("numprocesses", None):
        words.append(f"-n {config.getoption('numprocesses')}")
    dist = config.getoption("dist", "no")
    if dist not in (None, "no") and not words:  # -n alone implies --dist load
        words.append(f"--dist {dist}")
    return " ".join(words)


def pytest_unconfigure(config: pytest.Config) -> None:
    orchestrator = config.pluginmanager.get_plugin(_ORCHESTRATOR_NAME)
    if orchestrator is not None:
        orchestrator.close()
        config.pluginmanager.unregister(orchestrator)
