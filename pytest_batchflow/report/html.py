"""The self-contained HTML report, rendered with jinja2 from the results model.

The page is one file: inline CSS and JavaScript, no fetch, so it opens from
``file://`` offline. What is small and fixed (summary, batches and their DAG,
flaky tests, coverage, environment) is rendered here as HTML; what grows with
the suite (the tests table and the timeline) travels as one compact JSON
block that the page's script draws: each repeated string (file, batch,
worker, outcome) once in a table, numbers as numbers, and the text of
passing tests (their output and logs) left out. Each test's memory and CPU
go in two arrays beside the rows, whole KiB and milliseconds (a few bytes a
test), and only when the run measured them. The workers' memory over time is
drawn here, as SVG: its points are thinned to one per pixel, so the chart
costs the same for 100 tests as for 100,000 and the page carries no second
per-test series for the script to draw.

Everything from the suite is escaped: jinja2 autoescapes the HTML, the JSON
block has ``<``, ``>`` and ``&`` written as ``\\u`` escapes so no text can
close its ``<script>`` element, and the script inserts text as text.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..core.bench import scaled_time
from ..core.coverage import gate_figures
from ..core.layout import layered_layout
from ..core.resources import KEPT_PER_TEST, format_size
from ..core.words import count_of
from ..files import write_atomically
from ..results import BatchResult, RunResult, TestResult, error_line
from ..terminal import outcome_columns

__all__ = ["TEXT_LIMIT", "render_html", "write_html"]

#: Characters of one text (a traceback, an output) kept in the report; the
#: JSON result (``--batchflow-json``) keeps all of it.
TEXT_LIMIT = 20_000
#: Outcomes whose output and log the report keeps (passing tests' are left out).
_KEEP_TEXT = frozenset({"failed", "error", "flaky", "quarantined", "xpassed", "skipped"})
_FAILING = ("failed", "error")
#: The order outcomes are listed in everywhere.
OUTCOMES = (
    "passed",
    "failed",
    "error",
    "flaky",
    "quarantined",
    "skipped",
    "xfailed",
    "xpassed",
)
_STATIC = Path(__file__).with_name("static")
#: A test row's columns after this one may be left off when empty.
_LAST_REQUIRED = 9
#: The tests listed as the heaviest by memory in the Resources section.
_HEAVIEST = 10
#: Colours of workers' lines (the timeline's batch colours, as report.js has them).
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#e15759",
)


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """jinja2's cache of compiled templates, whose failure to write costs only
    the time it would have saved (a full disk, a read-only folder)."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache(directory: str | None = None) -> jinja2.BytecodeCache | None:
    """The compiled templates' cache: by default jinja2's per-user folder under
    the temporary directory. Compiling the report's template costs some 50 ms
    a run, loading it compiled about 1 ms. None where the folder cannot be
    used (jinja2 refuses one another user owns): the template is compiled."""
    try:
        return _TemplateCache(directory)
    except (OSError, RuntimeError):
        return None


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_batchflow.report", "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = _seconds
    env.filters["error_line"] = error_line
    env.filters["sparkline"] = _sparkline
    env.filters["trend"] = _trend
    env.filters["duration"] = _duration
    env.filters["size"] = _size
    env.filters["count_of"] = count_of
    env.globals["gate_figures"] = gate_figures
    return env


@cache
def _static(name: str) -> Markup:
    # Our own files, inserted as they are: they hold no closing </style> or </script>.
    return Markup(_STATIC.joinpath(name).read_text(encoding="utf-8"))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return f"{value}s"
    if round(value * 100) >= 6000:  # rounded first: 119.97 is 2m 00.0s, not 1m 60.0s
        minutes, tenths = divmod(round(value * 10), 600)
        return f"{minutes}m {tenths / 10:04.1f}s"
    return f"{value:.2f}s"


def _natural(name: str) -> list[tuple[int, int | str]]:
    """A sort key that puts gw2 before gw10: digits as numbers."""
    # re.split with a group: the digit runs are at the odd places (isdigit() would
    # also take "²", which int() refuses).
    return [
        (0, int(part)) if at % 2 else (1, part) for at, part in enumerate(re.split(r"(\d+)", name))
    ]


def _is_controller(worker: str) -> bool:
    """The xdist controller (a shard's too): it runs no test, only reports skips."""
    return worker == "controller" or worker.endswith("/controller")


def _size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


def _clip(text: str | None) -> str:
    """A text cut to :data:`TEXT_LIMIT`, head and tail kept, with a note where it was cut."""
    if not text:
        return ""
    if len(text) <= TEXT_LIMIT:
        return text
    head, tail = TEXT_LIMIT // 4, TEXT_LIMIT - TEXT_LIMIT // 4
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {cut:,} characters cut here; the JSON result "
        f"(--batchflow-json) has the whole text ...]\n{text[-tail:]}"
    )


class _Strings:
    """Repeated strings once: the page refers to them by index."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        index = self._index.get(value)
        if index is None:
            index = self._index[value] = len(self.values)
            self.values.append(value)
        return index


def _details(test: TestResult, passed_output: bool) -> dict[str, Any] | None:
    """What expanding a row shows; None when there is nothing to show."""
    detail: dict[str, Any] = {}
    keep_text = passed_output or test.outcome in _KEEP_TEXT or bool(test.attempts)
    if test.longrepr:
        detail["r"] = _clip(test.longrepr)
    if keep_text:
        for key, text in (("o", test.stdout), ("e", test.stderr), ("g", test.log)):
            if text:
                detail[key] = _clip(text)
    if test.attempts:
        detail["a"] = [
            [a.outcome, a.worker, round(a.duration, 4), _clip(a.longrepr)] for a in test.attempts
        ]
    if test.dependencies:
        detail["p"] = test.dependencies
    return detail or None


def _payload(result: RunResult, passed_output: bool) -> dict[str, Any]:
    """The tests and the timeline, compact: see the module docstring."""
    strings = _Strings()
    origin = min((t.start for t in result.tests), default=result.started)
    rows: list[list[Any]] = []
    details: list[dict[str, Any]] = []
    for test in result.tests:
        # Everything up to the test's own name (file, classes) is shared by its neighbours.
        prefix, _, name = test.nodeid.rpartition("::")
        detail = _details(test, passed_output)
        if detail is not None:
            details.append(detail)
        row = [
            strings(prefix),
            name,
            strings(test.batch),
            strings(test.outcome),
            round(test.duration, 4),
            round(test.start - origin, 4),
            round(test.stop - origin, 4),
            strings(test.worker),
            len(details) - 1 if detail is not None else -1,
            test.line,
            len(test.attempts),
            test.notes or 0,
        ]
        while len(row) > _LAST_REQUIRED and row[-1] in (None, 0):
            row.pop()  # the page reads a missing line, attempt count or note as none
        rows.append(row)
    payload: dict[str, Any] = {
        "strings": strings.values,
        "tests": rows,
        "details": details,
        "batches": [b.name for b in result.batches if b.tests],
        "outcomes": list(OUTCOMES),
    }
    measured = [test.resources for test in result.tests]
    if any(figures is not None for figures in measured):
        # Beside the rows, not in them: a row's optional columns stay where they are,
        # and an unmeasured test (it never started) costs a null, not a column.
        payload["memory"] = [None if m is None else round(m.memory / 1024) for m in measured]
        payload["cpu"] = [None if m is None else round(m.cpu * 1000) for m in measured]
        payload["over_limit"] = [i for i, t in enumerate(result.tests) if t.memory_limit_exceeded]
    return payload


def _script_json(data: object) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return Markup(text)


@dataclass(frozen=True)
class _Node:
    name: str
    status: str
    tests: int
    x: int
    y: int


@dataclass(frozen=True)
class _Edge:
    path: str


@dataclass(frozen=True)
class _Dag:
    width: int
    height: int
    nodes: list[_Node]
    edges: list[_Edge]


_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _PAD = 150, 46, 60, 18, 10


def _dag(batches: Sequence[BatchResult]) -> _Dag:
    """The batch DAG's drawing: boxes in layers, curves for the ``after`` edges."""
    names = [b.name for b in batches]
    placed = layered_layout(names, {b.name: b.after for b in batches})
    nodes = [
        _Node(
            b.name,
            b.status,
            b.tests,
            _PAD + placed[b.name].layer * (_NODE_W + _GAP_X),
            _PAD + placed[b.name].row * (_NODE_H + _GAP_Y),
        )
        for b in batches
    ]
    at = {node.name: node for node in nodes}
    edges = []
    for batch in batches:
        for before in batch.after:
            if before in at:
                a, b = at[before], at[batch.name]
                x1, y1 = a.x + _NODE_W, a.y + _NODE_H // 2
                x2, y2 = b.x - 6, b.y + _NODE_H // 2
                middle = (x1 + x2) // 2
                edges.append(_Edge(f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"))
    width = max((n.x for n in nodes), default=0) + _NODE_W + _PAD
    height = max((n.y for n in nodes), default=0) + _NODE_H + _PAD
    return _Dag(width, height, nodes, edges)


@dataclass(frozen=True)
class _Tick:
    at: float
    label: str


@dataclass(frozen=True)
class _WorkerLine:
    worker: str
    colour: str
    points: str
    label: str


@dataclass(frozen=True)
class _MemoryChart:
    width: int
    height: int
    left: int
    top: int
    bottom: int
    right: int
    x_ticks: list[_Tick]
    y_ticks: list[_Tick]
    lines: list[_WorkerLine]


_CHART_W, _CHART_H, _CHART_LEFT, _CHART_RIGHT, _CHART_TOP, _CHART_BOTTOM = 900, 220, 70, 12, 10, 22


def _nice_step(span: float, steps: int) -> float:
    """A round step (1, 2 or 5 times a power of ten) that covers ``span`` in ``steps``."""
    raw = max(span / steps, 1e-9)
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _worker_lines(
    timeline: dict[str, list[tuple[float, int]]], tests: Sequence[TestResult]
) -> dict[str, list[tuple[float, int]]]:
    """The timeline, each worker's line starting where its first test started.

    The timeline has the memory after each test; the worker's memory before its
    first one is that test's ``rss_start``. A replaced worker is named
    WORKER/PID in the timeline.
    """
    first: dict[str, tuple[float, int]] = {}
    for test in tests:
        measured = test.resources
        if measured is None:
            continue
        name = test.worker
        if name not in timeline:
            name = f"{name}/{measured.pid}"
            if name not in timeline:
                continue
        earliest = first.get(name)
        if earliest is None or test.start < earliest[0]:
            first[name] = (test.start, measured.rss_start)
    return {
        worker: ([first[worker]] if worker in first else []) + list(points)
        for worker, points in timeline.items()
        if points
    }


def _memory_chart(
    timeline: dict[str, list[tuple[float, int]]], tests: Sequence[TestResult]
) -> _MemoryChart | None:
    """Each worker's resident memory over the run, a line per worker; None if none was
    recorded. A line keeps the highest figure of each pixel's column: a peak between
    two quieter tests stays visible however many tests share the pixel."""
    lines_of = _worker_lines(timeline, tests)
    if not any(lines_of.values()):
        return None
    # Each line's times and sizes as columns: min and max over them, no tuple apiece.
    times = [list(map(itemgetter(0), points)) for points in lines_of.values()]
    sizes = {worker: list(map(itemgetter(1), points)) for worker, points in lines_of.items()}
    # The tests table's and the timeline's origin: the first test's start.
    origin = min(min(map(attrgetter("start"), tests), default=math.inf), *map(min, times))
    end = max(map(max, times)) - origin or 1.0
    mib = 1024 * 1024
    highest = max(map(max, sizes.values())) / mib
    y_step = _nice_step(highest, 4)
    y_steps = max(1, math.ceil(highest / y_step))
    top = y_step * y_steps * mib
    plot_w = _CHART_W - _CHART_LEFT - _CHART_RIGHT
    plot_h = _CHART_H - _CHART_TOP - _CHART_BOTTOM
    lines = []
    for index, worker in enumerate(sorted(lines_of, key=_natural)):
        points = lines_of[worker]
        columns: dict[int, int] = {}
        for time, rss in points:
            column = round((time - origin) / end * plot_w)
            if rss > columns.get(column, -1):
                columns[column] = rss
        xy = " ".join(
            f"{_CHART_LEFT + column},{_CHART_TOP + plot_h - rss / top * plot_h:.1f}"
            for column, rss in sorted(columns.items())
        )
        low, high = min(sizes[worker]), max(sizes[worker])
        lines.append(
            _WorkerLine(
                worker,
                _PALETTE[index % len(_PALETTE)],
                xy,
                # One figure an attempt: a rerun test counts each time it ran.
                f"{worker}: {format_size(low)} to {format_size(high)} resident over "
                f"its {count_of(len(timeline[worker]), 'test run')}",
            )
        )
    x_step = _nice_step(end, 6)
    x_ticks = [
        _Tick(_CHART_LEFT + k * x_step / end * plot_w, _seconds(k * x_step))
        for k in range(int(end / x_step + 1e-9) + 1)
    ]
    y_ticks = [
        _Tick(_CHART_TOP + plot_h - k / y_steps * plot_h, format_size(k * y_step * mib))
        for k in range(y_steps + 1)
    ]
    return _MemoryChart(
        _CHART_W,
        _CHART_H,
        _CHART_LEFT,
        _CHART_TOP,
        _CHART_BOTTOM,
        _CHART_RIGHT,
        x_ticks,
        y_ticks,
        lines,
    )


def _sparkline(recent: Sequence[str]) -> Markup:
    """Recent runs as small bars, oldest first: one path per outcome, not one element
    per run (a flaky table of hundreds of rows stays small)."""
    bars: dict[str, list[str]] = {}
    for position, word in enumerate(recent):
        bars.setdefault(word, []).append(f"M{position * 9} 0h7v14h-7z")
    paths = "".join(
        f'<path class="o-{escape(word)}" d="{"".join(parts)}"/>' for word, parts in bars.items()
    )
    label = escape(" ".join(recent))
    return Markup(
        f'<svg class="spark" width="{len(recent) * 9}" height="14" role="img" '
        f'aria-label="{label}"><title>{label}</title>{paths}</svg>'
    )


def _trend(points: Sequence[tuple[int, float]]) -> Markup:
    """A benchmark's median over its recent runs as a small line chart, this run last."""
    if len(points) < 2:
        return Markup('<span class="empty">one run so far</span>')
    width, height, pad = 160, 36, 3
    values = [median for _, median in points]
    low, high = min(values), max(values)
    span = (high - low) or high or 1.0
    step = (width - 2 * pad) / (len(points) - 1)
    xy = [
        (pad + i * step, height - pad - (value - low) / span * (height - 2 * pad))
        for i, value in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    label = escape(", ".join(f"run {run}: {_duration(v)}" for run, v in points))
    last_x, last_y = xy[-1]
    return Markup(
        f'<svg class="trend" width="{width}" height="{height}" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<polyline points="{line}"/><circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="3"/></svg>'
    )


def _duration(seconds: float) -> str:
    """A time per call in the unit that reads best."""
    value, unit = scaled_time(seconds)
    return f"{value:.3g} {'µs' if unit == 'us' else unit}"


def _counts(tests: Iterable[TestResult]) -> list[tuple[str, int]]:
    counter = Counter(test.outcome for test in tests)
    ordered = [(word, counter.pop(word)) for word in OUTCOMES if word in counter]
    return ordered + sorted(counter.items())


def _why_failed(result: RunResult, counts: dict[str, int]) -> list[str]:
    reasons = []
    if "collection" in result.failed_by:
        reasons.append(f"collection: {len(result.collection_errors)} could not be collected")
    if "tests" in result.failed_by:
        failing = counts.get("failed", 0) + counts.get("error", 0)
        if failing:
            reasons.append(f"tests: {failing} failed or errored")
        elif counts.get("flaky"):
            reasons.append(f"tests: {counts['flaky']} flaky (--batchflow-strict-flaky)")
        elif result.exitstatus != 2:  # pytest.ExitCode.INTERRUPTED: said below
            reasons.append(f"tests: pytest exit code {result.exitstatus}")
    # Exit code 2 after a collection error is pytest stopping for it: said above.
    if result.exitstatus == 2 and "collection" not in result.failed_by:
        not_run = sum(batch.not_run for batch in result.batches)
        reasons.append(f"interrupted (pytest exit code 2): {count_of(not_run, 'test')} not run")
    if "coverage" in result.failed_by and result.coverage is not None:
        for gate in result.coverage.gates:
            if not gate.passed:
                what = f"batch {gate.batch}" if gate.batch else "total"
                reasons.append(
                    "coverage: {} {}% is under the gate {}%".format(
                        what, *gate_figures(gate.actual, gate.threshold)
                    )
                )
    for bench in result.benchmarks:
        c = bench.comparison
        if c is not None and c.failed and c.threshold is not None:
            reasons.append(
                f"benchmarks: {bench.nodeid} {c.statistic} {c.change:+.1%} (interval from "
                f"{c.low:+.1%}) is beyond the gate {c.threshold * 100:g}%"
            )
    if not reasons and result.exitstatus != 0:
        reasons.append(f"pytest exit code {result.exitstatus}")
    return reasons


def _heaviest(tests: Iterable[TestResult]) -> list[TestResult]:
    """The tests that needed the most memory, most first (those that needed none left out)."""
    measured = [t for t in tests if t.resources is not None and t.resources.memory > 0]
    return heapq.nlargest(
        _HEAVIEST, measured, key=lambda t: t.resources.memory if t.resources is not None else 0
    )


def _relative_link(target: str, base: Path | None) -> str:
    if base is None:
        return Path(target).as_uri() if Path(target).is_absolute() else target
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive on Windows
        return Path(target).as_uri()


def render_html(result: RunResult, base: Path | None = None, *, passed_output: bool = False) -> str:
    """The report as one HTML document; ``base``: the folder it will be written to
    (links to other outputs, such as coverage's HTML, are made relative to it);
    ``passed_output``: keep passing tests' captured output and logs too."""
    counts = dict(_counts(result.tests))
    batches = [b for b in result.batches if b.tests or b.skip_reason]
    flaky = [t for t in result.tests if t.outcome == "flaky" or t.flakiness]
    coverage = result.coverage
    coverage_link = None
    if coverage is not None and "html" in coverage.outputs:
        coverage_link = _relative_link(coverage.outputs["html"], base)
    workers = sorted({t.worker for t in result.tests if not _is_controller(t.worker)}, key=_natural)
    resources = result.resources
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            result=result,
            counts=counts,
            collection_counts=Counter(problem.outcome for problem in result.collection),
            why_failed=_why_failed(result, counts),
            passed=result.exitstatus == 0,
            makespan=result.makespan,
            workers=workers,
            batches=batches,
            outcome_columns=outcome_columns(batches),
            benchmark_batches=[b for b in result.batches if b.kind == "benchmark" and b.tests],
            dag=_dag(batches),
            flaky=flaky,
            coverage=coverage,
            coverage_link=coverage_link,
            coverage_by_batch={b.name: b for b in coverage.batches} if coverage else {},
            resources=resources,
            kept_per_test=KEPT_PER_TEST,
            measured=sum(t.resources is not None for t in result.tests),
            rerun=any(t.attempts for t in result.tests),
            by_nodeid={t.nodeid: t for t in result.tests},
            heaviest=_heaviest(result.tests),
            memory_chart=_memory_chart(resources.timeline, result.tests) if resources else None,
            sections=[(s.title, Markup(s.html)) for s in result.sections],
            data=_script_json(_payload(result, passed_output)),
            css=_static("report.css"),
            js=_static("report.js"),
        )
    )


def write_html(result: RunResult, path: Path, *, passed_output: bool = False) -> None:
    """Render and write atomically (a reader never sees half a page). Raises OSError."""
    text = render_html(result, base=path.parent.resolve(), passed_output=passed_output)
    # Lone surrogates (undecodable bytes in a test's output) must not stop the write.
    write_atomically(path, text.encode("utf-8", "backslashreplace"))
