"""The LRU cache behind ``Store.get``."""

from __future__ import annotations

from inventory import LRUCache


def test_evicts_least_recently_used() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now more recent than "b"
    cache.put("c", 3)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)


def test_hit_ratio_counts_lookups_only() -> None:
    cache: LRUCache[str, int] = LRUCache(maxsize=4)
    cache.put("a", 1)
    assert "a" in cache
    assert cache.get("a") == 1
    assert cache.get("missing") is None
    assert (cache.hits, cache.misses, cache.hit_ratio) == (1, 1, 0.5)
