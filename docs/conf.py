"""Sphinx configuration for the pytest-batchflow documentation.

Build with: sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

import pytest_batchflow  # noqa: E402
from pytest_batchflow.results import json_schema  # noqa: E402

project = "pytest-batchflow"
author = "pytest-batchflow developers"
copyright = "pytest-batchflow developers"
release = pytest_batchflow.__version__
version = ".".join(release.split(".")[:2])

extensions: list[str] = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
highlight_language = "none"
nitpicky = True

html_theme = "furo"
html_title = f"pytest-batchflow {release}"


def _write_result_schema() -> None:
    """Regenerate _generated/result-schema.json; touch it only when it changed.

    Leaving an unchanged file alone keeps its mtime, so an incremental build
    does not rebuild the page that includes it for nothing.
    """
    target = DOCS / "_generated" / "result-schema.json"
    schema = json_schema()
    if target.exists() and target.read_text(encoding="utf-8") == schema:
        return
    target.parent.mkdir(exist_ok=True)
    target.write_text(schema, encoding="utf-8")


_write_result_schema()
