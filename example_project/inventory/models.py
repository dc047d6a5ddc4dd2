"""Domain values of the inventory: products, prices and the errors the package raises."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")

# Upper-case so that SKUs typed by hand and SKUs from a CSV export compare equal.
SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")


class InventoryError(Exception):
    """Base class of every error this package raises on purpose."""


class ValidationError(InventoryError, ValueError):
    """A malformed value: bad SKU, negative price, non-positive quantity, bad CSV row."""


class NotFoundError(InventoryError, LookupError):
    """No product or reservation has the requested key."""


class DuplicateSkuError(InventoryError):
    """A product with this SKU already exists."""


class InsufficientStockError(InventoryError):
    """More units were asked for than are available."""


def to_price(value: Decimal | str | int) -> Decimal:
    """Parse a price in currency units, e.g. ``"12.5"`` -> ``Decimal("12.50")``.

    Sub-cent precision is rejected rather than rounded: prices are stored as integer
    cents, and silently rounding an imported ``9.995`` would change what a customer pays.
    """
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise ValidationError(f"price {value!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise ValidationError(f"price {value!r} must be a finite amount >= 0")
    if price != price.quantize(CENT):
        raise ValidationError(f"price {value!r} has more than two decimals")
    return price.quantize(CENT)


def to_cents(price: Decimal) -> int:
    """Exact integer cents of a price already validated by :func:`to_price`."""
    return int(price * 100)


def from_cents(cents: int) -> Decimal:
    """Inverse of :func:`to_cents`."""
    return Decimal(cents).scaleb(-2)


@dataclass(frozen=True)
class Product:
    """One catalogue entry. ``stock`` counts units on hand, reserved or not."""

    sku: str
    name: str
    price: Decimal
    stock: int = 0
    category: str = "general"

    def __post_init__(self) -> None:
        if not SKU_PATTERN.fullmatch(self.sku):
            raise ValidationError(
                f"SKU {self.sku!r} must be 1-32 upper-case letters, digits or dashes"
            )
        if not self.name.strip():
            raise ValidationError(f"product {self.sku} needs a name")
        if self.stock < 0:
            raise ValidationError(f"product {self.sku}: stock {self.stock} is negative")
        # Frozen dataclass: normalise through object.__setattr__ so that 12.5 and 12.50
        # produce equal, identically printed products.
        object.__setattr__(self, "price", to_price(self.price))
