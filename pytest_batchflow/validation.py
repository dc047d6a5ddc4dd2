"""Validation of the settings: options, ini keys and batch lines, by pydantic models.

Every value is looked up command line first, then environment, then ini; a
bad value becomes a :class:`~pytest_batchflow.settings.SettingsError` that
names the key, where the value came from, what is wrong and a value that
would work. The models hold the same fields as the plain frozen values of
:mod:`pytest_batchflow.settings` they produce; only the process that parses
the settings imports this module (an xdist worker gets them from the
controller).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .core.bench import MAX_ROUNDS, parse_gate
from .core.flaky import DEFAULT_WINDOW
from .core.markexpr import MarkerExpression, MarkerExpressionError
from .core.plan import DEFAULT_BATCH, PlanError, order_batches
from .core.resources import parse_memory_budget, parse_size
from .options import BATCHES_INI, COV_OFF, GATE_ACCEPT, GATE_OFF, HTML_OFF, OPTIONS, Option
from .settings import (
    BATCH_LINE_KEYS,
    DEFAULT_HISTORY_RUNS,
    DEFAULT_LEAK_THRESHOLD,
    DEFAULT_MAX_MEMORY,
    BatchLine,
    Quarantine,
    RawValue,
    Settings,
    SettingsError,
)

__all__ = ["check_outputs", "parse_batch_line", "parse_settings"]

BATCH_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
BATCH_EXAMPLE = "unit: paths=tests/unit after=smoke mode=parallel"


def _valid_gate(value: str | None, words: tuple[str, ...] = (GATE_OFF,)) -> str | None:
    """A benchmark gate (a batch line's; ``words`` the run's too), checked where
    it is written; a word (``off``) in lower case, as ``--batchflow-cov``'s."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in words:
        return word
    parse_gate(value)
    return value


#: A batch line's keys whose values are words of a fixed set.
_LINE_CHOICES = frozenset({"kind", "mode", "on_upstream_failure"})


class _BatchLineModel(BaseModel):
    """Validates a batch line into a :class:`~pytest_batchflow.settings.BatchLine`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=BATCH_NAME_PATTERN)]
    kind: Literal["test", "benchmark"] = "test"
    paths: tuple[str, ...] = ()
    markers: str | None = None
    after: tuple[str, ...] = ()
    mode: Literal["parallel", "serial", "exclusive"] = "parallel"
    workers: Annotated[int, Field(ge=1)] | None = None
    priority: int = 0
    reruns: Annotated[int, Field(ge=0)] | None = None
    timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    maxfail: Annotated[int, Field(ge=1)] | None = None
    cov: bool = True
    cov_fail_under: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    bench_fail: str | None = None
    on_upstream_failure: Literal["skip", "run"] = "skip"

    @model_validator(mode="before")
    @classmethod
    def _benchmark_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # The choices in any case (mode=Serial), as the settings' are.
        data = {
            key: value.lower() if key in _LINE_CHOICES and isinstance(value, str) else value
            for key, value in data.items()
        }
        # A benchmark runs alone and unmeasured by coverage unless the line says otherwise.
        if data.get("kind") == "benchmark":
            return {"cov": False, "mode": "exclusive", **data}
        return data

    _gate = field_validator("bench_fail")(lambda value: _valid_gate(value))

    @field_validator("markers")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                MarkerExpression.compile(value)
            except MarkerExpressionError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("paths", "after")
    @classmethod
    def _no_empty_items(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item for item in value):
            raise ValueError("empty item in a comma-separated list (no spaces around commas)")
        return value


_LIST_KEYS = frozenset({"paths", "after"})
_KEY_EXAMPLES = {
    "kind": "kind=benchmark",
    "paths": "paths=tests/unit,tests/api/test_*.py",
    "markers": 'markers="db and not slow"',
    "after": "after=smoke,unit",
    "mode": "mode=serial",
    "workers": "workers=2",
    "priority": "priority=10",
    "reruns": "reruns=2",
    "timeout": "timeout=300",
    "maxfail": "maxfail=1",
    "cov": "cov=off",
    "cov_fail_under": "cov_fail_under=80",
    "bench_fail": "bench_fail=median:10%",
    "on_upstream_failure": "on_upstream_failure=run",
}


def parse_batch_line(line: str) -> BatchLine:
    """Parse ``NAME: key=value key="a value" ...``; raise SettingsError."""
    name, colon, rest = line.partition(":")
    name = name.strip()
    if not colon or not name or "=" in name:
        raise SettingsError(f"line {line!r} has no 'NAME:' at its start; e.g. {BATCH_EXAMPLE!r}")
    try:
        words = shlex.split(rest)
    except ValueError as error:
        raise SettingsError(
            f"line {line!r}: {error}; close the quotes around a value with spaces, "
            f"e.g. {_KEY_EXAMPLES['markers']}"
        ) from None
    data: dict[str, Any] = {"name": name}
    for position, word in enumerate(words):
        key, equals, value = word.partition("=")
        if not equals and position and words[position - 1].endswith(","):
            raise SettingsError(
                f"line {line!r}: {word!r} follows a comma and a space; write lists without "
                f"spaces, e.g. {_KEY_EXAMPLES['paths']}"
            )
        if word.startswith("#"):
            raise SettingsError(
                f"line {line!r}: a batch line holds no comment; put it on a line of its own "
                "above, starting with #"
            )
        if not equals or not key:
            raise SettingsError(f"line {line!r}: {word!r} is not key=value; e.g. {BATCH_EXAMPLE!r}")
        if key not in BATCH_LINE_KEYS:
            raise SettingsError(
                f"line {line!r}: unknown key {key!r}; known keys: {', '.join(BATCH_LINE_KEYS)}"
            )
        if key in data:
            raise SettingsError(f"line {line!r}: key {key!r} is given twice")
        data[key] = tuple(value.split(",")) if key in _LIST_KEYS else value
    try:
        model = _BatchLineModel.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "name"
        shown = data.get(key, name)
        if isinstance(shown, tuple):
            shown = ",".join(shown)
        if key == "name":
            raise SettingsError(
                f"line {line!r}: batch name {name!r} must start with an ASCII letter or _ "
                f"and hold only ASCII letters, digits, _ . -; e.g. {BATCH_EXAMPLE!r}"
            ) from None
        raise SettingsError(
            f"line {line!r}: {key}={shown!r}: {_first_sentence(first['msg'])}; "
            f"e.g. {_KEY_EXAMPLES[key]}"
        ) from None
    return BatchLine(**dict(model))


def _first_sentence(message: str) -> str:
    return message.removeprefix("Value error, ").split("\n")[0]


class _SettingsModel(BaseModel):
    """Validates the settings into :class:`~pytest_batchflow.settings.Settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    plan_only: bool = False
    select: tuple[str, ...] | None = None
    json_path: Path | None = None
    html_path: Path | None = None
    html_passed_output: bool = False
    junit_path: Path | None = None
    history_path: Path
    no_history: bool = False
    history_runs: Annotated[int, Field(ge=0)] = DEFAULT_HISTORY_RUNS
    missing_dependency: Literal["error", "skip"] = "error"
    reruns: Annotated[int, Field(ge=0)] = 0
    reruns_delay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    reruns_only: re.Pattern[str] | None = None
    reruns_except: re.Pattern[str] | None = None
    strict_flaky: bool = False
    quarantine: Quarantine | None = None
    quarantine_release: Annotated[int, Field(ge=1)] = 3
    flaky_window: Annotated[int, Field(ge=1)] = DEFAULT_WINDOW
    probe: Annotated[int, Field(ge=2)] | None = None
    cov_source: tuple[str, ...] = ()
    cov_context: Literal["batch", "test"] = "batch"
    cov_fail_under: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    bench_compare: Literal["last"] | Annotated[int, Field(ge=1)] | None = None
    bench_fail: str | None = None
    bench_max_time: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    bench_min_rounds: Annotated[int, Field(ge=1, le=MAX_ROUNDS)] = 5
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

    _gate = field_validator("bench_fail")(lambda value: _valid_gate(value, (GATE_OFF, GATE_ACCEPT)))

    @field_validator("missing_dependency", "cov_context", mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        """A choice in any case, as the yes/no words are (``Skip``, `` test``)."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("bench_compare", mode="before")
    @classmethod
    def _baseline(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "last":
            return "last"
        if isinstance(value, str):
            text = value.strip()
            if not (text.isdigit() and int(text) >= 1):
                raise ValueError(
                    "the baseline is 'last' or a run id, a whole number from 1 (the run "
                    "column of batchflow history)"
                )
            return int(text)
        return value

    @field_validator("max_memory")
    @classmethod
    def _valid_budget(cls, value: str) -> str:
        parse_memory_budget(value, available=1)
        return value.strip()

    @field_validator("test_memory_limit", "leak_threshold", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, str):
            size = parse_size(value)
            if size <= 0:
                raise ValueError(f"{value!r}: the size must be above 0")
            return size
        return value

    @field_validator("quarantine", mode="before")
    @classmethod
    def _parse_quarantine(cls, value: Any) -> Any:
        return Quarantine.parse(value) if isinstance(value, str) else value

    @field_validator("reruns_only", "reruns_except", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression ({error})") from None
        return value

    @field_validator("select", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = tuple(name.strip() for name in value.split(","))
            if not all(names):
                raise ValueError("empty batch name in the list")
            return names
        return value

    @field_validator("cov_source", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == COV_OFF:
            return ()
        if isinstance(value, str):
            sources = tuple(item.strip() for item in value.replace("\n", ",").split(","))
            if not all(sources):
                raise ValueError("empty source in the list (no spaces around commas)")
            for source in sources:
                # A package name has no slash: this was meant as a folder (made
                # absolute from where it was written, see plugin._cov_source).
                if ("/" in source or "\\" in source) and not Path(source).is_dir():
                    raise ValueError(
                        f"{source} is not a folder, and a name with a slash is no package "
                        "(a relative folder starts where the value is written: the ini "
                        "file's folder, else the current one)"
                    )
            return tuple(dict.fromkeys(sources))
        return value

    @field_validator("json_path", "html_path", "junit_path", "history_path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("the path is empty")
        return value

    @field_validator("html_path", mode="before")
    @classmethod
    def _html_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == HTML_OFF else value

    @model_validator(mode="after")
    def _plan_implies_enabled(self) -> _SettingsModel:
        # --batchflow-plan alone is a request for batchflow's plan.
        if self.plan_only and not self.enabled:
            return self.model_copy(update={"enabled": True})
        return self


def parse_settings(
    raw: Mapping[str, RawValue], batch_lines: Sequence[str], lines_source: str
) -> Settings:
    """Validate raw values (by ``Option.field``) and batch lines into Settings."""
    batches: list[BatchLine] = []
    for line in batch_lines:
        try:
            batches.append(parse_batch_line(line))
        except SettingsError as error:
            raise SettingsError(f"{BATCHES_INI} ({lines_source}): {error}") from None
    _check_batch_names(batches, lines_source)
    data: dict[str, Any] = {field: raw_value.value for field, raw_value in raw.items()}
    try:
        model = _SettingsModel.model_validate({**data, "batches": tuple(batches)})
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0])
        option = next(option for option in OPTIONS if option.field == field)
        given = raw[field]
        message = _first_sentence(first["msg"])
        # The value once: some messages start with it, quoted or as a whole word
        # (or with the item at fault).
        value = str(given.value)
        if not message.startswith((repr(given.value), f"{value}:", f"{value} ")):
            message = f"{given.value!r}: {message}"
        raise SettingsError(
            f"{given.spelling(option)} ({given.source}): {message}; e.g. {given.example(option)}"
        ) from None
    settings = Settings(**dict(model))
    cov_given = raw.get("cov_source")
    switched_off = cov_given is not None and str(cov_given.value).strip().lower() == COV_OFF
    if not settings.cov_source and not switched_off:
        _check_coverage_asked(raw, batches, lines_source)
    if "history_runs" not in raw and settings.history_runs < settings.flaky_window:
        # The default keeps a wider flakiness window whole.
        settings = dataclasses.replace(settings, history_runs=settings.flaky_window)
    if 0 < settings.history_runs < settings.flaky_window:
        given = raw["history_runs"]
        kept, window = _options("history_runs", "flaky_window")
        raise SettingsError(
            f"{given.spelling(kept)} ({given.source}): a test's {settings.history_runs} runs "
            f"kept are fewer than the {settings.flaky_window} its flakiness score looks at "
            f"({window.flag}); keep at least as many, e.g. "
            f"{kept.flag}={settings.flaky_window}, or 0 to keep all"
        )
    if settings.test_memory_fail and settings.test_memory_limit is None:
        given = raw["test_memory_fail"]
        fail, limit = _options("test_memory_fail", "test_memory_limit")
        raise SettingsError(
            f"{given.spelling(fail)} ({given.source}) needs a limit to fail tests over; "
            f"add {limit.flag}=SIZE, e.g. {limit.flag}={limit.example}"
        )
    if settings.select is not None:
        known = {policy.name for policy in settings.policies}
        unknown = [name for name in settings.select if name not in known]
        if unknown:
            given = raw["select"]
            option = next(option for option in OPTIONS if option.field == "select")
            raise SettingsError(
                f"{given.spelling(option)} ({given.source}): unknown batch {unknown[0]!r}; "
                f"known batches: {', '.join(sorted(known))}"
            )
    return settings


#: Each output's field and its kind (:data:`~pytest_batchflow.files.OUTPUT_KINDS`).
_OUTPUTS = (("json_path", "json"), ("html_path", "html"), ("junit_path", "junit"))


def check_outputs(
    raw: Mapping[str, RawValue], settings: Settings, others: Mapping[Path, str]
) -> None:
    """Before a run that writes its outputs: each can be written where it is
    asked for, replacing no file that batchflow did not write, and no two of
    them share a file, nor one with the history store or another plugin's
    output (``others``: path, whose, e.g. "pytest's --junitxml"). Raises
    SettingsError.

    A default path (the HTML report's) is not checked: where it cannot be
    written, the run's end says so and the run's outcome stands, as the user
    asked for no file there. Nor is it checked whether an ini file's path can
    be written (a checkout mounted read-only): the run's end says so too.
    """
    from .files import OUTPUT_KINDS, output_problem, shared_file

    # Each file: the setting that names it ("" for another plugin's), and what it is.
    files: list[tuple[str, str, Path]] = [("", whose, path) for path, whose in others.items()]
    if not settings.no_history:
        files.append(("history_path", "the history store", settings.history_path))
    for field, kind in _OUTPUTS:
        path: Path | None = getattr(settings, field)
        if path is None:
            continue
        given = raw[field]
        (option,) = _options(field)
        if given.origin != "default":
            problem = output_problem(path, kind, probe=given.origin != "ini")
            if problem is not None:
                where = f"{given.spelling(option)} ({given.source})"
                raise SettingsError(f"{where}: {problem}; e.g. {given.example(option)}")
        files.append((field, f"the {OUTPUT_KINDS[kind].noun}", path))
    shared = shared_file(((field, what), path) for field, what, path in files)
    if shared is None:
        return
    first, later, path = shared
    # The one to change is one of batchflow's that the user gave: not a
    # default, not another plugin's.
    (culprit, _), (other, other_what) = sorted(
        (later, first), key=lambda pair: not pair[0] or raw[pair[0]].origin == "default"
    )
    given = raw[culprit]
    (option,) = _options(culprit)
    if not other:
        named = other_what
    elif raw[other].origin == "default":
        named = f"{other_what} (its default path)"
    else:
        holder = raw[other]
        named = f"{other_what} ({holder.spelling(_options(other)[0])}, {holder.source})"
    raise SettingsError(
        f"{given.spelling(option)} ({given.source}): {path} is also the file of {named}; "
        f"give each output a file of its own, e.g. {given.example(option)}"
    )


def _options(*fields: str) -> tuple[Option, ...]:
    """The options of these settings' fields, in that order."""
    return tuple(next(option for option in OPTIONS if option.field == field) for field in fields)


def _check_coverage_asked(
    raw: Mapping[str, RawValue], batches: Sequence[BatchLine], lines_source: str
) -> None:
    """Coverage settings without a source to measure: say what is missing."""
    source = next(option for option in OPTIONS if option.field == "cov_source")
    for field in ("cov_context", "cov_fail_under"):
        if field in raw:
            given = raw[field]
            option = next(option for option in OPTIONS if option.field == field)
            raise SettingsError(
                f"{given.spelling(option)} ({given.source}) needs a source to measure; "
                f"add {source.flag}=SOURCE, e.g. {source.flag}={source.example}"
            )
    for batch in batches:
        if batch.cov_fail_under is not None:
            raise SettingsError(
                f"{BATCHES_INI} ({lines_source}): batch {batch.name!r} has cov_fail_under= "
                f"but no source is measured; add {source.flag}=SOURCE, "
                f"e.g. {source.flag}={source.example}"
            )


def _check_batch_names(batches: Sequence[BatchLine], source: str) -> None:
    names = [batch.name for batch in batches]
    known = set(names) | {DEFAULT_BATCH}
    for batch in batches:
        if names.count(batch.name) > 1:
            raise SettingsError(
                f"{BATCHES_INI} ({source}): batch {batch.name!r} is defined twice; "
                "give each line its own name"
            )
        for upstream in batch.after:
            if upstream not in known:
                raise SettingsError(
                    f"{BATCHES_INI} ({source}): batch {batch.name!r} has after={upstream}, "
                    f"an unknown batch; known batches: {', '.join(sorted(known))}"
                )
            if upstream == batch.name:
                raise SettingsError(
                    f"{BATCHES_INI} ({source}): batch {batch.name!r} is after itself; "
                    "drop it from its own after="
                )
    try:
        order_batches(
            [*batches, BatchLine(name=DEFAULT_BATCH)] if DEFAULT_BATCH not in names else batches
        )
    except PlanError as error:
        raise SettingsError(f"{BATCHES_INI} ({source}): {error}") from None
