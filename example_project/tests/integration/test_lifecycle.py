"""A product's life in one persistent database, as a chain of dependent tests.

Each test opens its own ``Store`` on the shared file, so every step also proves that the
previous step's write was committed. ``depends_on`` lets batchflow run this chain on any
worker, in order, and skip the rest of it (with a reason) when a step fails.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import NotFoundError, Product, Store, import_csv

if TYPE_CHECKING:
    from pathlib import Path

SKU = "LIFE-001"

IMPORT_BATCHES = {
    "kitchen": "IMP-K1,Whisk,6.50,40,kitchen\nIMP-K2,Ladle,8.00,25,kitchen\n",
    "garden": "IMP-G1,Trowel,11.00,15,garden\nIMP-G2,Rake,23.90,6,garden\n",
    "office": "IMP-O1,Stapler,12.25,30,office\n",
}


@pytest.fixture(scope="module")
def catalogue_db(run_dir: Path) -> Path:
    """The database file every test in this module reads and writes.

    It lives in the run-wide directory rather than a worker's own temp directory: the
    steps of the chain may run on different xdist workers.
    """
    return run_dir / "lifecycle.sqlite3"


def test_create_product(catalogue_db: Path) -> None:
    with Store(catalogue_db) as store:
        store.add(Product(SKU, "Lifecycle lamp", Decimal("19.99"), stock=5, category="lighting"))
    with Store(catalogue_db) as store:
        assert store.get(SKU).stock == 5


@pytest.mark.depends_on("test_create_product")
def test_update_product(catalogue_db: Path) -> None:
    with Store(catalogue_db) as store:
        store.update(SKU, price=Decimal("17.49"), stock=8)
    with Store(catalogue_db) as store:
        assert store.get(SKU) == Product(
            SKU, "Lifecycle lamp", Decimal("17.49"), stock=8, category="lighting"
        )


@pytest.mark.depends_on("tests/integration/test_lifecycle.py::test_update_product")
def test_delete_product(catalogue_db: Path) -> None:
    with Store(catalogue_db) as store:
        store.delete(SKU)
    with Store(catalogue_db) as store, pytest.raises(NotFoundError):
        store.get(SKU)


@pytest.mark.parametrize("batch", sorted(IMPORT_BATCHES))
def test_import_rows(catalogue_db: Path, batch: str) -> None:
    rows = IMPORT_BATCHES[batch]
    with Store(catalogue_db) as store:
        report = import_csv(store, io.StringIO("sku,name,price,stock,category\n" + rows))
    # A rerun of this test finds its rows already imported, so they count as updates.
    assert report.created + report.updated == rows.count("\n")


@pytest.mark.depends_on("test_import_rows")
def test_catalogue_holds_every_import(catalogue_db: Path) -> None:
    with Store(catalogue_db) as store:
        imported = [product for product in store.query() if product.sku.startswith("IMP-")]
        total = store.quote({"IMP-K1": 2, "IMP-G2": 1}, tax_rate=Decimal("0.1"))
    assert [product.sku for product in imported] == [
        "IMP-G1",
        "IMP-G2",
        "IMP-K1",
        "IMP-K2",
        "IMP-O1",
    ]
    assert sum(product.stock for product in imported) == 116
    assert total.total == Decimal("40.59")
