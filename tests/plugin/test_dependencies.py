"""Test-level dependencies: ordering, skipping dependents, target forms, errors."""

from __future__ import annotations

import pytest
from test_batches import run_order


def test_dependency_runs_first_and_dependents_of_a_failure_are_skipped(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_chain="""
            import pytest

            @pytest.fixture
            def resource(request):
                with open("setups.txt", "a") as log:
                    log.write(request.node.name + "\\n")

            @pytest.mark.depends_on("test_create")
            def test_update(resource):
                pass

            @pytest.mark.depends_on("test_update")
            def test_delete(resource):
                pass

            def test_create():
                assert False, "create broke"

            def test_unrelated(resource):
                pass
        """
    )
    result = pytester.runpytest("--batchflow", "-v", "-rs")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    assert run_order(result) == [
        "test_chain.py::test_create",
        "test_chain.py::test_update",
        "test_chain.py::test_delete",
        "test_chain.py::test_unrelated",
    ]
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [1] test_chain.py:8: batchflow: depends on test_chain.py::test_create, "
            "which failed",
            "SKIPPED [1] test_chain.py:12: batchflow: depends on test_chain.py::test_update, "
            "which was skipped",
        ]
    )
    # Skipped dependents never set up their fixtures: only test_unrelated did.
    assert (pytester.path / "setups.txt").read_text().split() == ["test_unrelated"]


@pytest.mark.parametrize(
    ("dependency_body", "word"),
    [
        ("pytest.skip('no')", "was skipped"),
        ("pytest.xfail('known')", "xfailed"),
    ],
)
def test_dependent_of_skipped_or_xfailed_is_skipped(
    pytester: pytest.Pytester, dependency_body: str, word: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        def test_a():
            {dependency_body}
        @pytest.mark.depends_on("test_a")
        def test_b():
            pass
        """
    )
    result = pytester.runpytest("--batchflow", "-rs")
    result.stdout.fnmatch_lines([f"*batchflow: depends on test_*.py::test_a, which {word}"])


def test_setup_error_of_dependency_skips_dependent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")
        def test_a(broken):
            pass
        @pytest.mark.depends_on("test_a")
        def test_b():
            pass
        """
    )
    result = pytester.runpytest("--batchflow", "-rs")
    result.assert_outcomes(errors=1, skipped=1)
    result.stdout.fnmatch_lines(["*depends on test_*.py::test_a, which errored"])


def test_target_forms_node_id_class_and_parametrized_base(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("pkg")
    pytester.makepyfile(
        **{
            "pkg/test_later.py": """
                import pytest

                @pytest.mark.depends_on("pkg/test_source.py::test_made")
                def test_uses_node_id():
                    pass

                @pytest.mark.depends_on("test_rows")
                def test_after_all_rows():
                    pass

                @pytest.mark.parametrize("n", [1, 2, 3])
                def test_rows(n):
                    assert n != 2

                class TestInClass:
                    @pytest.mark.depends_on("test_first")
                    def test_second(self):
                        pass
                    def test_first(self):
                        pass
            """,
            "pkg/test_source.py": "def test_made(): pass",
        }
    )
    result = pytester.runpytest("--batchflow", "-v", "-rs")
    order = run_order(result)
    assert order.index("pkg/test_source.py::test_made") < order.index(
        "pkg/test_later.py::test_uses_node_id"
    )
    assert order.index("pkg/test_later.py::test_rows[3]") < order.index(
        "pkg/test_later.py::test_after_all_rows"
    )
    assert order.index("pkg/test_later.py::TestInClass::test_first") < order.index(
        "pkg/test_later.py::TestInClass::test_second"
    )
    # One failing instance of the parametrized base is enough to skip the dependent.
    result.stdout.fnmatch_lines(
        [
            "*pkg/test_later.py:7: batchflow: depends on pkg/test_later.py::test_rows[[]2[]],"
            " which failed"
        ]
    )
    result.assert_outcomes(passed=6, failed=1, skipped=1)


def test_deselected_dependency_skips_dependent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        def test_setup_data(): pass
        @pytest.mark.depends_on("test_setup_data")
        def test_query(): pass
        """
    )
    result = pytester.runpytest("--batchflow", "-k", "query", "-rs")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["*depends on test_*.py::test_setup_data, which was deselected"])


def test_cycle_is_a_usage_error_with_its_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_cycle="""
        import pytest
        @pytest.mark.depends_on("test_c")
        def test_a(): pass
        @pytest.mark.depends_on("test_a")
        def test_b(): pass
        @pytest.mark.depends_on("test_b")
        def test_c(): pass
        """
    )
    result = pytester.runpytest("--batchflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: dependency cycle: test_cycle.py::test_a -> test_cycle.py::test_c"
            " -> test_cycle.py::test_b -> test_cycle.py::test_a; remove one of these dependencies"
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_unknown_target_is_an_error_or_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_unknown="""
        import pytest
        @pytest.mark.depends_on("test_missing")
        def test_a(): pass
        def test_b(): pass
        """
    )
    result = pytester.runpytest("--batchflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_unknown.py::test_a depends on 'test_missing', which matches no "
            "collected test; *batchflow_missing_dependency = skip"
        ]
    )
    result = pytester.runpytest("--batchflow", "-o", "batchflow_missing_dependency=skip", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*depends on 'test_missing', which matches no collected test"])


def test_dependency_on_a_later_batch_is_an_error_naming_both(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    first: paths=test_first.py\n"
        "    second: paths=test_second.py after=first\n"
    )
    pytester.makepyfile(
        test_first="""
        import pytest
        @pytest.mark.depends_on("test_second.py::test_late")
        def test_early(): pass
        """,
        test_second="def test_late(): pass",
    )
    result = pytester.runpytest("--batchflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_first.py::test_early (batch 'first') depends on "
            "test_second.py::test_late (batch 'second'), which runs later; *"
        ]
    )


PYTEST_DEPENDENCY_SUITE = """
    import pytest

    @pytest.mark.dependency(depends=["test_b"])
    def test_c():
        pass

    @pytest.mark.dependency()
    def test_b():
        assert False

    @pytest.mark.dependency()
    def test_a():
        pass

    class TestK:
        @pytest.mark.dependency(depends=["test_x"], scope="class")
        def test_y(self):
            pass

        @pytest.mark.dependency()
        def test_x(self):
            pass

    @pytest.mark.dependency(depends=["test_legacy.py::test_a"], scope="session")
    def test_session_scope():
        pass
"""


def test_pytest_dependency_markers_get_batchflow_semantics(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legacy=PYTEST_DEPENDENCY_SUITE)
    result = pytester.runpytest("--batchflow", "-p", "no:dependency", "-v", "-rs")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    order = run_order(result)
    assert order.index("test_legacy.py::TestK::test_x") < order.index(
        "test_legacy.py::TestK::test_y"
    )
    result.stdout.fnmatch_lines(["*test_legacy.py:3: batchflow: depends on *test_b, which failed"])
    assert "pytest-dependency is active too" not in result.stdout.str()


def test_warns_when_pytest_dependency_is_active_alongside(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_dependency")
    pytester.makepyfile(test_legacy=PYTEST_DEPENDENCY_SUITE)
    # Alone, pytest-dependency skips test_c and test_y: they come before their targets.
    plain = pytester.runpytest("-p", "dependency", "-v")
    plain.assert_outcomes(passed=3, failed=1, skipped=2)
    result = pytester.runpytest("--batchflow", "-p", "dependency")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["batchflow: warning: pytest-dependency is active too; * -p no:dependency *"]
    )


def test_warns_under_xdist_too_when_pytest_dependency_is_active(
    pytester: pytest.Pytester,
) -> None:
    """The workers read the marks, but only the controller prints: it warns."""
    pytest.importorskip("pytest_dependency")
    pytest.importorskip("xdist")
    pytester.makepyfile(test_legacy=PYTEST_DEPENDENCY_SUITE)
    result = pytester.runpytest("--batchflow", "-p", "dependency", "-n", "2")
    # pytest-dependency, still active on the workers, also skips a dependent
    # whose target passed on the other worker (what the warning is about):
    # how many it skips depends on where the tests went.
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert outcomes["passed"] + outcomes["skipped"] == 5
    assert 1 <= outcomes["skipped"] <= 3
    warnings = [line for line in result.stdout.lines if "pytest-dependency is active" in line]
    assert warnings == [
        "batchflow: warning: pytest-dependency is active too; batchflow orders and skips its "
        "dependents itself, so disable that plugin with -p no:dependency (its markers keep "
        "working)"
    ]


def test_a_dependency_mark_naming_an_unmarked_test_says_it_lacks_the_mark(
    pytester: pytest.Pytester,
) -> None:
    # pytest-dependency knows only marked tests by name: "which matches no
    # collected test" was wrong there, test_plain is collected.
    pytester.makepyfile(
        test_legacy="""
        import pytest

        def test_plain():
            pass

        @pytest.mark.dependency(depends=["test_plain"])
        def test_after():
            pass
        """
    )
    result = pytester.runpytest("--batchflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_legacy.py::test_after depends on 'test_plain', which matches "
            "no test marked @pytest.mark.dependency (test_legacy.py::test_plain has no such "
            "mark); mark it, or set batchflow_missing_dependency = skip"
        ]
    )
    # A name no test has keeps the plain message.
    pytester.makepyfile(
        test_legacy="""
        import pytest

        @pytest.mark.dependency(depends=["test_nope"])
        def test_after():
            pass
        """
    )
    result = pytester.runpytest("--batchflow")
    result.stderr.fnmatch_lines(["*depends on 'test_nope', which matches no collected test; *"])
