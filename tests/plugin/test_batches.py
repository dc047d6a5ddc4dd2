"""Batch assignment, batch order and the per-batch summary, run serially."""

from __future__ import annotations

import re

import pytest

INI = """
[pytest]
batchflow_batches =
    smoke: paths=tests/smoke
    unit:  paths=tests/unit after=smoke
    db:    markers="db and not slow" after=unit
    late:  paths=tests/late priority=-5
    early: paths=tests/early priority=5 after=smoke
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI + "markers =\n    db\n    slow\n")
    pytester.mkpydir("tests")
    for folder in ("smoke", "unit", "late", "early", "misc"):
        pytester.mkpydir(f"tests/{folder}")
    pytester.makepyfile(
        **{
            "tests/misc/test_misc.py": """
                import pytest
                def test_plain(): pass
                @pytest.mark.db
                def test_db(): pass
                @pytest.mark.db
                @pytest.mark.slow
                def test_db_slow(): pass
            """,
            "tests/late/test_late.py": "def test_late(): pass",
            "tests/unit/test_unit.py": """
                import pytest
                def test_unit_a(): pass
                @pytest.mark.db
                def test_unit_db(): pass
                @pytest.mark.batch("late")
                def test_marked_late(): pass
            """,
            "tests/early/test_early.py": "def test_early(): pass",
            "tests/smoke/test_smoke.py": "def test_smoke(): pass",
        }
    )
    return pytester


def run_order(result: pytest.RunResult) -> list[str]:
    """The node ids of a ``-v`` run, in the order they ran."""
    words = (" PASSED", " FAILED", " SKIPPED", " ERROR", " XFAIL", " XPASS")
    return [
        line.split(" ")[0]
        for line in result.outlines
        if "::" in line and any(word in line for word in words)
    ]


def test_batches_run_in_after_priority_line_order(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--batchflow", "-v")
    result.assert_outcomes(passed=9)
    assert run_order(result) == [
        "tests/smoke/test_smoke.py::test_smoke",
        # early (priority 5) runs before unit although its line comes later
        "tests/early/test_early.py::test_early",
        "tests/unit/test_unit.py::test_unit_a",
        # the first matching line wins: paths= of unit before markers= of db
        "tests/unit/test_unit.py::test_unit_db",
        "tests/misc/test_misc.py::test_db",
        # default batch (no line matched) before late, which has priority -5
        "tests/misc/test_misc.py::test_plain",
        "tests/misc/test_misc.py::test_db_slow",
        # @pytest.mark.batch beats the unit line
        "tests/late/test_late.py::test_late",
        "tests/unit/test_unit.py::test_marked_late",
    ]


def test_header_and_summary_table(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--batchflow")
    result.stdout.fnmatch_lines(
        [
            "batchflow: 6 batches, 9 tests, 0 dependencies",
            "*= batchflow =*",
            "batch *kind *tests *passed *failed *skipped *duration *status",
            "smoke *test *1 *1 *0 *0 *s *passed",
            "early *test *1 *1 *0 *0 *s *passed",
            "unit *test *2 *2 *0 *0 *s *passed",
            "db *test *1 *1 *0 *0 *s *passed",
            "default *test *2 *2 *0 *0 *s *passed",
            "late *test *2 *2 *0 *0 *s *passed",
        ]
    )


def test_the_table_counts_each_outcome_as_pytests_summary_line_does(
    pytester: pytest.Pytester,
) -> None:
    """Errors, xfails and xpasses have columns of their own (when a batch has
    one), in the terminal and in the HTML report: the counts add up as pytest's."""
    pytester.makeini("[pytest]\nbatchflow_batches =\n    other: paths=test_other.py\n")
    pytester.makepyfile(
        test_all="""
            import pytest
            @pytest.fixture
            def broken():
                raise RuntimeError("no setup")
            def test_pass(): pass
            def test_fail(): assert False
            @pytest.mark.parametrize("n", range(2))
            def test_error(broken, n): pass
            def test_skip(): pytest.skip("not here")
            @pytest.mark.xfail(reason="known")
            @pytest.mark.parametrize("n", range(3))
            def test_xfail(n): assert False
            @pytest.mark.xfail(reason="known")
            @pytest.mark.parametrize("n", range(4))
            def test_xpass(n): pass
        """,
        test_other="def test_other(): pass",
    )
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=2, failed=1, errors=2, skipped=1, xfailed=3, xpassed=4)
    result.stdout.fnmatch_lines(
        [
            "batch *kind *tests *passed *failed *error *skipped *xfailed *xpassed *duration"
            " *status",
            "other *test *1 *1 *0 *0 *0 *0 *0 *[0-9.]s *passed",
            "default *test *12 *1 *1 *2 *1 *3 *4 *[0-9.]s *failed",
        ]
    )
    html = (pytester.path / ".batchflow" / "report.html").read_text(encoding="utf-8")
    table = html[html.index('<table class="grid" id="batch-table">') :]
    table = table[: table.index("</table>")]
    words = ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
    assert "".join(f'<th class="n">{word}</th>' for word in words) in table
    assert "flaky" not in table  # no batch has one
    rows = {row.split("</td>", 1)[0]: row for row in table.replace("\n", "").split("<tr><td>")}
    counts = "".join(f'<td class="n">{n}</td>' for n in (12, 1, 1, 2, 1, 3, 4))
    assert counts in re.sub(r">\s+<", "><", rows["default"])


def test_the_table_leaves_out_the_columns_no_batch_needs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_pass(): pass")
    result = pytester.runpytest("--batchflow")
    result.stdout.fnmatch_lines(["batch *kind *tests *passed *failed *skipped *duration *status"])
    header = next(line for line in result.outlines if line.startswith("batch "))
    assert header.split() == [
        "batch",
        "kind",
        "tests",
        "passed",
        "failed",
        "skipped",
        "duration",
        "status",
    ]


def test_batch_marker_on_class_and_module(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    first: priority=1\n    second:\n")
    pytester.makepyfile(
        test_module="""
            import pytest
            pytestmark = pytest.mark.batch("second")
            def test_in_second(): pass
            @pytest.mark.batch("first")
            class TestFirst:
                def test_in_first(self): pass
        """
    )
    result = pytester.runpytest("--batchflow", "-v")
    result.assert_outcomes(passed=2)
    assert run_order(result) == [
        "test_module.py::TestFirst::test_in_first",
        "test_module.py::test_in_second",
    ]


def test_glob_paths_match_files_and_folders(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    api: paths=pkg/test_api_*.py\n    deep: paths=**/deep\n"
    )
    pytester.mkpydir("pkg")
    pytester.mkpydir("pkg/sub")
    pytester.mkpydir("pkg/sub/deep")
    pytester.makepyfile(
        **{
            "pkg/test_api_users.py": "def test_users(): pass",
            "pkg/test_other.py": "def test_other(): pass",
            "pkg/sub/deep/test_x.py": "def test_x(): pass",
        }
    )
    result = pytester.runpytest("--batchflow")
    result.stdout.fnmatch_lines(["api *1 *1 *", "deep *1 *1 *", "default *1 *1 *"])


def test_a_paths_glob_naming_nothing_on_disk_is_a_warning(pytester: pytest.Pytester) -> None:
    """A misspelt folder leaves its batch empty: said once, at the end. A glob
    whose folder exists but holds no collected test (a narrowed run) is not."""
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    unit: paths=tset/unit\n"
        "    api: paths=tests/api,tests/**/test_zz*.py\n    late: paths=tests/late\n"
    )
    for folder in ("tests", "tests/unit", "tests/api", "tests/late"):
        pytester.mkpydir(folder)
    pytester.makepyfile(
        **{
            "tests/unit/test_unit.py": "def test_unit(): pass",
            "tests/api/test_api.py": "def test_api(): pass",
            "tests/late/test_late.py": "def test_late(): pass",
        }
    )
    result = pytester.runpytest("--batchflow", "tests/unit", "tests/api")
    result.assert_outcomes(passed=2)
    warnings = [line for line in result.outlines if line.startswith("batchflow: warning:")]
    root = pytester.path
    assert warnings == [
        f"batchflow: warning: batch 'unit': paths=tset/unit matches no file or folder under "
        f"{root} (paths are globs relative to rootdir)",
        f"batchflow: warning: batch 'api': paths=tests/**/test_zz*.py matches no file or "
        f"folder under {root} (paths are globs relative to rootdir)",
    ]
    result.stdout.fnmatch_lines(["api *1 *1 *", "default *1 *1 *"])


def test_pytest_order_across_modules_is_kept(pytester: pytest.Pytester) -> None:
    """pytest runs a parametrized session fixture's tests parameter by parameter
    across modules, setting each value up once: batchflow keeps that order."""
    pytester.makeconftest(
        """
        import pytest
        SETUPS = []
        @pytest.fixture(scope="session", params=["A", "B"])
        def server(request):
            SETUPS.append(request.param)
            yield request.param
        def pytest_sessionfinish(session):
            print("\\nsetups:", " ".join(SETUPS))
        """
    )
    for name in ("test_one.py", "test_two.py"):
        pytester.makepyfile(**{name[:-3]: "def test_uses(server): pass"})
    plain = pytester.runpytest("-v", "-s", "-p", "no:cacheprovider")
    with_batchflow = pytester.runpytest("--batchflow", "-v", "-s", "-p", "no:cacheprovider")
    with_batchflow.assert_outcomes(passed=4)
    plain.stdout.fnmatch_lines(["setups: A B"])
    with_batchflow.stdout.fnmatch_lines(["setups: A B"])
    expected = [
        "test_one.py::test_uses[A]",
        "test_two.py::test_uses[A]",
        "test_one.py::test_uses[B]",
        "test_two.py::test_uses[B]",
    ]
    assert run_order(plain) == expected
    assert run_order(with_batchflow) == expected
