"""Hooks a conftest or plugin implements to add to batchflow's HTML report.

Both are called on the process that writes the outputs (the serial process or
xdist's controller) at the end of the run, before the JSON result is written:
what they return is kept in the JSON result, so ``batchflow report`` shows it
again when it re-renders or merges results.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .results import RunResult, TestResult


@pytest.hookspec()
def pytest_batchflow_report_sections(
    config: pytest.Config, result: RunResult
) -> Iterable[tuple[str, str]] | None:
    """Return report sections to add after batchflow's own, as ``(title, html)`` pairs.

    The title is plain text (escaped); ``html`` is markup inserted as it is, so
    escape what you put in it that came from tests (``markupsafe.escape``).
    Every implementation's sections are shown, in hook call order.
    """


@pytest.hookspec()
def pytest_batchflow_report_test(config: pytest.Config, test: TestResult) -> str | None:
    """Return a note for this test's row in the report (plain text, escaped), or None.

    Called once per test, only when some plugin implements it; the notes of
    all implementations are shown.
    """
