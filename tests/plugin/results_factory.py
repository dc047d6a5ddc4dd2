"""Results built in memory, for the tests of outputs rendered from the results model."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pytest_batchflow.results import (
    AttemptResult,
    BatchResult,
    Environment,
    RunResult,
    TestResult,
)

FAILURE = """\
    def test_x():
>       assert add(1, 1) == 3, "sums are off"
E       AssertionError: sums are off
E       assert 2 == 3

tests/test_a.py:7: AssertionError"""


def attempt(outcome: str = "failed", longrepr: str | None = FAILURE) -> AttemptResult:
    """An earlier attempt that failed (or errored) and was rerun."""
    return AttemptResult(
        outcome=outcome,
        worker="gw0",
        duration=0.5,
        start=1_700_000_009.0,  # just before case()'s start
        stop=1_700_000_009.5,
        phases=[],
        longrepr=longrepr,
    )


def case(
    nodeid: str = "tests/test_a.py::test_x", outcome: str = "passed", **fields: Any
) -> TestResult:
    values: dict[str, Any] = {
        "file": nodeid.split("::")[0],
        "line": 5,
        "batch": "unit",
        "duration": 0.25,
        "start": 1_700_000_010.0,
        "stop": 1_700_000_010.25,
        "worker": "gw1",
        "phases": [],
        **fields,
    }
    return TestResult(nodeid=nodeid, outcome=outcome, **values)


def batch(name: str, tests: list[TestResult], **fields: Any) -> BatchResult:
    values: dict[str, Any] = {
        "kind": "test",
        "mode": "parallel",
        "after": [],
        "priority": 0,
        "reruns": 0,
        "maxfail": None,
        "cov": True,
        "on_upstream_failure": "skip",
        "status": "passed",
        "tests": len(tests),
        "outcomes": dict(Counter(test.outcome for test in tests)),
        "duration": 2.0,
        **fields,
    }
    return BatchResult(name=name, **values)


def environment(workers: int = 1) -> Environment:
    """The machine and versions of an in-memory run."""
    return Environment(
        python="3.12.1",
        implementation="CPython",
        platform="Linux",
        pytest="8.3.0",
        batchflow="0.1.0",
        plugins=[],
        rootdir="/src",
        invocation=["--batchflow"],
        hostname="ci",
        workers=workers,
    )


def run(tests: list[TestResult], **fields: Any) -> RunResult:
    """A run of ``tests``, a batch per batch name unless ``batches`` is given."""
    if fields.get("batches") is None:
        grouped: dict[str, list[TestResult]] = {}
        for test in tests:
            grouped.setdefault(test.batch, []).append(test)
        fields["batches"] = [batch(name, found) for name, found in grouped.items()]
    failing = any(t.outcome in ("failed", "error") for t in tests)
    values: dict[str, Any] = {
        "started": 1_700_000_000.0,
        "stopped": 1_700_000_100.0,
        "duration": 100.0,
        "exitstatus": 1 if failing else 0,
        "failed_by": ["tests"] if failing else [],
        **fields,
    }
    return RunResult(environment=environment(), tests=tests, **values)
