"""Store behaviour on a private in-memory database."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import (
    DuplicateSkuError,
    InsufficientStockError,
    NotFoundError,
    PercentOff,
    Product,
)

if TYPE_CHECKING:
    from inventory import Store


def test_duplicate_sku_is_rejected(store: Store) -> None:
    with pytest.raises(DuplicateSkuError):
        store.add(Product("KIT-001", "Another knife", Decimal("1.00")))


def test_update_is_visible_through_the_cache(store: Store) -> None:
    assert store.get("OFF-001").price == Decimal("27.99")  # now cached
    store.update("OFF-001", price=Decimal("24.99"))
    assert store.get("OFF-001").price == Decimal("24.99")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"category": "kitchen"}, ["KIT-001", "KIT-002"]),
        ({"min_price": Decimal("20"), "max_price": Decimal("34.50")}, ["GAR-001", "OFF-001"]),
        ({"name_contains": "LAMP"}, ["OFF-001"]),
    ],
    ids=["category", "price-range", "name"],
)
def test_query_filters(store: Store, filters: dict[str, object], expected: list[str]) -> None:
    assert [product.sku for product in store.query(**filters)] == expected  # type: ignore[arg-type]


def test_reservations_hold_and_release_units(store: Store) -> None:
    held = store.reserve("GAR-001", 5)
    assert store.available("GAR-001") == 2
    with pytest.raises(InsufficientStockError, match="3 requested, 2 available"):
        store.reserve("GAR-001", 3)
    with pytest.raises(InsufficientStockError, match="below 5 reserved"):
        store.update("GAR-001", stock=4)
    store.release(held)
    assert store.available("GAR-001") == 7


def test_fulfil_takes_units_out_of_stock(store: Store) -> None:
    reservation = store.reserve("KIT-001", 4)
    assert store.fulfil(reservation).stock == 8
    assert store.available("KIT-001") == 8
    with pytest.raises(NotFoundError):
        store.fulfil(reservation)


def test_quote_uses_current_prices(store: Store) -> None:
    store.update("KIT-001", price=Decimal("40.00"))
    total = store.quote(
        {"KIT-001": 2, "OFF-001": 1},
        tax_rate=Decimal("0.2"),
        rules=[PercentOff(Decimal(10), min_subtotal=Decimal("100.00"))],
    )
    assert (total.subtotal, total.discount, total.total) == (
        Decimal("107.99"),
        Decimal("10.80"),
        Decimal("116.63"),
    )
