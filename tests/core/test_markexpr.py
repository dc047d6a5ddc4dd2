"""The ``markers=`` expression of a batch line follows the grammar of ``pytest -m``."""

from __future__ import annotations

import pytest

from pytest_batchflow.core.markexpr import MarkerExpression, MarkerExpressionError


def matches(source: str, *marker_names: str) -> bool:
    return MarkerExpression.compile(source).matches(frozenset(marker_names))


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        ("db", {"db"}, True),
        ("db", {"slow"}, False),
        ("db", set(), False),
        ("db and slow", {"db", "slow"}, True),
        ("db and slow", {"db"}, False),
        ("db or slow", {"slow"}, True),
        ("db or slow", set(), False),
        ("not db", set(), True),
        ("not db", {"db"}, False),
        ("not not db", {"db"}, True),
        ("db and not slow", {"db"}, True),
        ("db and not slow", {"db", "slow"}, False),
        ("(db)", {"db"}, True),
        ("((db or slow) and api)", {"slow", "api"}, True),
        ("  db   and\tslow ", {"db", "slow"}, True),
    ],
)
def test_operators(source: str, names: set[str], expected: bool) -> None:
    assert matches(source, *names) is expected


def test_and_binds_tighter_than_or() -> None:
    # a or (b and c), not (a or b) and c
    assert matches("a or b and c", "a")
    assert not matches("a or b and c", "b")
    assert matches("a or b and c", "b", "c")


def test_not_binds_tighter_than_and() -> None:
    # (not a) and b, not not (a and b)
    assert matches("not a and b", "b")
    assert not matches("not a and b", "a", "b")
    assert not matches("not a and b")


def test_not_binds_tighter_than_or() -> None:
    # (not a) or b
    assert matches("not a or b", "a", "b")
    assert not matches("not a or b", "a")


def test_parentheses_override_precedence() -> None:
    assert not matches("(a or b) and c", "a")
    assert matches("(a or b) and c", "a", "c")
    assert matches("not (a and b)", "a")
    assert not matches("not (a and b)", "a", "b")


def test_keywords_are_operators_only_as_whole_words() -> None:
    assert matches("android or notify", "notify")
    assert matches("organic and order", "organic", "order")


@pytest.mark.parametrize("name", ["port-8080", "api.v2", "group:db", "a.b-c:d"])
def test_identifiers_may_contain_dash_dot_and_colon(name: str) -> None:
    assert matches(name, name)
    assert not matches(name, "other")
    assert matches(f"not {name} or x", "x", name)


def test_identifier_is_matched_whole_not_by_prefix() -> None:
    assert not matches("db", "dbx")
    assert not matches("port-8080", "port")


def test_source_is_kept() -> None:
    assert MarkerExpression.compile("db and not slow").source == "db and not slow"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty marker expression"),
        ("   ", "empty marker expression"),
        ("a and", "unexpected end of expression in marker expression 'a and'"),
        ("(a", "unexpected end of expression in marker expression '(a'"),
        ("(a b", "expected ')' in marker expression '(a b'"),
        ("a b", "unexpected 'b' in marker expression 'a b'"),
        ("and", "unexpected 'and' in marker expression 'and'"),
        (")", "unexpected ')' in marker expression ')'"),
        ("a)", "unexpected ')' in marker expression 'a)'"),
        ("not", "unexpected end of expression in marker expression 'not'"),
        ("a or or b", "unexpected 'or' in marker expression 'a or or b'"),
        ("()", "unexpected ')' in marker expression '()'"),
    ],
)
def test_bad_expression_is_reported_with_the_source(source: str, message: str) -> None:
    with pytest.raises(MarkerExpressionError) as excinfo:
        MarkerExpression.compile(source)
    assert str(excinfo.value) == message


@pytest.mark.parametrize("source", ["a, b", "a & b", "db == 1", "'db'"])
def test_unexpected_character_names_it_and_its_column(source: str) -> None:
    with pytest.raises(MarkerExpressionError, match=r"unexpected character .* at column \d+"):
        MarkerExpression.compile(source)


def test_unexpected_character_message() -> None:
    with pytest.raises(MarkerExpressionError) as excinfo:
        MarkerExpression.compile("db, slow")
    assert str(excinfo.value) == "unexpected character ',' at column 3 of 'db, slow'"


def test_error_is_a_value_error() -> None:
    assert issubclass(MarkerExpressionError, ValueError)
