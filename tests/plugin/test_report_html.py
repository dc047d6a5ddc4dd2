"""The HTML report as a file: where it goes, what it holds, what it never runs.

What a browser does with it (filters, sorting, hover) is in
``test_report_browser.py``; here the page is read as text and its embedded
data block as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_page import page_data
from results_factory import attempt, case, run

from pytest_batchflow.report import html as html_module
from pytest_batchflow.report.html import TEXT_LIMIT, render_html
from pytest_batchflow.results import CollectionProblem, RunResult

SUITE = {
    "test_shop": """
        import pytest

        def test_add():
            print("adding to the cart")

        @pytest.mark.depends_on("test_add")
        def test_checkout():
            print("checking out")
            assert 2 + 2 == 5, "checkout lost the cart"

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass
    """,
    "test_slow": """
        import time

        def test_nap():
            time.sleep(0.05)
    """,
}
INI = (
    "[pytest]\nbatchflow_batches =\n    shop: paths=test_shop.py\n"
    "    slow: paths=test_slow.py after=shop on_upstream_failure=run\n"
)


#: The environment of a result made up in a test.
ENVIRONMENT = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux",
    "pytest": "9",
    "batchflow": "0",
    "plugins": [],
    "rootdir": "/r",
    "invocation": [],
    "hostname": "h",
}


def rows_by_name(data: dict[str, Any]) -> dict[str, list[Any]]:
    return {row[1]: row for row in data["tests"]}


def test_written_by_default_under_batchflow_and_named_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    report = pytester.path / ".batchflow" / "report.html"
    assert result.outlines[-2] == f"batchflow: HTML report: {report}"
    html = report.read_text(encoding="utf-8")
    assert "<title>batchflow: failed, 4 tests</title>" in html
    assert 'id="why-failed">tests: 1 failed or errored<' in html
    # The batch DAG: a box per batch and the after= edge between them.
    dag = re.search(r'<svg id="dag".*?</svg>', html, re.S)
    assert dag is not None
    assert dag.group(0).count('class="node ') == 2
    assert dag.group(0).count('class="edge"') == 1
    # Counted in words: one test, three tests.
    assert "<title>slow: passed, 1 test</title>" in dag.group(0)
    assert "<title>shop: failed, 3 tests</title>" in dag.group(0)
    assert "passed · 1 test</text>" in dag.group(0)
    data = page_data(html)
    strings = data["strings"]
    rows = rows_by_name(data)
    assert list(rows) == ["test_add", "test_checkout", "test_skipped", "test_nap"]
    assert {name: strings[row[3]] for name, row in rows.items()} == {
        "test_add": "passed",
        "test_checkout": "failed",
        "test_skipped": "skipped",
        "test_nap": "passed",
    }
    assert strings[rows["test_add"][0]] == "test_shop.py"
    assert strings[rows["test_nap"][2]] == "slow"
    # Numbers are numbers: the nap's duration, start and stop.
    nap = rows["test_nap"]
    assert isinstance(nap[4], float)
    assert nap[4] >= 0.05
    assert nap[6] - nap[5] >= 0.05
    # A failure keeps its traceback and output; a passing test's output is left out.
    checkout = data["details"][rows["test_checkout"][8]]
    assert "checkout lost the cart" in checkout["r"]
    assert checkout["o"] == "checking out\n"
    assert checkout["p"] == ["test_shop.py::test_add"]
    assert rows["test_add"][8] == -1
    assert "adding to the cart" not in html
    # Each repeated string once.
    assert len(strings) == len(set(strings))


def test_passing_tests_output_is_kept_when_asked(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    pytester.runpytest("--batchflow", "--batchflow-html-passed-output")
    data = page_data((pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8"))
    add = rows_by_name(data)["test_add"]
    assert data["details"][add[8]]["o"] == "adding to the cart\n"


def test_self_contained_nothing_fetched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**SUITE)
    pytester.runpytest("--batchflow")
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\bsrc=", html)
    assert "@import" not in html
    assert "url(" not in html.replace("url(#arrow)", "")
    assert "fetch(" not in html
    assert "XMLHttpRequest" not in html
    assert "default-src 'none'" in html


def test_off_writes_nothing_and_a_path_writes_there(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest("--batchflow", "--batchflow-html=off", "--batchflow-no-history")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".batchflow").exists()
    assert "HTML report" not in result.stdout.str()
    pytester.makeini("[pytest]\nbatchflow_html = reports/run.html\n")
    pytester.runpytest("--batchflow").assert_outcomes(passed=1)
    report = pytester.path / "reports" / "run.html"
    assert report.is_file()
    assert report.stat().st_mode & 0o044 == 0o044  # readable by others, as outputs are
    assert [p.name for p in report.parent.iterdir()] == ["run.html"]  # no temporary file left


def test_a_report_that_cannot_be_written_costs_no_result(pytester: pytest.Pytester) -> None:
    # The default path, not asked for, is not checked before the run: its end says.
    pytester.makepyfile(test_one="def test_one(): pass")
    (pytester.path / ".batchflow").write_text("a file, not a folder")
    result = pytester.runpytest(
        "--batchflow", "--batchflow-no-history", "--batchflow-json=result.json"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    warning = "batchflow: warning: could not write the HTML report to */.batchflow/report.html: *"
    result.stdout.fnmatch_lines([f"{warning}: */.batchflow"])
    assert RunResult.model_validate_json((pytester.path / "result.json").read_text()).tests


HOSTILE = r"""
    import sys
    import pytest

    NAMES = ["<script>window.pwned=1</script>", '"><img src=x onerror="window.pwned=2">']

    @pytest.mark.parametrize("name", NAMES, ids=NAMES)
    def test_hostile(name):
        print(name)
        print("</script><script>window.pwned=3</script>")
        sys.stdout.buffer.write(b"\xff\xfe bad \x80\n")
        sys.stdout.flush()
        assert False, name

    def test_huge_output():
        print("x" * 1_000_000)
        assert False
"""


def test_hostile_names_and_outputs_are_escaped_and_cut(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_evil=HOSTILE)
    result = pytester.runpytest("--batchflow", "--batchflow-json=result.json")
    result.assert_outcomes(failed=3)
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    # Nothing from the suite appears as markup: only the page's own two scripts.
    assert html.count("<script") == 2
    assert "<img" not in html
    assert "window.pwned" in html  # present, as escaped text
    data = page_data(html)
    ids = [row[1] for row in data["tests"]]
    assert "test_hostile[<script>window.pwned=1</script>]" in ids
    assert 'test_hostile["><img src=x onerror="window.pwned=2">]' in ids
    huge = data["details"][rows_by_name(data)["test_huge_output"][8]]["o"]
    assert len(huge) < TEXT_LIMIT + 200
    assert "characters cut here; the JSON result (--batchflow-json) has the whole text" in huge
    # The JSON result keeps the whole output.
    full = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    assert max(len(test.stdout) for test in full.tests) > 1_000_000


def test_hooks_add_a_section_and_row_notes_kept_in_the_json(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_batchflow_report_sections(config, result):
            first = result.tests[0].nodeid
            return [("Owners", f"<p class='owners'>{len(result.tests)} tests from {first}</p>")]

        def pytest_batchflow_report_test(config, test):
            if "checkout" in test.nodeid:
                return "owner: <payments team>"
            return None
        """
    )
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    pytester.runpytest("--batchflow", "--batchflow-json=result.json")
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert '<a href="#extra-1">Owners</a>' in html
    assert "<p class='owners'>4 tests from test_shop.py::test_add</p>" in html
    rows = rows_by_name(page_data(html))
    assert rows["test_checkout"][11] == ["owner: <payments team>"]
    assert len(rows["test_add"]) == 10  # its line, then no attempts or notes: left off
    saved = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    assert [(s.title, s.html) for s in saved.sections] == [
        ("Owners", "<p class='owners'>4 tests from test_shop.py::test_add</p>")
    ]
    assert [t.notes for t in saved.tests if t.notes] == [["owner: <payments team>"]]
    # Re-rendered from the JSON alone, the page shows them again.
    again = render_html(saved)
    assert "<p class='owners'>4 tests from test_shop.py::test_add</p>" in again


FLAKY = """
import pathlib

def test_flaky():
    path = pathlib.Path(__file__).with_name("attempts")
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    assert count % 2 == 0, "odd attempt"
"""


def test_flaky_section_shows_attempts_score_and_recent_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHFLOW_COMMIT", "c0ffee")
    pytester.makepyfile(test_wobbly=FLAKY)
    for _ in range(2):
        outcomes = pytester.runpytest("--batchflow", "--batchflow-reruns=1").parseoutcomes()
        assert outcomes == {"flaky": 1, "rerun": 1}
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    flaky = re.search(r'<table class="grid" id="flaky-table">.*?</table>', html, re.S)
    assert flaky is not None
    table = flaky.group(0)
    assert "test_wobbly.py::test_flaky" in table
    assert '<td class="n">2</td>' in table  # attempts
    # Flaky in both runs at one commit: (2 flaky runs + 0 flips) / (2 runs + 1 pair).
    assert '<td class="n">0.67</td>' in table
    # The sparkline: this run and the one before, both flaky.
    assert '<path class="o-flaky" d="M0 0h7v14h-7zM9 0h7v14h-7z"/>' in table
    assert "<title>flaky flaky</title>" in table
    assert '<div>1: failed on main: <span class="mono">AssertionError: odd attempt</span>' in table


def test_coverage_section_links_to_coverage_html(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("shop")
    (pytester.path / "shop" / "cart.py").write_text(
        "def total(items):\n    return sum(items)\n\ndef unused():\n    return 0\n"
    )
    pytester.makepyfile(
        test_cart="from shop.cart import total\n\ndef test_total():\n"
        "    assert total([1, 2]) == 3\n"
    )
    pytester.syspathinsert()
    pytester.runpytest_subprocess("--batchflow", "--batchflow-cov=shop").assert_outcomes(passed=1)
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert '<a href="coverage/html/index.html">' in html
    assert (pytester.path / ".batchflow" / "coverage" / "html" / "index.html").is_file()
    total = re.search(r'<b id="coverage-total">([0-9.]+)%</b>', html)
    assert total is not None
    assert 50 < float(total.group(1)) < 100


def test_sections_without_data_say_why(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    perf: kind=benchmark paths=test_perf.py\n")
    pytester.makepyfile(test_perf="def test_fast(): pass")
    pytester.runpytest("--batchflow").assert_outcomes(passed=1)
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert "Coverage was not measured: give --batchflow-cov=SOURCE" in html
    assert "No flaky test: no test failed and then passed on a rerun (no test was rerun)." in html
    assert (
        "No benchmark figures: the benchmark batch perf ran 1 tests, none of which timed a "
        "function with the bench fixture" in html
    )
    assert "unknown: the history had no durations for this plan yet" in html


def test_under_xdist_the_controller_writes_one_report_with_a_lane_per_worker(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_many="import time\nimport pytest\n\n@pytest.mark.parametrize('i', range(8))\n"
        "def test_nap(i):\n    time.sleep(0.1)\n"
    )
    result = pytester.runpytest_subprocess("--batchflow", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    assert result.stdout.str().count("batchflow: HTML report:") == 1
    data = page_data((pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8"))
    workers = {data["strings"][row[7]] for row in data["tests"]}
    assert workers == {"gw0", "gw1"}


def test_fifty_thousand_tests_render_within_bounds(tmp_path: Path) -> None:
    """Scale is measured in benchmarks/report_scale.py; here: the page stays small."""
    started = 1_700_000_000.0
    tests = [
        {
            "nodeid": f"tests/pkg{i % 40}/test_mod{i % 400}.py::TestThing::test_case[{i}]",
            "batch": f"batch{i % 5}",
            "outcome": "passed",
            "duration": 0.001,
            "start": started + i * 0.001,
            "stop": started + i * 0.001 + 0.001,
            "worker": f"gw{i % 4}",
            "phases": [],
            "stdout": "noise " * 20,
        }
        for i in range(50_000)
    ]
    result = RunResult.model_validate(
        {
            "started": started,
            "stopped": started + 60,
            "duration": 60,
            "exitstatus": 0,
            "environment": ENVIRONMENT,
            "batches": [],
            "tests": tests,
        }
    )
    html = render_html(result)
    # Passing tests' output left out, paths once: about 55 bytes a test.
    assert len(html.encode()) < 50_000 * 60
    assert "noise" not in html


def small_result() -> RunResult:
    started = 1_700_000_000.0
    return RunResult.model_validate(
        {
            "started": started,
            "stopped": started + 1,
            "duration": 1,
            "exitstatus": 1,
            "environment": ENVIRONMENT,
            "batches": [],
            "tests": [
                {
                    "nodeid": "test_a.py::test_fails",
                    "batch": "default",
                    "outcome": "failed",
                    "duration": 0.5,
                    "start": started,
                    "stop": started + 0.5,
                    "worker": "main",
                    "phases": [],
                    "longrepr": "E   assert 1 == 2",
                }
            ],
        }
    )


@pytest.fixture
def template_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The compiled-template cache in a folder of the test's own, emptied before
    and after (the environment that holds it is built once a process)."""
    folder = tmp_path / "jinja2-cache"
    folder.mkdir()
    real = html_module._bytecode_cache
    monkeypatch.setattr(html_module, "_bytecode_cache", lambda: real(str(folder)))
    html_module._environment.cache_clear()
    yield folder
    html_module._environment.cache_clear()


def test_the_compiled_template_is_cached_and_renders_the_same(template_cache: Path) -> None:
    result = small_result()
    compiled = render_html(result)
    assert [path.suffix for path in template_cache.iterdir()] == [".cache"]
    html_module._environment.cache_clear()  # a later run: loads it compiled
    assert render_html(result) == compiled
    assert "assert 1 == 2" in compiled


def test_a_cache_that_cannot_be_written_costs_no_report(template_cache: Path) -> None:
    template_cache.rmdir()  # gone (a cleaned temporary directory): writing there fails
    assert "assert 1 == 2" in render_html(small_result())
    assert not template_cache.exists()


def test_no_flaky_line_says_whether_any_test_was_rerun() -> None:
    clean = render_html(run([case("t.py::a"), case("t.py::b", outcome="failed")]))
    rerun_failed = render_html(
        run([case("t.py::a"), case("t.py::b", outcome="failed", attempts=[attempt()])])
    )
    line = "No flaky test: no test failed and then passed on a rerun"
    assert f"{line} (no test was rerun).</p>" in clean
    assert f"{line}.</p>" in rerun_failed
    assert "(no test was rerun)" not in rerun_failed


@pytest.mark.parametrize(
    ("errors", "words"), [(1, "1 collection error"), (2, "2 collection errors")]
)
def test_the_title_counts_collection_errors_in_words(errors: int, words: str) -> None:
    problems = [
        CollectionProblem(nodeid=f"bad{i}.py", outcome="error", longrepr="E   ImportError")
        for i in range(errors)
    ]
    result = run([case("a.py::test_one", "passed")], collection=problems, exitstatus=2)
    assert f"<title>batchflow: failed, 1 test, {words}</title>" in render_html(result)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(119.97, "2m 00.0s"), (59.999, "1m 00.0s"), (59.994, "59.99s"), (61.25, "1m 01.2s")],
)
def test_minutes_never_read_sixty_seconds(value: float, shown: str) -> None:
    """119.97 s read "1m 60.0s": the seconds were rounded after the minutes were taken."""
    assert html_module._seconds(value) == shown


def test_workers_are_listed_in_number_order_without_the_controller() -> None:
    """gw2 before gw10; the xdist controller runs no test (its skips take no time)."""
    tests = [
        case(f"t.py::test_{worker}", worker=worker)
        for worker in ("gw10", "gw2", "gw1", "controller")
    ]
    html = render_html(run(tests))
    assert "(gw1, gw2, gw10)</dd>" in html


def test_without_javascript_the_table_and_the_timeline_say_why_they_are_empty() -> None:
    html = render_html(run([case("t.py::a")]))
    assert "<noscript><p>The tests table needs JavaScript" in html
    assert "<noscript><p>The timeline needs JavaScript" in html


def test_lane_names_sort_by_their_digit_runs_only() -> None:
    names = ["gw10", "shard²/gw1", "gw2", "main", "shard²/gw0"]
    assert sorted(names, key=html_module._natural) == [
        "gw2",
        "gw10",
        "main",
        "shard²/gw0",
        "shard²/gw1",
    ]
    assert html_module._seconds(float("nan")) == "nans"
