"""Discount rules, tax rounding and how they combine."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from inventory import BuyXGetYFree, OrderLine, PercentOff, order_total

if TYPE_CHECKING:
    from inventory import DiscountRule

MUG = Decimal("4.00")


@pytest.mark.parametrize(
    ("quantity", "expected_discount"),
    [(2, Decimal("0.00")), (7, Decimal("8.00"))],
)
def test_buy_two_get_one_free(quantity: int, expected_discount: Decimal) -> None:
    lines = [OrderLine("MUG", quantity, MUG), OrderLine("TEA", 1, Decimal("3.00"))]
    assert BuyXGetYFree("MUG", buy=2, free=1).discount(lines) == expected_discount


def test_tax_is_rounded_once_per_order() -> None:
    # Per line, 0.25 * 0.1 = 0.025 would round half-up to 0.03, three times: 0.09.
    lines = [OrderLine(sku, 1, Decimal("0.25")) for sku in ("A", "B", "C")]
    assert order_total(lines, tax_rate=Decimal("0.1")).tax == Decimal("0.08")


def test_stacked_discounts_never_go_below_zero() -> None:
    rules: list[DiscountRule] = [PercentOff(Decimal(100)), BuyXGetYFree("MUG", buy=1, free=1)]
    total = order_total([OrderLine("MUG", 2, MUG)], tax_rate=Decimal("0.2"), rules=rules)
    assert (total.discount, total.tax, total.total) == (
        Decimal("8.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
