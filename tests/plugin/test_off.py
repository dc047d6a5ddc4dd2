"""Off means off: installed but not enabled, the plugin changes nothing in a run.

"Not enabled" is: no ``--batchflow``, no ``BATCHFLOW`` variable (the autouse
fixture in tests/conftest.py clears them) and no ``batchflow`` ini key. Each
scenario compares a run with the plugin installed but off against the same run
with the plugin blocked (``-p no:batchflow``), in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

SUITE = """
    import warnings

    import pytest

    @pytest.fixture
    def broken():
        raise RuntimeError("fixture broke")

    # Defined before its target: batchflow (when on) would move it after test_target.
    @pytest.mark.depends_on("test_target")
    def test_needs_later_target():
        pass

    def test_pass():
        print("hello from test_pass")

    def test_fail():
        print("hello from test_fail")
        assert 1 == 2, "fail on purpose"

    @pytest.mark.depends_on("test_fail")
    def test_dependent_of_failure():
        # Batchflow (when on) would skip this; off, it runs and leaves a trace.
        print("dependent of failure ran")

    def test_skip():
        pytest.skip("skip on purpose")

    @pytest.mark.xfail(reason="xfail on purpose")
    def test_xfail():
        assert False

    @pytest.mark.xfail(reason="xpass on purpose")
    def test_xpass():
        pass

    def test_error_in_fixture(broken):
        pass

    def test_warns():
        warnings.warn(UserWarning("warning on purpose"))

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_param(n):
        assert n != 2

    @pytest.mark.batch("slow")
    @pytest.mark.locks("db")
    def test_marked():
        pass

    class TestGroup:
        @pytest.mark.depends_on("test_one")
        def test_two(self):
            pass

        def test_one(self):
            pass

    def test_target():
        pass
"""

MARKERS_OVERRIDE = (
    "markers="
    "batch(name): batch marker\n"
    "depends_on(*targets): dependency marker\n"
    "locks(*names): lock marker"
)

# pytest-metadata (pytest-html's, in the bench extra) would print every plugin's name.
COMMON_ARGS = ("-v", "-rA", "-p", "no:cacheprovider", "-p", "no:metadata", "--strict-markers")

RESULT_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")
DURATION = re.compile(r" in \d+(\.\d+)?s( \([^)]*\))?")


def run_order(result: pytest.RunResult) -> list[str]:
    """The node ids of a ``-v`` run, in the order their result lines appeared."""
    return [match[1] for line in result.outlines if (match := RESULT_LINE.match(line))]


def collected(result: pytest.RunResult) -> list[str]:
    """The node ids of a ``--collect-only -q`` run, in collection order."""
    return [line for line in result.outlines if "::" in line and " " not in line]


def normalized(result: pytest.RunResult) -> list[str]:
    """The output lines minus what legitimately differs between the two runs."""
    lines = []
    for line in result.outlines:
        if line.startswith(("plugins:", "rootdir:")):
            continue
        lines.append(DURATION.sub(" in <time>", line))
    return lines


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_off_run_is_identical_to_a_run_without_the_plugin(suite: pytest.Pytester) -> None:
    without = suite.runpytest_subprocess(*COMMON_ARGS, "-p", "no:batchflow", "-o", MARKERS_OVERRIDE)
    off = suite.runpytest_subprocess(*COMMON_ARGS)

    # The blocked run really ran without the plugin; the other really had it.
    assert not any("batchflow" in line for line in without.outlines if line.startswith("plugins:"))
    assert any("batchflow" in line for line in off.outlines if line.startswith("plugins:"))

    expected = {"passed": 10, "failed": 2, "skipped": 1, "xfailed": 1, "xpassed": 1}
    expected |= {"errors": 1, "warnings": 1}
    without.assert_outcomes(**expected)
    off.assert_outcomes(**expected)
    assert off.parseoutcomes() == without.parseoutcomes()
    assert off.ret == without.ret == pytest.ExitCode.TESTS_FAILED
    assert normalized(off) == normalized(without)
    assert off.errlines == without.errlines

    # Collection order, untouched: the dependent ran before its later target...
    collection = suite.runpytest_subprocess("--collect-only", "-q", "-p", "no:batchflow")
    order = collected(collection)
    assert len(order) == 16
    assert run_order(without) == order
    assert run_order(off) == order
    assert order.index("test_suite.py::test_needs_later_target") < order.index(
        "test_suite.py::test_target"
    )
    assert order.index("test_suite.py::TestGroup::test_two") < order.index(
        "test_suite.py::TestGroup::test_one"
    )
    # ...and the dependent of the failing test ran and passed: no batchflow skip.
    off.stdout.fnmatch_lines(
        [
            "test_suite.py::test_dependent_of_failure PASSED*",
            "*dependent of failure ran*",
        ]
    )
    assert "batchflow" not in off.stdout.str().replace(
        next(line for line in off.outlines if line.startswith("plugins:")), ""
    )


def test_suite_does_get_reordered_and_skipped_when_on(suite: pytest.Pytester) -> None:
    """Control: the same suite is not inert under --batchflow, so the test above means something."""
    on = suite.runpytest_subprocess(
        *COMMON_ARGS, "--batchflow", "--batchflow-no-history", "-o", "batchflow_batches=slow:"
    )
    order = run_order(on)
    assert order.index("test_suite.py::test_target") < order.index(
        "test_suite.py::test_needs_later_target"
    )
    on.stdout.fnmatch_lines(["*test_dependent_of_failure SKIPPED*batchflow*"])


def test_markers_are_registered_when_off(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--strict-markers", "--markers", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.batch(name):*",
            "@pytest.mark.depends_on(*targets):*",
            "@pytest.mark.locks(*names):*",
        ]
    )


HEAVY = (
    "pydantic",
    "sqlite3",
    "pytest_batchflow.settings",
    "pytest_batchflow.orchestrator",
    "pytest_batchflow.history",
    "pytest_batchflow.results",
)

PROBE = """
import json, sys
import pytest
code = pytest.main(["-q", "-p", "no:cacheprovider", "test_tiny.py", *sys.argv[1:]])
print(json.dumps({
    "exit": int(code),
    "heavy": [name for name in %r if name in sys.modules],
    "batchflow": sorted(name for name in sys.modules if name.startswith("pytest_batchflow")),
}))
"""


def _loaded_modules(pytester: pytest.Pytester, *args: str) -> dict[str, object]:
    result = pytester.run(sys.executable, "-c", PROBE % (HEAVY,), *args)
    report = json.loads(result.outlines[-1])
    assert report["exit"] == 0, result.outlines
    return report


def test_off_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tiny="def test_ok():\n    pass\n")
    without = _loaded_modules(pytester, "-p", "no:batchflow")
    off = _loaded_modules(pytester)

    assert without["batchflow"] == []
    assert "pytest_batchflow.plugin" in off["batchflow"]  # the plugin was loaded, though off
    # pydantic or sqlite3 may come from another installed plugin, never from batchflow.
    added = [name for name in off["heavy"] if name not in without["heavy"]]
    ours = [name for name in off["heavy"] if name.startswith("pytest_batchflow")]
    assert (added, ours) == ([], []), f"while off, batchflow loaded {off['batchflow']}"


def test_help_shows_the_batchflow_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    # With an option beside --help, the ignored-options line stays out of its way.
    with_option = pytester.runpytest_subprocess("--help", "--batchflow-json=out.json")
    assert with_option.ret == pytest.ExitCode.OK, with_option.stderr.str()
    assert "given without" not in with_option.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*(batchflow):",
            "  --batchflow *",
            "  --batchflow-plan*",
            "  --batchflow-batches=*",
            "  --batchflow-json=*",
            "  --batchflow-history=*",
            "  --batchflow-no-history*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "  batchflow (bool):*",
            "  batchflow_plan (bool):*",
            "  batchflow_select (string):*",
            "  batchflow_json (string):*",
            "  batchflow_history (string):*",
            "  batchflow_no_history (bool):*",
            "  batchflow_batches (linelist):*",
        ]
    )


def test_options_given_without_the_switch_are_named_as_ignored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    assert False\n")
    # filterwarnings = error: a line, not a warning that would stop the run.
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest("--batchflow-json=out.json", "--batchflow-reruns", "2")
    result.assert_outcomes(failed=1)  # not rerun: batchflow is off
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: --batchflow-json, --batchflow-reruns given without"
            " --batchflow, so ignored; add --batchflow (or set BATCHFLOW=1, or batchflow = true"
            " in the ini file)",
        ]
    )
    assert not (pytester.path / "out.json").exists()
    # Switched off on purpose (the ini key, or BATCHFLOW=0): off, without a word.
    pytester.makeini("[pytest]\nbatchflow = false\n")
    quiet = pytester.runpytest("--batchflow-json=out.json", "--batchflow-reruns=2")
    quiet.assert_outcomes(failed=1)
    assert "given without" not in quiet.stdout.str()
    # Options a project keeps in addopts, for the runs that switch batchflow on.
    pytester.makeini("[pytest]\naddopts = --batchflow-reruns=2\nfilterwarnings = error\n")
    kept = pytester.runpytest()
    kept.assert_outcomes(failed=1)
    assert "given without" not in kept.stdout.str()


def test_ini_overrides_given_without_the_switch_are_named_as_ignored(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_one="def test_one():\n    assert False\n")
    result = pytester.runpytest(
        "-o",
        "batchflow_json=out.json",
        "--override-ini=batchflow_reruns=2",
        "-o",
        "console_output_style=classic",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: -o batchflow_json, -o batchflow_reruns given without"
            " --batchflow, so ignored; add --batchflow*",
        ]
    )
    assert not (pytester.path / "out.json").exists()
    # pytest's argument files (pytest 8.2+: @file, one argument a line).
    if pytest.version_tuple >= (8, 2):
        (pytester.path / "args.txt").write_text("-o\nbatchflow_json=out.json\n--batchflow-html=r\n")
        from_file = pytester.runpytest("@args.txt")
        from_file.assert_outcomes(failed=1)
        from_file.stdout.fnmatch_lines(
            ["batchflow: warning: --batchflow-html, -o batchflow_json given without --batchflow*"]
        )
    # -o batchflow=true is the switch itself, and -obatchflow_reruns=1 then works.
    on = pytester.runpytest("-obatchflow=true", "-obatchflow_reruns=1", "-p", "no:randomly")
    assert on.parseoutcomes() == {"failed": 1, "rerun": 1}
    assert "given without" not in on.stdout.str()


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "batchflow_json=out.json"],
        ["-obatchflow_json=out.json"],
        ["-o=batchflow_json=out.json"],  # argparse's "=" after a short option
        ["--override-ini", "batchflow_json=out.json"],
        ["--override-ini=batchflow_json=out.json"],
        ["-qo", "batchflow_json=out.json"],  # short options clustered
        ["-vvobatchflow_json=out.json"],
    ],
)
def test_each_spelling_of_an_ini_override_is_named(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["batchflow: warning: -o batchflow_json given without*"])


def test_an_ini_override_in_addopts_is_not_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    pytester.makeini("[pytest]\naddopts = -qo batchflow_json=out.json\n")
    result = pytester.runpytest("-o", "console_output_style=classic")
    result.assert_outcomes(passed=1)
    assert "given without" not in result.stdout.str()


def test_other_plugins_options_are_read_once_when_off(pytester: pytest.Pytester) -> None:
    """A run that gives no batchflow option is read by pytest alone: another
    plugin's argparse action (here one that counts its calls) runs once, as
    without batchflow, even when a path or -k names batchflow."""
    pytester.makeconftest(
        """
import argparse, pathlib

class Counted(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        with pathlib.Path("calls.txt").open("a") as calls:
            calls.write("called\\n")
        setattr(namespace, self.dest, values)

def pytest_addoption(parser):
    parser.addoption("--mine", action=Counted)
"""
    )
    pytester.makepyfile(test_batchflow_paths="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--mine=x", "-k", "batchflow", "test_batchflow_paths.py")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "calls.txt").read_text() == "called\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_an_argument_file_that_is_not_a_regular_file_is_not_read_again(tmp_path: Path) -> None:
    """pytest has read ``@/dev/stdin`` (or a pipe) already: reading it again
    for the ignored-options line would wait for a second end of input."""
    import threading

    from pytest_batchflow.plugin import _rereadable

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "args.txt").write_text("-q\n")
    expanded: list[list[str]] = []
    reader = threading.Thread(
        target=lambda: expanded.append(_rereadable(["@pipe", "@args.txt", "-v"], tmp_path)),
        daemon=True,  # left behind blocked, if it blocks
    )
    reader.start()
    reader.join(timeout=10)
    assert expanded == [[f"@{tmp_path / 'args.txt'}", "-v"]]


@pytest.mark.skipif(pytest.version_tuple >= (8, 2), reason="pytest 8.2+ reads @file arguments")
def test_an_argument_file_is_not_read_where_pytest_does_not_read_one(
    pytester: pytest.Pytester,
) -> None:
    # pytest before 8.2 takes "@args.txt" for a path: it set nothing.
    (pytester.path / "args.txt").write_text("-o\nbatchflow_json=out.json\n")
    result = pytester.runpytest("@args.txt")
    assert "given without" not in result.stdout.str()


def test_pytest_main_with_a_path_runs_as_without_batchflow(pytester: pytest.Pytester) -> None:
    # pytest.main() takes os.PathLike arguments: the check for options given
    # without the switch must read them too.
    pytester.makepyfile(test_one="def test_one(): pass")
    code = "import pathlib, pytest; raise SystemExit(pytest.main([pathlib.Path('test_one.py')]))"
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*1 passed*"])
