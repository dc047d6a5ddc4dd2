"""``--lf``'s record of the tests a failure kept from running.

pytest's cache plugin forgets a test once it is reported skipped. A test
skipped because a test it depends on failed (or its batch stopped, or an
upstream batch failed) tells nothing of itself, so batchflow keeps it in
``cache/lastfailed``: once the failure is fixed, ``pytest --batchflow --lf``
runs the fixed test and the tests it held back. A test already there that
did not get its turn (a dependency that did not run or is not in the run,
its batch's timeout) stays there, as pytest leaves a test it did not run.
One skipped because a dependency skipped itself or xfailed is dropped, as
pytest drops any skipped test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

_KEY = "cache/lastfailed"


class LastFailedKept:
    """Registered beside pytest's ``lfplugin`` (serially and on an xdist controller)."""

    def __init__(self, config: pytest.Config, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        assert config.cache is not None
        # As pytest's plugin reads it, before the run changes it.
        recorded = config.cache.get(_KEY, {})
        self.before: set[str] = set(recorded) if isinstance(recorded, dict) else set()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After pytest's plugin has written its record, add back what it dropped."""
        orchestrator, cache = self.orchestrator, session.config.cache
        state, analysis = orchestrator.state, orchestrator.analysis
        if cache is None or state is None or analysis is None or not state.skipped:
            return
        kept: set[str] = set()
        for index, kind in state.skipped.items():
            nodeid = analysis.specs[index].nodeid
            if kind == "failure" or (kind == "turn" and nodeid in self.before):
                kept.add(nodeid)
        recorded = cache.get(_KEY, {})
        if not isinstance(recorded, dict) or kept <= recorded.keys():
            return
        cache.set(_KEY, {**recorded, **dict.fromkeys(sorted(kept - recorded.keys()), True)})
