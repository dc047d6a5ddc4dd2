"""Counts as the messages print them."""

from __future__ import annotations

__all__ = ["count_of"]

#: Plurals that are not the word plus ``s``.
_PLURALS = {"batch": "batches", "dependency": "dependencies"}


def count_of(number: int, word: str) -> str:
    """``1 test``, ``2 tests``, ``3 batches``."""
    return f"{number} {word if number == 1 else _PLURALS.get(word, f'{word}s')}"
