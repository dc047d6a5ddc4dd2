"""Run a pytester suite under batchflow in a subprocess and read its JSON result."""

from __future__ import annotations

import pytest

from pytest_batchflow.results import RunResult, TestResult


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, RunResult]:
    """``pytest --batchflow`` with a JSON result, in a fresh process; both results."""
    result = pytester.runpytest_subprocess(
        "--batchflow", "--batchflow-json=result.json", "-p", "no:cacheprovider", *args
    )
    data = RunResult.model_validate_json((pytester.path / "result.json").read_text())
    return result, data


def by_name(data: RunResult) -> dict[str, TestResult]:
    """Each test's result by its name (the last part of its node id)."""
    return {test.nodeid.split("::")[-1]: test for test in data.tests}


def overlap(a: TestResult, b: TestResult) -> bool:
    """Whether the two tests ran at the same time (from their start and stop times)."""
    return a.start < b.stop and b.start < a.stop
