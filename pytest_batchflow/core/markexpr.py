"""Marker expressions in the grammar of ``pytest -m``.

A batch line's ``markers="db and not slow"`` selects tests by the names of
their markers. pytest's own expression engine is private, so this module
parses the same grammar (``and``, ``or``, ``not``, parentheses, identifiers)
into a small tree that is evaluated against a set of marker names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

__all__ = ["MarkerExpression", "MarkerExpressionError"]

# The identifier characters pytest accepts in -m/-k expressions.
_TOKEN_RE = re.compile(r"\s*(?:(\()|(\))|([\w:+\-.\[\]\\/]+))")
_KEYWORDS = frozenset({"and", "or", "not"})

Matcher = Callable[[Collection[str]], bool]


class MarkerExpressionError(ValueError):
    """The expression does not follow the ``-m`` grammar."""


@dataclass(frozen=True)
class MarkerExpression:
    """A compiled marker expression; call :meth:`matches` with marker names."""

    source: str
    _matcher: Matcher

    @classmethod
    def compile(cls, source: str) -> MarkerExpression:
        tokens = _tokenize(source)
        parser = _Parser(source, tokens)
        matcher = parser.parse()
        return cls(source, matcher)

    def matches(self, marker_names: Collection[str]) -> bool:
        return self._matcher(marker_names)


def _tokenize(source: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped_end = len(source.rstrip())
    while position < stripped_end:
        match = _TOKEN_RE.match(source, position)
        if match is None or match.end() == position:
            raise MarkerExpressionError(
                f"unexpected character {source[position:].lstrip()[:1]!r} "
                f"at column {position + 1} of {source!r}"
            )
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    if not tokens:
        raise MarkerExpressionError("empty marker expression")
    return tokens


class _Parser:
    """Recursive descent: expr := and_expr ('or' and_expr)*, and so on down."""

    def __init__(self, source: str, tokens: list[str]) -> None:
        self.source = source
        self.tokens = tokens
        self.position = 0

    def parse(self) -> Matcher:
        matcher = self._or()
        if self.position != len(self.tokens):
            raise self._error(f"unexpected {self.tokens[self.position]!r}")
        return matcher

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise self._error("unexpected end of expression")
        self.position += 1
        return token

    def _error(self, what: str) -> MarkerExpressionError:
        return MarkerExpressionError(f"{what} in marker expression {self.source!r}")

    def _or(self) -> Matcher:
        operands = [self._and()]
        while self._peek() == "or":
            self._take()
            operands.append(self._and())
        if len(operands) == 1:
            return operands[0]
        return lambda names: any(operand(names) for operand in operands)

    def _and(self) -> Matcher:
        operands = [self._not()]
        while self._peek() == "and":
            self._take()
            operands.append(self._not())
        if len(operands) == 1:
            return operands[0]
        return lambda names: all(operand(names) for operand in operands)

    def _not(self) -> Matcher:
        if self._peek() == "not":
            self._take()
            operand = self._not()
            return lambda names: not operand(names)
        return self._atom()

    def _atom(self) -> Matcher:
        token = self._take()
        if token == "(":
            inner = self._or()
            if self._take() != ")":
                raise self._error("expected ')'")
            return inner
        if token == ")" or token in _KEYWORDS:
            raise self._error(f"unexpected {token!r}")
        return lambda names: token in names
