"""Order totals: line amounts, discount rules and tax, in exact decimal currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Protocol

from inventory.models import CENT, ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class OrderLine:
    """``quantity`` units of ``sku`` at ``unit_price`` each."""

    sku: str
    quantity: int
    unit_price: Decimal

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValidationError(f"{self.sku}: quantity {self.quantity} must be at least 1")

    @property
    def amount(self) -> Decimal:
        """Line amount before discounts and tax."""
        return self.unit_price * self.quantity


class DiscountRule(Protocol):
    """Anything that can price a discount for a whole order."""

    def discount(self, lines: Sequence[OrderLine]) -> Decimal:
        """Amount to take off the order's subtotal; never negative."""
        ...


@dataclass(frozen=True)
class PercentOff:
    """``percent`` off the whole subtotal once it reaches ``min_subtotal``."""

    percent: Decimal
    min_subtotal: Decimal = ZERO

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 100:
            raise ValidationError(f"percent {self.percent} must be between 0 and 100")

    def discount(self, lines: Sequence[OrderLine]) -> Decimal:
        subtotal = sum((line.amount for line in lines), ZERO)
        if subtotal < self.min_subtotal:
            return ZERO
        return (subtotal * self.percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BuyXGetYFree:
    """Of every ``buy + free`` units of ``sku`` in an order, ``free`` cost nothing."""

    sku: str
    buy: int
    free: int

    def __post_init__(self) -> None:
        if self.buy < 1 or self.free < 1:
            raise ValidationError(f"buy {self.buy} and free {self.free} must both be >= 1")

    def discount(self, lines: Sequence[OrderLine]) -> Decimal:
        matching = [line for line in lines if line.sku == self.sku]
        if not matching:
            return ZERO
        units = sum(line.quantity for line in matching)
        free_units = units // (self.buy + self.free) * self.free
        # When one SKU appears at several prices, give away the cheapest units.
        return free_units * min(line.unit_price for line in matching)


@dataclass(frozen=True)
class OrderTotal:
    """How an order's total was reached; ``total == subtotal - discount + tax``."""

    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


def order_total(
    lines: Sequence[OrderLine],
    *,
    tax_rate: Decimal = ZERO,
    rules: Sequence[DiscountRule] = (),
) -> OrderTotal:
    """Price an order: discounts first, then tax on what is left.

    Discounts are capped at the subtotal so stacked rules never make a total negative.
    Tax is rounded half-up once on the order, not per line, where rounding would drift
    by a cent per line from what a tax authority computes.
    """
    if tax_rate < 0:
        raise ValidationError(f"tax rate {tax_rate} is negative")
    subtotal = sum((line.amount for line in lines), ZERO)
    discount = min(subtotal, sum((rule.discount(lines) for rule in rules), ZERO))
    taxable = subtotal - discount
    tax = (taxable * tax_rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return OrderTotal(subtotal=subtotal, discount=discount, tax=tax, total=taxable + tax)
