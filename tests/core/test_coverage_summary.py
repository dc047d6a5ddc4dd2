"""Per-batch coverage figures from coverage.py's JSON report (core/coverage.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.coverage import COLLECTION_CONTEXT, gate_figures, summarize

BATCHES = ["unit", "api", "db"]


def file_entry(statements: int, contexts: dict[int, list[str]]) -> dict[str, Any]:
    executed = sorted(contexts)
    return {
        "executed_lines": executed,
        "missing_lines": [n for n in range(1, statements + 1) if n not in contexts],
        "contexts": {str(line): names for line, names in contexts.items()},
        "summary": {
            "num_statements": statements,
            "covered_lines": len(executed),
            "percent_covered": 100.0 * len(executed) / statements,
        },
    }


def report_of(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    statements = sum(f["summary"]["num_statements"] for f in files.values())
    covered = sum(f["summary"]["covered_lines"] for f in files.values())
    return {
        "meta": {"branch_coverage": False},
        "files": files,
        "totals": {"covered_lines": covered, "percent_covered": 100.0 * covered / statements},
    }


def batch_named(context: str) -> str | None:
    return context if context in BATCHES else None


def test_figures_of_a_known_report() -> None:
    report = report_of(
        {
            "a.py": file_entry(
                10,
                {
                    1: [COLLECTION_CONTEXT],
                    2: ["unit"],
                    3: ["unit", "api"],
                    4: ["api"],
                    5: ["api", COLLECTION_CONTEXT],
                },
            ),
            "b.py": file_entry(10, {1: [COLLECTION_CONTEXT], 7: ["db"]}),
        }
    )
    summary = summarize(report, batch_named, BATCHES, {None: 40.0, "db": 10.0, "api": 10.0})
    assert (summary.statements, summary.covered, summary.percent) == (20, 7, 35.0)
    figures = {b.name: (b.covered, b.only, dict(b.only_lines)) for b in summary.batches}
    assert figures == {
        "unit": (2, 1, {"a.py": (2,)}),
        "api": (3, 2, {"a.py": (4, 5)}),
        "db": (1, 1, {"b.py": (7,)}),
    }
    assert [(g.batch, g.passed) for g in summary.gates] == [
        (None, False),
        ("api", True),
        ("db", False),
    ]
    assert summary.gates[0].describe() == "total 35.00% < 40%"
    assert [g.batch for g in summary.failed_gates] == [None, "db"]


def test_test_contexts_map_to_their_batches() -> None:
    report = report_of({"a.py": file_entry(4, {1: ["t::a", "t::b"], 2: ["t::b"]})})
    batch_of = {"t::a": "unit", "t::b": "api"}.get
    summary = summarize(report, batch_of, ["unit", "api"], {})
    assert {b.name: (b.covered, b.only) for b in summary.batches} == {
        "unit": (1, 0),
        "api": (2, 1),
    }
    assert summary.gates == ()


def test_lines_not_executed_do_not_count_even_with_a_context() -> None:
    entry = file_entry(3, {1: ["unit"]})
    entry["contexts"]["3"] = ["unit"]  # e.g. a line recorded but not a statement
    summary = summarize(report_of({"a.py": entry}), batch_named, ["unit"], {})
    assert summary.batches[0].covered == 1


contexts = st.lists(st.sampled_from([*BATCHES, COLLECTION_CONTEXT, ""]), min_size=1, max_size=4)


@given(
    st.dictionaries(
        st.sampled_from(["a.py", "b.py", "c.py"]),
        st.dictionaries(st.integers(1, 30), contexts, max_size=30),
        min_size=1,
    )
)
def test_only_lines_are_a_batch_s_own_and_percentages_add_up(
    files: dict[str, dict[int, list[str]]],
) -> None:
    report = report_of({path: file_entry(30, lines) for path, lines in files.items()})
    summary = summarize(report, batch_named, BATCHES, {})
    statements = 30 * len(files)
    owners: dict[tuple[str, int], set[str]] = {}
    for path, lines in files.items():
        for line, names in lines.items():
            owners[(path, line)] = {n for n in names if n in BATCHES}
    for batch in summary.batches:
        mine = {key for key, names in owners.items() if batch.name in names}
        assert batch.covered == len(mine)
        assert batch.percent == 100.0 * len(mine) / statements
        only = {(path, line) for path, lines in batch.only_lines.items() for line in lines}
        assert only == {key for key in mine if owners[key] == {batch.name}}
        assert batch.only == len(only)
    assert sum(b.only for b in summary.batches) <= summary.covered


@pytest.mark.parametrize(
    ("actual", "threshold", "shown"),
    [
        (88.235294, 85, ("88.24", "85")),
        (88.235294, 88.24, ("88.235", "88.24")),
        (83.43504, 83.436, ("83.435", "83.436")),
        (89.99999, 90, ("89.99999", "90")),
        (90.0, 90, ("90.00", "90")),
        # The threshold as written, not to six figures; passing figures too.
        (83.43504, 83.4350401, ("83.435", "83.4350401")),
        (83.43512, 83.4351234, ("83.435", "83.4351234")),
        (90.0012, 90.001, ("90.001", "90.001")),
        (83.4449, 83.4445, ("83.445", "83.4445")),
        (100.0, 100, ("100.00", "100")),
        (0.0, 0, ("0.00", "0")),
    ],
)
def test_a_gates_figures_compare_as_the_exact_ones_do(
    actual: float, threshold: float, shown: tuple[str, str]
) -> None:
    assert gate_figures(actual, threshold) == shown
    figure, limit = (float(text) for text in shown)
    assert (figure >= limit) == (actual >= threshold)
