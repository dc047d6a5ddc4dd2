"""Database tests that live next to the unit tests but do not all belong in the unit batch.

``@pytest.mark.batch`` beats every ``batchflow_batches`` line: although this file is under
``tests/unit`` (matched by the ``unit`` line), the marked test runs in the ``integration``
batch, with its serial mode and rerun budget, because it touches the file system.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import Product, Store

if TYPE_CHECKING:
    from pathlib import Path

PRODUCT = Product("DSK-1", "Persisted drawer", Decimal("59.00"), stock=4, category="office")


@pytest.mark.batch("integration")
def test_file_database_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite3"
    with Store(path) as store:
        store.add(PRODUCT)
        store.reserve("DSK-1", 3)
    with Store(path) as reopened:
        assert reopened.get("DSK-1") == PRODUCT
        assert reopened.available("DSK-1") == 1


def test_memory_databases_are_private() -> None:
    with Store() as first, Store() as second:
        first.add(PRODUCT)
        assert second.count() == 0
