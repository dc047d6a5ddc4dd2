"""Whether a hook function reads one of its arguments (core/reads.py)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_batchflow.core.reads import reads_argument


def copied_signature(item: Any, nextitem: Any) -> None:
    item.done = True


def reads_it(item: Any, nextitem: Any) -> None:
    if nextitem is None:
        item.last = True


def hands_it_on(item: Any, nextitem: Any) -> None:
    print(item, nextitem)


def one_inner_function_reads_it(item: Any, nextitem: Any) -> Callable[[], Any]:
    return lambda: nextitem


def in_a_comprehension(item: Any, nextitem: Any) -> list[Any]:
    return [part for part in (item, nextitem) if part]


def reads_its_frame(item: Any, nextitem: Any) -> None:
    print(locals())


def reads_it_by_name(item: Any, nextitem: Any) -> None:
    print(sys._getframe().f_locals)


def reads_its_frame_from_a_lambda(item: Any, nextitem: Any) -> Any:
    peek = lambda: sys._getframe(1).f_locals["nextitem"]  # noqa: E731
    return peek()


def a_generator(item: Any, nextitem: Any) -> Any:
    yield
    print(nextitem.name)


def a_generator_that_does_not(item: Any, nextitem: Any) -> Any:
    outcome = yield
    print(item, outcome)


def an_inner_variable_of_the_same_name(item: Any, nextitem: Any) -> Callable[[Any], Any]:
    def inner(nextitem: Any) -> Any:
        return nextitem

    return inner


class Plugin:
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> None:
        self.seen = item

    def follows(self, item: Any, nextitem: Any) -> None:
        self.seen = nextitem


def wrapper_of(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        return function(*args)

    return wrapper


@pytest.mark.parametrize(
    ("function", "reads"),
    [
        (copied_signature, False),
        (reads_it, True),
        (hands_it_on, True),
        (one_inner_function_reads_it, True),
        (in_a_comprehension, True),
        (reads_its_frame, True),
        (reads_it_by_name, True),
        (reads_its_frame_from_a_lambda, True),
        (a_generator, True),
        (a_generator_that_does_not, False),
        (an_inner_variable_of_the_same_name, False),
        (Plugin().pytest_runtest_teardown, False),
        (Plugin().follows, True),
        # What the code does not show counts as reading it.
        (wrapper_of(copied_signature), True),
        (functools.partial(copied_signature), True),
        (print, True),
    ],
    ids=lambda value: getattr(value, "__name__", None) or type(value).__name__,
)
def test_reads_argument(function: Callable[..., Any], reads: bool) -> None:
    assert reads_argument(function, "nextitem") is reads


def test_a_function_whose_code_holds_no_bytecode_reads_it() -> None:
    # Cython's functions have a code object (for tracebacks) without bytecode.
    class CompiledFunction:
        __code__ = copied_signature.__code__.replace(co_code=b"")

        def __call__(self, item: Any, nextitem: Any) -> None:
            """What the code object does not show."""

    assert reads_argument(CompiledFunction(), "nextitem") is True


def test_code_made_at_run_time_is_read_as_any_other() -> None:
    namespace: dict[str, Any] = {}
    exec("def hook(item, nextitem):\n    return item.name\n", namespace)
    assert reads_argument(namespace["hook"], "nextitem") is False
    exec("def hook(item, nextitem):\n    return item, nextitem\n", namespace)
    assert reads_argument(namespace["hook"], "nextitem") is True
