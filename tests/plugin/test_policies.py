"""Batch policies in a serial run: maxfail, timeout, upstream failures, selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from frozen_clock import FROZEN_MODULE


def test_maxfail_skips_the_rest_of_the_batch_only(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nbatchflow_batches =\n    fragile: paths=test_fragile.py maxfail=2\n"
        "    other: paths=test_other.py on_upstream_failure=run\n"
    )
    pytester.makepyfile(
        test_fragile="""
            def test_1(): assert 0
            def test_2(): pass
            def test_3(): assert 0
            def test_4(): pass
            def test_5(): pass
        """,
        test_other="def test_other(): pass",
    )
    result = pytester.runpytest("--batchflow", "-rs")
    result.assert_outcomes(failed=2, passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        # pytest folds mark-based skips of one file into one line, as for @pytest.mark.skip.
        [
            "SKIPPED [2] test_fragile.py: batchflow: batch 'fragile' stopped after 2 failures"
            " (maxfail=2)"
        ]
    )


def test_timeout_skips_unstarted_tests_once_the_budget_is_spent(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nbatchflow_batches =\n    slow: paths=test_slow.py timeout=0.2\n")
    pytester.makepyfile(
        test_slow="""
            import time
            def test_long(): time.sleep(0.3)
            def test_next(): pass
        """,
        test_fast="def test_elsewhere(): pass",
    )
    result = pytester.runpytest("--batchflow", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*batchflow: batch 'slow' spent its timeout of 0.2s"])


def test_a_clock_the_tests_froze_does_not_spend_the_timeout(pytester: pytest.Pytester) -> None:
    """freezegun replaces time.monotonic for the module's tests; the batch's
    timeout is counted on the system's clock all the same."""
    pytest.importorskip("freezegun")
    pytester.makeini("[pytest]\nbatchflow_batches =\n    default: timeout=30\n")
    pytester.makepyfile(
        test_frozen=FROZEN_MODULE
        + "def test_one(): pass\ndef test_two(): pass\ndef test_three(): pass\n"
    )
    result = pytester.runpytest_subprocess("--batchflow", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*spent its timeout*")


UPSTREAM_INI = """
[pytest]
batchflow_batches =
    base: paths=test_base.py
    mid:  paths=test_mid.py after=base
    top:  paths=test_top.py after=mid
    free: paths=test_free.py after=base on_upstream_failure=run
"""


def test_upstream_failure_skips_downstream_batches_transitively(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(UPSTREAM_INI)
    pytester.makepyfile(
        test_base="def test_base(): assert 0",
        test_mid="def test_mid(): pass",
        test_top="def test_top(): pass",
        test_free="def test_free(): pass",
    )
    result = pytester.runpytest("--batchflow", "-rs")
    result.assert_outcomes(failed=1, passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "base *1 *0 *1 *0 *failed",
            "mid *1 *0 *0 *1 *skipped: upstream batch 'base' had 1 failure",
            "top *1 *0 *0 *1 *skipped: upstream batch 'mid' was skipped",
            "free *1 *1 *0 *0 *passed",
        ]
    )


def test_batch_selection_runs_only_those_batches(pytester: pytest.Pytester) -> None:
    pytester.makeini(UPSTREAM_INI)
    pytester.makepyfile(
        test_base="def test_base(): pass",
        test_mid="def test_mid(): pass",
        test_top="def test_top(): pass",
        test_free="def test_free(): pass",
    )
    result = pytester.runpytest("--batchflow", "--batchflow-batches=mid,top", "-v")
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["batchflow: 2 batches, 2 tests, 0 dependencies"])
    assert "test_base.py::test_base PASSED" not in result.stdout.str()


def stage_project(pytester: pytest.Pytester) -> None:
    """Two CI stages: test_use, in batch mid, depends on test_seed in batch base."""
    pytester.makeini(UPSTREAM_INI)
    pytester.makepyfile(
        test_base="def test_seed(): pass",
        test_mid="""
            import pytest
            @pytest.mark.depends_on("test_base.py::test_seed")
            def test_use(): pass
        """,
    )


def test_selection_with_dependency_outside_needs_a_pass_at_this_commit(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_project(pytester)
    monkeypatch.setenv("BATCHFLOW_COMMIT", "abc123")
    refused = pytester.runpytest("--batchflow", "--batchflow-batches=mid")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_mid.py::test_use depends on test_base.py::test_seed in batch "
            "'base', which --batchflow-batches leaves out and the history has not seen pass at "
            "commit abc123; select 'base' too or run it first"
        ]
    )
    # An earlier CI stage ran base at the same commit: now the stage may run alone.
    pytester.runpytest("--batchflow", "--batchflow-batches=base").assert_outcomes(passed=1)
    stage = pytester.runpytest("--batchflow", "--batchflow-batches=mid")
    stage.assert_outcomes(passed=1, deselected=1)
    # At another commit the earlier pass does not count.
    monkeypatch.setenv("BATCHFLOW_COMMIT", "def456")
    other = pytester.runpytest(
        "--batchflow", "--batchflow-batches=mid", "-o", "batchflow_missing_dependency=skip", "-rs"
    )
    other.assert_outcomes(skipped=1, deselected=1)
    other.stdout.fnmatch_lines(
        [
            "*depends on test_base.py::test_seed, which is in batch 'base', not selected, and has "
            "not passed at this commit"
        ]
    )


def test_a_stage_s_k_does_not_hide_a_dependency_an_earlier_stage_passed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_project(pytester)
    monkeypatch.setenv("BATCHFLOW_COMMIT", "abc123")
    pytester.runpytest("--batchflow", "--batchflow-batches=base").assert_outcomes(passed=1)
    # -k use deselects test_seed too; it is in a batch this stage leaves out,
    # so its pass at this commit counts (it was skipped as "deselected").
    stage = pytester.runpytest("--batchflow", "--batchflow-batches=mid", "-k", "use", "-rs")
    stage.assert_outcomes(passed=1, deselected=1)


def test_a_stage_without_a_known_commit_is_told_to_set_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_project(pytester)
    for variable in ("BATCHFLOW_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GIT_DIR", str(pytester.path / "no-git"))  # not a checkout
    # The earlier stage ran and passed; without a commit the next cannot know.
    pytester.runpytest("--batchflow", "--batchflow-batches=base").assert_outcomes(passed=1)
    refused = pytester.runpytest("--batchflow", "--batchflow-batches=mid")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_mid.py::test_use depends on test_base.py::test_seed in batch "
            "'base', which --batchflow-batches leaves out, and no commit is known (no "
            "BATCHFLOW_COMMIT, and `git rev-parse HEAD` gave none) to look up its pass in an "
            "earlier stage: set BATCHFLOW_COMMIT to the commit under test in every stage, or "
            "select 'base' too"
        ]
    )
    skipped = pytester.runpytest(
        "--batchflow", "--batchflow-batches=mid", "-o", "batchflow_missing_dependency=skip", "-rs"
    )
    skipped.assert_outcomes(skipped=1, deselected=1)
    skipped.stdout.fnmatch_lines(
        [
            "*depends on test_base.py::test_seed, which is in batch 'base', not selected, and no "
            "commit is known to look its pass up at (set BATCHFLOW_COMMIT)"
        ]
    )
    # With the commit set in both stages, the stage runs.
    monkeypatch.setenv("BATCHFLOW_COMMIT", "abc123")
    pytester.runpytest("--batchflow", "--batchflow-batches=base").assert_outcomes(passed=1)
    stage = pytester.runpytest("--batchflow", "--batchflow-batches=mid")
    stage.assert_outcomes(passed=1, deselected=1)


def test_environment_beats_ini_and_command_line_beats_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(UPSTREAM_INI + "batchflow = true\nbatchflow_select = base\n")
    pytester.makepyfile(
        test_base="def test_base(): pass",
        test_mid="def test_mid(): pass",
        test_top="def test_top(): pass",
        test_free="def test_free(): pass",
    )
    pytester.runpytest().assert_outcomes(passed=1, deselected=3)
    monkeypatch.setenv("BATCHFLOW_BATCHES", "base,mid")
    pytester.runpytest().assert_outcomes(passed=2, deselected=2)
    pytester.runpytest("--batchflow-batches=top").assert_outcomes(passed=1, deselected=3)
    monkeypatch.setenv("BATCHFLOW", "0")
    pytester.runpytest().assert_outcomes(passed=4)


def test_a_blank_commit_variable_is_no_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_batchflow.gitstate import commit_under_test

    # BATCHFLOW_COMMIT=" " was taken as the commit (messages said "at commit  ").
    monkeypatch.setenv("BATCHFLOW_COMMIT", " ")
    monkeypatch.setenv("GITHUB_SHA", " abc123\n")
    assert commit_under_test(Path("/nonexistent")) == "abc123"
