"""The HTML report at scale: batchflow's report vs pytest-html's on the same suites.

Run with ``python benchmarks/report_scale.py [--sizes 10000,50000] [--repeat 5]``
(a few minutes; ``--help`` lists the other options). pytest-html is left out
above ``--skip-pytest-html-above`` (default 10000): at 50,000 tests its runs
and its page loads take 15 minutes or more on a 2-core machine. Needs
selenium, Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; selenium-manager is never asked to fetch anything)
and, for its column, pytest-html.

For each size N one seeded plan of N tests is drawn (``_report_suite.py``):
about N/25 files in nested folders, classes, parametrized ids, five batches,
2% failed with a ~30-line traceback and some output, 3% skipped, 1% xfailed,
0.5% flaky, output on 30% of the passing tests; failed and flaky tests have
a history (a flakiness score and 8 recent outcomes), as in a run with a store.

batchflow
   The plan as the RunResult of a 4-worker run (built outside the timing).
   generate: ``render_html(result)``, median of ``--repeat`` after one
   warm-up; ``write_html`` is timed the same way and given below the table.
   size: the UTF-8 bytes of the document.
pytest-html
   The plan as a real test package in a temporary directory, run serially
   (``python -m pytest -p no:cacheprovider -p no:batchflow -q``) without and
   with ``--html=report.html --self-contained-html``: one untimed warm-up run
   (bytecode caches), then the two alternate ``--pytest-html-repeat`` times.
   generate: median wall time with ``--html`` minus median without. A flaky
   test simply passes there (no rerun plugin), so the outcome counts differ by
   that 0.5%.

interactive
   Headless Chromium through selenium, ``file://`` URL, one untimed warm-up
   load and then the median of ``--loads`` loads, each after ``about:blank``
   (a page whose first load takes more than 30 s is loaded that once only).
   A script injected before the page's own (CDP
   ``Page.addScriptToEvaluateOnNewDocument``) notes ``performance.now()`` (ms
   since the navigation started) the moment the page is ready: batchflow's once
   ``<html data-ready="1">`` is set, which its script does after drawing the
   tests table and the timeline (the figure is the page's own
   ``window.batchflowReadyAt`` when it sets one); pytest-html's once its results
   table has rows and the document is parsed (its script renders them inline,
   before DOMContentLoaded). first frame: the next animation frame after
   ready, plus a task (layout and paint of what was drawn).

Sizes are in MB of 1,000,000 bytes. Prints figures and the issue's targets
with met / NOT met, exits 0 either way; with ``--profile`` (and by itself when
a generation target is missed) it prints a cProfile of one render of the
largest size, top 15 by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from _report_suite import (
    PlannedTest,
    plan_suite,
    pytest_counts,
    synthetic_result,
    write_pytest_suite,
)
from _xdist_bench import clean_env, machine, run_pytest, table

from pytest_batchflow.results import RunResult

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
LOAD_TIMEOUT = 300.0
#: A page slower than this to load the first time is loaded only that once.
SLOW_LOAD = 30.0
#: pytest-html on 50,000 tests: its three serial runs took 8 minutes here, its
#: page more than 2 minutes per load.
DEFAULT_SKIP_PYTEST_HTML_ABOVE = 10_000
MB = 1_000_000
COMMON = ["-p", "no:cacheprovider", "-p", "no:batchflow", "-q"]
PYTEST_HTML = ["--html=report.html", "--self-contained-html"]
EMBEDDED = re.compile(r"<(script|style)([^>]*)>.*?</\1>", re.DOTALL)
SECTION = re.compile(r'<section[^>]*\bid="([^"]+)"[^>]*>')
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)\b")

BATCHFLOW_READY = 'document.documentElement && document.documentElement.dataset.ready === "1"'
BATCHFLOW_OBSERVE = {"attributes": True, "subtree": True, "attributeFilter": ["data-ready"]}
PYTEST_HTML_READY = (
    'document.readyState !== "loading" && '
    "document.querySelectorAll('#results-table tbody.results-table-row').length > 0"
)
PYTEST_HTML_OBSERVE = {"childList": True, "subtree": True}

#: Notes the moment CONDITION first holds, and the frame after it. Injected
#: before the page's own scripts run; observes only what CONDITION reads.
READY_PROBE = """\
(() => {
  const ready = () => %(condition)s;
  let done = false;
  const mark = () => {
    if (done || !ready()) return;
    done = true;
    window.__benchReadyAt = performance.now();
    requestAnimationFrame(() => setTimeout(() => {
      window.__benchFrameAt = performance.now();
    }, 0));
  };
  new MutationObserver(mark).observe(document, %(observe)s);
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("load", mark);
})();
"""

TIMINGS = """\
const nav = performance.getEntriesByType("navigation")[0];
return [window.batchflowReadyAt, window.__benchReadyAt, window.__benchFrameAt,
        performance.now(), nav ? nav.responseEnd : null, nav ? nav.domInteractive : null,
        nav ? nav.domContentLoadedEventEnd : null];
"""


@dataclass(frozen=True)
class Target:
    tests: int
    what: str  # size, generate or interactive
    limit: float  # bytes or seconds


TARGETS = (
    Target(10_000, "size", 1.5 * MB),
    Target(10_000, "generate", 0.5),
    Target(10_000, "interactive", 1.0),
    Target(50_000, "generate", 2.0),
)


@dataclass
class Load:
    """One page load: seconds from the navigation's start."""

    ready: float
    frame: float | None
    wall: float  # driver.get() start to readiness seen from selenium
    source: str  # what ``ready`` was read from
    response_end: float | None
    dom_interactive: float | None
    dom_content_loaded: float | None


@dataclass
class Figures:
    """One report of one suite."""

    report: str
    tests: int
    size: int | None = None
    generate: float | None = None
    loads: list[Load] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # figure -> why not measured
    notes: list[str] = field(default_factory=list)

    @property
    def interactive(self) -> float | None:
        return statistics.median(load.ready for load in self.loads) if self.loads else None

    @property
    def frame(self) -> float | None:
        frames = [load.frame for load in self.loads if load.frame is not None]
        return statistics.median(frames) if frames else None

    def value(self, what: str) -> float | None:
        """size, generate, interactive or frame."""
        values = {
            "size": self.size,
            "generate": self.generate,
            "interactive": self.interactive,
            "frame": self.frame,
        }
        return values[what]

    def cell(self, what: str) -> str:
        value = self.value(what)
        if value is None:
            # The reasons are printed below the table: they would stretch it.
            return "not measured" if self.missing else "-"
        return megabytes(int(value)) if what == "size" else f"{value:.3f}s"


def megabytes(size: int) -> str:
    return f"{size / MB:.2f} MB"


class Browser:
    """One headless Chromium for every page load of the run."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.remote.remote_connection import RemoteConnection

        options = webdriver.ChromeOptions()
        for argument in CHROME_ARGS:
            options.add_argument(argument)
        options.binary_location = str(CHROMIUM)
        # Chromium's temporary files go here: it leaves its singleton socket's
        # org.chromium.Chromium.* folder behind, which would pile up in /tmp.
        self.scratch = tempfile.TemporaryDirectory(prefix="batchflow-chromium-")
        # An explicit driver path: selenium-manager is never consulted.
        service = Service(
            executable_path=str(CHROMEDRIVER), env={**clean_env(), "TMPDIR": self.scratch.name}
        )
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(LOAD_TIMEOUT)
        # selenium's own HTTP timeout (120 s) would cut a slow page's load short.
        executor = self.driver.command_executor
        if isinstance(executor, RemoteConnection):  # always, for a local driver
            executor.client_config.timeout = int(LOAD_TIMEOUT) + 60
        self.version = str(self.driver.capabilities.get("browserVersion", "?"))

    def close(self) -> None:
        self.driver.quit()
        self.scratch.cleanup()

    def time_loads(
        self, path: Path, condition: str, observe: dict[str, Any], loads: int
    ) -> list[Load]:
        """One warm-up load, then ``loads`` timed ones; only the first for a slow page."""
        probe = READY_PROBE % {"condition": condition, "observe": json.dumps(observe)}
        added = self.driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": probe}
        )
        url = path.resolve().as_uri()
        try:
            first = self._load(url, condition)
            if first.wall > SLOW_LOAD:
                return [first]
            return [self._load(url, condition) for _ in range(loads)]
        finally:
            self.driver.execute_cdp_cmd(
                "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
            )

    def _load(self, url: str, condition: str) -> Load:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get("about:blank")
        start = time.perf_counter()
        self.driver.get(url)
        WebDriverWait(self.driver, LOAD_TIMEOUT, poll_frequency=0.005).until(
            lambda driver: driver.execute_script(f"return !!({condition});")
        )
        wall = time.perf_counter() - start
        # The frame after ready comes a few milliseconds later.
        WebDriverWait(self.driver, 30, poll_frequency=0.005).until(
            lambda driver: driver.execute_script("return window.__benchFrameAt !== undefined;")
        )
        own, probed, frame, _, response, interactive, loaded = self.driver.execute_script(TIMINGS)
        if own is not None:
            ready, source = own / 1000, "window.batchflowReadyAt"
        elif probed is not None:
            ready, source = probed / 1000, "injected observer"
        else:
            ready, source = wall, "wall time from driver.get"

        def seconds(value: float | None) -> float | None:
            return None if value is None else value / 1000

        return Load(
            ready,
            seconds(frame),
            wall,
            source,
            seconds(response),
            seconds(interactive),
            seconds(loaded),
        )


@contextmanager
def browser_or_reason() -> Iterator[Browser | str]:
    """A browser, or why there is none (the figures say "not measured (why)")."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        yield f"no {CHROMIUM} or {CHROMEDRIVER}"
        return
    if find_spec("selenium") is None:
        yield "selenium not installed"
        return
    try:
        browser = Browser()
    except Exception as error:  # any failure to start is reported, not raised
        yield f"chromium did not start: {type(error).__name__}: {error}"
        return
    try:
        yield browser
    finally:
        browser.close()


def time_calls(call: Callable[[], object], repeat: int) -> list[float]:
    """``repeat`` timed calls after one untimed warm-up."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def spread(samples: Sequence[float]) -> str:
    return f"median {statistics.median(samples):.3f}s, {min(samples):.3f}-{max(samples):.3f}s"


def load_note(report: str, loads: Sequence[Load]) -> str:
    def ms(values: Sequence[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{1000 * statistics.median(known):.0f}" if known else "-"

    return (
        f"{report} page (median ms from navigation start; ready from {loads[0].source}): "
        f"response end {ms([x.response_end for x in loads])}, "
        f"DOM interactive {ms([x.dom_interactive for x in loads])}, "
        f"DOMContentLoaded end {ms([x.dom_content_loaded for x in loads])}, "
        f"ready {ms([x.ready for x in loads])}, first frame {ms([x.frame for x in loads])}; "
        f"selenium's wall time from driver.get {ms([x.wall for x in loads])}"
    )


def batchflow_figures(
    result: RunResult, out: Path, repeat: int, loads: int, browser: Browser | str
) -> Figures:
    figures = Figures("batchflow", len(result.tests))
    try:
        from pytest_batchflow.report.html import render_html, write_html
    except ImportError as error:
        reason = f"not measured (no renderer: {error})"
        figures.missing = dict.fromkeys(("size", "generate", "interactive"), reason)
        return figures
    path = out / f"batchflow-{len(result.tests)}.html"
    try:
        renders = time_calls(lambda: render_html(result), repeat)
        writes = time_calls(lambda: write_html(result, path), repeat)
    except Exception as error:  # a renderer in the making: say so, measure the rest
        reason = f"not measured (render_html raised {type(error).__name__}: {error})"
        figures.missing = dict.fromkeys(("size", "generate", "interactive"), reason)
        return figures
    figures.generate = statistics.median(renders)
    document = render_html(result)
    figures.size = len(document.encode("utf-8"))
    figures.notes.append(f"batchflow render_html: {spread(renders)}")
    figures.notes.append(
        f"batchflow write_html: {spread(writes)}; file {path.stat().st_size:,} bytes, "
        f"document {figures.size:,} bytes"
    )
    figures.notes.append(f"batchflow document bytes: {composition(document)}")
    measure_page(figures, browser, path, BATCHFLOW_READY, BATCHFLOW_OBSERVE, loads)
    return figures


def composition(document: str) -> str:
    """Where a document's bytes are: each script and style, each section's markup."""
    parts: list[tuple[str, int]] = []

    def size(text: str) -> int:
        return len(text.encode("utf-8"))

    def take(match: re.Match[str]) -> str:
        name = re.search(r'id="([^"]+)"', match.group(2))
        label = f"<{match.group(1)}{' #' + name.group(1) if name else ''}>"
        parts.append((label, size(match.group(0))))
        return ""

    markup = EMBEDDED.sub(take, document)
    sections = SECTION.split(markup)
    # split() gives the markup before the first section, then (id, body) pairs.
    names, bodies = sections[1::2], sections[2::2]
    parts.extend((f"section #{n}", size(b)) for n, b in zip(names, bodies, strict=True))
    parts.append(("other markup", size(sections[0])))
    parts.sort(key=lambda part: -part[1])
    return ", ".join(f"{label} {bytes_:,}" for label, bytes_ in parts)


def pytest_html_figures(
    planned: Sequence[PlannedTest],
    out: Path,
    repeat: int,
    loads: int,
    browser: Browser | str,
    skip_above: int,
) -> Figures:
    figures = Figures("pytest-html", len(planned))
    reason = None
    if find_spec("pytest_html") is None:
        reason = "not measured (pytest-html not installed)"
    elif len(planned) > skip_above:
        reason = (
            f"not measured (more than --skip-pytest-html-above={skip_above} tests: "
            "slow; pass a larger value to measure)"
        )
    if reason is not None:
        figures.missing = dict.fromkeys(("size", "generate", "interactive"), reason)
        return figures
    env = clean_env()
    expected = pytest_counts(planned)
    with tempfile.TemporaryDirectory(prefix="batchflow-report-scale-") as tmp:
        root = Path(tmp)
        write_pytest_suite(planned, root)
        print(f"  pytest-html: warm-up run of {len(planned):,} tests ...", flush=True)
        run_pytest(root, COMMON, env)
        plain: list[float] = []
        with_html: list[float] = []
        for repetition in range(repeat):
            print(f"  pytest-html: repetition {repetition + 1}/{repeat} ...", flush=True)
            without = run_pytest(root, COMMON, env)
            run = run_pytest(root, [*COMMON, *PYTEST_HTML], env)
            for done in (without, run):
                counts = {word.rstrip("s"): int(n) for n, word in SUMMARY.findall(done.stdout)}
                if counts != dict(expected):
                    figures.notes.append(
                        f"pytest-html suite: {done.command} ended with {counts}, "
                        f"expected {dict(expected)}"
                    )
            plain.append(without.wall)
            with_html.append(run.wall)
        report = root / "report.html"
        if not report.exists():
            reason = "not measured (pytest-html wrote no report)"
            figures.missing = dict.fromkeys(("size", "generate", "interactive"), reason)
            return figures
        kept = out / f"pytest-html-{len(planned)}.html"
        shutil.copyfile(report, kept)
    figures.size = kept.stat().st_size
    figures.generate = statistics.median(with_html) - statistics.median(plain)
    figures.notes.append(
        f"pytest-html runs: with --html {spread(with_html)}; without {spread(plain)}"
    )
    measure_page(figures, browser, kept, PYTEST_HTML_READY, PYTEST_HTML_OBSERVE, loads)
    return figures


def measure_page(
    figures: Figures,
    browser: Browser | str,
    path: Path,
    condition: str,
    observe: dict[str, Any],
    loads: int,
) -> None:
    if isinstance(browser, str):
        figures.missing["interactive"] = f"not measured ({browser})"
        return
    print(f"  {figures.report}: {loads} page loads of {path.name} ...", flush=True)
    from selenium.common.exceptions import TimeoutException

    try:
        figures.loads = browser.time_loads(path, condition, observe, loads)
    except TimeoutException:
        figures.missing["interactive"] = f"not measured (not ready within {LOAD_TIMEOUT:g} s)"
        return
    except Exception as error:  # a crashed tab, say: the figure is missing, the run goes on
        figures.missing["interactive"] = f"not measured ({type(error).__name__}: {error})"
        return
    figures.notes.append(load_note(figures.report, figures.loads))
    if len(figures.loads) < loads:
        figures.notes.append(
            f"{figures.report} page: loaded once, not {loads} times (more than {SLOW_LOAD:g} s)"
        )


def verdicts(measured: dict[int, list[Figures]]) -> list[str]:
    lines = []
    for target in TARGETS:
        figures = next((f for f in measured.get(target.tests, []) if f.report == "batchflow"), None)
        limit = megabytes(int(target.limit)) if target.what == "size" else f"{target.limit:g} s"
        label = f"{target.tests:,} tests: {target.what} <= {limit}"
        value = None if figures is None else figures.value(target.what)
        if figures is None:
            lines.append(f"  {label}: not measured (size not in --sizes)")
        elif value is None:
            lines.append(f"  {label}: {figures.missing.get(target.what, 'not measured')}")
        elif value <= target.limit:
            lines.append(f"  {label}: met ({_amount(target.what, value)})")
        else:
            over = value - target.limit
            excess = f"{int(over):,} bytes" if target.what == "size" else f"{over:.3f}s"
            lines.append(
                f"  {label}: NOT met ({_amount(target.what, value)}; "
                f"{excess} or {100 * over / target.limit:.1f}% over)"
            )
    big = next((f for f in measured.get(50_000, []) if f.report == "batchflow"), None)
    if big is not None:
        lines.append(
            f"  50,000 tests: 'still usable' (no figure set): interactive {big.cell('interactive')}"
            f", first frame {big.cell('frame')}, {big.cell('size')}"
        )
    return lines


def _amount(what: str, value: float) -> str:
    if what != "size":
        return f"{value:.3f}s"
    # The issue says MB; a MiB reading is given too, in case that was meant.
    return f"{int(value):,} bytes = {megabytes(int(value))} = {value / 2**20:.2f} MiB"


def print_profile(result: RunResult) -> None:
    from pytest_batchflow.report.html import render_html

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        render_html(result)
    except Exception as error:  # as in batchflow_figures
        print(f"\nno profile: render_html raised {type(error).__name__}: {error}")
        return
    finally:
        profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(15)
    print(f"\ncProfile of one render_html of {len(result.tests):,} tests, top 15 by cumulative:")
    print(stream.getvalue().rstrip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,50000",
        type=lambda text: [int(n) for n in text.split(",")],
        help="comma-separated test counts (default 10000,50000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed renders (default 5)")
    parser.add_argument("--loads", type=int, default=3, help="timed page loads (default 3)")
    parser.add_argument(
        "--pytest-html-repeat",
        type=int,
        default=1,
        help="timed pytest runs with and without --html (default 1)",
    )
    parser.add_argument(
        "--skip-pytest-html-above",
        type=int,
        default=DEFAULT_SKIP_PYTEST_HTML_ABOVE,
        metavar="N",
        help=f"leave pytest-html out for sizes above N (default {DEFAULT_SKIP_PYTEST_HTML_ABOVE}: "
        "at 50000 its runs and page loads take 15 minutes or more)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of one render, largest size"
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="write the reports to DIR and keep them"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    measured: dict[int, list[Figures]] = {}
    largest: RunResult | None = None
    with browser_or_reason() as browser, tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        chromium = browser if isinstance(browser, str) else f"Chromium {browser.version}"
        print(
            f"report_scale: sizes {', '.join(f'{n:,}' for n in args.sizes)}; "
            f"{args.repeat} renders, {args.loads} page loads; {machine()}; {chromium}",
            flush=True,
        )
        for tests in args.sizes:
            print(f"{tests:,} tests: building the suite ...", flush=True)
            planned = plan_suite(tests)
            result = synthetic_result(planned)
            if largest is None or tests > len(largest.tests):
                largest = result
            measured[tests] = [
                batchflow_figures(result, out, args.repeat, args.loads, browser),
                pytest_html_figures(
                    planned,
                    out,
                    args.pytest_html_repeat,
                    args.loads,
                    browser,
                    args.skip_pytest_html_above,
                ),
            ]
    rows = [
        [
            f"{figures.tests:,}",
            figures.report,
            figures.cell("size"),
            figures.cell("generate"),
            figures.cell("interactive"),
            figures.cell("frame"),
        ]
        for tests in args.sizes
        for figures in measured[tests]
    ]
    print()
    print(table(["tests", "report", "size", "generate", "interactive", "first frame"], rows))
    print()
    for tests in args.sizes:
        for figures in measured[tests]:
            for reason in dict.fromkeys(figures.missing.values()):
                print(f"{tests:,}: {figures.report}: {reason}")
            for note in figures.notes:
                print(f"{tests:,}: {note}")
    print()
    print("targets (batchflow's report):")
    lines = verdicts(measured)
    print("\n".join(lines))
    generation_missed = any("generate" in line and "NOT met" in line for line in lines)
    if largest is not None and (args.profile or generation_missed) and find_renderer():
        print_profile(largest)
    return 0


def find_renderer() -> bool:
    try:
        from pytest_batchflow.report.html import render_html  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
