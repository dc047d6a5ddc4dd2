"""Product validation and price parsing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inventory import Product, ValidationError


def test_price_is_normalised_to_cents() -> None:
    assert str(Product("A-1", "Anvil", Decimal("12.5")).price) == "12.50"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sku": "a-1"}, "upper-case"),
        ({"price": Decimal("9.995")}, "more than two decimals"),
        ({"price": Decimal("NaN")}, "finite"),
    ],
    ids=["lower-case-sku", "sub-cent-price", "nan-price"],
)
def test_invalid_product_is_rejected(fields: dict[str, object], message: str) -> None:
    valid: dict[str, object] = {"sku": "A-1", "name": "Anvil", "price": Decimal("1.00")}
    with pytest.raises(ValidationError, match=message):
        Product(**(valid | fields))  # type: ignore[arg-type]
