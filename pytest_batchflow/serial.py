"""The serial run when tests may be rerun: pytest's run loop, reruns at each batch's end.

Without a rerun budget batchflow leaves pytest's own loop alone (the plan has
already put ``session.items`` in order). With one, this loop runs the same
items through the same ``pytest_runtest_protocol``, and a test whose attempt
failed comes back at the end of its batch, after its delay, with fixtures set
up and torn down as pytest does for any item. Tests that depend on a test
waiting for its rerun wait behind it, and so do tests that depend on those,
down to a chain's end.

pytest tears down after each item what the next one does not need, so each
item runs with the item that will follow it. When that changes after the
fact (the test just run failed and its dependents must wait), a release item
under the previous test's parent tears down what the item that really
follows does not need (see :class:`~pytest_batchflow.orchestrator.IdleItem`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import pytest

from . import clock
from .core.words import count_of

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = ["SerialLoop"]


class SerialLoop:
    """One pass over ``session.items``, as ``_pytest.main.pytest_runtestloop`` does."""

    def __init__(self, orchestrator: Orchestrator, session: pytest.Session) -> None:
        from .orchestrator import INDEX_KEY

        assert orchestrator.plan is not None
        self.orchestrator = orchestrator
        self.session = session
        self.index_key = INDEX_KEY
        self.plan = orchestrator.plan
        self.queue: deque[pytest.Item] = deque(session.items)
        #: The current batch's reruns, and tests waiting behind one, in order.
        self.later: list[pytest.Item] = []
        #: The indexes of the tests in ``later``: a test that depends on one waits too.
        self.held: set[int] = set()

    def run(self) -> None:
        session = self.session
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            errors = session.testsfailed
            raise session.Interrupted(f"{count_of(errors, 'error')} during collection")
        if session.config.option.collectonly:
            return
        last: pytest.Item | None = None
        promised: pytest.Item | None = None
        while (item := self._take()) is not None:
            index = self._index(item)
            delay = self.orchestrator.rerun_due.pop(index, None)
            if delay is not None:
                assert self.orchestrator.state is not None
                reason = self.orchestrator.state.skip_reason(index, clock.monotonic())
                if reason is not None:
                    self.orchestrator.give_up_rerun(index, reason)
                    continue
            if last is not None and item is not promised:
                self._move_on(last, item)
            if delay:
                time.sleep(delay)
            promised = self._peek()
            item.ihook.pytest_runtest_protocol(item=item, nextitem=promised)
            self.orchestrator.settle_withheld(index)
            last = item
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
            if index in self.orchestrator.rerun_due:
                self._hold(item)
        if last is not None and promised is not None:
            self._move_on(last, None)

    def _index(self, item: pytest.Item) -> int:
        return item.stash[self.index_key]

    def _batch(self, item: pytest.Item) -> str:
        return self.plan.batch_of[self._index(item)]

    def _batch_ends(self) -> bool:
        """Whether the queue holds no more tests of the batch the reruns belong to."""
        return bool(self.later) and (
            not self.queue or self._batch(self.queue[0]) != self._batch(self.later[0])
        )

    def _take(self) -> pytest.Item | None:
        """The next item to run; one whose dependency waits for a rerun goes behind it."""
        while True:
            if self._batch_ends():
                item = self.later.pop(0)
                self.held.discard(self._index(item))
            elif self.queue:
                item = self.queue.popleft()
            else:
                return None
            if not self._waits(item):
                return item
            self._hold(item)

    def _peek(self) -> pytest.Item | None:
        """What should follow, as things stand (a failure may still change it)."""
        if self._batch_ends():
            return self.later[0]
        return self.queue[0] if self.queue else None

    def _hold(self, item: pytest.Item) -> None:
        self.later.append(item)
        self.held.add(self._index(item))

    def _waits(self, item: pytest.Item) -> bool:
        """Whether a test it depends on waits for its rerun, or waits behind one
        (a chain a -> b -> c: c waits behind b, which waits for a's rerun)."""
        due, held = self.orchestrator.rerun_due, self.held
        return any(
            pred in due or pred in held
            for pred in self.plan.predecessors.get(self._index(item), ())
        )

    def _move_on(self, last: pytest.Item, following: pytest.Item | None) -> None:
        """Tear down what ``following`` does not need, after ``last`` ran for another item."""
        from .orchestrator import IDLE_NAME, SERIAL_WORKER, IdleItem, run_idle

        parent = last.parent if last.parent is not None else last.session
        output = run_idle(IdleItem.from_parent(parent, name=IDLE_NAME), following, last)
        if output:
            self.orchestrator.add_teardown_output(SERIAL_WORKER, [self._index(last), output])
