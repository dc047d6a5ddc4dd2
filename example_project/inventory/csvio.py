"""CSV import and export of the catalogue, columns ``sku,name,price,stock,category``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inventory.models import Product, ValidationError, to_price

if TYPE_CHECKING:
    from typing import TextIO

    from inventory.store import Store

FIELDS = ("sku", "name", "price", "stock", "category")


@dataclass(frozen=True)
class ImportReport:
    """What an import changed."""

    created: int
    updated: int


def export_csv(store: Store, out: TextIO) -> int:
    """Write the whole catalogue, ordered by SKU, after a header row; return the row count.

    Open files with ``newline=""``, as the :mod:`csv` module requires.
    """
    products = store.query()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    writer.writerows(
        (product.sku, product.name, product.price, product.stock, product.category)
        for product in products
    )
    return len(products)


def read_csv(src: TextIO) -> list[Product]:
    """Parse and validate every row, naming the line of the first bad one.

    Validation runs over the whole file before anything is written, so a bad row
    rejects the file instead of leaving half of it imported.
    """
    # restval="" turns a short row into empty fields, which then fail validation with
    # a message, instead of into None values that fail with an AttributeError.
    reader = csv.DictReader(src, restval="")
    missing = [field for field in FIELDS if field not in (reader.fieldnames or ())]
    if missing:
        raise ValidationError(f"CSV header lacks column(s): {', '.join(missing)}")
    products: list[Product] = []
    seen: set[str] = set()
    for row in reader:
        try:
            product = Product(
                sku=row["sku"].strip(),
                name=row["name"].strip(),
                price=to_price(row["price"].strip()),
                stock=int(row["stock"]),
                category=row["category"].strip() or "general",
            )
        except ValueError as exc:
            raise ValidationError(f"line {reader.line_num}: {exc}") from exc
        if product.sku in seen:
            raise ValidationError(f"line {reader.line_num}: duplicate SKU {product.sku}")
        seen.add(product.sku)
        products.append(product)
    return products


def import_csv(store: Store, src: TextIO) -> ImportReport:
    """Create new SKUs and overwrite existing ones, all in one transaction."""
    created, updated = store.upsert_many(read_csv(src))
    return ImportReport(created=created, updated=updated)
