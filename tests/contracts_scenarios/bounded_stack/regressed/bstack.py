"""A stack with a fixed capacity, for an undo history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class StackFull(Exception):
    """Pushed onto a stack already at its capacity."""


class BoundedStack:
    """A LIFO stack of at most `capacity` items; 0 <= size <= capacity always holds."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.size = 0
        self._items: list[Any] = []

    def _full(self) -> bool:
        return self.size >= self.capacity

    def push(self, item: Any) -> int:
        """Push item; returns the new size. StackFull when the stack is full."""
        if self._full():
            raise StackFull(f"stack full at {self.capacity} items")
        self._items.append(item)
        self.size = len(self._items)
        return self.size

    def pop(self) -> Any:
        """Remove and return the top item. IndexError when the stack is empty."""
        if not self._items:
            raise IndexError("pop from an empty stack")
        self.size = len(self._items) - 1
        return self._items.pop()

    def peek(self, default: Any = None) -> Any:
        """The top item without removing it, or default when the stack is empty."""
        return self._items[-1] if self._items else default

    def extend(self, items: Iterable[Any]) -> int:
        """Push every item in order, stopping with StackFull at the first that does not fit."""
        for item in items:
            if self._full():
                raise StackFull(f"stack full at {self.capacity} items")
            self._items.append(item)
            self.size += 1
        return self.size

    def drain(self, n: int | None = None) -> list[Any]:
        """Pop n items (all when n is None, at most size), top first."""
        n = self.size if n is None else max(0, min(n, self.size))
        cut = len(self._items) - n
        taken, self._items[cut:] = self._items[cut:], []
        self.size -= n
        return taken[::-1]
