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

pytest counts every test in its record as a failure (``run-last-failure:
rerun previous 3 failures``): batchflow keeps its own list of the tests it
held back there, and has that line count them apart.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from .core.words import count_of

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

_KEY = "cache/lastfailed"
#: The tests in pytest's record that are there because a failure held them
#: back, not because they failed.
_HELD_KEY = "batchflow/held_back"

#: pytest's lines that count its record (cacheprovider.LFPlugin): the number,
#: and what follows it (`` first`` under ``--ff``, the files ``--lf`` skipped).
_RERUN = re.compile(r"run-last-failure: rerun previous (\d+) failures?(.*)")
_NOT_SELECTED = re.compile(r"run-last-failure: (\d+) known failures not in selected tests(.*)")


class LastFailedKept:
    """Registered beside pytest's ``lfplugin`` (serially and on an xdist controller)."""

    def __init__(self, config: pytest.Config, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        assert config.cache is not None
        # As pytest's plugin reads it, before the run changes it.
        recorded = config.cache.get(_KEY, {})
        self.before: set[str] = set(recorded) if isinstance(recorded, dict) else set()
        held = config.cache.get(_HELD_KEY, [])
        #: Of those, the tests a failure held back (a run without batchflow
        #: may have dropped some from pytest's record since).
        self.held_before = self.before.intersection(held if isinstance(held, list) else ())

    @pytest.hookimpl(wrapper=True)
    def pytest_report_collectionfinish(
        self, items: list[pytest.Item]
    ) -> Generator[None, list[str | list[str]], list[str | list[str]]]:
        """pytest's ``run-last-failure:`` line, with the held-back tests counted apart."""
        lines = yield
        if not self.held_before:
            return lines
        selected = {item.nodeid for item in items}
        return [
            self._counted_apart(line, selected) if isinstance(line, str) else line for line in lines
        ]

    def _counted_apart(self, line: str, selected: set[str]) -> str:
        # A line of another wording (another pytest) is left as it is.
        rerun = _RERUN.fullmatch(line)
        if rerun is not None:
            # Of the tests that run: pytest counted before batchflow's own
            # selection (--batchflow-batches) took batches out.
            held = len(self.held_before & selected)
            failures = len(self.before & selected) - held
            if failures + held > int(rerun[1]):  # not what pytest counted from
                return line
            counts = _apart(failures, held, "previous ", "failure")
            return line if counts is None else f"run-last-failure: rerun {counts}{rerun[2]}"
        elsewhere = _NOT_SELECTED.fullmatch(line)
        if elsewhere is not None:
            held = len(self.held_before)
            counts = _apart(int(elsewhere[1]) - held, held, "", "known failure")
            if counts is None:
                return line
            return f"run-last-failure: {counts} not in selected tests{elsewhere[2]}"
        return line

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """After pytest's plugin has written its record, add back what it dropped,
        and note which of the tests in it a failure held back."""
        orchestrator, cache = self.orchestrator, session.config.cache
        state, analysis = orchestrator.state, orchestrator.analysis
        if cache is None or state is None or analysis is None:
            return
        kept: set[str] = set()
        held: set[str] = set()
        for index, kind in state.skipped.items():
            nodeid = analysis.specs[index].nodeid
            if kind == "failure" or (kind == "turn" and nodeid in self.before):
                kept.add(nodeid)
            if kind == "failure":
                held.add(nodeid)
        # A held-back test that ran this time is in the record only if it failed itself.
        ran = (
            {analysis.specs[i].nodeid for i in state.outcomes if i not in state.skipped}
            if self.held_before
            else set()
        )
        recorded = cache.get(_KEY, {})
        if not isinstance(recorded, dict):
            return
        if not kept <= recorded.keys():
            recorded = {**recorded, **dict.fromkeys(sorted(kept - recorded.keys()), True)}
            cache.set(_KEY, recorded)
        held = (held | (self.held_before - ran)) & recorded.keys()
        stored = cache.get(_HELD_KEY, None)
        if (held or stored) and sorted(held) != stored:
            cache.set(_HELD_KEY, sorted(held))


def _apart(failures: int, held: int, previous: str, word: str) -> str | None:
    """``previous 1 failure and 2 tests it held back``; None for counts that
    do not add up (the line then stays as pytest wrote it)."""
    if held < 0 or failures < 0 or not (held or failures):
        return None
    if not held:
        return f"{previous}{count_of(failures, word)}"
    tests = count_of(held, "test")
    if failures == 0:
        return f"{tests} a failure held back"
    pronoun = "it" if failures == 1 else "they"
    return f"{previous}{count_of(failures, word)} and {tests} {pronoun} held back"
