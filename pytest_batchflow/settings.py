"""Every batchflow setting of a run, as plain frozen values.

The values are validated once, by the pydantic models of
:mod:`pytest_batchflow.validation` (a bad value becomes a :class:`SettingsError`
that names the key, where the value came from, what is wrong and a value that
would work). An xdist worker receives the controller's validated settings as
plain builtins in ``workerinput`` (:func:`to_plain`, :func:`from_plain`), so
that it neither imports pydantic nor validates the same values again: this
module imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from .core.flaky import DEFAULT_WINDOW
from .core.plan import DEFAULT_BATCH
from .core.resources import parse_memory_budget
from .options import Option, is_auto_quarantine

__all__ = [
    "BATCH_LINE_KEYS",
    "BatchLine",
    "Quarantine",
    "RawValue",
    "Settings",
    "SettingsError",
    "from_plain",
    "parse_batch_line",
    "parse_settings",
    "to_plain",
]


class SettingsError(ValueError):
    """A bad option, ini or batch-line value; the message is one line for the user."""


@dataclass(frozen=True)
class BatchLine:
    """One ``batchflow_batches`` line: a named batch and its execution policy."""

    name: str
    kind: Literal["test", "benchmark"] = "test"
    paths: tuple[str, ...] = ()
    markers: str | None = None
    after: tuple[str, ...] = ()
    mode: Literal["parallel", "serial", "exclusive"] = "parallel"
    workers: int | None = None
    priority: int = 0
    reruns: int | None = None
    timeout: float | None = None
    maxfail: int | None = None
    cov: bool = True
    cov_fail_under: float | None = None
    bench_fail: str | None = None
    on_upstream_failure: Literal["skip", "run"] = "skip"


BATCH_LINE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(BatchLine) if f.name != "name")

#: The memory budget unless --batchflow-max-memory says: a share of what is available.
DEFAULT_MAX_MEMORY = "75%"
#: A worker growing by this much over its tests is named as leaking.
DEFAULT_LEAK_THRESHOLD = 100 * 1024**2
#: The runs of each test whose attempts the history store keeps: the
#: flakiness window (20) and more, for ``batchflow flaky --window`` and
#: ``batchflow history`` to look further back.
DEFAULT_HISTORY_RUNS = 50

#: The score from which ``auto`` quarantines a test, unless ``auto:SCORE`` says.
DEFAULT_QUARANTINE_SCORE = 0.3


def _check_readable(path: Path) -> None:
    """A quarantine file must be UTF-8 text, as the node ids pytest prints are."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path} is not UTF-8 text (byte {data[error.start]:#04x} on line {line}); "
            "save it as UTF-8"
        ) from None


@dataclass(frozen=True)
class Quarantine:
    """Where quarantined tests come from: files of node ids, and the automatic score."""

    files: tuple[Path, ...] = ()
    auto: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Quarantine:
        files: list[Path] = []
        auto = None
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                raise ValueError("empty item in the list")
            if is_auto_quarantine(item):
                text = item.partition(":")[2].strip() or str(DEFAULT_QUARANTINE_SCORE)
                try:
                    auto = float(text)
                except ValueError:
                    raise ValueError(f"auto:{text}: the score is not a number") from None
                if not 0 < auto <= 1:
                    raise ValueError(f"auto:{text}: the score must be above 0 and at most 1")
            elif not Path(item).is_file():
                raise ValueError(f"no file {item} (a file of node ids, or auto[:SCORE])")
            else:
                _check_readable(Path(item))
                files.append(Path(item))
        return cls(files=tuple(files), auto=auto)

    def node_ids(self) -> dict[str, Path]:
        """The node ids the files list (blank lines and ``#`` comments skipped)."""
        listed: dict[str, Path] = {}
        for path in self.files:
            for line in path.read_text(encoding="utf-8").splitlines():
                nodeid = line.split("#", 1)[0].strip()
                if nodeid:
                    listed.setdefault(nodeid, path)
        return listed


@dataclass(frozen=True)
class Settings:
    """Every batchflow setting of one run, resolved and validated."""

    history_path: Path
    enabled: bool = False
    plan_only: bool = False
    select: tuple[str, ...] | None = None
    json_path: Path | None = None
    html_path: Path | None = None
    html_passed_output: bool = False
    junit_path: Path | None = None
    no_history: bool = False
    history_runs: int = DEFAULT_HISTORY_RUNS
    missing_dependency: Literal["error", "skip"] = "error"
    reruns: int = 0
    reruns_delay: float = 0.0
    reruns_only: re.Pattern[str] | None = None
    reruns_except: re.Pattern[str] | None = None
    strict_flaky: bool = False
    quarantine: Quarantine | None = None
    quarantine_release: int = 3
    flaky_window: int = DEFAULT_WINDOW
    probe: int | None = None
    cov_source: tuple[str, ...] = ()
    cov_context: Literal["batch", "test"] = "batch"
    cov_fail_under: float | None = None
    bench_compare: Literal["last"] | int | None = None
    bench_fail: str | None = None
    bench_max_time: float = 1.0
    bench_min_rounds: int = 5
    bench_disable_gc: bool = False
    bench_compat: bool = False
    no_resources: bool = False
    max_memory: str = DEFAULT_MAX_MEMORY
    test_memory_limit: int | None = None
    test_memory_fail: bool = False
    leak_threshold: int = DEFAULT_LEAK_THRESHOLD
    keep_order: bool = False
    no_fast_exit: bool = False
    batches: tuple[BatchLine, ...] = ()

    def memory_budget(self, available: int) -> int:
        """The bytes of --batchflow-max-memory, given the memory available now."""
        return parse_memory_budget(self.max_memory, available)

    @property
    def policies(self) -> tuple[BatchLine, ...]:
        """The batch lines plus the implicit ``default`` batch unless a line names it."""
        if any(line.name == DEFAULT_BATCH for line in self.batches):
            return self.batches
        return (*self.batches, BatchLine(name=DEFAULT_BATCH))


_PATH_FIELDS = frozenset({"history_path", "json_path", "html_path", "junit_path"})
_PATTERN_FIELDS = frozenset({"reruns_only", "reruns_except"})
_TUPLE_FIELDS = frozenset({"select", "cov_source"})
_LINE_TUPLE_FIELDS = frozenset({"paths", "after"})


def _plain_line(line: BatchLine) -> dict[str, Any]:
    return {key: list(v) if isinstance(v, tuple) else v for key, v in vars(line).items()}


def _line_from_plain(plain: Mapping[str, Any]) -> BatchLine:
    values: dict[str, Any] = {
        key: tuple(value) if key in _LINE_TUPLE_FIELDS else value for key, value in plain.items()
    }
    return BatchLine(**values)


def to_plain(settings: Settings) -> dict[str, Any]:
    """The settings as builtins only (what execnet carries to a worker)."""
    plain: dict[str, Any] = {}
    for name, value in vars(settings).items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, re.Pattern):
            value = value.pattern
        elif isinstance(value, Quarantine):
            value = {"files": [str(path) for path in value.files], "auto": value.auto}
        elif name == "batches":
            value = [_plain_line(line) for line in value]
        elif isinstance(value, tuple):
            value = list(value)
        plain[name] = value
    return plain


def from_plain(plain: Mapping[str, Any]) -> Settings:
    """The settings :func:`to_plain` gave, as they were."""
    values: dict[str, Any] = {}
    for name, value in plain.items():
        if value is None:
            pass
        elif name in _PATH_FIELDS:
            value = Path(value)
        elif name in _PATTERN_FIELDS:
            value = re.compile(value)
        elif name in _TUPLE_FIELDS:
            value = tuple(value)
        elif name == "quarantine":
            value = Quarantine(files=tuple(Path(p) for p in value["files"]), auto=value["auto"])
        elif name == "batches":
            value = tuple(_line_from_plain(line) for line in value)
        values[name] = value
    return Settings(**values)


@dataclass(frozen=True)
class RawValue:
    """A setting's raw value and where it came from, for error messages.

    ``origin`` is ``cli``, ``env``, ``ini`` or ``default``; ``source`` says
    it for people (``command line``, ``environment``, ``pytest.ini``).
    """

    value: Any
    origin: Literal["cli", "env", "ini", "default"]
    source: str

    def spelling(self, option: Option) -> str:
        """The option's name as the user wrote it."""
        return {"cli": option.flag, "env": option.env}.get(self.origin, option.ini)

    def example(self, option: Option) -> str:
        """A good value, written the way this source takes it."""
        if self.origin == "env":
            return f"{option.env}={'1' if option.is_flag else option.example}"
        if self.origin == "cli":
            return option.flag if option.is_flag else f"{option.flag}={option.example}"
        return f"{option.ini} = {option.example}"


def parse_batch_line(line: str) -> BatchLine:
    """Parse ``NAME: key=value key="a value" ...``; raise SettingsError."""
    from .validation import parse_batch_line as parse

    return parse(line)


def parse_settings(
    raw: Mapping[str, RawValue], batch_lines: Sequence[str], lines_source: str
) -> Settings:
    """Validate raw values (by ``Option.field``) and batch lines into Settings."""
    from .validation import parse_settings as parse

    return parse(raw, batch_lines, lines_source)
