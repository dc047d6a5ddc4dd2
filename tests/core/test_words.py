from __future__ import annotations

import pytest

from pytest_batchflow.core.words import count_of


@pytest.mark.parametrize(
    ("number", "word", "expected"),
    [
        (1, "test", "1 test"),
        (0, "test", "0 tests"),
        (2, "failing test", "2 failing tests"),
        (1, "batch", "1 batch"),
        (3, "batch", "3 batches"),
        (2, "dependency", "2 dependencies"),
        (1, "dependency", "1 dependency"),
        (1, "more batch", "1 more batch"),
        (450, "more batch", "450 more batches"),
    ],
)
def test_a_count_is_singular_only_for_one(number: int, word: str, expected: str) -> None:
    assert count_of(number, word) == expected
