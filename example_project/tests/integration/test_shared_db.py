"""Tests that rewrite one database file shared by the whole run.

Each test replaces the shared catalogue, changes it and then checks its exact contents.
Run at the same time (on two xdist workers), one test's replacement would land in the
middle of the other's changes; ``@pytest.mark.locks("inventory-db")`` keeps them apart on
any worker, while tests without the lock still run alongside.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import Product, Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SEED = (
    Product("SHR-1", "Hammer", Decimal("15.00"), stock=0, category="tools"),
    Product("SHR-2", "Screwdriver set", Decimal("9.99"), stock=4, category="tools"),
    Product("SHR-3", "Work gloves", Decimal("6.50"), stock=0, category="apparel"),
)


@pytest.fixture
def shared_store(run_dir: Path) -> Iterator[Store]:
    """A store on the run-wide shared file, reset to ``SEED``."""
    with Store(run_dir / "shared-inventory.sqlite3") as store:
        for product in store.query():
            store.delete(product.sku)
        store.add_many(SEED)
        yield store


@pytest.mark.locks("inventory-db")
def test_restock_empty_shelves(shared_store: Store) -> None:
    for product in shared_store.query(in_stock=False):
        shared_store.update(product.sku, stock=10)
    assert [(p.sku, p.stock) for p in shared_store.query()] == [
        ("SHR-1", 10),
        ("SHR-2", 4),
        ("SHR-3", 10),
    ]


@pytest.mark.locks("inventory-db")
def test_reprice_tools_category(shared_store: Store) -> None:
    for product in shared_store.query(category="tools"):
        raised = (product.price * Decimal("1.10")).quantize(Decimal("0.01"), ROUND_HALF_UP)
        shared_store.update(product.sku, price=raised)
    assert [(p.sku, p.price) for p in shared_store.query()] == [
        ("SHR-1", Decimal("16.50")),
        ("SHR-2", Decimal("10.99")),
        ("SHR-3", Decimal("6.50")),
    ]
