"""A small inventory service: products, stock reservations and order pricing over SQLite."""

from inventory.cache import LRUCache
from inventory.csvio import ImportReport, export_csv, import_csv, read_csv
from inventory.models import (
    DuplicateSkuError,
    InsufficientStockError,
    InventoryError,
    NotFoundError,
    Product,
    ValidationError,
    to_price,
)
from inventory.pricing import (
    BuyXGetYFree,
    DiscountRule,
    OrderLine,
    OrderTotal,
    PercentOff,
    order_total,
)
from inventory.store import Store

__version__ = "1.0.0"

__all__ = [
    "BuyXGetYFree",
    "DiscountRule",
    "DuplicateSkuError",
    "ImportReport",
    "InsufficientStockError",
    "InventoryError",
    "LRUCache",
    "NotFoundError",
    "OrderLine",
    "OrderTotal",
    "PercentOff",
    "Product",
    "Store",
    "ValidationError",
    "__version__",
    "export_csv",
    "import_csv",
    "order_total",
    "read_csv",
    "to_price",
]
