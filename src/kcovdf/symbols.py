"""Symbols: the one Symbol type, the pc registry writers and readers share, and the symbolizer.

A kcovdf pc is a hash, ``pc_of(module, qualname, firstlineno)`` (docs/core.md §4), so a
function keeps its pc across runs and processes; only a symbol table names it. A
kernel pc is an address, named by a kallsyms-format file or by the symbol tables of
vmlinux and of .ko modules (module-relative, placed at the module's load address).

- Writer side, in the traced program: the pass makes one ``Symbol`` per instrumented
  function; the process's ``SymbolTable(emit)`` registers it and emits it once as a
  ``{"t": "sym", ...}`` table line with remember=True, so every trace table (and a
  table added later) can name it.
- Reader side: the decoder fills a ``SymbolTable`` from a trace's sym lines,
  ``KernelSymbols`` reads kallsyms and ELF files, and a ``Symbolizer`` names pcs,
  the trace's own symbols first. Every tool builds its kernel symbols from the one
  ``--kallsyms``/``--ko`` argument group (``add_symbol_arguments``).

Two different functions under one pc (the same qualname on the same line, a module
imported from two files, or a true hash collision) are never merged: the first keeps
the pc, and the other is refused (writer: left uninstrumented and reported) or noted
(reader: the first is shown).

Standard library only at import (the writer side runs in the traced program);
pyelftools is imported only when an ELF file is read.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kcovdf import tracefile
from kcovdf.abi import fnv1a64
from kcovdf.errors import ConfigError, CorruptBufferError

if TYPE_CHECKING:
    import argparse

#: kallsyms types of code symbols (upper case global, lower case local; w/W weak).
_CODE_TYPES = frozenset("tTwW")


def pc_of(module: str, qualname: str, firstlineno: int) -> int:
    """The stable 64-bit pc of a Python function."""
    return fnv1a64(f"{module}:{qualname}:{firstlineno}".encode("utf-8", "surrogatepass"))


class Symbol(NamedTuple):
    """A function: an instrumented Python function (a sym line), or a kernel symbol."""

    pc: int
    module: str                     # Python module; kernel module, "" for vmlinux
    qualname: str                   # Python qualname; kernel symbol name
    file: str = ""
    line: int = 0                   # first line (the one in the pc)
    params: tuple[tuple[str, str], ...] = ()   # (name, inspect.Parameter kind name)
    kernel: bool = False
    offset: int = 0                 # kernel: pc minus the symbol's address

    @property
    def display(self) -> str:
        """``module.qualname`` for Python; ``name+0x10 [module]`` for the kernel, as trigger-view."""
        if not self.kernel:
            return f"{self.module}.{self.qualname}" if self.module else self.qualname
        text = f"{self.qualname}+{self.offset:#x}" if self.offset else self.qualname
        return f"{text} [{self.module}]" if self.module else text

    def param(self, arg_idx: int) -> str | None:
        """Name of the parameter at position ``arg_idx``, with ``*``/``**`` for var parameters."""
        if arg_idx >= len(self.params):
            return None
        name, kind = self.params[arg_idx]
        return {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "") + name

    def to_json(self) -> dict[str, Any]:
        """The sym table line as a dict (docs/abi.md §3)."""
        return {"t": "sym", "pc": f"0x{self.pc:x}", "module": self.module,
                "qualname": self.qualname, "file": self.file, "line": self.line,
                "params": [list(p) for p in self.params]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Symbol:
        """The Symbol of a sym table line (inverse of to_json); ValueError naming the bad field.

        Only ``pc`` and ``qualname`` are required: a reader takes what a line gives.
        """
        try:
            pc = int(obj["pc"], 16)
            params = tuple((str(p[0]), str(p[1])) for p in obj.get("params") or ())
            return cls(pc, str(obj.get("module") or ""), str(obj["qualname"]),
                       str(obj.get("file") or ""), int(obj.get("line") or 0), params)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"bad sym line ({type(exc).__name__}: {exc})") from None


class SymbolTable:
    """pc -> Symbol, refusing a second function under a pc; with ``emit``, the writer's registry.

    ``emit(line: bytes, remember=True)`` (the recorder's) receives the sym line of each
    symbol the first time it is registered. The lock protects ``symbols`` and ``collisions``.
    """

    def __init__(self, emit: Callable[..., Any] | None = None) -> None:
        self.symbols: dict[int, Symbol] = {}
        self.collisions: list[tuple[Symbol, Symbol]] = []   # (the pc's symbol, the refused one)
        self._emit = emit
        self._lock = threading.Lock()

    def get(self, pc: int) -> Symbol | None:
        """The symbol registered under ``pc``, if any."""
        return self.symbols.get(pc)

    def collides(self, sym: Symbol) -> bool:
        """True when ``sym.pc`` already names a different function."""
        known = self.symbols.get(sym.pc)
        return known is not None and known != sym

    def add(self, sym: Symbol) -> bool:
        """Register ``sym`` (emitting it when new); False, and a recorded collision, if its pc is taken."""
        with self._lock:
            known = self.symbols.get(sym.pc)
            if known == sym:
                return True
            if known is not None:
                self.collisions.append((known, sym))
                return False
            self.symbols[sym.pc] = sym
            if self._emit is not None:
                self._emit(tracefile.line(sym.to_json()), remember=True)
            return True

    def register(self, symbols: Iterable[Symbol]) -> list[Symbol]:
        """Register every symbol; returns those refused because their pc names another function."""
        return [sym for sym in symbols if not self.add(sym)]

    def describe_collisions(self) -> list[str]:
        """One line per collision, naming both functions."""
        return [f"pc {a.pc:#018x} names both {a.display} ({a.file}:{a.line}) and "
                f"{b.display} ({b.file}:{b.line}); the first is shown"
                for a, b in self.collisions]


class KernelSymbols:
    """Sorted kernel code symbols; ``lookup(pc)`` finds the function containing pc."""

    def __init__(self) -> None:
        self._addrs: list[int] = []
        self._syms: list[tuple[int, int, str, str]] = []   # (addr, size or 0, name, module)

    def _add(self, entries: Iterable[tuple[int, int, str, str]]) -> int:
        new = [e for e in entries if e[0]]
        merged = sorted(self._syms + new)
        self._syms = merged
        self._addrs = [e[0] for e in merged]
        return len(new)

    def add_kallsyms(self, path: str | os.PathLike[str]) -> int:
        """Add the code symbols of a kallsyms-format file (``addr type name [module]``)."""
        entries = []
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as exc:
            raise CorruptBufferError(f"{path}: cannot read kallsyms file ({exc.strerror})") from None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] not in _CODE_TYPES:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            module = parts[3].strip("[]") if len(parts) > 3 else ""
            entries.append((addr, 0, parts[2], module))
        if not entries and text.strip():
            raise CorruptBufferError(f"{path}: no kallsyms lines: expected "
                                     "'ffffffff81000000 T _stext [module]' lines")
        return self._add(entries)

    def add_elf(self, path: str | os.PathLike[str], base: int | None = None) -> int:
        """Add the functions of vmlinux (absolute) or of a .ko (relative to its load address).

        A .ko is placed at ``base`` (its .text address); without ``base`` the address
        comes from /sys/module/<name>/sections, or from a kallsyms symbol of the module
        added before.
        """
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                funcs = self._elf_functions(elf)
                relocatable = elf["e_type"] == "ET_REL"
        except ELFError as exc:
            raise CorruptBufferError(f"{path}: not an ELF file ({exc})") from None
        except OSError as exc:
            raise CorruptBufferError(f"{path}: cannot read ({exc.strerror})") from None
        if not relocatable:
            return self._add((value, size, name, "") for name, value, size, _ in funcs)
        module = Path(path).name.split(".")[0].replace("-", "_")
        bases = self._module_bases(module, funcs, base, path)
        return self._add((bases[sec] + value, size, name, module)
                         for name, value, size, sec in funcs if sec in bases)

    @staticmethod
    def _elf_functions(elf: Any) -> list[tuple[str, int, int, str]]:
        from elftools.elf.sections import SymbolTableSection

        out = []
        for section in elf.iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for sym in section.iter_symbols():
                shndx = sym["st_shndx"]
                if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(shndx, int):
                    continue
                out.append((sym.name, sym["st_value"], sym["st_size"], elf.get_section(shndx).name))
        return out

    def _module_bases(self, module: str, funcs: list[tuple[str, int, int, str]],
                      base: int | None, path: Any) -> dict[str, int]:
        if base is not None:
            return {".text": base}
        bases: dict[str, int] = {}
        sysfs = Path("/sys/module") / module / "sections"
        for sec in {f[3] for f in funcs}:
            try:
                bases[sec] = int((sysfs / sec).read_text().strip(), 16)
            except (OSError, ValueError):
                pass
        if bases:
            return bases
        known = {(name, mod): addr for addr, _, name, mod in self._syms}
        for name, value, _, sec in funcs:
            addr = known.get((name, module))
            if addr is not None:
                return {sec: addr - value}
        raise CorruptBufferError(
            f"{path}: cannot place module {module!r}: give its .text address as "
            f"--ko {path}@0xADDR, or a kallsyms file listing one of its functions")

    def lookup(self, pc: int) -> Symbol | None:
        """The symbol at or below ``pc`` (within its size when known), else None."""
        i = bisect.bisect_right(self._addrs, pc) - 1
        if i < 0:
            return None
        addr, size, name, module = self._syms[i]
        if size and pc >= addr + size:
            return None
        return Symbol(pc, module, name, kernel=True, offset=pc - addr)

    def __len__(self) -> int:
        return len(self._syms)


class Symbolizer:
    """The one resolver of pcs for every tool: the trace's own symbols first, then kernel symbols."""

    def __init__(self, table: Mapping[int, Symbol], kernel: KernelSymbols | None = None) -> None:
        self.table = table
        self.kernel = kernel
        self._cache: dict[int, Symbol | None] = {}

    def lookup(self, pc: int) -> Symbol | None:
        """The Symbol of ``pc``, or None when nothing names it."""
        try:
            return self._cache[pc]
        except KeyError:
            pass
        sym = self.table.get(pc)
        if sym is None and self.kernel is not None:
            sym = self.kernel.lookup(pc)
        self._cache[pc] = sym
        return sym

    def name(self, pc: int) -> str:
        """Display name of ``pc``; the pc in hex when unknown."""
        sym = self.lookup(pc)
        return sym.display if sym else f"{pc:#x}"


# --- the --kallsyms/--ko argument group of every tool that reads traces ------------------
def add_symbol_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--kallsyms`` and ``--ko``: the kernel symbols that name the pcs of raw kernel dumps."""
    group = parser.add_argument_group("kernel symbols", "name the functions of raw kernel buffer dumps")
    group.add_argument("--kallsyms", action="append", default=[], metavar="PATH",
                       help="kernel symbols in kallsyms format (a copy of /proc/kallsyms; repeatable)")
    group.add_argument("--ko", action="append", default=[], metavar="PATH[@ADDR]",
                       help="symbols of vmlinux or a .ko (placed at ADDR, its .text address, or "
                            "found through /sys/module or --kallsyms; repeatable)")


def kernel_symbols_from_args(args: argparse.Namespace) -> KernelSymbols | None:
    """The kernel symbols that ``--kallsyms``/``--ko`` name, None when neither is given.

    Raises CorruptBufferError for a file that cannot be read as one, ConfigError for a bad ADDR.
    """
    if not (args.kallsyms or args.ko):
        return None
    ks = KernelSymbols()
    for path in args.kallsyms:
        ks.add_kallsyms(path)
    for spec in args.ko:
        path, _, addr = spec.partition("@")
        try:
            base = int(addr, 16) if addr else None
        except ValueError:
            raise ConfigError(f"--ko {spec}: {addr!r} is not a hex address") from None
        ks.add_elf(path, base)
    return ks
