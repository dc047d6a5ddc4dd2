"""The HTML report in a real browser: headless Chromium driven by Selenium.

Each test runs a suite with pytester, opens the report it wrote from ``file://``
and does what a reader does: filter, sort, expand rows, hover the timeline.
Skipped when selenium, chromium or chromedriver is missing (CI installs them).
A failing test leaves a screenshot in ``$BATCHFLOW_SCREENSHOTS`` (default: its
``tmp_path``) and prints where.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from report_page import headless_chromium
from selenium.webdriver import Chrome
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

# Read at import: tests/conftest.py removes every BATCHFLOW_* variable before each test.
SCREENSHOTS = os.environ.get("BATCHFLOW_SCREENSHOTS")
# The timeline's geometry, as report.js draws it.
LANE, LEFT, TOP, RIGHT = 22, 90, 20, 10
WAIT = 10.0

INI = """
[pytest]
batchflow_batches =
    fast: paths=test_fast.py
    slow: paths=test_slow.py after=fast on_upstream_failure=run
"""
FAST = """
import pathlib
import time

import pytest


def attempt(name):
    path = pathlib.Path(__file__).with_name(f".attempts-{name}")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


def test_quick():
    time.sleep(0.01)


def test_brisk():
    time.sleep(0.05)


def test_broken():
    print("stdout of the broken test")
    assert 6 * 7 == 41, "a distinctive message about 41"


def test_flaky():
    assert attempt("flaky") > 1, "the first attempt fails"


def test_skipped():
    pytest.skip("not on this platform")


@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert 0
"""
SLOW = """
import time


def test_slowest():
    time.sleep(0.2)


def test_steady():
    time.sleep(0.1)
"""
FAST_IDS = [
    "test_fast.py::test_quick",
    "test_fast.py::test_brisk",
    "test_fast.py::test_broken",
    "test_fast.py::test_flaky",
    "test_fast.py::test_skipped",
    "test_fast.py::test_known_bug",
]
SLOW_IDS = ["test_slow.py::test_slowest", "test_slow.py::test_steady"]

HOSTILE_TEXTS = [
    "<script>window.pwned=1</script>",
    '"><img src=x onerror="window.pwned=2">',
    "</script><script>window.pwned=3</script>",
    "<b>bold</b>",
]
# Raw: the escapes are for the suite's source, not for this module.
HOSTILE = rf"""
import sys

import pytest

HOSTILE = {HOSTILE_TEXTS!r}


@pytest.mark.parametrize("text", HOSTILE, ids=HOSTILE)
def test_hostile(text):
    print(text)
    print(text, file=sys.stderr)
    assert 0, text


def test_undecodable_output():
    sys.stdout.flush()
    sys.stdout.buffer.write(b"\xff\xfe bad bytes \x80\n")
    sys.stdout.buffer.flush()
    print("a lone surrogate: \udcff")
    assert 0, "undecodable output"


def test_huge_output():
    print("x" * 1_000_000)
    assert 0, "huge output"


def test_passes():
    pass
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    """One headless Chromium for the module, its console log kept."""
    chrome: Chrome = headless_chromium(tmp_path_factory.mktemp("chromium"), browser_log=True)
    try:
        yield chrome
    finally:
        chrome.quit()


@contextmanager
def watching(driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """The body's browser session: a screenshot if it fails, and no console error if it passes."""
    driver.get_log("browser")  # what earlier tests left
    try:
        yield
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, f"errors in the browser console: {severe}"
    except Exception:
        folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request.node.name}.png"
        driver.save_screenshot(str(path))
        print(f"screenshot of the failure: {path}")
        raise


@dataclass(frozen=True)
class ReportedTest:
    """One test as the page's data block has it."""

    nodeid: str
    outcome: str
    batch: str
    duration: float
    start: float
    stop: float
    worker: str


def run_main_suite(pytester: pytest.Pytester) -> Path:
    pytester.makeini(INI)
    pytester.makepyfile(test_fast=FAST, test_slow=SLOW)
    result = pytester.runpytest("--batchflow", "--batchflow-reruns=1", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1, skipped=1, xfailed=1)
    return report_of(pytester, result)


def report_of(pytester: pytest.Pytester, result: pytest.RunResult) -> Path:
    report = pytester.path / ".batchflow" / "report.html"
    assert report.is_file(), "\n".join(result.outlines)
    return report


def open_report(driver: Chrome, report: Path) -> None:
    driver.get(report.as_uri())
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.documentElement.dataset.ready") == "1"
    )


def page_tests(driver: Chrome) -> list[ReportedTest]:
    """The tests in the page's data block (columns: report/html.py, ``_payload``)."""
    data = json.loads(
        driver.execute_script("return document.getElementById('batchflow-data').textContent")
    )
    strings = data["strings"]
    return [
        ReportedTest(
            f"{strings[row[0]]}::{row[1]}" if strings[row[0]] else row[1],
            strings[row[3]],
            strings[row[2]],
            row[4],
            row[5],
            row[6],
            strings[row[7]],
        )
        for row in data["tests"]
    ]


def shown_ids(driver: Chrome) -> list[str]:
    """The node ids in the table's rows, top to bottom, as rendered (one call for 100 rows)."""
    ids: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#test-rows tr.test-row'),"
        " row => row.cells[0].innerText)"
    )
    return ids


def count_text(driver: Chrome) -> str:
    return driver.find_element(By.ID, "test-count").text


def choose(driver: Chrome, select_id: str, value: str) -> None:
    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def sort_by(driver: Chrome, key: str) -> list[str]:
    driver.find_element(By.CSS_SELECTOR, f"th[data-sort={key}]").click()
    return shown_ids(driver)


def row_index(driver: Chrome, nodeid: str) -> str:
    """The ``data-i`` of the shown row whose first cell reads ``nodeid``."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#test-rows tr.test-row")
    shown = shown_ids(driver)
    assert nodeid in shown, f"no row for {nodeid} among {shown}"
    return rows[shown.index(nodeid)].get_attribute("data-i") or ""


def toggle(driver: Chrome, nodeid: str) -> None:
    """Clicks the test's row: opens it, or folds it when open."""
    index = row_index(driver, nodeid)
    driver.find_element(By.CSS_SELECTOR, f'tr.test-row[data-i="{index}"]').click()


def detail(driver: Chrome, nodeid: str) -> WebElement:
    """The detail row under an open test's row."""
    index = row_index(driver, nodeid)
    return driver.find_element(By.CSS_SELECTOR, f'tr.test-row[data-i="{index}"] + tr.test-detail')


def hover_bar(driver: Chrome, test: ReportedTest) -> str:
    """Moves the mouse to the middle of the test's timeline bar; returns the tip's text."""
    tests = page_tests(driver)
    workers = sorted({t.worker for t in tests})
    end = max(t.stop for t in tests)
    svg = driver.find_element(By.ID, "timeline-svg")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", svg)
    width = float(svg.get_attribute("width") or 0)
    scale = (width - LEFT - RIGHT) / end
    x = LEFT + (test.start + test.stop) / 2 * scale
    y = TOP + workers.index(test.worker) * LANE + LANE / 2
    # Offsets are from the element's centre.
    ActionChains(driver).move_to_element_with_offset(
        svg, round(x - svg.size["width"] / 2), round(y - svg.size["height"] / 2)
    ).perform()
    tip = driver.find_element(By.ID, "timeline-tip")
    WebDriverWait(driver, WAIT).until(lambda _: tip.is_displayed())
    return tip.get_attribute("textContent") or ""


def pwned(driver: Chrome) -> bool:
    """Whether any of the hostile suite's scripts ran."""
    kind: str = driver.execute_script("return typeof window.pwned")
    return kind != "undefined"


def test_filters_leave_the_matching_tests_and_count_them(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_main_suite(pytester)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        assert count_text(driver) == "8 of 8 tests"
        assert sorted(shown_ids(driver)) == sorted(FAST_IDS + SLOW_IDS)

        choose(driver, "filter-outcome", "failed")
        assert shown_ids(driver) == ["test_fast.py::test_broken"]
        assert count_text(driver) == "1 of 8 tests"
        choose(driver, "filter-outcome", "flaky")
        assert shown_ids(driver) == ["test_fast.py::test_flaky"]
        choose(driver, "filter-outcome", "")

        choose(driver, "filter-batch", "slow")
        assert sorted(shown_ids(driver)) == sorted(SLOW_IDS)
        assert count_text(driver) == "2 of 8 tests"
        choose(driver, "filter-batch", "fast")
        assert sorted(shown_ids(driver)) == sorted(FAST_IDS)
        choose(driver, "filter-batch", "")

        # The failure's message, not its node id, matches, whatever the case.
        driver.find_element(By.ID, "filter-text").send_keys("DISTINCTIVE Message")
        WebDriverWait(driver, WAIT).until(lambda d: count_text(d) == "1 of 8 tests")
        assert shown_ids(driver) == ["test_fast.py::test_broken"]
        driver.find_element(By.ID, "filter-text").send_keys(" that no test has")
        WebDriverWait(driver, WAIT).until(lambda d: count_text(d) == "0 of 8 tests")
        assert driver.find_element(By.ID, "page-info").text == "no test matches"

        # The verdict at the top reads "failed", in a colour other than its badge's.
        verdict = driver.find_element(By.CSS_SELECTOR, "h1 .verdict")
        assert verdict.text == "failed"
        assert verdict.value_of_css_property("color") != verdict.value_of_css_property(
            "background-color"
        )


def test_sorting_by_duration_and_by_name(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_main_suite(pytester)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        duration = {t.nodeid: t.duration for t in page_tests(driver)}

        slowest_first = sort_by(driver, "duration")
        # The slowest as measured: on a loaded machine a 10 ms sleep can take
        # longer than the 200 ms one.
        assert duration[slowest_first[0]] == max(duration.values())
        durations = [duration[nodeid] for nodeid in slowest_first]
        assert durations == sorted(durations, reverse=True)
        assert sort_by(driver, "duration") == slowest_first[::-1]

        by_name = sort_by(driver, "name")
        assert by_name == sorted(FAST_IDS + SLOW_IDS)
        assert sort_by(driver, "name") == by_name[::-1]


def test_expanding_rows_shows_traceback_output_and_earlier_attempts(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_main_suite(pytester)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        toggle(driver, "test_fast.py::test_broken")
        broken = detail(driver, "test_fast.py::test_broken")
        traceback = broken.find_element(By.CSS_SELECTOR, "pre.longrepr").text
        assert "AssertionError: a distinctive message about 41" in traceback
        assert (
            "stdout of the broken test" in broken.find_element(By.CSS_SELECTOR, "pre.stdout").text
        )

        toggle(driver, "test_fast.py::test_flaky")
        flaky = detail(driver, "test_fast.py::test_flaky")
        attempts = flaky.find_elements(By.CSS_SELECTOR, "pre.attempt")
        assert len(attempts) == 1
        assert "the first attempt fails" in attempts[0].text
        row = driver.find_element(By.CSS_SELECTOR, "tr.test-row.o-flaky")
        assert "(2 attempts)" in row.text

        # The broken test stays open; clicking it again folds it.
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.test-detail")) == 2
        toggle(driver, "test_fast.py::test_broken")
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.test-detail")) == 1


def test_timeline_tip_names_the_test_under_the_mouse(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_main_suite(pytester)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        tests = page_tests(driver)
        assert {t.worker for t in tests} == {"main"}
        for nodeid in ("test_slow.py::test_slowest", "test_slow.py::test_steady"):
            test = next(t for t in tests if t.nodeid == nodeid)
            assert hover_bar(driver, test).splitlines()[0] == nodeid
        # Off the lanes (over the worker's label) there is no tip.
        svg = driver.find_element(By.ID, "timeline-svg")
        ActionChains(driver).move_to_element_with_offset(
            svg, round(LEFT / 2 - svg.size["width"] / 2), 0
        ).perform()
        assert not driver.find_element(By.ID, "timeline-tip").is_displayed()


def test_xdist_run_has_a_lane_per_worker_and_pages_of_rows(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_parallel="""
        import time

        import pytest


        @pytest.mark.parametrize("n", range(105))
        def test_tiny(n):
            pass


        def test_long_one():
            time.sleep(0.3)


        def test_long_two():
            time.sleep(0.3)
        """
    )
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=107)
    report = report_of(pytester, result)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        labels = driver.find_elements(By.CSS_SELECTOR, "#timeline-svg text.lane")
        assert [label.text for label in labels] == ["gw0", "gw1"]
        tests = page_tests(driver)
        for worker in ("gw0", "gw1"):
            longest = max((t for t in tests if t.worker == worker), key=lambda t: t.duration)
            assert hover_bar(driver, longest).splitlines()[0] == longest.nodeid

        info = driver.find_element(By.ID, "page-info")
        assert info.text == "rows 1-100 of 107 (page 1 of 2)"
        assert len(shown_ids(driver)) == 100
        assert not driver.find_element(By.ID, "page-prev").is_enabled()
        driver.find_element(By.ID, "page-next").click()
        assert info.text == "rows 101-107 of 107 (page 2 of 2)"
        assert len(shown_ids(driver)) == 7
        assert not driver.find_element(By.ID, "page-next").is_enabled()
        driver.find_element(By.ID, "page-prev").click()
        assert len(shown_ids(driver)) == 100


def test_hostile_ids_and_output_stay_text(
    pytester: pytest.Pytester, driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    pytester.makepyfile(test_hostile=HOSTILE)
    result = pytester.runpytest("--batchflow", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=6)
    report = report_of(pytester, result)
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        assert not pwned(driver)
        ids = shown_ids(driver)
        for text in HOSTILE_TEXTS:
            assert f"test_hostile.py::test_hostile[{text}]" in ids

        failing = [
            row.get_attribute("data-i")
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.test-row.o-failed")
        ]
        assert len(failing) == 6
        for index in failing:
            driver.find_element(By.CSS_SELECTOR, f'tr.test-row[data-i="{index}"]').click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.test-detail")) == 6
        assert not pwned(driver)
        assert driver.find_elements(By.CSS_SELECTOR, "#test-table img, #test-table b") == []
        assert driver.execute_script("return document.images.length") == 0

        first = detail(driver, f"test_hostile.py::test_hostile[{HOSTILE_TEXTS[0]}]")
        assert HOSTILE_TEXTS[0] in first.find_element(By.CSS_SELECTOR, "pre.stdout").text
        assert HOSTILE_TEXTS[0] in first.find_element(By.CSS_SELECTOR, "pre.stderr").text
        assert HOSTILE_TEXTS[0] in first.find_element(By.CSS_SELECTOR, "pre.longrepr").text

        undecodable = detail(driver, "test_hostile.py::test_undecodable_output")
        assert " bad bytes " in undecodable.find_element(By.CSS_SELECTOR, "pre.stdout").text

        huge = detail(driver, "test_hostile.py::test_huge_output")
        stdout = huge.find_element(By.CSS_SELECTOR, "pre.stdout")
        assert "characters cut here" in stdout.text
        assert len(stdout.get_attribute("textContent") or "") < 25_000

        tests = page_tests(driver)
        script = next(t for t in tests if HOSTILE_TEXTS[0] in t.nodeid)
        assert hover_bar(driver, script).splitlines()[0] == script.nodeid
        assert (
            driver.execute_script("return document.getElementById('timeline-tip').children.length")
            == 0
        )
        assert not pwned(driver)


def test_lanes_in_number_order_minutes_and_a_search_of_earlier_attempts(
    driver: Chrome, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Twelve workers' lanes read gw0, gw1, ..., gw11 (gw10 came after gw1), the
    controller's skips get no lane, 119.97 s reads 2m 0.0s (not 1m 60.0s), and
    the text filter finds a flaky test by its earlier attempt's error."""
    from results_factory import attempt, case, run

    from pytest_batchflow.report.html import render_html

    start = 1_700_000_010.0
    tests = [
        case(f"t.py::test_{n}", worker=f"gw{n}", start=start, stop=start + 1.0, duration=1.0)
        for n in range(12)
    ]
    tests[0] = tests[0].model_copy(update={"duration": 119.97, "stop": start + 119.97})
    flaky = attempt(longrepr="E   AssertionError: the first attempt fails")
    tests[1] = tests[1].model_copy(update={"outcome": "flaky", "attempts": [flaky]})
    tests.append(case("t.py::test_skipped", "skipped", worker="controller", duration=0.0))
    report = tmp_path / "report.html"
    report.write_text(render_html(run(tests)), encoding="utf-8")
    with watching(driver, request, tmp_path):
        open_report(driver, report)
        labels = driver.find_elements(By.CSS_SELECTOR, "#timeline-svg text.lane")
        assert [label.text for label in labels] == [f"gw{n}" for n in range(12)]
        assert sort_by(driver, "duration")[0] == "t.py::test_0"
        row = driver.find_element(By.CSS_SELECTOR, "#test-rows tr.test-row")
        assert "2m 0.0s" in row.text
        driver.find_element(By.ID, "filter-text").send_keys("first attempt fails")
        WebDriverWait(driver, WAIT).until(lambda d: count_text(d) == "1 of 13 tests")
        assert shown_ids(driver) == ["t.py::test_1"]
