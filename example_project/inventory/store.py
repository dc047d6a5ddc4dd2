"""SQLite-backed product store with stock reservations and a read-through cache."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING

from inventory.cache import LRUCache
from inventory.models import (
    DuplicateSkuError,
    InsufficientStockError,
    NotFoundError,
    Product,
    ValidationError,
    from_cents,
    to_cents,
    to_price,
)
from inventory.pricing import OrderLine, OrderTotal, order_total

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from inventory.pricing import DiscountRule

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    category TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL REFERENCES products (sku) ON DELETE CASCADE,
    quantity INTEGER NOT NULL CHECK (quantity > 0)
);
CREATE INDEX IF NOT EXISTS reservations_by_sku ON reservations (sku);
"""

_COLUMNS = "sku, name, price_cents, stock, category"
_INSERT = f"INSERT INTO products ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
_RESERVED = "SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE sku = ?"


def _row(product: Product) -> tuple[str, str, int, int, str]:
    return (product.sku, product.name, to_cents(product.price), product.stock, product.category)


def _product(row: tuple[str, str, int, int, str]) -> Product:
    sku, name, price_cents, stock, category = row
    return Product(sku, name, from_cents(price_cents), stock, category)


class Store:
    """Products and stock reservations in one SQLite database.

    ``path`` is a database file, or ``":memory:"`` for a private in-memory database.
    Several stores, in one process or several, may open the same file: every write runs
    in a ``BEGIN IMMEDIATE`` transaction, so a reservation's availability check and its
    insert cannot interleave with another writer. ``timeout`` is how many seconds to wait
    for another writer before failing with ``sqlite3.OperationalError``.

    ``get`` reads through an LRU cache of ``cache_size`` products. The cache belongs to
    this instance and only sees this instance's writes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        cache_size: int = 256,
        timeout: float = 5.0,
    ) -> None:
        # isolation_level=None turns off the sqlite3 module's implicit transactions, which
        # begin at the first write: too late to protect a read-then-write like reserve().
        self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error:
            # Schema setup waits on other writers and can time out; don't leak the handle.
            self._conn.close()
            raise
        self.cache: LRUCache[str, Product] = LRUCache(cache_size)

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # Products

    def add(self, product: Product) -> None:
        """Insert a new product; :class:`DuplicateSkuError` if its SKU exists."""
        try:
            with self._write() as conn:
                conn.execute(_INSERT, _row(product))
        except sqlite3.IntegrityError:
            raise DuplicateSkuError(f"product {product.sku} already exists") from None

    def add_many(self, products: Iterable[Product]) -> int:
        """Insert products in one transaction: all of them, or none on a duplicate SKU."""
        rows = [_row(product) for product in products]
        try:
            with self._write() as conn:
                conn.executemany(_INSERT, rows)
        except sqlite3.IntegrityError:
            raise DuplicateSkuError("a SKU in the batch exists or repeats") from None
        return len(rows)

    def get(self, sku: str) -> Product:
        """Return the product with this SKU; :class:`NotFoundError` if there is none."""
        cached = self.cache.get(sku)
        if cached is not None:
            return cached
        product = self._fetch(self._conn, sku)
        self.cache.put(sku, product)
        return product

    def update(
        self,
        sku: str,
        *,
        name: str | None = None,
        price: Decimal | None = None,
        stock: int | None = None,
        category: str | None = None,
    ) -> Product:
        """Change the given fields of a product and return the updated product.

        Stock may not drop below the units held by open reservations.
        """
        with self._write() as conn:
            current = self._fetch(conn, sku)
            updated = Product(
                sku,
                current.name if name is None else name,
                current.price if price is None else price,
                current.stock if stock is None else stock,
                current.category if category is None else category,
            )
            self._overwrite(conn, updated)
        self.cache.invalidate(sku)
        return updated

    def upsert_many(self, products: Iterable[Product]) -> tuple[int, int]:
        """Insert new SKUs and overwrite existing ones in one transaction.

        Returns ``(created, updated)``.
        """
        batch = list(products)
        created = 0
        with self._write() as conn:
            for product in batch:
                exists = conn.execute("SELECT 1 FROM products WHERE sku = ?", (product.sku,))
                if exists.fetchone() is None:
                    conn.execute(_INSERT, _row(product))
                    created += 1
                else:
                    self._overwrite(conn, product)
        for product in batch:
            self.cache.invalidate(product.sku)
        return created, len(batch) - created

    def delete(self, sku: str) -> None:
        """Remove a product together with its open reservations."""
        with self._write() as conn:
            if conn.execute("DELETE FROM products WHERE sku = ?", (sku,)).rowcount == 0:
                raise NotFoundError(f"no product {sku}")
        self.cache.invalidate(sku)

    def count(self) -> int:
        """Number of products in the catalogue."""
        (count,) = self._conn.execute("SELECT COUNT(*) FROM products").fetchone()
        return int(count)

    def query(
        self,
        *,
        category: str | None = None,
        min_price: Decimal | None = None,
        max_price: Decimal | None = None,
        in_stock: bool | None = None,
        name_contains: str | None = None,
    ) -> list[Product]:
        """Products matching every given filter (prices inclusive), ordered by SKU."""
        clauses: list[str] = []
        params: list[str | int] = []
        if category is not None:
            clauses.append("category = ?")
            params.append(category)
        if min_price is not None:
            clauses.append("price_cents >= ?")
            params.append(to_cents(to_price(min_price)))
        if max_price is not None:
            clauses.append("price_cents <= ?")
            params.append(to_cents(to_price(max_price)))
        if in_stock is not None:
            clauses.append("stock > 0" if in_stock else "stock = 0")
        if name_contains is not None:
            # instr() rather than LIKE, so '%' and '_' in the search text match literally.
            clauses.append("instr(lower(name), lower(?)) > 0")
            params.append(name_contains)
        where = " AND ".join(clauses) or "1"
        sql = f"SELECT {_COLUMNS} FROM products WHERE {where} ORDER BY sku"
        return [_product(row) for row in self._conn.execute(sql, params)]

    # Reservations

    def available(self, sku: str) -> int:
        """Units on hand that no open reservation holds."""
        return self._fetch(self._conn, sku).stock - self._reserved(self._conn, sku)

    def reserve(self, sku: str, quantity: int) -> int:
        """Hold ``quantity`` units of ``sku`` for an order and return the reservation id."""
        if quantity < 1:
            raise ValidationError(f"{sku}: quantity {quantity} must be at least 1")
        with self._write() as conn:
            available = self._fetch(conn, sku).stock - self._reserved(conn, sku)
            if quantity > available:
                raise InsufficientStockError(f"{sku}: {quantity} requested, {available} available")
            cursor = conn.execute(
                "INSERT INTO reservations (sku, quantity) VALUES (?, ?)", (sku, quantity)
            )
        # An INSERT into a rowid table always sets lastrowid.
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def release(self, reservation_id: int) -> None:
        """Cancel a reservation, returning its units to the available pool."""
        with self._write() as conn:
            deleted = conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            if deleted.rowcount == 0:
                raise NotFoundError(f"no reservation {reservation_id}")

    def fulfil(self, reservation_id: int) -> Product:
        """Ship a reservation: its units leave stock and the hold closes."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT sku, quantity FROM reservations WHERE id = ?", (reservation_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no reservation {reservation_id}")
            sku, quantity = row
            conn.execute("UPDATE products SET stock = stock - ? WHERE sku = ?", (quantity, sku))
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            product = self._fetch(conn, sku)
        self.cache.invalidate(sku)
        return product

    def quote(
        self,
        items: Mapping[str, int],
        *,
        tax_rate: Decimal = Decimal("0.00"),
        rules: Sequence[DiscountRule] = (),
    ) -> OrderTotal:
        """Price an order of ``{sku: quantity}`` at current catalogue prices."""
        lines = [OrderLine(sku, quantity, self.get(sku).price) for sku, quantity in items.items()]
        return order_total(lines, tax_rate=tax_rate, rules=rules)

    # Helpers shared by reads and by writes inside a transaction

    @staticmethod
    def _fetch(conn: sqlite3.Connection, sku: str) -> Product:
        row = conn.execute(f"SELECT {_COLUMNS} FROM products WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            raise NotFoundError(f"no product {sku}")
        return _product(row)

    @staticmethod
    def _reserved(conn: sqlite3.Connection, sku: str) -> int:
        (reserved,) = conn.execute(_RESERVED, (sku,)).fetchone()
        return int(reserved)

    def _overwrite(self, conn: sqlite3.Connection, product: Product) -> None:
        reserved = self._reserved(conn, product.sku)
        if product.stock < reserved:
            raise InsufficientStockError(
                f"{product.sku}: stock {product.stock} is below {reserved} reserved units"
            )
        conn.execute(
            "UPDATE products SET name = ?, price_cents = ?, stock = ?, category = ? WHERE sku = ?",
            (product.name, to_cents(product.price), product.stock, product.category, product.sku),
        )
