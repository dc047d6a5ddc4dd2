"""Whether a hook function reads one of its arguments, from its bytecode.

Many conftests copy a hook's whole signature from pytest's documentation
(``def pytest_runtest_teardown(item, nextitem):``) and never use an
argument; pluggy passes only the arguments a hook names, so the name alone
says nothing of use. The answer errs on the side of "reads": anything but a
plain Python function (a C function, a callable object, a function another
one wraps), a function whose inner function captures the argument, and one
that may read its own frame (``locals()``, ``vars()``, ``eval``,
``sys._getframe``, ``inspect.currentframe``) all count as reading it.
"""

from __future__ import annotations

import dis
from types import CodeType, FunctionType

__all__ = ["reads_argument"]

#: Names through which a function may read its local variables without naming them.
_FRAME_READERS = frozenset(
    {
        "locals",
        "vars",
        "eval",
        "exec",
        "_getframe",
        "currentframe",
        "f_locals",
        "stack",
        "tb_frame",
        "getargvalues",
    }
)


def reads_argument(function: object, name: str) -> bool:
    """Whether ``function`` may read its argument ``name`` (see the module's text)."""
    target = getattr(function, "__func__", function)  # a bound method's function
    if not isinstance(target, FunctionType):
        # A C or Cython function (whose code object, if any, holds no bytecode),
        # a partial, a callable object.
        return True
    if getattr(target, "__wrapped__", None) is not None:
        return True  # a decorator's wrapper may hand its arguments on by position
    return _code_reads(target.__code__, name)


def _code_reads(code: CodeType, name: str) -> bool:
    if name in code.co_cellvars or _reads_a_frame(code):
        return True
    for instruction in dis.get_instructions(code):
        # A local or captured variable's load: LOAD_FAST, LOAD_FAST_CHECK,
        # LOAD_FAST_BORROW, LOAD_DEREF, LOAD_CLOSURE, and 3.13's pairs
        # (LOAD_FAST_LOAD_FAST: a tuple of two names).
        opname = instruction.opname
        if "LOAD" not in opname or not (
            "FAST" in opname or "DEREF" in opname or "CLOSURE" in opname
        ):
            continue
        value = instruction.argval
        if value == name or (isinstance(value, tuple) and name in value):
            return True
    # An inner function that reads it captures it (co_cellvars, above). (A
    # variable of the same name in an inner function, or in a comprehension
    # before Python 3.12, is another one; from 3.12 a comprehension's counts.)
    return False


def _reads_a_frame(code: CodeType) -> bool:
    """Whether the code, or code inside it (a lambda reading the frame above
    its own), names a way to read a frame's variables."""
    return bool(_FRAME_READERS.intersection(code.co_names)) or any(
        _reads_a_frame(inner) for inner in code.co_consts if isinstance(inner, CodeType)
    )
