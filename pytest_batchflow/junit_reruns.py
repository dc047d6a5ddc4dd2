"""pytest's ``--junitxml`` with one ``<testcase>`` a test: its last attempt.

pytest's junitxml plugin writes a ``<testcase>`` for every attempt it sees
end. An attempt that batchflow reruns reports ``rerun``, an outcome junitxml
does not know, so that attempt's ``<testcase>`` has no outcome element, and
JUnit readers (GitLab, Jenkins, Azure) count it as a pass: a test that failed
both of its attempts read as passed once and failed once, and the file's
``tests`` count grew with every rerun. batchflow takes such an attempt's
``<testcase>`` and counts back out, so the file reads as pytest writes it for
the attempt that stands. Its own ``--batchflow-junit`` keeps the earlier
attempts, as ``flakyFailure`` and ``rerunFailure`` elements.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.junitxml import xml_key

from .orchestrator import TEARDOWN_OF

if TYPE_CHECKING:
    from .orchestrator import Orchestrator


class RerunsLeftOut:
    """Registered beside pytest's junitxml plugin, serially and on an xdist controller.

    Uses two of junitxml's attributes besides its ``node_reporter()``: the
    ``<testcase>`` writers in file order (``node_reporters_ordered``) and the
    counts (``stats``), both there since pytest 3.
    """

    def __init__(self, config: pytest.Config, orchestrator: Orchestrator) -> None:
        self.config = config
        self.orchestrator = orchestrator
        #: What each open ``<testcase>``'s reports added to junitxml's counts
        #: so far (by the writer's identity), until its attempt ends.
        self._counted: dict[int, dict[str, int]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        xml: Any = self.config.stash.get(xml_key, None)
        if xml is None:  # junitxml is not writing a file
            return (yield)
        if getattr(report, TEARDOWN_OF, None) is not None:
            # A release item's failure, under the release item's node id until
            # the orchestrator moves it to the test before it: junitxml's writer
            # is that test's, not one made here for the release item (a
            # <testcase> with no name). It never ends an attempt to be rerun.
            return (yield)
        # The writer junitxml gives this report (it makes one, as it would).
        writer = xml.node_reporter(report)
        before = dict(xml.stats)
        self.orchestrator.rerun_ended = None
        yield
        key = id(writer)
        for name, count in xml.stats.items():
            if count != before.get(name, 0):
                counted = self._counted.setdefault(key, {})
                counted[name] = counted.get(name, 0) + count - before.get(name, 0)
        if self.orchestrator.rerun_ended is report:
            self.orchestrator.rerun_ended = None
            for name, count in self._counted.pop(key, {}).items():
                xml.stats[name] -= count
            ordered = xml.node_reporters_ordered
            for at in range(len(ordered) - 1, -1, -1):  # a recent one: from the end
                if ordered[at] is writer:
                    del ordered[at]
                    break
        elif report.when not in ("setup", "call"):  # the attempt stands
            self._counted.pop(key, None)
