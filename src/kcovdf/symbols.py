"""Symbolizer: pc to function, through a trace's sym lines or kernel symbols (kallsyms, ELF).

kcovdf pcs are hashes (docs/core.md §4) resolved only by the trace's symbol table;
kernel pcs are addresses, resolved by a kallsyms-format file or by the symbol tables
of vmlinux and of .ko modules (module-relative, placed at the module's load address).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from kcovdf.errors import CorruptBufferError

#: kallsyms types of code symbols (upper case global, lower case local; w/W weak).
_CODE_TYPES = frozenset("tTwW")


class Symbol(NamedTuple):
    """A function: a Python function from a sym line, or a kernel symbol."""

    pc: int
    name: str                       # qualname (Python) or symbol name (kernel)
    module: str                     # Python module; kernel module, "" for vmlinux
    file: str = ""
    line: int = 0
    params: tuple[tuple[str, str], ...] = ()   # (name, inspect.Parameter kind name)
    kernel: bool = False
    offset: int = 0                 # kernel: pc minus the symbol's address

    @property
    def display(self) -> str:
        """``module.qualname`` for Python; ``name+0x10 [module]`` for the kernel, as trigger-view."""
        if not self.kernel:
            return f"{self.module}.{self.name}" if self.module else self.name
        text = f"{self.name}+{self.offset:#x}" if self.offset else self.name
        return f"{text} [{self.module}]" if self.module else text

    def param(self, arg_idx: int) -> str | None:
        """Name of the parameter at position ``arg_idx``, with ``*``/``**`` for var parameters."""
        if arg_idx >= len(self.params):
            return None
        name, kind = self.params[arg_idx]
        return {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "") + name


def from_table_line(line: Mapping[str, Any]) -> Symbol:
    """The Symbol of a ``{"t": "sym", ...}`` table line; ValueError naming the bad field."""
    try:
        pc = int(line["pc"], 16)
        params = tuple((str(p[0]), str(p[1])) for p in line.get("params") or ())
        return Symbol(pc, str(line["qualname"]), str(line.get("module") or ""),
                      str(line.get("file") or ""), int(line.get("line") or 0), params)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"bad sym line ({type(exc).__name__}: {exc})") from None


class SymbolTable:
    """pc -> Symbol for kcovdf pcs; detects two functions hashed to one pc."""

    def __init__(self) -> None:
        self.symbols: dict[int, Symbol] = {}
        self.collisions: list[tuple[Symbol, Symbol]] = []

    def add(self, sym: Symbol) -> bool:
        """Register ``sym``; False (and a recorded collision) if its pc names another function."""
        old = self.symbols.setdefault(sym.pc, sym)
        if old is sym or (old.module, old.name, old.line) == (sym.module, sym.name, sym.line):
            return True
        self.collisions.append((old, sym))
        return False

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
        return Symbol(pc, name, module, kernel=True, offset=pc - addr)

    def __len__(self) -> int:
        return len(self._syms)


class Symbolizer:
    """Names for pcs: the trace's own symbols first, then kernel symbols."""

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
