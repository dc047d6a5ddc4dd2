"""Coverage per batch and per test, serially and across xdist workers.

Every run is a subprocess (coverage.py traces the process it runs in); the
figures are read back from coverage.py's own JSON report and batchflow's result.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_batchflow.results import RunResult

try:
    import xdist  # noqa: F401
except ImportError:
    HAS_XDIST = False
else:
    HAS_XDIST = True
needs_xdist = pytest.mark.skipif(not HAS_XDIST, reason="needs pytest-xdist")

PACKAGE = """\
VALUE = 1


def add(a, b):
    return a + b


def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


def never():
    return "never called"
"""

API = """\
from pkg import add


def total(values):
    result = 0
    for value in values:
        result = add(result, value)
    return result
"""

SLOW = """\
def slow():
    return "only the slow batch runs this"
"""

INI = """\
[pytest]
pythonpath = src
batchflow_batches =
    unit: paths=tests/unit
    api: paths=tests/api after=unit
"""

UNIT_TESTS = """\
from pkg import add, sign


def test_add():
    assert add(1, 2) == 3


def test_sign():
    assert sign(5) == 1
    assert sign(-5) == -1
"""

API_TESTS = """\
from pkg.api import total


def test_total():
    assert total([1, 2, 3]) == 6
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """Two batches over a small package; the conftest imports it before collection."""
    package = pytester.path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE)
    (package / "api.py").write_text(API)
    (pytester.path / "pytest.ini").write_text(INI)
    (pytester.path / "conftest.py").write_text("import pkg\n")
    for folder, source in (("unit", UNIT_TESTS), ("api", API_TESTS)):
        (pytester.path / "tests" / folder).mkdir(parents=True)
        (pytester.path / "tests" / folder / f"test_{folder}.py").write_text(source)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, RunResult]:
    result = pytester.runpytest_subprocess(
        "--batchflow",
        "--batchflow-no-history",
        "--batchflow-json=result.json",
        "-p",
        "no:cacheprovider",
        *args,
    )
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    return result, data


def coverage_json(pytester: pytest.Pytester) -> dict[str, Any]:
    path = pytester.path / ".batchflow" / "coverage" / "coverage.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def executed(report: dict[str, Any]) -> dict[str, list[int]]:
    return {path: data["executed_lines"] for path, data in report["files"].items()}


INIT = "src/pkg/__init__.py"
API_FILE = "src/pkg/api.py"


@pytest.mark.parametrize(
    "workers", [None, pytest.param("2", marks=needs_xdist), pytest.param("4", marks=needs_xdist)]
)
def test_serial_and_xdist_cover_the_same_lines(
    project: pytest.Pytester, workers: str | None
) -> None:
    args = ["--batchflow-cov=pkg"] + (["-n", workers] if workers else [])
    result, data = run(project, *args)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    report = coverage_json(project)
    # Module-level statements (imported by the conftest) count, under the
    # collection context; the unreached returns do not.
    assert executed(report) == {
        INIT: [1, 4, 5, 8, 9, 10, 11, 12, 16],
        API_FILE: [1, 4, 5, 6, 7, 8],
    }
    assert report["files"][INIT]["contexts"]["1"] == ["(collection)"]
    assert sorted(report["files"][INIT]["contexts"]["5"]) == ["api", "unit"]
    assert data.coverage is not None
    assert data.coverage.statements == 17
    assert data.coverage.covered == 15
    assert round(data.coverage.percent, 2) == 88.24
    batches = {batch.name: batch for batch in data.coverage.batches}
    # unit ran add's and sign's bodies; api ran total's body and add's.
    assert (batches["unit"].covered, batches["unit"].only) == (5, 4)
    assert batches["unit"].only_lines == {INIT: [9, 10, 11, 12]}
    assert (batches["api"].covered, batches["api"].only) == (5, 4)
    assert batches["api"].only_lines == {API_FILE: [5, 6, 7, 8]}
    assert data.failed_by == []
    result.stdout.fnmatch_lines(
        [
            "*batchflow coverage*",
            "batchflow: coverage 88.24% of 17 statements in 2 files "
            "(statements; contexts by batch)",
            "  unit   29.41%       5 statements,     4 only here",
            "  api    29.41%       5 statements,     4 only here",
            "batchflow: coverage HTML: *html*index.html",
        ]
    )
    assert (
        (project.path / ".batchflow" / "coverage" / "coverage.xml").read_text().startswith("<?xml")
    )
    html = (project.path / ".batchflow" / "coverage" / "html" / "index.html").read_text()
    assert "pkg" in html


@needs_xdist
def test_per_test_contexts_say_which_tests_ran_each_line(project: pytest.Pytester) -> None:
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-context=test", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    contexts = coverage_json(project)["files"][INIT]["contexts"]
    assert sorted(contexts["5"]) == [
        "tests/api/test_api.py::test_total",
        "tests/unit/test_unit.py::test_add",
    ]
    assert contexts["10"] == ["tests/unit/test_unit.py::test_sign"]
    assert contexts["1"] == ["(collection)"]
    assert data.coverage is not None
    assert data.coverage.context == "test"
    # Per-batch figures are the same as with batch contexts.
    assert {b.name: (b.covered, b.only) for b in data.coverage.batches} == {
        "unit": (5, 4),
        "api": (5, 4),
    }


def test_a_failed_total_gate_fails_the_run_and_says_coverage_did(
    project: pytest.Pytester,
) -> None:
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-fail-under=90")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "  gate: total 88.24% < 90%: FAILED",
            "batchflow: coverage failed the run (a coverage gate, not a test)",
        ]
    )
    assert data.failed_by == ["coverage"]
    assert data.exitstatus == 1
    assert data.coverage is not None
    assert data.coverage.failed


def test_the_coverage_configs_fail_under_is_the_total_gate(project: pytest.Pytester) -> None:
    """As pytest-cov and ``coverage report`` apply it (it was ignored: exit 0);
    --batchflow-cov-fail-under wins over it."""
    (project.path / ".coveragerc").write_text("[report]\nfail_under = 90\n")
    result, data = run(project, "--batchflow-cov=pkg")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  gate: total 88.24% < 90%: FAILED"])
    assert data.failed_by == ["coverage"]
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-fail-under=85")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  gate: total 88.24% >= 85%: passed"])


def test_a_total_just_under_the_gate_does_not_read_as_the_gate(project: pytest.Pytester) -> None:
    """88.235...% against 88.24: "88.24% < 88.24%" said the line before."""
    result, _ = run(project, "--batchflow-cov=pkg", "--batchflow-cov-fail-under=88.24")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  gate: total 88.235% < 88.24%: FAILED"])
    html = (project.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    assert "gate total: 88.235% &lt; 88.24%: FAILED" in html


@needs_xdist
def test_a_met_gate_passes_and_a_batch_gate_fails_alone(project: pytest.Pytester) -> None:
    ini = INI.replace("after=unit", "after=unit cov_fail_under=30")
    (project.path / "pytest.ini").write_text(ini)
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-fail-under=85", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data.coverage is not None
    assert [(g.batch, g.passed) for g in data.coverage.gates] == [(None, True), ("api", False)]
    result.stdout.fnmatch_lines(
        ["  gate: total 88.24% >= 85%: passed", "  gate: batch 'api' 29.41% < 30%: FAILED"]
    )


def test_a_test_failure_and_a_gate_both_show_in_failed_by(project: pytest.Pytester) -> None:
    project.makepyfile(**{"tests/unit/test_broken": "def test_broken():\n    assert False\n"})
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-fail-under=99")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert data.failed_by == ["tests", "coverage"]


@needs_xdist
def test_a_batch_with_cov_off_is_not_measured(project: pytest.Pytester) -> None:
    (project.path / "pytest.ini").write_text(INI + "    slow: paths=tests/slow cov=off\n")
    (project.path / "src" / "pkg" / "slow.py").write_text(SLOW)
    project.makepyfile(
        **{"tests/slow/test_slow": "from pkg.slow import slow\n\ndef test_slow():\n    slow()\n"}
    )
    result, data = run(project, "--batchflow-cov=pkg", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=4)
    report = coverage_json(project)
    assert report["files"]["src/pkg/slow.py"]["missing_lines"] == [2]
    assert data.coverage is not None
    assert [batch.name for batch in data.coverage.batches] == ["unit", "api"]


@needs_xdist
def test_the_coverage_configuration_is_honoured(project: pytest.Pytester) -> None:
    (project.path / ".coveragerc").write_text("[run]\nbranch = True\nomit = */api.py\n")
    result, data = run(project, "--batchflow-cov=pkg", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    report = coverage_json(project)
    assert API_FILE not in report["files"]
    assert report["meta"]["branch_coverage"] is True
    # sign's branches: x > 0 both ways, x < 0 only true: one partial branch.
    assert report["files"][INIT]["summary"]["num_partial_branches"] == 1
    assert data.coverage is not None
    assert data.coverage.branch
    result.stdout.fnmatch_lines(["batchflow: coverage *(statements and branches; *"])


@pytest.mark.parametrize("workers", [(), pytest.param(("-n", "2"), marks=needs_xdist)])
def test_a_configured_dynamic_context_is_set_aside_for_the_batches(
    project: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    # jsonschema's pyproject.toml sets it: the batches read 0.00% with it on.
    (project.path / ".coveragerc").write_text("[run]\ndynamic_context = test_function\n")
    result, data = run(project, "--batchflow-cov=pkg", *workers)
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is not None
    batches = {batch.name: batch for batch in data.coverage.batches}
    assert (batches["unit"].covered, batches["unit"].only) == (5, 4)
    assert (batches["api"].covered, batches["api"].only) == (5, 4)
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: coverage.py: its setting dynamic_context = test_function is "
            "set aside: batchflow's contexts are the batches (per-test contexts: run "
            "coverage.py without --batchflow-cov)"
        ]
    )
    assert "Conflicting dynamic contexts" not in result.stdout.str()


@needs_xdist
def test_a_crashed_worker_keeps_the_coverage_of_the_tests_it_finished(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        **{
            "tests/api/test_crash": """
import os
from pkg import sign

def test_negative():
    assert sign(-1) == -1

def test_zero_crashes():
    sign(0)
    os._exit(1)
"""
        }
    )
    result, data = run(project, "--batchflow-cov=pkg", "--batchflow-cov-context=test", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4, failed=1)
    report = coverage_json(project)
    contexts = report["files"][INIT]["contexts"]
    # Every test that finished kept its lines; the crashed one's are lost.
    assert "tests/api/test_crash.py::test_negative" in contexts["11"]
    assert "13" not in contexts  # return 0: only the crashed test reached it
    assert data.coverage is not None
    # Its setup report said every earlier test's data was saved (the context
    # switch to it wrote them): only the crashed test's own coverage is lost.
    assert len(data.coverage.lost) == 1
    result.stdout.fnmatch_lines(
        [
            "batchflow: coverage lost: worker gw? crashed running "
            "tests/api/test_crash.py::test_zero_crashes: the coverage of that test is missing"
        ]
    )


MEASURE_AND_DIE = """\
import os
import sys
from pathlib import Path

from pytest_batchflow.coverage_measure import Measurement

measurement = Measurement(["pkg"], Path(sys.argv[1]), "gw9")
sys.path.insert(0, "src")
import pkg

measurement.enter("first")
pkg.add(1, 2)
measurement.enter("second")
pkg.sign(5)
held = measurement._connection is not None
measurement.enter("third")
pkg.sign(-5)
print("held" if held else "not held", flush=True)
os._exit(1)  # no save at the end: only what the context switches wrote
"""


def test_every_context_switch_is_in_the_data_file_when_the_process_dies(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    """The connection stays open between writes, and each write is committed."""
    import coverage

    rundir = tmp_path / "run"
    rundir.mkdir()
    script = project.path / "measure_and_die.py"
    script.write_text(MEASURE_AND_DIE)
    result = project.run(sys.executable, str(script), str(rundir))
    assert result.ret == 1
    # With the coverage.py installed here, the connection is held (the fast path).
    result.stdout.fnmatch_lines(["held"])
    (data_file,) = rundir.glob(".coverage.gw9.*")
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    try:
        assert {"first", "second"} <= data.measured_contexts()
        path = str(project.path / INIT)
        data.set_query_contexts(["second"])
        assert 9 in (data.lines(path) or [])  # sign(5) returned 1
        data.set_query_contexts(["third"])
        assert 11 not in (data.lines(path) or [])  # sign(-5)'s data was never written
    finally:
        data.close()


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_a_report_coverage_py_cannot_write_is_a_warning_the_rest_is_written(
    project: pytest.Pytester, workers: str | None
) -> None:
    (project.path / ".coveragerc").write_text("[html]\nextra_css = missing.css\n")
    result, data = run(project, "--batchflow-cov=pkg", *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is not None
    assert round(data.coverage.percent, 2) == 88.24
    out = project.path / ".batchflow" / "coverage"
    assert (out / "coverage.xml").read_text().startswith("<?xml")
    assert (out / "coverage.json").is_file()
    assert not (out / "html" / "index.html").exists()
    result.stdout.fnmatch_lines(
        [
            "batchflow: coverage 88.24% of 17 statements *",
            "batchflow: warning: could not write coverage.py's HTML report: "
            "FileNotFoundError: *missing.css*",
        ]
    )
    result.stdout.no_fnmatch_line("batchflow: coverage HTML: *")


def test_the_batchflow_folder_coverage_makes_is_ignored_in_git(project: pytest.Pytester) -> None:
    # Without history, coverage's reports make .batchflow before the report
    # is written there: it still gets its .gitignore (a review caught it missing).
    result, _ = run(project, "--batchflow-cov=pkg")
    assert result.ret == pytest.ExitCode.OK
    folder = project.path / ".batchflow"
    assert (folder / "coverage" / "coverage.json").is_file()
    assert (folder / ".gitignore").read_text().endswith("*\n")


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_a_coverage_folder_that_cannot_be_made_costs_only_the_figures(
    project: pytest.Pytester, workers: str | None
) -> None:
    # A file where coverage's folder goes: mkdir fails as a read-only folder
    # would (which root, running these tests, may write anyway).
    (project.path / ".batchflow").mkdir()
    (project.path / ".batchflow" / "coverage").write_text("not a folder")
    result, data = run(project, "--batchflow-cov=pkg", *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["batchflow: coverage: no figures: could not write to */.batchflow/coverage: File exists"]
    )
    assert data.coverage is not None
    assert data.coverage.problem is not None
    assert data.coverage.problem.endswith(".batchflow/coverage: File exists")
    assert [t.outcome for t in data.tests] == ["passed"] * 3


@needs_xdist
def test_coverage_py_warnings_while_reporting_reach_pytest(project: pytest.Pytester) -> None:
    """coverage.py reports in a child process; its warnings are given again in pytest's."""
    (project.path / "src" / "pkg" / "broken.py").write_text("def (\n")
    (project.path / ".coveragerc").write_text("[report]\nignore_errors = True\n")
    result, data = run(project, "--batchflow-cov=pkg", "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is not None
    assert data.coverage.problem is None
    result.stdout.fnmatch_lines(
        ["*CoverageWarning: Couldn't parse Python file '*broken.py' (couldnt-parse)*"]
    )
    assert (project.path / ".batchflow" / "coverage" / "html" / "index.html").is_file()


CONFIGURER = """\
import coverage


class Configurer(coverage.CoveragePlugin):
    def configure(self, config):
        config.set_option("report:exclude_lines", ["def never"])


def coverage_init(reg, options):
    reg.add_configurer(Configurer())
"""


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_a_coverage_plugin_on_pytests_pythonpath_is_used_for_the_reports(
    project: pytest.Pytester, workers: str | None
) -> None:
    """coverage.py reports in a child process, which sees pytest's import path."""
    (project.path / "src" / "excluder.py").write_text(CONFIGURER)
    (project.path / ".coveragerc").write_text("[run]\nplugins = excluder\n")
    result, data = run(project, "--batchflow-cov=pkg", *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert data.coverage is not None
    assert data.coverage.problem is None
    assert data.coverage.statements == 15  # never() and its return excluded


def test_coverage_settings_without_a_source_are_a_usage_error(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest_subprocess("--batchflow", "--batchflow-cov-fail-under=80")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-cov-fail-under (command line) needs a source to "
            "measure; add --batchflow-cov=SOURCE, e.g. --batchflow-cov=mypkg"
        ]
    )


def test_a_source_meant_as_a_folder_that_is_none_is_a_usage_error(
    project: pytest.Pytester,
) -> None:
    # A slash makes it a folder (no package name has one); lib/pkg is not there.
    result = project.runpytest_subprocess("--batchflow", "--batchflow-cov=lib/pkg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: batchflow: --batchflow-cov (command line): {project.path / 'lib/pkg'} is not"
            " a folder, and a name with a slash is no package (a relative folder starts where"
            " the value is written: the ini file's folder, else the current one);"
            " e.g. --batchflow-cov=mypkg"
        ]
    )
    # The folder that is there is measured.
    measured, data = run(project, "--batchflow-cov=src/pkg")
    assert measured.ret == pytest.ExitCode.OK, measured.stdout.str()
    assert data.coverage is not None
    assert data.coverage.problem is None


def test_a_folder_source_starts_where_it_is_written_and_may_start_with_a_tilde(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nbatchflow_cov_source = lib/pkg\n")
    tests = pytester.mkdir("tests")
    (tests / "lib" / "pkg").mkdir(parents=True)  # beside the tests, not the ini file
    (tests / "test_one.py").write_text("def test_one(): pass\n")
    monkeypatch.chdir(tests)
    result = pytester.runpytest_subprocess("--batchflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: batchflow: batchflow_cov_source (tox.ini): {pytester.path / 'lib/pkg'} is"
            " not a folder, and a name with a slash is no package*"
        ]
    )
    monkeypatch.setenv("HOME", str(tests / "lib"))
    measured = pytester.runpytest_subprocess("--batchflow", "--batchflow-cov=~/pkg")
    assert measured.ret == pytest.ExitCode.OK, measured.stderr.str()


def test_under_coverage_run_it_refuses_to_trace_twice(project: pytest.Pytester) -> None:
    result = project.run(
        sys.executable,
        "-m",
        "coverage",
        "run",
        "-m",
        "pytest",
        "--batchflow",
        "--batchflow-cov=pkg",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-cov and another coverage.py measurement (coverage "
            "run?) would both trace this run; drop one *"
        ]
    )


def test_with_pytest_cov_it_refuses_to_trace_twice(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_cov")
    result = project.runpytest_subprocess("--batchflow", "--batchflow-cov=pkg", "--cov=pkg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: --batchflow-cov and pytest-cov's --cov would both trace this "
            "run; drop one (--batchflow-cov=off drops batchflow's, set in an ini file too; *"
        ]
    )


def test_pytest_cov_switched_off_with_no_cov_traces_nothing(project: pytest.Pytester) -> None:
    """--cov in addopts, --no-cov for one run: batchflow's coverage alone."""
    pytest.importorskip("pytest_cov")
    result, data = run(project, "--batchflow-cov=pkg", "--cov=pkg", "--no-cov")
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is not None
    assert data.coverage.covered > 0


def test_coverage_set_in_the_ini_file_is_switched_off_for_one_run(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_cov")
    (project.path / "pytest.ini").write_text(
        INI + "batchflow_cov_source = pkg\nbatchflow_cov_fail_under = 99\n"
    )
    result, data = run(project, "--batchflow-cov=off", "--cov=pkg")
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is None
    result.stdout.fnmatch_lines(["*coverage: platform *", "TOTAL *"])  # pytest-cov's report
    _, measured = run(project)
    assert measured.coverage is not None


@needs_xdist
def test_without_batchflow_cov_nothing_is_measured(project: pytest.Pytester) -> None:
    result, data = run(project, "-n", "2")
    assert result.ret == pytest.ExitCode.OK
    assert data.coverage is None
    assert not (project.path / ".batchflow" / "coverage").exists()


EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


@needs_xdist
@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="the repository's example project is not here")
def test_the_example_project_covers_the_same_lines_serially_and_on_2_and_4_workers(
    pytester: pytest.Pytester,
) -> None:
    shutil.copytree(
        EXAMPLE, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".batchflow")
    )
    seen = []
    for workers in ("0", "2", "4"):
        result, data = run(pytester, "--batchflow-cov=inventory", "-n", workers)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert data.coverage is not None
        figures = [(b.name, b.covered, b.only) for b in data.coverage.batches]
        seen.append((executed(coverage_json(pytester)), figures, data.coverage.percent))
    assert seen[0] == seen[1] == seen[2]
    lines, figures, percent = seen[0]
    assert set(lines) >= {"inventory/store.py", "inventory/pricing.py"}
    # The benchmark batch is left out (cov=off by default); the others measured.
    assert [name for name, _, _ in figures] == ["smoke", "unit", "integration"]
    assert 50 < percent < 100


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_a_coverage_configuration_coverage_cannot_read_is_a_usage_error(
    project: pytest.Pytester, workers: str | None
) -> None:
    """Before, a traceback serially; under xdist every worker died at its start,
    was replaced and died again, and the run ended with no tests ran."""
    (project.path / ".coveragerc").write_text("[run]\nbranch = maybe\n")
    result = project.runpytest_subprocess(
        "--batchflow",
        "--batchflow-cov=pkg",
        "-p",
        "no:cacheprovider",
        *(["-n", workers] if workers else []),
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        "ERROR: batchflow: coverage.py cannot read its configuration: Couldn't read config "
        "file .coveragerc: Not a boolean: maybe; fix it, or run without a coverage source "
        "(--batchflow-cov)"
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (project.path / ".batchflow" / "coverage").exists()


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_what_coverage_warns_of_is_shown_once_at_the_end_not_as_a_test_s_warning(
    project: pytest.Pytester, workers: str | None
) -> None:
    """coverage.py checks its sources at every save, which batchflow makes
    between tests: under filterwarnings = error that was an INTERNALERROR in the
    middle of the run; without it, a warning charged to whichever test it was."""
    (project.path / "pytest.ini").write_text(INI + "filterwarnings = error\n")
    (project.path / "tests" / "unit" / "test_slow.py").write_text(
        "import time\n\n"
        + "".join(f"def test_slow_{n}():\n    time.sleep(0.4)\n\n" for n in range(6))
    )
    result, data = run(
        project, "--batchflow-cov=pkg,nosuchmodule", *(["-n", workers] if workers else [])
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert data.exitstatus == 0
    assert len(data.tests) == 9
    assert all(test.outcome == "passed" for test in data.tests)
    warned = [line for line in result.stdout.lines if "never imported" in line]
    assert len(warned) == 1, warned
    # Newer coverage.py adds "; see <its docs>" after the slug; 7.10.3 does not.
    assert warned[0].startswith(
        "batchflow: warning: coverage.py: Module nosuchmodule was never imported. "
        "(module-not-imported)"
    )
    assert "warnings summary" not in result.stdout.str()


def test_a_plugin_importing_the_source_as_pytest_starts_is_measured_from_the_start(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-django sets Django up in its pytest_load_initial_conftests,
    importing the project's apps: coverage must already run then."""
    _, alone = run(project, "--batchflow-cov=pkg")
    (project.path / "early_importer.py").write_text(
        "def pytest_load_initial_conftests(early_config):\n    import pkg.api\n"
    )
    monkeypatch.setenv("PYTEST_PLUGINS", "early_importer")
    monkeypatch.setenv("PYTHONPATH", str(project.path))
    result, beside = run(project, "--batchflow-cov=pkg")
    assert result.ret == pytest.ExitCode.OK
    assert alone.coverage is not None
    assert beside.coverage is not None
    assert (beside.coverage.covered, beside.coverage.statements) == (
        alone.coverage.covered,
        alone.coverage.statements,
    )


MULTIPROCESSING_PACKAGE = """\
import multiprocessing


def square(x):
    return x * x


def cube(x):
    if x < 0:
        return -x * x * x
    return x * x * x


def squares(values):
    with multiprocessing.Pool(2) as pool:
        result = pool.map(square, values)
        pool.close()
        pool.join()
    return result


def cube_in_a_process(x):
    process = multiprocessing.get_context("spawn").Process(target=cube, args=(x,))
    process.start()
    process.join()
    return process.exitcode


def never():
    return 0
"""

MULTIPROCESSING_TESTS = """\
from pkg import cube_in_a_process, squares


def test_squares():
    assert squares([1, 2, 3]) == [1, 4, 9]


def test_cube():
    assert cube_in_a_process(3) == 0
"""

#: The user's coverage configuration, in each file coverage.py reads it from.
MULTIPROCESSING_CONFIGS = {
    ".coveragerc": "[run]\nconcurrency = multiprocessing\nparallel = True\nbranch = True\n",
    "setup.cfg": "[coverage:run]\nconcurrency = multiprocessing\nparallel = True\nbranch = True\n",
    "tox.ini": "[coverage:run]\nconcurrency = multiprocessing\nparallel = True\nbranch = True\n",
    "pyproject.toml": (
        '[tool.coverage.run]\nconcurrency = ["multiprocessing"]\nparallel = true\nbranch = true\n'
    ),
}
MULTIPROCESSING_FILE = "src/pkg/__init__.py"


def coverage_run_totals(pytester: pytest.Pytester) -> dict[str, Any]:
    """What ``coverage run -m pytest`` counts on the project, its files removed after."""
    for command in (
        ["run", "--parallel-mode", "--source=pkg", "-m", "pytest", "-p", "no:cacheprovider"],
        ["combine", "-q"],
        ["json", "-q", "-o", "coverage-run.json"],
    ):
        completed = pytester.run(sys.executable, "-m", "coverage", *command)
        assert completed.ret == 0, completed.stdout.str() + completed.stderr.str()
    report = json.loads((pytester.path / "coverage-run.json").read_text())
    (pytester.path / "coverage-run.json").unlink()
    (pytester.path / ".coverage").unlink()
    return report["totals"]  # type: ignore[no-any-return]


def coverage_data_files(pytester: pytest.Pytester) -> list[str]:
    names = (path.name for path in pytester.path.iterdir())
    return sorted(name for name in names if name == ".coverage" or name.startswith(".coverage."))


@pytest.mark.parametrize(
    ("config_file", "workers"),
    [
        *((name, None) for name in MULTIPROCESSING_CONFIGS),
        # Serial and xdist runs differ in their processes, not in reading the configuration.
        pytest.param("pyproject.toml", "2", marks=needs_xdist),
    ],
)
def test_lines_run_in_multiprocessing_children_count_as_under_coverage_run(
    pytester: pytest.Pytester, config_file: str, workers: str | None
) -> None:
    (pytester.path / "src" / "pkg").mkdir(parents=True)
    (pytester.path / MULTIPROCESSING_FILE).write_text(MULTIPROCESSING_PACKAGE)
    (pytester.path / "pytest.ini").write_text("[pytest]\npythonpath = src\n")
    (pytester.path / "test_children.py").write_text(MULTIPROCESSING_TESTS)
    (pytester.path / config_file).write_text(MULTIPROCESSING_CONFIGS[config_file])
    expected = coverage_run_totals(pytester)
    # The children ran square's body and cube's test and last return.
    assert (expected["covered_lines"], expected["num_statements"]) == (18, 20)
    before = coverage_data_files(pytester)

    result, data = run(pytester, "--batchflow-cov=pkg", *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    totals = coverage_json(pytester)["totals"]
    figures = ("covered_lines", "num_statements", "covered_branches", "num_branches")
    assert {key: totals[key] for key in figures} == {key: expected[key] for key in figures}
    assert totals["percent_covered"] == pytest.approx(expected["percent_covered"])
    assert data.coverage is not None
    assert data.coverage.covered == 18
    # The children's data was combined with the rest, not left in the folder.
    assert coverage_data_files(pytester) == before
    # Lines only children ran belong to no batch.
    contexts = coverage_json(pytester)["files"][MULTIPROCESSING_FILE]["contexts"]
    assert contexts["5"] == [""]
    assert [(batch.name, batch.covered) for batch in data.coverage.batches] == [("default", 9)]


@pytest.mark.parametrize("workers", [None, pytest.param("2", marks=needs_xdist)])
def test_without_concurrency_multiprocessing_children_are_not_measured_as_under_coverage_run(
    pytester: pytest.Pytester, workers: str | None
) -> None:
    (pytester.path / "src" / "pkg").mkdir(parents=True)
    (pytester.path / MULTIPROCESSING_FILE).write_text(MULTIPROCESSING_PACKAGE)
    (pytester.path / "pytest.ini").write_text("[pytest]\npythonpath = src\n")
    (pytester.path / "test_children.py").write_text(MULTIPROCESSING_TESTS)
    (pytester.path / ".coveragerc").write_text("[run]\nbranch = True\n")
    expected = coverage_run_totals(pytester)
    assert (expected["covered_lines"], expected["num_statements"]) == (15, 20)

    result, _ = run(pytester, "--batchflow-cov=pkg", *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    totals = coverage_json(pytester)["totals"]
    assert (totals["covered_lines"], totals["num_branches"]) == (15, expected["num_branches"])
    assert coverage_data_files(pytester) == []


def test_multiprocessing_children_read_the_user_s_settings_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coverage
    from coverage.config import CoverageConfig

    from pytest_batchflow.coverage_measure import configured_coverage, write_rcfile

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COVERAGE_RCFILE", raising=False)
    monkeypatch.setenv("BF_DIR", "a$b")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.coverage.run]\n"
        'concurrency = ["multiprocessing"]\n'
        "branch = true\n"
        'omit = ["*/${BF_DIR}/*", "*/skip_*.py"]\n'
        "[tool.coverage.report]\n"
        'exclude_also = ["# never", "if DEBUG:$"]\n'
        "precision = 2\n"
        "[tool.coverage.paths]\n"
        'source = ["src/", "*/site-packages/"]\n'
    )
    cov = configured_coverage(data_file=str(tmp_path / "run" / ".coverage"), source=["pkg"])
    write_rcfile(cov, tmp_path / "coveragerc")
    children = coverage.Coverage(config_file=str(tmp_path / "coveragerc"))
    for spec in CoverageConfig.CONFIG_FILE_OPTIONS:
        # coverage.py adds the *_also lists to the others as it reads them.
        if spec[1] in ("report:exclude_also", "report:partial_also"):
            continue
        value = children.get_option(spec[1])
        if spec[2:] == ("regexlist",):  # a leading # is escaped, to match the same
            value = [re.sub(r"^\\([#;])", r"\1", pattern) for pattern in value]  # type: ignore[union-attr]
        assert value == cov.get_option(spec[1]), spec[1]
    assert children.get_option("paths") == cov.get_option("paths")
    assert children.get_option("run:omit") == ["*/a$b/*", "*/skip_*.py"]
    assert children.get_option("run:data_file") == str(tmp_path / "run" / ".coverage")
    assert children.get_option("run:source") == ["pkg"]


def test_a_coverage_py_that_does_not_list_its_settings_leaves_children_unmeasured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list of settings is not coverage.py's public API: without it the
    copy is not written and measuring goes on as without multiprocessing."""
    from coverage.config import CoverageConfig

    from pytest_batchflow.coverage_measure import configured_coverage, write_rcfile

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COVERAGE_RCFILE", raising=False)
    (tmp_path / ".coveragerc").write_text("[run]\nconcurrency = multiprocessing\n")
    cov = configured_coverage(data_file=str(tmp_path / "run" / ".coverage"), source=["pkg"])
    monkeypatch.delattr(CoverageConfig, "CONFIG_FILE_OPTIONS")
    assert write_rcfile(cov, tmp_path / "coveragerc") is False
    assert not (tmp_path / "coveragerc").exists()
