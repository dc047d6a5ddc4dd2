"""Fixtures shared by every batch."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import Product, Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CATALOGUE = (
    Product("KIT-001", "Chef knife", Decimal("49.90"), stock=12, category="kitchen"),
    Product("KIT-002", "Cutting board", Decimal("18.00"), stock=0, category="kitchen"),
    Product("GAR-001", "Garden hose 25m", Decimal("34.50"), stock=7, category="garden"),
    Product("OFF-001", "Desk lamp", Decimal("27.99"), stock=3, category="office"),
)


@pytest.fixture
def store() -> Iterator[Store]:
    """A private in-memory store holding ``CATALOGUE``."""
    with Store() as seeded:
        seeded.add_many(CATALOGUE)
        yield seeded


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory unique to this pytest run and shared by all of its xdist workers.

    Each xdist worker gets its own basetemp ``<run basetemp>/popen-gwN``; files that
    tests on different workers must see (a shared database, a flaky test's attempt
    marker) live one level up, in the controller's basetemp.
    """
    basetemp = tmp_path_factory.getbasetemp()
    return basetemp.parent if "PYTEST_XDIST_WORKER" in os.environ else basetemp
