"""Catalogue of bad inputs: each is a one-line usage error that says how to fix it.

Every case runs pytest in-process on a small suite and expects exit code 4,
exactly one ``ERROR: batchflow: ...`` line on stderr naming the key, where the
value came from and a value that would work, and no traceback anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field

import pytest

SUITE = """
def test_one():
    pass

def test_two():
    pass
"""

PREFIX = "ERROR: batchflow: "
# Batch lines come from the ini file, named by its path (a tmp path here).
LINES = "batchflow_batches (*tox.ini): "
NAME_RULE = "must start with an ASCII letter or _ and hold only ASCII letters, digits, _ . -"
KNOWN_KEYS = (
    "kind, paths, markers, after, mode, workers, priority, reruns, timeout, maxfail, cov, "
    "cov_fail_under, bench_fail, on_upstream_failure"
)


NOT_OURS = (
    "exists and is not %s that batchflow wrote, so batchflow will not replace it; "
    "delete it or name another file"
)


@dataclass(frozen=True)
class Case:
    """One bad input and the message it must produce (``*`` only for volatile parts)."""

    id: str
    message: str
    batches: tuple[str, ...] = ()
    ini: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ("--batchflow",)
    suite: str = SUITE


def marked(decorator: str) -> str:
    """A suite whose ``test_a`` carries ``decorator``."""
    return f"import pytest\n\n{decorator}\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n"


CYCLE_SUITE = """
import pytest

@pytest.mark.depends_on("test_b")
def test_a():
    pass

@pytest.mark.depends_on("test_a")
def test_b():
    pass
"""

CASES = [
    # --- batch lines -------------------------------------------------------------------
    Case(
        "line-with-a-comment",
        LINES + "line 'unit: paths=tests/unit # the fast ones': a batch line holds no "
        "comment; put it on a line of its own above, starting with #",
        batches=("unit: paths=tests/unit # the fast ones",),
    ),
    Case(
        "line-without-name",
        LINES + "line 'paths=tests/unit' has no 'NAME:' at its start; "
        "e.g. 'unit: paths=tests/unit after=smoke mode=parallel'",
        batches=("paths=tests/unit",),
    ),
    Case(
        # The first colon is inside a node id, not after a name.
        "line-without-name-colon-in-value",
        LINES + "line 'paths=tests/test_a.py::test_x' has no 'NAME:' at its start; "
        "e.g. 'unit: paths=tests/unit after=smoke mode=parallel'",
        batches=("paths=tests/test_a.py::test_x",),
    ),
    Case(
        "line-unknown-key",
        LINES + f"line 'unit: path=tests/unit': unknown key 'path'; known keys: {KNOWN_KEYS}",
        batches=("unit: path=tests/unit",),
    ),
    Case(
        "line-key-without-equals",
        LINES + "line 'unit: paths': 'paths' is not key=value; "
        "e.g. 'unit: paths=tests/unit after=smoke mode=parallel'",
        batches=("unit: paths",),
    ),
    Case(
        "line-key-given-twice",
        LINES + "line 'unit: mode=serial mode=parallel': key 'mode' is given twice",
        batches=("unit: mode=serial mode=parallel",),
    ),
    Case(
        "line-unbalanced-quote",
        LINES + "line 'unit: markers=\"db and': No closing quotation; "
        'close the quotes around a value with spaces, e.g. markers="db and not slow"',
        batches=('unit: markers="db and',),
    ),
    Case(
        "line-bad-kind",
        LINES + "line 'unit: kind=bench': kind='bench': Input should be 'test' or 'benchmark'; "
        "e.g. kind=benchmark",
        batches=("unit: kind=bench",),
    ),
    Case(
        "line-bad-mode",
        LINES + "line 'unit: mode=fast': mode='fast': "
        "Input should be 'parallel', 'serial' or 'exclusive'; e.g. mode=serial",
        batches=("unit: mode=fast",),
    ),
    Case(
        "line-workers-0",
        LINES + "line 'unit: workers=0': workers='0': "
        "Input should be greater than or equal to 1; e.g. workers=2",
        batches=("unit: workers=0",),
    ),
    Case(
        "line-workers-not-a-number",
        LINES + "line 'unit: workers=two': workers='two': "
        "Input should be a valid integer, unable to parse string as an integer; e.g. workers=2",
        batches=("unit: workers=two",),
    ),
    Case(
        "line-timeout-negative",
        LINES + "line 'unit: timeout=-1': timeout='-1': Input should be greater than 0; "
        "e.g. timeout=300",
        batches=("unit: timeout=-1",),
    ),
    Case(
        "line-timeout-infinite",
        LINES + "line 'unit: timeout=inf': timeout='inf': Input should be a finite number; "
        "e.g. timeout=300",
        batches=("unit: timeout=inf",),
    ),
    Case(
        "line-list-with-space-after-comma",
        LINES + "line 'unit: paths=a, b': 'b' follows a comma and a space; write lists without "
        "spaces, e.g. paths=tests/unit,tests/api/test_*.py",
        batches=("unit: paths=a, b",),
    ),
    Case(
        "line-timeout-not-a-number",
        LINES + "line 'unit: timeout=abc': timeout='abc': "
        "Input should be a valid number, unable to parse string as a number; e.g. timeout=300",
        batches=("unit: timeout=abc",),
    ),
    Case(
        "line-maxfail-0",
        LINES + "line 'unit: maxfail=0': maxfail='0': "
        "Input should be greater than or equal to 1; e.g. maxfail=1",
        batches=("unit: maxfail=0",),
    ),
    Case(
        "line-reruns-negative",
        LINES + "line 'unit: reruns=-1': reruns='-1': "
        "Input should be greater than or equal to 0; e.g. reruns=2",
        batches=("unit: reruns=-1",),
    ),
    Case(
        "line-priority-not-a-number",
        LINES + "line 'unit: priority=high': priority='high': "
        "Input should be a valid integer, unable to parse string as an integer; e.g. priority=10",
        batches=("unit: priority=high",),
    ),
    Case(
        "line-bad-cov",
        LINES + "line 'unit: cov=maybe': cov='maybe': "
        "Input should be a valid boolean, unable to interpret input; e.g. cov=off",
        batches=("unit: cov=maybe",),
    ),
    Case(
        "line-bad-on-upstream-failure",
        LINES + "line 'unit: on_upstream_failure=never': on_upstream_failure='never': "
        "Input should be 'skip' or 'run'; e.g. on_upstream_failure=run",
        batches=("unit: on_upstream_failure=never",),
    ),
    Case(
        "line-bad-marker-expression",
        LINES + "line 'unit: markers=\"db and\"': markers='db and': "
        "unexpected end of expression in marker expression 'db and'; "
        'e.g. markers="db and not slow"',
        batches=('unit: markers="db and"',),
    ),
    Case(
        "line-empty-list-item",
        LINES + "line 'unit: paths=a,,b': paths='a,,b': "
        "empty item in a comma-separated list (no spaces around commas); "
        "e.g. paths=tests/unit,tests/api/test_*.py",
        batches=("unit: paths=a,,b",),
    ),
    Case(
        "line-name-starts-with-digit",
        LINES + "line '9x: paths=a': batch name '9x' " + NAME_RULE + "; "
        "e.g. 'unit: paths=tests/unit after=smoke mode=parallel'",
        batches=("9x: paths=a",),
    ),
    Case(
        "line-name-with-space",
        LINES + "line 'a b: paths=a': batch name 'a b' " + NAME_RULE + "; "
        "e.g. 'unit: paths=tests/unit after=smoke mode=parallel'",
        batches=("a b: paths=a",),
    ),
    Case(
        "batch-defined-twice",
        LINES + "batch 'unit' is defined twice; give each line its own name",
        batches=("unit: paths=a", "unit: paths=b"),
    ),
    Case(
        "after-unknown-batch",
        LINES + "batch 'unit' has after=smoke, an unknown batch; known batches: default, unit",
        batches=("unit: after=smoke",),
    ),
    Case(
        "after-itself",
        LINES + "batch 'unit' is after itself; drop it from its own after=",
        batches=("unit: after=unit",),
    ),
    Case(
        "after-cycle",
        LINES + "the batches' after= edges form a cycle: a -> b -> a; remove one of these edges",
        batches=("a: after=b", "b: after=a"),
    ),
    # --- options: command line, environment, ini ---------------------------------------
    Case(
        "select-unknown-cli",
        "--batchflow-batches (command line): unknown batch 'nope'; known batches: default, unit",
        batches=("unit: paths=a",),
        args=("--batchflow", "--batchflow-batches=nope"),
    ),
    Case(
        "select-empty-name-cli",
        "--batchflow-batches (command line): 'unit,,default': empty batch name in the list; "
        "e.g. --batchflow-batches=unit,db",
        batches=("unit: paths=a",),
        args=("--batchflow", "--batchflow-batches=unit,,default"),
    ),
    Case(
        "select-unknown-env",
        "BATCHFLOW_BATCHES (environment): unknown batch 'nope'; known batches: default",
        env={"BATCHFLOW_BATCHES": "nope"},
    ),
    Case(
        "select-unknown-ini",
        "batchflow_select (tox.ini): unknown batch 'nope'; known batches: default",
        ini=("batchflow_select = nope",),
    ),
    Case(
        "json-path-empty-cli",
        "--batchflow-json (command line): '': the path is empty; "
        "e.g. --batchflow-json=.batchflow/result.json",
        args=("--batchflow", "--batchflow-json="),
    ),
    Case(
        "missing-dependency-ini",
        "batchflow_missing_dependency (tox.ini): 'maybe': Input should be 'error' or 'skip'; "
        "e.g. batchflow_missing_dependency = skip",
        ini=("batchflow_missing_dependency = maybe",),
    ),
    Case(
        "missing-dependency-cli",
        "--batchflow-missing-dependency (command line): 'maybe': "
        "Input should be 'error' or 'skip'; e.g. --batchflow-missing-dependency=skip",
        args=("--batchflow", "--batchflow-missing-dependency=maybe"),
    ),
    Case(
        "switch-env-banana",
        "BATCHFLOW (environment): 'banana': "
        "Input should be a valid boolean, unable to interpret input; e.g. BATCHFLOW=1",
        env={"BATCHFLOW": "banana"},
        args=(),
    ),
    Case(
        "plan-env-banana",
        "BATCHFLOW_PLAN (environment): 'banana': "
        "Input should be a valid boolean, unable to interpret input; e.g. BATCHFLOW_PLAN=1",
        env={"BATCHFLOW_PLAN": "banana"},
    ),
    Case(
        "switch-ini-maybe",
        "batchflow (tox.ini): invalid truth value 'maybe'; e.g. batchflow = true",
        ini=("batchflow = maybe",),
        args=(),
    ),
    Case(
        "xdist-dist-each",
        "--dist each cannot be combined with --batchflow, whose scheduler decides where each "
        "test runs; drop --dist (use -n alone), or use batch lines, @pytest.mark.locks or "
        "mode=serial to keep tests apart",
        args=("--batchflow", "-n", "2", "--dist", "each"),
    ),
    Case(
        "xdist-dist-loadgroup",
        "--dist loadgroup cannot be combined with --batchflow, whose scheduler decides where "
        "each test runs; drop --dist (use -n alone), or use batch lines, @pytest.mark.locks or "
        "mode=serial to keep tests apart",
        args=("--batchflow", "-n", "2", "--dist", "loadgroup"),
    ),
    # --- markers -----------------------------------------------------------------------
    Case(
        "mark-batch-unknown",
        "test_suite.py::test_a: @pytest.mark.batch('nope') names an unknown batch; "
        "known batches: default",
        suite=marked('@pytest.mark.batch("nope")'),
    ),
    Case(
        "mark-batch-no-name",
        "test_suite.py::test_a: @pytest.mark.batch takes one batch name, "
        'e.g. @pytest.mark.batch("db"); got ()',
        suite=marked("@pytest.mark.batch()"),
    ),
    Case(
        "mark-depends-on-no-target",
        "test_suite.py::test_a: @pytest.mark.depends_on takes test names or node ids, "
        'e.g. @pytest.mark.depends_on("test_login"); got ()',
        suite=marked("@pytest.mark.depends_on()"),
    ),
    Case(
        "mark-depends-on-non-string",
        "test_suite.py::test_a: @pytest.mark.depends_on takes test names or node ids, "
        'e.g. @pytest.mark.depends_on("test_login"); got (3)',
        suite=marked("@pytest.mark.depends_on(3)"),
    ),
    Case(
        "mark-dependency-bad-scope",
        "test_suite.py::test_a: @pytest.mark.dependency takes name=str, depends=[names] and "
        "scope in session, package, module, class; got (scope='galaxy')",
        suite=marked('@pytest.mark.dependency(scope="galaxy")'),
    ),
    Case(
        "option-reruns-negative",
        "--batchflow-reruns (command line): '-1': Input should be greater than or equal to 0; "
        "e.g. --batchflow-reruns=2",
        args=("--batchflow", "--batchflow-reruns=-1"),
    ),
    Case(
        "option-reruns-delay-not-a-number",
        "--batchflow-reruns-delay (command line): 'soon': Input should be a valid number, "
        "unable to parse string as a number; e.g. --batchflow-reruns-delay=0.5",
        args=("--batchflow", "--batchflow-reruns-delay=soon"),
    ),
    Case(
        "ini-reruns-only-bad-regex",
        "batchflow_reruns_only (*tox.ini): 'Error(': not a regular expression "
        "(missing ), unterminated subpattern at position 5); "
        'e.g. batchflow_reruns_only = "ConnectionError|TimeoutError"',
        ini=("batchflow_reruns_only = Error(",),
    ),
    Case(
        "env-strict-flaky-not-a-boolean",
        "BATCHFLOW_STRICT_FLAKY (environment): 'maybe': Input should be a valid boolean, "
        "unable to interpret input; e.g. BATCHFLOW_STRICT_FLAKY=1",
        env={"BATCHFLOW_STRICT_FLAKY": "maybe"},
    ),
    Case(
        "option-quarantine-missing-file",
        "--batchflow-quarantine (command line): '*/nope.txt': no file */nope.txt "
        "(a file of node ids, or auto[:SCORE]); "
        "e.g. --batchflow-quarantine=quarantine.txt,auto:0.3",
        args=("--batchflow", "--batchflow-quarantine=nope.txt"),
    ),
    Case(
        "option-quarantine-score-out-of-range",
        "--batchflow-quarantine (command line): auto:2: the score must be above 0 "
        "and at most 1; e.g. --batchflow-quarantine=quarantine.txt,auto:0.3",
        args=("--batchflow", "--batchflow-quarantine=auto:2"),
    ),
    Case(
        "option-flaky-window-zero",
        "--batchflow-flaky-window (command line): '0': Input should be greater than or equal "
        "to 1; e.g. --batchflow-flaky-window=20",
        args=("--batchflow", "--batchflow-flaky-window=0"),
    ),
    Case(
        "option-probe-once",
        "--batchflow-probe (command line): '1': Input should be greater than or equal to 2; "
        "e.g. --batchflow-probe=10",
        args=("--batchflow", "--batchflow-probe=1"),
    ),
    Case(
        "option-bench-min-rounds-over-the-most-kept",
        "--batchflow-bench-min-rounds (command line): '3000': Input should be less than or "
        "equal to 2000; e.g. --batchflow-bench-min-rounds=5",
        args=("--batchflow", "--batchflow-bench-min-rounds=3000"),
    ),
    Case(
        "marker-reruns-not-a-number",
        "test_suite.py::test_a: @pytest.mark.reruns takes one whole number of reruns (0 or more), "
        "e.g. @pytest.mark.reruns(2); got ('2')",
        suite=marked('@pytest.mark.reruns("2")'),
    ),
    Case(
        "test-dependency-cycle",
        "dependency cycle: test_suite.py::test_a -> test_suite.py::test_b -> "
        "test_suite.py::test_a; remove one of these dependencies",
        suite=CYCLE_SUITE,
    ),
    Case(
        "test-dependency-unknown-target",
        "test_suite.py::test_a depends on 'test_missing', which matches no collected test; "
        "fix the name, select that test too, or set batchflow_missing_dependency = skip",
        suite=marked('@pytest.mark.depends_on("test_missing")'),
    ),
    # An output option that took the next argument as its path: batchflow
    # replaces only files it wrote.
    Case(
        "output-html-over-a-test-file",
        f"--batchflow-html (command line): */test_suite.py {NOT_OURS % 'an HTML report'}; "
        "e.g. --batchflow-html=.batchflow/report.html",
        args=("--batchflow", "--batchflow-html", "test_suite.py"),
    ),
    Case(
        "xdist-output-junit-over-a-test-file",
        f"--batchflow-junit (command line): */test_suite.py {NOT_OURS % 'a JUnit XML'}; "
        "e.g. --batchflow-junit=.batchflow/junit.xml",
        args=("--batchflow", "-n", "2", "--batchflow-junit", "test_suite.py"),
    ),
    Case(
        "output-json-over-the-ini-file",
        f"batchflow_json (*tox.ini): */tox.ini {NOT_OURS % 'a JSON result'}; "
        "e.g. batchflow_json = .batchflow/result.json",
        ini=("batchflow_json = tox.ini",),
    ),
    Case(
        "output-json-under-a-file",
        "--batchflow-json (command line): */test_suite.py is a file, not a folder, so "
        "*/test_suite.py/r.json cannot be written; e.g. --batchflow-json=.batchflow/result.json",
        args=("--batchflow", "--batchflow-json=test_suite.py/r.json"),
    ),
    Case(
        "output-junit-a-folder",
        "BATCHFLOW_JUNIT (environment): */test_bad_input_is_a_one_line_usage_error* is a "
        "folder; name a file in it; e.g. BATCHFLOW_JUNIT=.batchflow/junit.xml",
        env={"BATCHFLOW_JUNIT": "."},
    ),
    Case(
        "output-json-and-html-share-a-file",
        "--batchflow-html (command line): */out.json is also the file of the JSON result "
        "(--batchflow-json, command line); give each output a file of its own, "
        "e.g. --batchflow-html=.batchflow/report.html",
        args=("--batchflow", "--batchflow-json=out.json", "--batchflow-html=out.json"),
    ),
    Case(
        "output-json-is-the-history-store",
        "BATCHFLOW_JSON (environment): */.batchflow/history.sqlite is also the file of the "
        "history store (its default path); give each output a file of its own, "
        "e.g. BATCHFLOW_JSON=.batchflow/result.json",
        env={"BATCHFLOW_JSON": ".batchflow/history.sqlite"},
    ),
]


def fnmatch_escape(text: str) -> str:
    """Escape fnmatch's ``[``, ``]`` and ``?`` so that only ``*`` stays a wildcard."""
    return re.sub(r"[\[\]?]", lambda match: f"[{match.group()}]", text)


def assert_usage_error(result: pytest.RunResult, message: str) -> str:
    """Exit code 4, one ``ERROR: batchflow:`` line matching ``message``, no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stderr.str()
    errors = [line for line in result.stderr.lines if line.startswith(PREFIX)]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([fnmatch_escape(PREFIX + message)], consecutive=True)
    # The message is one line: nothing but blank lines around it.
    assert [line for line in result.stderr.lines if line.strip()] == errors
    assert "Traceback" not in result.stdout.str()
    assert "Traceback" not in result.stderr.str()
    return errors[0]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_one_line_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    if case.id.startswith("xdist-"):
        pytest.importorskip("xdist")
    ini = ["[pytest]", *case.ini]
    if case.batches:
        ini += ["batchflow_batches =", *(f"    {line}" for line in case.batches)]
    pytester.makeini("\n".join(ini) + "\n")
    pytester.makepyfile(test_suite=case.suite)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest(*case.args)
    assert_usage_error(result, case.message)


def test_catalogue_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)


def test_pyproject_toml_gives_the_same_message_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nbatchflow_batches = ["unit: path=tests/unit"]\n'
    )
    message = f"line 'unit: path=tests/unit': unknown key 'path'; known keys: {KNOWN_KEYS}"
    from_toml = assert_usage_error(
        pytester.runpytest("--batchflow"),
        f"batchflow_batches (*pyproject.toml): {message}",
    )

    (pytester.path / "pyproject.toml").unlink()
    pytester.makeini("[pytest]\nbatchflow_batches =\n    unit: path=tests/unit\n")
    from_ini = assert_usage_error(pytester.runpytest("--batchflow"), LINES + message)

    assert from_toml.partition("): ")[2] == from_ini.partition("): ")[2]


XDIST = importlib.util.find_spec("xdist") is not None

NATIVE_TOML = pytest.mark.skipif(
    pytest.version_tuple < (9, 2), reason="numbers in [tool.pytest] need pytest >= 9.2"
)


@NATIVE_TOML
def test_native_toml_takes_numbers_as_the_ini_file_takes_their_text(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyprojecttoml(
        "[tool.pytest]\nbatchflow = true\nbatchflow_reruns = 2\nbatchflow_reruns_delay = 0.5\n"
        'batchflow_json = "r.json"\n'
    )
    result = pytester.runpytest("-W", "error")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "r.json").read_text())
    assert [batch["reruns"] for batch in data["batches"]] == [2]


@NATIVE_TOML
def test_native_toml_list_where_a_string_is_due_is_one_line_with_a_quoted_example(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyprojecttoml('[tool.pytest]\nbatchflow = true\nbatchflow_select = ["unit"]\n')
    assert_usage_error(
        pytester.runpytest(),
        "batchflow_select (pyproject.toml): config option 'batchflow_select' "
        "expects a string, got list: ['unit']; "
        'e.g. batchflow_select = "unit,db"',
    )


def test_a_list_pytest_deprecates_is_one_line_under_w_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nbatchflow = true\nbatchflow_select = ["unit"]\n'
    )
    import _pytest.deprecated

    if not hasattr(_pytest.deprecated, "INI_STRING_TYPE_NON_STR_VALUE"):
        pytest.skip("this pytest takes a list here without a deprecation warning")
    assert_usage_error(
        pytester.runpytest("-W", "error"),
        "batchflow_select (pyproject.toml): pytest deprecates a value that is not a string "
        'here (PytestRemovedIn10Warning); e.g. batchflow_select = "unit,db"',
    )


def test_a_quarantine_file_that_is_not_utf_8_is_named_with_its_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    (pytester.path / "quarantine.txt").write_bytes(
        b"# known flaky\ntest_suite.py::test_one  # caf\xe9\n"
    )
    for args in [(), ("-n", "2")] if XDIST else [()]:
        assert_usage_error(
            pytester.runpytest("--batchflow", "--batchflow-quarantine=quarantine.txt", *args),
            "--batchflow-quarantine (command line): */quarantine.txt is not UTF-8 text "
            "(byte 0xe9 on line 2); save it as UTF-8; "
            "e.g. --batchflow-quarantine=quarantine.txt,auto:0.3",
        )


@pytest.mark.parametrize("missing", ["test_ok.py::test_nosuch", "nosuch_dir"])
def test_a_path_that_does_not_exist_ends_an_xdist_run_as_without_batchflow(
    pytester: pytest.Pytester, missing: str
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_ok="def test_ok(): pass\n")
    # xdist's workers stop at pytest's "not found" before any plugin sees the
    # items; without batchflow the run ends with "no tests ran".
    plain = pytester.runpytest("-n", "2", missing)
    result = pytester.runpytest("--batchflow", "-n", "2", missing)
    assert result.ret == plain.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*no tests ran in*"])


def test_a_toml_boolean_where_a_number_is_due_is_named_as_written(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    # pytest makes it the text "True" ([tool.pytest] refuses it itself, naming the type).
    pytester.makepyprojecttoml(
        "[tool.pytest.ini_options]\nbatchflow = true\nbatchflow_reruns = true\n"
    )
    message = assert_usage_error(pytester.runpytest(), "batchflow_reruns (pyproject.toml): *")
    assert message.startswith("ERROR: batchflow: batchflow_reruns (pyproject.toml): 'true': ")


def test_a_bad_value_given_with_o_is_said_to_come_from_o(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_suite=SUITE)
    assert_usage_error(
        pytester.runpytest("--batchflow", "-o", "batchflow_reruns=x"),
        "batchflow_reruns (-o): 'x': *; e.g. batchflow_reruns = 2",
    )


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_misspelt_setting_in_the_ini_file_is_named_with_the_setting_meant(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makeini("[pytest]\nbatchflow_rerun = 2\nbatchflow_frobnicate = 1\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--batchflow", *workers)
    # pytest's own warnings stay; batchflow says what was meant, once each.
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*PytestConfigWarning: Unknown config option: batchflow_rerun"])
    lines = [line for line in result.stdout.lines if "is no batchflow setting" in line]
    assert lines == [
        "batchflow: warning: batchflow_frobnicate is no batchflow setting: "
        "pytest --help lists them",
        "batchflow: warning: batchflow_rerun is no batchflow setting: "
        "did you mean batchflow_reruns?",
    ]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("BATCHFLOW_batches", "BATCHFLOW_BATCHES"),
        ("BATCHFLOW_ENABLED", "BATCHFLOW"),
        ("BATCHFLOW_BATCHFLOW", None),
        ("BATCHFLOW_BATCHFLOW_RERUNS", "BATCHFLOW_RERUNS"),
    ],
)
def test_the_variable_meant_is_found_in_any_case(name: str, meant: str | None) -> None:
    from pytest_batchflow.options import misspelt_variables

    (line,) = misspelt_variables({name: "1"})
    assert line.startswith(f"{name} is no batchflow variable: ")
    if meant is not None:
        assert line.endswith(f"did you mean {meant}?")
    assert misspelt_variables({"BATCHFLOW": "1", "BATCHFLOW_COMMIT": "abc", "OTHER": "1"}) == []


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_misspelt_environment_variable_is_named_with_the_one_meant(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=SUITE)
    # The ini key is batchflow_select, the variable BATCHFLOW_BATCHES: the
    # variable was ignored without a word.
    monkeypatch.setenv("BATCHFLOW_SELECT", "unit")
    monkeypatch.setenv("BATCHFLOW_RERUN", "2")
    monkeypatch.setenv("BATCHFLOW_FROBNICATE", "1")
    monkeypatch.setenv("BATCHFLOW_COMMIT", "abc123")  # known, if no setting
    result = pytester.runpytest("--batchflow", *workers)
    result.assert_outcomes(passed=2)
    lines = [line for line in result.stdout.lines if "is no batchflow variable" in line]
    assert lines == [
        "batchflow: warning: BATCHFLOW_FROBNICATE is no batchflow variable: each option's is "
        "BATCHFLOW_ and its name (--batchflow-reruns: BATCHFLOW_RERUNS)",
        "batchflow: warning: BATCHFLOW_RERUN is no batchflow variable: "
        "did you mean BATCHFLOW_RERUNS?",
        "batchflow: warning: BATCHFLOW_SELECT is no batchflow variable: "
        "did you mean BATCHFLOW_BATCHES?",
    ]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_run_strict_config_refuses_after_collecting_has_no_summary_or_report(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    if workers:
        pytest.importorskip("xdist")
    pytester.makeini("[pytest]\nnot_an_option = 1\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(
        "--batchflow", "--strict-config", "--batchflow-json=r.json", *workers
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: Unknown config option: not_an_option"])
    assert "=== batchflow ===" not in result.stdout.str()
    assert not (pytester.path / "r.json").exists()
    assert not (pytester.path / ".batchflow" / "report.html").exists()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
@pytest.mark.parametrize("refusal", ["strict-config", "dependency-cycle"])
def test_a_run_refused_after_collecting_writes_no_history_and_the_next_run_does(
    pytester: pytest.Pytester, workers: tuple[str, ...], refusal: str
) -> None:
    # Before, reading the durations for the plan created .batchflow/ and an
    # empty history.sqlite, although no test was going to run.
    if workers:
        pytest.importorskip("xdist")
    if refusal == "strict-config":
        pytester.makeini("[pytest]\nnot_an_option = 1\n")
        pytester.makepyfile(test_suite=SUITE)
        refused = pytester.runpytest("--batchflow", "--strict-config", *workers)
        fixed = ("--batchflow", *workers)
    else:
        pytester.makepyfile(test_suite=CYCLE_SUITE)
        refused = pytester.runpytest("--batchflow", *workers)
        pytester.makepyfile(test_suite=SUITE)
        fixed = ("--batchflow", "--strict-config", *workers)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert not (pytester.path / ".batchflow").exists()

    result = pytester.runpytest(*fixed)
    result.assert_outcomes(passed=2)
    history = pytester.run(
        sys.executable, "-m", "pytest_batchflow", "history", "test_suite.py::test_one"
    )
    assert history.ret == 0
    # One run recorded, the one that ran.
    history.stdout.fnmatch_lines(["run  started (UTC) *", "  1  * passed *"])
    assert len(history.stdout.lines) == 2
