"""The configuration reference names every option, ini key and batch-line key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_batchflow.options import BATCHES_INI, OPTIONS
from pytest_batchflow.settings import BATCH_LINE_KEYS

REFERENCE = Path(__file__).parents[2] / "docs" / "configuration.rst"


@pytest.mark.parametrize(
    "name",
    [
        *(option.flag for option in OPTIONS),
        *(option.ini for option in OPTIONS),
        *(option.env for option in OPTIONS),
        BATCHES_INI,
        *(f"``{key}``" for key in BATCH_LINE_KEYS),
    ],
)
def test_configuration_reference_documents(name: str) -> None:
    assert name in REFERENCE.read_text(encoding="utf-8")
