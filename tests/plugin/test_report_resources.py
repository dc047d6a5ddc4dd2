"""The HTML report's memory and CPU figures: per test, per batch, per worker over time.

Each suite runs in a subprocess (its own memory, as a user's run has); the
report it wrote is read as text, and once in headless Chromium for the
columns the page's script draws (skipped without chromium).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from report_page import headless_chromium, page_data
from results_factory import case, run

from pytest_batchflow.report.html import render_html
from pytest_batchflow.results import ResourceLeak, ResourceResult, ResourcesResult

MIB = 1024 * 1024

SUITE = """
KEPT = []


def test_big():
    data = bytearray(50 * 1024 * 1024)
    assert len(data) == 50 * 1024 * 1024


def test_leak_one():
    KEPT.append(bytearray(35 * 1024 * 1024))


def test_leak_two():
    KEPT.append(bytearray(35 * 1024 * 1024))


def test_small():
    assert sum(range(1000)) == 499500
"""
LIMITS = ("--batchflow-leak-threshold=60MiB", "--batchflow-test-memory-limit=40MiB")


def element(html: str, pattern: str) -> str:
    """The first element of the page that ``pattern`` (a regex up to its end) matches."""
    match = re.search(pattern, html, re.S)
    assert match is not None, f"no {pattern!r} in the report"
    return match.group(0)


def mib(text: str) -> float:
    """``49.9 MiB`` as a number of MiB."""
    number, unit = text.split()
    assert unit == "MiB", text
    return float(number)


def run_suite(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile(test_memory=SUITE)
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=4)
    return (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")


@pytest.fixture
def measured_report(pytester: pytest.Pytester) -> str:
    return run_suite(pytester, *LIMITS)


def test_each_test_has_its_memory_and_cpu_in_the_tests_table(measured_report: str) -> None:
    html = measured_report
    header = element(html, r'<table class="grid tests" id="test-table">.*?</thead>')
    assert '<th data-sort="memory" class="sortable n"' in header
    assert '<th data-sort="cpu" class="sortable n">CPU</th>' in header
    data = page_data(html)
    index = {row[1]: i for i, row in enumerate(data["tests"])}
    big = index["test_big"]
    # Whole KiB and milliseconds, one per test beside the rows.
    assert data["memory"][big] == pytest.approx(50 * 1024, rel=0.1)
    assert data["memory"][index["test_small"]] < 1024
    assert all(isinstance(ms, int) and ms >= 0 for ms in data["cpu"])
    assert data["over_limit"] == [big]
    assert len(data["memory"]) == len(data["cpu"]) == len(data["tests"]) == 4


def test_the_batch_table_has_cpu_and_peak_memory(measured_report: str) -> None:
    table = element(measured_report, r'<table class="grid" id="batch-table">.*?</table>')
    assert '<th class="n">CPU</th><th class="n">peak memory</th>' in table
    # The batch's largest test is the 50 MiB one.
    peak = re.findall(r'<td class="n">([0-9.]+ MiB)</td>', table)
    assert len(peak) == 1
    assert mib(peak[0]) == pytest.approx(50, rel=0.1)
    assert re.search(r'<td class="n">[0-9.]+s</td><td class="n">[0-9.]+ MiB</td>', table)


def test_the_resources_section_names_the_leak_the_test_over_the_limit_and_the_heaviest(
    measured_report: str,
) -> None:
    html = measured_report
    assert '<a href="#resources">Resources</a>' in html
    section = element(html, r'<section id="resources">.*?</section>')
    assert 'id="resources-limit">40 MiB a test: 1 over it<' in section
    assert "<dd>60 MiB of growth across a worker's tests, beyond 8 KiB a test</dd>" in section
    over = element(section, r'<table class="grid" id="over-limit-table">.*?</table>')
    assert "test_memory.py::test_big" in over
    assert "test_leak" not in over
    leak = element(section, r'<table class="grid" id="leak-table">.*?</table>')
    assert "<td>main</td>" in leak
    grew = re.search(r'<td class="n bad">([0-9.]+ MiB)</td>', leak)
    assert grew is not None
    assert mib(grew.group(1)) == pytest.approx(70, rel=0.1)
    for name in ("test_leak_one", "test_leak_two"):
        kept = re.search(rf"test_memory.py::{name}</span> \(\+([0-9.]+ MiB)\)", leak)
        assert kept is not None, leak
        assert mib(kept.group(1)) == pytest.approx(35, rel=0.1)
    heaviest = element(section, r'<table class="grid" id="heaviest-table">.*?</table>')
    names = re.findall(r'<td class="mono">([^<]+)</td>', heaviest)
    assert names[0] == "test_memory.py::test_big"
    # The two leaking tests keep 35 MiB each: either may measure a page more.
    assert sorted(names[1:3]) == [
        f"test_memory.py::{name}" for name in ("test_leak_one", "test_leak_two")
    ]
    assert re.search(r'id="resources-cpu">[0-9.]+s in 4 measured tests<', section)


def test_the_memory_chart_has_a_line_for_the_serial_run(measured_report: str) -> None:
    chart = element(measured_report, r'<svg id="memory-chart".*?</svg>')
    assert re.findall(r'<polyline class="worker-memory" data-worker="([^"]+)"', chart) == ["main"]
    # The worker's memory before its first test, then after each of its 4 tests.
    points = re.search(r'points="([^"]+)"', chart)
    assert points is not None
    assert len(points.group(1).split()) == 5
    assert "<title>main: " in chart


def test_under_xdist_the_chart_has_a_line_per_worker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    html = run_suite(pytester, "-n", "2")
    chart = element(html, r'<svg id="memory-chart".*?</svg>')
    workers = re.findall(r'<polyline class="worker-memory" data-worker="([^"]+)"', chart)
    assert workers == ["gw0", "gw1"]
    legend = element(html, r'<p id="memory-legend">.*?</p>')
    assert legend.count('<span class="key">') == 2
    data = page_data(html)
    big = [row[1] for row in data["tests"]].index("test_big")
    assert data["memory"][big] == pytest.approx(50 * 1024, rel=0.1)


def test_without_resources_the_section_says_why_and_the_columns_are_gone(
    pytester: pytest.Pytester,
) -> None:
    html = run_suite(pytester, "--batchflow-no-resources")
    section = element(html, r'<section id="resources">.*?</section>')
    assert (
        "Memory and CPU were not measured: the run had --batchflow-no-resources "
        "(or batchflow_no_resources in the ini)." in section
    )
    assert 'data-sort="memory"' not in html
    assert "peak memory</th>" not in html
    assert "memory" not in page_data(html)


def test_names_from_the_suite_are_escaped_in_the_section_and_chart() -> None:
    hostile = "tests/test_x.py::test_a[<script>window.pwned=1</script>]"
    figures = ResourceResult(
        peak_rss=200 * MIB,
        memory=80 * MIB,
        rss_start=120 * MIB,
        rss_end=200 * MIB,
        cpu=1.5,
        wall=2.0,
        pid=42,
    )
    test = case(hostile, resources=figures, memory_limit_exceeded=True, worker="<b>gw0</b>")
    resources = ResourcesResult(
        budget=None,
        cpus=1,
        memory_limit=64 * MIB,
        over_limit=[hostile],
        alone=[hostile],
        leak_threshold=50 * MIB,
        leaks=[
            ResourceLeak(
                worker="<b>gw0</b>",
                pid=42,
                growth=80 * MIB,
                tests=1,
                culprits=[(hostile, 80 * MIB)],
            )
        ],
        cpu=1.5,
        timeline={"<b>gw0</b>": [(test.stop, 200 * MIB)]},
    )
    html = render_html(run([test], resources=resources))
    section = element(html, r'<section id="resources">.*?</section>')
    assert "<script>" not in section
    assert "<b>" not in section
    assert section.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") == 4
    assert 'data-worker="&lt;b&gt;gw0&lt;/b&gt;"' in section


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium, as test_report_browser.py drives it; skipped when missing."""
    chrome = headless_chromium(tmp_path_factory.mktemp("chromium"))
    try:
        yield chrome
    finally:
        chrome.quit()


def test_in_a_browser_the_columns_show_and_sort_by_memory(
    browser: Any, pytester: pytest.Pytester
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_suite(pytester, *LIMITS)
    browser.get((pytester.path / ".batchflow" / "report.html").as_uri())
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.documentElement.dataset.ready") == "1"
    )
    browser.find_element(By.CSS_SELECTOR, "th[data-sort=memory]").click()
    rows: list[list[str]] = browser.execute_script(
        "return Array.from(document.querySelectorAll('#test-rows tr.test-row'),"
        " row => Array.from(row.cells, cell => cell.innerText))"
    )
    headers: list[str] = browser.execute_script(
        "return Array.from(document.querySelectorAll('#test-table thead th'), th => th.innerText)"
    )
    column = {name.strip(" ▲▼"): k for k, name in enumerate(headers)}
    # Most memory first, as duration sorts slowest first.
    assert rows[0][0] == "test_memory.py::test_big"
    assert mib(rows[0][column["memory"]]) == pytest.approx(50, rel=0.1)
    assert re.fullmatch(r"[0-9.]+s", rows[0][column["CPU"]])
    over = browser.find_elements(By.CSS_SELECTOR, "#test-rows td.bad")
    assert [cell.text for cell in over] == [rows[0][column["memory"]]]
    # An opened row spans every column and says the figures again.
    browser.find_element(By.CSS_SELECTOR, "#test-rows tr.test-row").click()
    detail = browser.find_element(By.CSS_SELECTOR, "#test-rows tr.test-detail td")
    assert detail.get_attribute("colspan") == str(len(headers))
    assert "memory " + rows[0][column["memory"]] in detail.text


def test_the_summary_names_no_test_far_below_the_heaviest_and_busiest() -> None:
    from pytest_batchflow.terminal import resource_lines

    def measured(nodeid: str, memory: int, cpu: float) -> Any:
        figures = ResourceResult(
            peak_rss=100 * MIB + memory,
            memory=memory,
            rss_start=100 * MIB,
            rss_end=100 * MIB,
            cpu=cpu,
            wall=cpu,
            pid=42,
        )
        return case(nodeid, resources=figures)

    tests = [
        measured("t.py::test_big", 100 * MIB, 0.01),
        measured("t.py::test_two", 2 * MIB, 3.0),
        measured("t.py::test_tiny", 100 * 1024, 2.0),  # 0.1% of the heaviest: left out
        measured("t.py::test_none", 0, 0.0),
    ]

    resources = ResourcesResult(
        budget=None, cpus=1, memory_limit=None, leak_threshold=50 * MIB, cpu=5.01
    )
    memory, cpu = (line for line, _ in resource_lines(resources, tests)[:2])
    assert memory.startswith(
        "memory: heaviest tests t.py::test_big (100 MiB), t.py::test_two (2 MiB); "
    )
    # test_big's 0.01s is under a hundredth of the busiest's 3s.
    assert cpu == "CPU: 5.01s in 4 tests; busiest t.py::test_two (3.00s), t.py::test_tiny (2.00s)"
    # CPU figures shown as nothing name no test; nor does a 0 B one.
    quiet = [measured("t.py::test_big", 100 * MIB, 0.004), measured("t.py::test_zero", 0, 0.0)]
    little = resources.model_copy(update={"cpu": 0.004})
    memory, cpu = (line for line, _ in resource_lines(little, quiet)[:2])
    assert memory.startswith("memory: heaviest tests t.py::test_big (100 MiB); highest ")
    assert cpu == "CPU: 0.00s in 2 tests"
