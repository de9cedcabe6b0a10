"""The writer-side symbol table: pc -> function, collision detection, sym lines.

``pc = fnv1a64(f"{module}:{qualname}:{firstlineno}")`` (docs/core.md section 4), so a
function keeps its pc across runs and processes. Two different functions with one pc
(the same qualname on the same line, a module imported from two files, or a true hash
collision) are never merged: the second one is left uninstrumented and reported.
Every registered symbol is emitted once as a ``{"t": "sym", ...}`` line with
remember=True, so each trace table (and a table added later) can name it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from kcovdf import tracefile
from kcovdf.abi import fnv1a64


def pc_of(module: str, qualname: str, firstlineno: int) -> int:
    """The stable 64-bit pc of a function."""
    return fnv1a64(f"{module}:{qualname}:{firstlineno}".encode("utf-8", "surrogatepass"))


class Symbol(NamedTuple):
    """One instrumented function; params are (name, inspect.Parameter kind name) pairs."""

    pc: int
    module: str
    qualname: str
    file: str
    line: int
    params: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        """The sym table line as a dict (docs/abi.md section 3)."""
        return {"t": "sym", "pc": f"0x{self.pc:x}", "module": self.module,
                "qualname": self.qualname, "file": self.file, "line": self.line,
                "params": [list(p) for p in self.params]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Symbol:
        """Inverse of to_json (used by the cache)."""
        return cls(int(obj["pc"], 16), obj["module"], obj["qualname"], obj["file"], obj["line"],
                   tuple((name, kind) for name, kind in obj["params"]))


class Table:
    """The symbols of this process, emitted through ``emit(line: bytes, remember=True)``."""

    def __init__(self, emit: Callable[..., Any]) -> None:
        self._emit = emit
        self._by_pc: dict[int, Symbol] = {}
        self._lock = threading.Lock()

    def collides(self, sym: Symbol) -> bool:
        """True when ``sym.pc`` already names a different function."""
        known = self._by_pc.get(sym.pc)
        return known is not None and known != sym

    def register(self, symbols: Iterable[Symbol]) -> list[Symbol]:
        """Record and emit the new symbols; returns those refused because their pc collides."""
        refused = []
        with self._lock:
            for sym in symbols:
                known = self._by_pc.get(sym.pc)
                if known == sym:
                    continue
                if known is not None:
                    refused.append(sym)
                    continue
                self._by_pc[sym.pc] = sym
                self._emit(tracefile.line(sym.to_json()), remember=True)
        return refused

    def get(self, pc: int) -> Symbol | None:
        """The symbol registered under ``pc``, if any."""
        return self._by_pc.get(pc)
