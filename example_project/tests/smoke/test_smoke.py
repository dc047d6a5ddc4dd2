"""Fast checks that the package imports and its main paths work at all.

The smoke batch has ``maxfail=1``: if one of these fails, the rest of the run is moot.
"""

from __future__ import annotations

from decimal import Decimal

import inventory
from inventory import OrderLine, Product, Store, order_total


def test_public_api_resolves() -> None:
    missing = [name for name in inventory.__all__ if not hasattr(inventory, name)]
    assert missing == []


def test_store_round_trip() -> None:
    product = Product("SMK-1", "Smoke detector", Decimal("15.00"), stock=2)
    with Store() as store:
        store.add(product)
        assert store.get("SMK-1") == product


def test_order_total_adds_tax() -> None:
    total = order_total([OrderLine("SMK-1", 2, Decimal("10.00"))], tax_rate=Decimal("0.2"))
    assert (total.subtotal, total.tax, total.total) == (
        Decimal("20.00"),
        Decimal("4.00"),
        Decimal("24.00"),
    )
