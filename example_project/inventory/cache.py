"""A small least-recently-used cache with hit and miss accounting."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Keep the ``maxsize`` most recently used entries.

    Values must not be ``None``: :meth:`get` uses ``None`` to signal a miss, which keeps
    call sites to one lookup instead of a ``in`` test followed by an index.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Membership test that neither counts as a lookup nor refreshes recency."""
        return key in self._entries

    def get(self, key: K) -> V | None:
        """Return the cached value and mark it most recently used, or ``None``."""
        try:
            value = self._entries[key]
        except KeyError:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently used entry when full."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def invalidate(self, key: K) -> None:
        """Forget ``key`` if present."""
        self._entries.pop(key, None)

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups so far; 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0
