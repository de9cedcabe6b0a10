"""A least-recently-used cache of bounded size, with hit statistics."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LRUCache:
    """Keeps the `capacity` most recently used entries; len(self) <= capacity always holds."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of key (now the most recently used), or default."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        return default

    def put(self, key: Any, value: Any) -> None:
        """Store key, evicting the least recently used entry when full."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def resize(self, capacity: int) -> int:
        """Change the capacity, evicting the least recently used entries that no longer fit;
        returns how many were evicted."""
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        evicted = 0
        while len(self._data) > capacity:
            self._data.popitem(last=False)
            evicted += 1
        self.capacity = capacity
        return evicted

    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
