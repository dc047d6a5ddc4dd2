"""Cache effectiveness under a realistic, skewed access pattern."""

from __future__ import annotations

import random
from decimal import Decimal

from inventory import Product, Store

PRODUCTS = 2000
LOOKUPS = 20_000


def hit_ratio(weights: list[float], seed: int) -> float:
    """Hit ratio of ``Store.get`` over ``LOOKUPS`` lookups drawn with ``weights``.

    A fixed seed makes the ratio a deterministic property of the cache, not a sample.
    """
    skus = [f"HOT-{rank:05d}" for rank in range(PRODUCTS)]
    with Store(cache_size=100) as store:
        store.add_many(Product(sku, f"Item {sku}", Decimal("1.00")) for sku in skus)
        for sku in random.Random(seed).choices(skus, weights=weights, k=LOOKUPS):
            assert store.get(sku).sku == sku
        assert store.cache.hits + store.cache.misses == LOOKUPS
        return store.cache.hit_ratio


def test_zipf_traffic_is_mostly_served_from_cache() -> None:
    # Zipf-like: the product of popularity rank r is requested in proportion to 1/r**1.2,
    # so about 70% of lookups fall on the 100 most popular products.
    zipf = hit_ratio([1 / rank**1.2 for rank in range(1, PRODUCTS + 1)], seed=20240601)
    uniform = hit_ratio([1.0] * PRODUCTS, seed=20240601)
    assert uniform < 0.1  # about cache_size / PRODUCTS: the cache cannot help
    assert zipf > 0.6
