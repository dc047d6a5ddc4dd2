"""Counts as the messages print them."""

from __future__ import annotations

__all__ = ["count_of"]

#: Plurals that are not the word plus ``s``.
_PLURALS = {"batch": "batches", "dependency": "dependencies"}


def count_of(number: int, word: str) -> str:
    """``1 test``, ``2 tests``, ``3 batches``, ``2 more batches``: the last
    word of ``word`` takes the plural."""
    if number == 1:
        return f"{number} {word}"
    head, space, last = word.rpartition(" ")
    return f"{number} {head}{space}{_PLURALS.get(last, f'{last}s')}"
