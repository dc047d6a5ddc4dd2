"""Workloads at catalogue scale. They assert results, never timings: the benchmark
batch measures durations itself (the bench fixture times the bulk load), and a
wall-clock assert would fail on a slow CI machine.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from pytest_batchflow.bench import Bench

from inventory import Product, Store, export_csv, import_csv

CATEGORIES = ("kitchen", "garden", "office", "tools", "toys")


def generate_products(count: int) -> list[Product]:
    """``count`` products with prices 1.00..99.99 and stock 0..49 spread over categories."""
    return [
        Product(
            sku=f"BULK-{index:06d}",
            name=f"Bulk item {index}",
            price=Decimal(100 + index * 37 % 9900) / 100,
            stock=index % 50,
            category=CATEGORIES[index % len(CATEGORIES)],
        )
        for index in range(count)
    ]


def insert_and_query(products: list[Product]) -> tuple[int, list[Product]]:
    """Load ``products`` into a fresh store; the cheap in-stock ones, as the shop shows them."""
    with Store() as store:
        store.add_many(products)
        for category in CATEGORIES:
            store.query(category=category)
        return store.count(), store.query(max_price=Decimal("10.00"), in_stock=True)


def test_bulk_insert_and_query_5k(bench: Bench) -> None:
    """Timed by the benchmark batch (the bench fixture); the result is still checked."""
    products = generate_products(5000)
    count, cheap = bench(insert_and_query, products)
    assert count == 5000
    assert [p.sku for p in cheap] == [
        p.sku for p in products if p.price <= Decimal("10.00") and p.stock > 0
    ]


@pytest.mark.parametrize("size", [1000, 5000])
def test_csv_round_trip_at_scale(size: int) -> None:
    buffer = io.StringIO()
    with Store() as source:
        source.add_many(generate_products(size))
        assert export_csv(source, buffer) == size
        buffer.seek(0)
        with Store() as target:
            assert import_csv(target, buffer).created == size
            assert target.query() == source.query()
