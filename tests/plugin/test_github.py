"""GitHub Actions: the step summary (markdown, under 1 MiB) and error annotations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from results_factory import FAILURE, attempt, batch, case, run

from pytest_batchflow.cli import main
from pytest_batchflow.report import github
from pytest_batchflow.report.github import (
    ANNOTATION_LIMIT,
    SUMMARY_LIMIT,
    append_step_summary,
    step_summary,
)
from pytest_batchflow.report.html import render_html
from pytest_batchflow.results import (
    AttemptResult,
    CollectionProblem,
    CoverageBatch,
    CoverageGate,
    CoverageResult,
    PhaseResult,
    error_line,
)


def unescape(text: str) -> str:
    """What GitHub reads from an escaped workflow command value."""
    for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, plain)
    return text


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """``::error k=v,k=v::message`` -> ("error", {k: v}, message), unescaped."""
    match = re.fullmatch(r"::(\w+)(?: ([^:]*))?::(.*)", line)
    assert match is not None, line
    command, properties, message = match.groups()
    pairs = [pair.split("=", 1) for pair in properties.split(",")] if properties else []
    return command, {key: unescape(value) for key, value in pairs}, unescape(message)


# -- the step summary ----------------------------------------------------------------


def test_a_passing_run_says_passed_with_counts_times_and_batches() -> None:
    tests = [
        case("test_a.py::test_1"),
        case("test_a.py::test_2", "xpassed"),
        case("test_b.py::test_3", "skipped", batch="slow"),
        case("test_b.py::test_4", "flaky", batch="slow", attempts=[attempt()]),
    ]
    text = step_summary(run(tests, lower_bound=0.125, deselected=3), None)
    lines = text.splitlines()
    assert lines[0] == "## ✅ batchflow: passed"
    assert "**4 tests**: 1 passed, 1 flaky, 1 skipped, 1 xpassed, 3 deselected  " in lines
    # From the flaky test's first attempt, a second before the tests' start.
    assert "Duration 100.00s, makespan 1.25s (lower bound 0.12s, 10.00x)" in lines
    # The terminal's table: its columns in its order, and only batches with tests;
    # an xpass has a column of its own, as in the line above.
    header = (
        "| batch | kind | tests | passed | flaky | failed | skipped | xpassed | duration | status |"
    )
    assert header in lines
    assert "| <code>unit</code> | test | 2 | 1 | 0 | 0 | 0 | 1 | 2.00s | passed |" in lines
    assert "| <code>slow</code> | test | 2 | 0 | 1 | 0 | 1 | 0 | 2.00s | passed |" in lines
    assert "### Failures" not in text
    assert "HTML report" not in text


def test_the_batch_table_leaves_out_empty_batches_and_says_what_did_not_run() -> None:
    tests = [case("test_a.py::test_1", "failed", longrepr=FAILURE)]
    batches = [
        batch("unit", [*tests, case("test_a.py::test_2")], status="failed", not_run=1),
        batch("default", [], status="empty"),
    ]
    text = step_summary(run(tests, batches=batches), None)
    assert "| batch | kind | tests | passed | failed | skipped | duration | status |" in text
    assert "| <code>unit</code> | test | 2 | 1 | 1 | 0 | 2.00s | failed (1 not run) |" in text
    assert "<code>default</code>" not in text


def test_a_failed_run_says_what_failed_it() -> None:
    result = run([case(outcome="failed", longrepr=FAILURE)], failed_by=["tests", "coverage"])
    assert step_summary(result, None).startswith("## ❌ batchflow: failed by tests and coverage\n")
    interrupted = run([case()], exitstatus=2)
    assert step_summary(interrupted, None).startswith("## ❌ batchflow: failed (exit status 2)\n")


def test_without_history_there_is_no_lower_bound() -> None:
    text = step_summary(run([case()]), None)
    assert "Duration 100.00s, makespan 0.25s\n" in text
    assert "lower bound" not in text


def test_failures_and_flaky_tests_are_listed_with_their_error_line() -> None:
    tests = [
        case("tests/test_a.py::test_x", "failed", longrepr=FAILURE),
        case("tests/test_a.py::test_y", "error", longrepr="E   OSError: refused"),
        case("tests/test_a.py::test_z", "flaky", attempts=[attempt(), attempt()]),
        case("tests/test_a.py::test_q", "quarantined", longrepr=FAILURE),
    ]
    text = step_summary(run(tests), Path("out/report.html"))
    lines = text.splitlines()
    assert "### Failures (2)" in lines
    assert (
        "- <code>tests/test&#95;a.py&#58;&#58;test&#95;x</code> (failed): "
        "<code>AssertionError&#58; sums are off</code>"
    ) in lines
    assert (
        "- <code>tests/test&#95;a.py&#58;&#58;test&#95;y</code> (error): "
        "<code>OSError&#58; refused</code>"
    ) in lines
    assert "### Flaky tests (1)" in lines
    assert (
        "- <code>tests/test&#95;a.py&#58;&#58;test&#95;z</code>: passed at attempt 3, "
        "first failure: <code>AssertionError&#58; sums are off</code>"
    ) in lines
    assert lines[-1] == "HTML report: <code>out/report.html</code>"
    # Quarantined tests are counted, but they are not failures.
    assert "test&#95;q" not in text
    assert "1 quarantined" in text


def test_text_from_the_suite_cannot_inject_markup_or_break_the_table() -> None:
    nodeid = "test_a.py::test_x[a|b<script>alert(1)</script>`*_[x](y)]"
    tests = [case(nodeid, "failed", batch="b|<i>", longrepr="E   ValueError: `x` | <b>y</b>")]
    text = step_summary(run(tests), None)
    assert "<script>" not in text
    assert "<i>" not in text
    assert "<b>" not in text
    assert "`" not in text
    (row,) = [line for line in text.splitlines() if line.startswith("| <code>")]
    # Eight cells (no flaky column): the batch name's ``|`` does not add one.
    assert row.count("|") == 9
    (failure,) = [line for line in text.splitlines() if line.startswith("- ")]
    assert "|" not in failure
    assert "&#124;" in failure
    assert "&#60;script&#62;" in failure


def test_a_huge_suite_s_summary_stays_under_the_limit() -> None:
    longrepr = "E   AssertionError: " + "x" * 10_000
    tests = [
        case(
            f"tests/test_{i}.py::test_{'y' * 500}",
            "failed",
            batch=f"batch{i % 500}",
            longrepr=longrepr,
        )
        for i in range(50_000)
    ]
    result = run(tests)
    text = step_summary(result, Path("r" * 10_000))
    assert len(text.encode("utf-8")) < SUMMARY_LIMIT
    assert "### Failures (50000)" in text
    assert "... and 49950 more failures" in text
    assert "... and 450 more batches" in text
    assert sum(1 for line in text.splitlines() if line.startswith("- ")) == 50


def test_one_more_of_anything_is_said_in_the_singular() -> None:
    tests = [case(f"test_a.py::test_{i}", "failed", batch=f"b{i}") for i in range(51)]
    text = step_summary(run(tests), None)
    assert "... and 1 more failure\n" in text
    assert "... and 1 more batch\n" in text
    assert "**51 tests**" in text
    commands = github.annotations(run(tests[: ANNOTATION_LIMIT + 1]))
    assert commands[-1] == "::warning::batchflow: 1 more failure not annotated (see the report)"
    assert "**1 test**" in step_summary(run(tests[:1]), None)


def test_coverage_total_gates_and_batches_are_shown() -> None:
    coverage = CoverageResult(
        sources=["src"],
        context="batch",
        branch=False,
        statements=400,
        covered=350,
        percent=87.5,
        files=[],
        batches=[
            CoverageBatch(name="unit", covered=300, percent=75.0, only=120, only_lines={}),
        ],
        gates=[CoverageGate(batch=None, threshold=90, actual=87.5, passed=False)],
        failed=True,
    )
    text = step_summary(run([case()], coverage=coverage, failed_by=["coverage"]), None)
    lines = text.splitlines()
    assert lines[0] == "## ❌ batchflow: failed by coverage"
    assert "Total: **87.50%** (350 of 400 statements)" in lines
    assert "- total: 87.50%, at least 90% wanted: **failed**" in lines
    assert "| <code>unit</code> | 75.00% | 300 | 120 |" in lines


def test_append_step_summary_keeps_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("# Earlier step\n", encoding="utf-8")
    result = run([case()])
    append_step_summary(result, path, None)
    assert path.read_text(encoding="utf-8") == "# Earlier step\n\n" + step_summary(result, None)
    with pytest.raises(OSError, match="missing"):
        append_step_summary(result, tmp_path / "missing" / "summary.md", None)


# -- annotations ---------------------------------------------------------------------


def test_annotations_are_error_commands_for_failures_and_errors() -> None:
    tests = [
        case("tests/test_a.py::test_x", "failed", longrepr=FAILURE, line=12),
        case("tests/test_a.py::test_ok"),
        case("tests/test_b.py::test_y", "error", longrepr="E   OSError: refused", file=None),
    ]
    commands = [parse_command(line) for line in github.annotations(run(tests))]
    assert commands == [
        (
            "error",
            {
                "file": "tests/test_a.py",
                "line": "7",  # the traceback's line in the test's file, not the def's (12)
                "title": "batchflow: tests/test_a.py::test_x failed",
            },
            "AssertionError: sums are off\n\n" + FAILURE,
        ),
        (
            "error",
            {"title": "batchflow: tests/test_b.py::test_y errored"},
            "OSError: refused\n\nE   OSError: refused",
        ),
    ]


def test_annotation_text_is_escaped_and_reads_back_the_same() -> None:
    nodeid = "tests/test_a.py::test_x[100%,a:b\r\nc]"
    longrepr = "E   ValueError: 50% off, a:b\r\nsecond line"
    (line,) = github.annotations(
        run([case(nodeid, "failed", longrepr=longrepr, file="dir,x/a:b.py")])
    )
    assert "\n" not in line
    assert "\r" not in line
    head, message = line.split("::", 2)[1:]
    assert ":" not in head.partition(" ")[2]
    command, properties, text = parse_command(line)
    assert command == "error"
    assert properties["file"] == "dir,x/a:b.py"
    assert properties["title"] == f"batchflow: {nodeid} failed"
    assert text == "ValueError: 50% off, a:b\n\nE   ValueError: 50% off, a:b\nsecond line"
    assert "%25" in message


def test_at_most_ten_annotations_then_a_warning() -> None:
    tests = [case(f"test_a.py::test_{i}", "failed", longrepr=FAILURE) for i in range(25)]
    lines = github.annotations(run(tests))
    assert len(lines) == ANNOTATION_LIMIT + 1
    assert all(line.startswith("::error ") for line in lines[:ANNOTATION_LIMIT])
    assert "title=batchflow%3A test_a.py%3A%3Atest_9 failed" in lines[9]
    assert lines[-1] == "::warning::batchflow: 15 more failures not annotated (see the report)"
    assert len(github.annotations(run(tests[:ANNOTATION_LIMIT]))) == ANNOTATION_LIMIT


def test_an_annotation_holds_the_error_line_and_the_last_twenty_lines() -> None:
    longrepr = "\n".join(f"line {i}" for i in range(100)) + "\nE   KeyError: 'k'\nt.py:3: KeyError"
    (line,) = github.annotations(run([case(outcome="failed", longrepr=longrepr)]))
    _, _, message = parse_command(line)
    lines = message.splitlines()
    assert lines[0] == "KeyError: 'k'"
    assert lines[2:] == [
        *(f"line {i}" for i in range(82, 100)),
        "E   KeyError: 'k'",
        "t.py:3: KeyError",
    ]


def test_no_failures_no_annotations() -> None:
    assert (
        github.annotations(run([case(), case("t.py::test_q", "quarantined", longrepr=FAILURE)]))
        == []
    )


# -- end to end ----------------------------------------------------------------------

SUITE = """
import pytest

def test_ok():
    pass

def test_broken():
    assert 0, "50% broken, really"

@pytest.fixture
def server():
    raise OSError("refused")

def test_needs_server(server):
    pass
"""


def test_on_github_the_summary_is_appended_and_failures_annotated(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("## Build\n\nbuilt fine\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(test_x=SUITE)
    result = pytester.runpytest("--batchflow", "--batchflow-html=off")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            # The failing assert's line, and the raise in the fixture: not the defs'.
            "::error file=test_x.py,line=7,title=batchflow%3A test_x.py%3A%3Atest_broken failed"
            "::AssertionError: 50%25 broken, really%0A%0A*",
            "::error file=test_x.py,line=11,title=batchflow%3A test_x.py%3A%3Atest_needs_server "
            "errored::OSError: refused%0A%0A*",
        ]
    )
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## Build\n\nbuilt fine\n\n## ❌ batchflow: failed by tests\n")
    assert "**3 tests**: 1 passed, 1 failed, 1 error  " in text
    assert "### Failures (2)" in text
    assert "<code>AssertionError&#58; 50% broken, really</code>" in text
    assert "HTML report" not in text


def test_failed_calls_are_left_to_pytest_github_actions_annotate_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # That plugin annotates each failed call (its plugin name, as its entry
    # point registers it): batchflow annotates the rest, an error in a fixture.
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makeconftest(
        """
def pytest_configure(config):
    if not config.pluginmanager.has_plugin("pytest_github_actions_annotate_failures"):
        config.pluginmanager.register(object(), "pytest_github_actions_annotate_failures")
"""
    )
    pytester.makepyfile(test_x=SUITE)
    result = pytester.runpytest("--batchflow", "--batchflow-html=off")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    ours = [line for line in result.stdout.lines if line.startswith("::error file=")]
    assert len(ours) == 1
    assert ours[0].startswith(
        "::error file=test_x.py,line=11,title=batchflow%3A test_x.py%3A%3Atest_needs_server errored"
    )


def test_with_pytest_github_actions_annotate_failures_a_crash_is_still_annotated() -> None:
    # That plugin annotates failed call reports: a crashed worker's report
    # ("???") is none, nor is an error; a failed call, in any attempt, is.
    def phase(when: str, outcome: str) -> PhaseResult:
        return PhaseResult(when=when, outcome=outcome, duration=0.1, start=1.0, stop=1.1)

    crashed = case("t.py::test_crash", "failed", phases=[phase("???", "failed")])
    failed = case("t.py::test_fail", "failed", phases=[phase("call", "failed")])
    rerun = case(
        "t.py::test_probed",
        "failed",
        phases=[phase("call", "passed")],
        attempts=[
            AttemptResult(
                outcome="failed",
                worker="gw0",
                duration=0.1,
                start=1.0,
                stop=1.1,
                phases=[phase("call", "rerun")],
            )
        ],
    )
    errored = case("t.py::test_error", "error", phases=[phase("setup", "failed")])
    result = run([crashed, failed, rerun, errored])
    titles = [
        parse_command(line)[1]["title"] for line in github.annotations(result, failures=False)
    ]
    assert titles == ["batchflow: t.py::test_crash failed", "batchflow: t.py::test_error errored"]
    assert len(github.annotations(result)) == 4


def test_the_summary_names_the_html_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_x="def test_ok(): pass")
    result = pytester.runpytest("--batchflow", "--batchflow-html=out/report.html")
    result.assert_outcomes(passed=1)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("\n## ✅ batchflow: passed\n")
    assert f"HTML report: <code>{pytester.path}/out/report.html</code>" in text.replace(
        "&#95;", "_"
    ).replace("&#58;", ":")
    # Off GitHub Actions (GITHUB_ACTIONS unset) there are no workflow commands.
    assert "::error" not in result.stdout.str()


def test_off_github_actions_no_workflow_commands_are_printed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=SUITE)
    result = pytester.runpytest("--batchflow", "--batchflow-html=off")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert not [line for line in result.stdout.lines if line.startswith("::")]


def test_collection_errors_are_annotated_first_with_a_file_only_where_there_is_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_bad.py").write_text("import nope\n")
    (tmp_path / "pkg").mkdir()
    problems = [
        CollectionProblem(nodeid="test_bad.py", outcome="error", longrepr="E   ImportError: nope"),
        CollectionProblem(nodeid="pkg", outcome="error", longrepr="E   ImportError: in conftest"),
        CollectionProblem(
            nodeid="gw1",
            outcome="error",
            longrepr="Different tests were collected between gw0 and gw1.\nKnown limitations",
        ),
        CollectionProblem(nodeid="test_skip.py", outcome="skipped", longrepr="needs X"),
    ]
    failing = [case(f"t.py::test_{n}", "failed") for n in range(9)]
    result = run(failing, collection=problems, exitstatus=1, failed_by=["collection", "tests"])
    result = result.model_copy(
        update={"environment": result.environment.model_copy(update={"rootdir": str(tmp_path)})}
    )
    commands = github.annotations(result)
    heads = [command.split("::")[1] for command in commands]
    assert heads[:3] == [
        "error file=test_bad.py,title=batchflow%3A test_bad.py could not be collected",
        "error title=batchflow%3A pkg could not be collected",
        "error title=batchflow%3A gw1 could not be collected",
    ]
    assert (
        commands[2]
        .split("::")[2]
        .startswith("Different tests were collected between gw0 and gw1.%0A")
    )
    # At most 10 errors: 3 collection errors, then 7 of the 9 failed tests.
    assert len(commands) == 11
    assert commands[-1] == "::warning::batchflow: 2 more failures not annotated (see the report)"


@pytest.mark.parametrize("tb", ["auto", "short", "native"])
def test_annotations_find_the_failing_line_from_a_subfolder_in_every_traceback_style(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tb: str
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makeini("[pytest]\n")
    tests = pytester.mkdir("tests")
    (tests / "test_x.py").write_text(
        "def helper():\n"  # 1
        "    raise ValueError('deep')\n"  # 2
        "\n"  # 3
        "def test_broken():\n"  # 4
        "    x = 1\n"  # 5
        "    helper()\n"  # 6
    )
    monkeypatch.chdir(tests)  # tracebacks name the file relative to here: test_x.py
    result = pytester.runpytest("--batchflow", "--batchflow-html=off", f"--tb={tb}")
    result.assert_outcomes(failed=1)
    # The deepest entry in the test's file: the raise in its helper.
    result.stdout.fnmatch_lines(
        ["::error file=tests/test_x.py,line=2,title=batchflow%3A tests/test_x.py%3A%3A*"]
    )


EXCEPTION_GROUP = """\
+ Exception Group Traceback (most recent call last):
  |   File "/src/test_eg.py", line 2, in test_g
  |     raise ExceptionGroup("two errors", [ValueError("a"), TypeError("b")])
  | ExceptionGroup: two errors (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: a
    +---------------- 2 ----------------
    | TypeError: b
    +------------------------------------"""


def test_an_exception_group_s_error_line_is_its_own_not_its_box() -> None:
    # pytest's short summary: "ExceptionGroup: two errors (2 sub-exceptions)".
    assert error_line(EXCEPTION_GROUP) == "ExceptionGroup: two errors (2 sub-exceptions)"
    assert error_line("    | TypeError: b\n    +------------") == "| TypeError: b"
    assert error_line("+-----\n  +---- 1 ----") == "(no error text)"


CHAINED_NATIVE = f"""\
{EXCEPTION_GROUP}

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/src/test_eg.py", line 9, in test_wrapped
    raise RuntimeError("wrapper") from group
RuntimeError: wrapper"""


def test_the_error_line_of_a_chain_is_its_last_exception_s() -> None:
    # --tb=native: no E lines; pytest's summary names the RuntimeError.
    assert error_line(CHAINED_NATIVE) == "RuntimeError: wrapper"


def test_an_exception_group_s_annotation_points_at_the_raise_in_the_test_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(
        test_g="""
            def helper():
                raise ExceptionGroup("two errors", [ValueError("a"), TypeError("b")])

            def test_group():
                x = 1
                helper()
        """
    )
    result = pytester.runpytest("--batchflow", "--batchflow-html=off")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["::error file=test_g.py,line=2,title=batchflow%3A test_g.py%3A%3Atest_group failed::*"]
    )


@pytest.mark.parametrize(
    ("bound", "github", "html"),
    [
        (0.125, "(lower bound 0.12s, 2.00x)", ": makespan is 2.00 x the bound"),
        # A bound that prints as 0.00s gets no ratio (it was 125.00x here).
        (0.002, "(lower bound 0.00s)", "0.00s on 1 worker</dd>"),
    ],
)
def test_a_ratio_to_the_lower_bound_only_where_the_bound_shows(
    bound: float, github: str, html: str
) -> None:
    result = run([case("test_a.py::test_1")], lower_bound=bound)
    assert f"Duration 100.00s, makespan 0.25s {github}" in step_summary(result, None)
    assert html in render_html(result)


def test_an_annotation_path_through_a_link_or_with_dots_is_the_checkout_s(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "proj").mkdir(parents=True)
    (tmp_path / "link").symlink_to(checkout)
    tests = [case("../other/test_o.py::test_x", "failed", longrepr=FAILURE, line=3)]
    result = run(tests)
    result = result.model_copy(
        update={
            "environment": result.environment.model_copy(update={"rootdir": str(checkout / "proj")})
        }
    )
    for workspace in (checkout, tmp_path / "link"):
        (command,) = [
            parse_command(line) for line in github.annotations(result, None, str(workspace))
        ]
        assert command[1]["file"] == "other/test_o.py"
    # A test file that is a link to a file outside the checkout stays where it is.
    (checkout / "other").mkdir()
    (tmp_path / "outside.py").write_text("")
    (checkout / "other" / "test_o.py").symlink_to(tmp_path / "outside.py")
    (command,) = [parse_command(line) for line in github.annotations(result, None, str(checkout))]
    assert command[1]["file"] == "other/test_o.py"


@pytest.mark.parametrize(
    ("workspace", "file"),
    [
        (None, "tests/test_a.py"),
        ("/src", "tests/test_a.py"),
        # The project in a folder of the checkout: GitHub reads paths from the checkout.
        ("/", "src/tests/test_a.py"),
        ("/elsewhere", "tests/test_a.py"),
    ],
)
def test_an_annotation_names_the_file_as_the_checkout_does(
    workspace: str | None, file: str
) -> None:
    tests = [case("tests/test_a.py::test_x", "failed", longrepr=FAILURE, line=12)]
    (command,) = [parse_command(line) for line in github.annotations(run(tests), None, workspace)]
    assert command[1]["file"] == file


# -- batchflow report ------------------------------------------------------------------


def run_shards(pytester: pytest.Pytester) -> None:
    """SUITE in two shards' JSON results: test_ok in shard1/r.json, the rest in shard2/r.json."""
    pytester.makepyfile(test_x=SUITE)
    for shard, selection in (("shard1", "test_ok"), ("shard2", "not test_ok")):
        pytester.runpytest(
            "--batchflow",
            "--batchflow-no-history",
            f"--batchflow-json={shard}/r.json",
            "-k",
            selection,
        )


def test_batchflow_report_appends_the_merged_summary_and_annotates_nothing(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_shards(pytester)
    summary = tmp_path / "summary.md"
    summary.write_text("## Shards\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["report", "shard1/r.json", "shard2/r.json", "-o", "merged.html"]) == 1
    out = capsys.readouterr().out
    # The merged run's summary, once, after what the step wrote before.
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## Shards\n\n## ❌ batchflow: failed by tests\n")
    assert text.count("## ❌ batchflow") == 1
    assert "**3 tests**: 1 passed, 1 failed, 1 error  " in text
    assert "merged.html" in text.replace("&#95;", "_")
    assert out.splitlines()[-1] == f"batchflow: GitHub step summary: {summary}"
    # Each shard's run annotated its own failures already: none again here.
    assert "::error" not in out


def test_batchflow_report_of_one_result_or_off_github_appends_no_summary(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_x="def test_ok(): pass")
    pytester.runpytest("--batchflow", "--batchflow-no-history", "--batchflow-json=r.json")
    assert main(["report", "r.json"]) == 0
    # One result re-rendered: its run appended its summary already.
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["report", "r.json"]) == 0
    assert "step summary" not in capsys.readouterr().out
    assert not summary.exists()


def test_batchflow_report_keeps_its_verdict_when_the_summary_cannot_be_written(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_shards(pytester)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    assert main(["report", "shard1/r.json", "shard2/r.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("batchflow: warning: cannot append the GitHub step summary to ")
    assert (pytester.path / "report.html").is_file()
