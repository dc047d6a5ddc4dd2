"""A coverage.py configuration file written from settings already read (core/coveragerc.py)."""

from __future__ import annotations

import configparser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_batchflow.core.coveragerc import rcfile_text


def read_back(text: str, section: str, option: str) -> list[str]:
    """The list as coverage.py reads it from a ``.coveragerc``: lines, stripped,
    blanks dropped, ``$$`` made ``$`` (its variable substitution)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    lines = (line.strip() for line in parser.get(section, option).splitlines())
    return [line.replace("$$", "$") for line in lines if line]


ITEMS = st.lists(
    st.text(
        st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters=",\x85"),
        min_size=1,
    )
    .map(str.strip)
    .filter(lambda item: item and not item.startswith(("#", ";"))),
    max_size=5,
)


@given(ITEMS)
def test_a_list_reads_back_as_written(items: list[str]) -> None:
    text = rcfile_text({"run": {"omit": items}})
    assert read_back(text, "run", "omit") == items


def test_values_are_written_as_coverage_reads_them() -> None:
    text = rcfile_text(
        {
            "run": {"branch": True, "parallel": False, "context": None, "source": ["pkg", "/a/$b"]},
            "report": {"precision": 2, "fail_under": 80.5},
            "json": {"output": "cov$.json"},
        }
    )
    assert text.splitlines() == [
        "[run]",
        "branch = true",
        "parallel = false",
        "source =",
        "    pkg",
        "    /a/$$b",
        "",
        "[report]",
        "precision = 2",
        "fail_under = 80.5",
        "",
        "[json]",
        "output = cov$$.json",
    ]


def test_a_regular_expression_that_starts_like_a_comment_is_escaped() -> None:
    patterns = [r"#\s*pragma: no cover", "; never", "if DEBUG:$"]
    text = rcfile_text({"report": {"exclude_lines": patterns}}, {"report:exclude_lines"})
    assert read_back(text, "report", "exclude_lines") == [
        r"\#\s*pragma: no cover",
        r"\; never",
        "if DEBUG:$",
    ]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (["ok", "# a glob"], "would be read as a comment"),
        (["a,b"], "would be read as several items"),
        ("two\nlines", "a value of several lines"),
        ({"a": 1}, "cannot be written"),
    ],
)
def test_a_value_that_cannot_be_written_is_refused_by_name(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=f"^run:omit: .*{why}"):
        rcfile_text({"run": {"omit": value}})
