"""Test traces built with the reference encoder: buffers, .kdf files and trace directories.

Independent of the recorder and Device, so decoder tests do not wait for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kcovdf import abi, tracefile
from kcovdf.runtime.encode import TypeEntry, encode_value
from kcovdf.symbols import pc_of

__all__ = ["pc_of", "record", "sym_line", "type_line", "TraceBuilder", "write_kdf", "trace_dir",
           "write_dir", "words_bytes", "zip_generators", "gather_coroutines", "no_parameters"]


def record(rtype: int, seq: int, pc: int, arg_idx: int, values: list[int],
           size: int = 8, ptr: int = 0) -> list[int]:
    """The words of one record."""
    return [abi.type_seq(rtype, len(values), seq), pc, abi.meta(arg_idx, size, ptr)] + list(values)


def sym_line(module: str, qualname: str, line: int, params: list[tuple[str, str]],
             file: str | None = None) -> dict[str, Any]:
    """A sym table line (docs/core.md §4); params are (name, inspect kind name)."""
    return {"t": "sym", "pc": hex(pc_of(module, qualname, line)), "module": module,
            "qualname": qualname, "file": file or f"/src/{module.replace('.', '/')}.py",
            "line": line, "params": [list(p) for p in params]}


def type_line(entry: TypeEntry) -> dict[str, Any]:
    """A type table line (docs/abi.md §2.3)."""
    return {"t": "type", "id": hex(entry.id), "class": entry.cls, "fields": list(entry.fields)}


class TraceBuilder:
    """Records of one task, with the type and sym lines a real trace would carry.

    Format 2 records (docs/abi.md §1) are written by passing ``cid``, the call id that
    goes into meta's pointer: ``call(pc, *args, cid=c)`` (an ARG_NONE entry without args),
    ``ret``/``exc``/``yld(..., cid=c)``, ``resume(pc, c, by=r)`` and ``suspend(pc, c)``.
    Without ``cid`` the pointer is the object's address (format 1).
    """

    def __init__(self) -> None:
        self.words: list[int] = []
        self.types: dict[int, TypeEntry] = {}
        self.syms: dict[int, dict[str, Any]] = {}
        self.seq = 0

    def func(self, module: str, qualname: str, line: int = 1,
             params: tuple[str, ...] = ()) -> int:
        """Declare a function (a sym line); returns its pc."""
        pc = pc_of(module, qualname, line)
        self.syms[pc] = sym_line(module, qualname, line, [(p.lstrip("*"), _kind(p)) for p in params],
                                 f"/src/{module}.py")
        return pc

    def value(self, rtype: int, pc: int, arg_idx: int, obj: Any, redacted: bool = False,
              ptr: int | None = None, cid: int | None = None) -> TraceBuilder:
        """One record of ``obj`` (the REDACTED form when ``redacted``).

        The pointer is the call id ``cid`` (format 2), else ``ptr``, by default the object's
        address, as a format 1 writer wrote it (0 for a redacted value).
        """
        enc = encode_value(obj, redacted=redacted)
        for t in enc.types:
            self.types.setdefault(t.id, t)
        self.seq += 1
        ptr = cid if cid is not None else 0 if redacted else id(obj) if ptr is None else ptr
        self.words += record(rtype, self.seq, pc, arg_idx, enc.words, abi.PY_VALUE_SIZE, ptr)
        return self

    def call(self, pc: int, *args: Any, redact: tuple[int, ...] = (),
             cid: int | None = None) -> TraceBuilder:
        """Entry records, one per argument; with a call id and no argument, the ARG_NONE entry."""
        if cid is not None and not args:
            return self.word(abi.TYPE_ENTRY, pc, abi.ARG_NONE, 0, cid)
        for i, a in enumerate(args):
            self.value(abi.TYPE_ENTRY, pc, i, a, redacted=i in redact, cid=cid)
        return self

    def ret(self, pc: int, value: Any, cid: int | None = None) -> TraceBuilder:
        """A return record."""
        return self.value(abi.TYPE_RETURN, pc, abi.ARG_RETURN, value, cid=cid)

    def exc(self, pc: int, exc: BaseException, cid: int | None = None) -> TraceBuilder:
        """An exception record."""
        return self.value(abi.TYPE_RETURN, pc, abi.ARG_EXCEPTION, exc, cid=cid)

    def yld(self, pc: int, value: Any, cid: int | None = None) -> TraceBuilder:
        """A yield record."""
        return self.value(abi.TYPE_RETURN, pc, abi.ARG_YIELD, value, cid=cid)

    def word(self, rtype: int, pc: int, arg_idx: int, value: int, ptr: int) -> TraceBuilder:
        """A record of one bare value word (format 2's ARG_NONE entries and events)."""
        self.seq += 1
        self.words += record(rtype, self.seq, pc, arg_idx, [value], abi.PY_VALUE_SIZE, ptr)
        return self

    def resume(self, pc: int, cid: int, by: int = 0) -> TraceBuilder:
        """A RESUME event: call ``cid`` runs again, resumed by call ``by`` (0: none)."""
        return self.word(abi.TYPE_EVENT, pc, abi.EVENT_RESUME, by, cid)

    def suspend(self, pc: int, cid: int) -> TraceBuilder:
        """A SUSPEND event: call ``cid`` left its thread's stack without a yield record."""
        return self.word(abi.TYPE_EVENT, pc, abi.EVENT_SUSPEND, 0, cid)

    def buffer(self, size: int | None = None) -> list[int]:
        """The buffer words, buf[0] first, padded with zeros to ``size`` words."""
        words = [len(self.words)] + self.words
        return words + [0] * ((size or len(words)) - len(words))

    def table_lines(self, task: tuple[int, int, str] | None = None) -> list[dict[str, Any]]:
        """Type, sym and task lines as a Device table would hold them."""
        lines = [type_line(t) for t in self.types.values()] + list(self.syms.values())
        if task:
            lines.append({"t": "task", "pid": task[0], "tid": task[1], "name": task[2]})
        return lines


def _kind(param: str) -> str:
    if param.startswith("**"):
        return "VAR_KEYWORD"
    return "VAR_POSITIONAL" if param.startswith("*") else "POSITIONAL_OR_KEYWORD"


def words_bytes(words: list[int]) -> bytes:
    """Little-endian u64 bytes of ``words``."""
    return b"".join((w & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little") for w in words)


def write_kdf(path: str | os.PathLike[str], words: list[int], lines: list[dict[str, Any]] = (),
              drops: int = 0, table_tail: bytes = b"", version: int = 1,
              pid: int = 4242, created_ns: int = 1) -> Path:
    """A .kdf file (0600): header page, ``words`` as the buffer, then the table lines.

    ``version`` 1 by default: the records of a TraceBuilder without call ids; traces built
    with call ids are written with ``version=2``.
    """
    head = bytearray(tracefile.pack_header(len(words), pid=pid, created_ns=created_ns))
    head[tracefile.HDR_DROPS:tracefile.HDR_DROPS + 8] = drops.to_bytes(8, "little")
    head[tracefile.HDR_VERSION:tracefile.HDR_VERSION + 4] = version.to_bytes(4, "little")
    table = b"".join(json.dumps(line).encode() + b"\n" for line in lines) + table_tail
    with tracefile.private_file(path) as f:
        f.write(bytes(head) + words_bytes(words) + table)
    return Path(path)


def trace_dir(root: str | os.PathLike[str]) -> Path:
    """An empty trace directory as ``kcovdf run`` starts it (0700, run.json)."""
    tracefile.private_dir(root)
    tracefile.write_run_info(os.fspath(root), {"kcovdf": "0.1.0", "argv": ["prog.py"], "started_ns": 1})
    return Path(root)


def write_dir(root: str | os.PathLike[str], tasks: dict[tuple[int, int, str], TraceBuilder],
              version: int = 1) -> Path:
    """A trace directory as ``kcovdf run`` writes it: run.json and one .kdf per task."""
    d = trace_dir(root)
    for (pid, tid, name), b in tasks.items():
        write_kdf(tracefile.free_task_path(str(d), pid, tid), b.buffer(len(b.words) + 64),
                  b.table_lines((pid, tid, name)), version=version, pid=pid)
    return d


# --- format 2 record streams of issue 9's examples, as a format 2 writer writes them ------
def zip_generators() -> TraceBuilder:
    """``main()`` returns ``len(list(zip(gen(1, 2), gen(2, 2))))``, with yields recorded::

        def gen(a, n):
            for i in range(n):
                yield helper(a + i)
            return f"done{a}"
        def helper(x): return x

    zip stops when gen(1, 2) returns; gen(2, 2) is closed afterwards (GeneratorExit).
    """
    b = TraceBuilder()
    main = b.func("m", "main", 1)
    gen = b.func("m", "gen", 5, ("a", "n"))
    helper = b.func("m", "helper", 9, ("x",))
    b.call(main, cid=1)
    b.call(gen, 1, 2, cid=2).call(helper, 1, cid=3).ret(helper, 1, cid=3).yld(gen, 1, cid=2)
    b.call(gen, 2, 2, cid=4).call(helper, 2, cid=5).ret(helper, 2, cid=5).yld(gen, 2, cid=4)
    b.resume(gen, 2, by=1).call(helper, 2, cid=6).ret(helper, 2, cid=6).yld(gen, 2, cid=2)
    b.resume(gen, 4, by=1).call(helper, 3, cid=7).ret(helper, 3, cid=7).yld(gen, 3, cid=4)
    b.resume(gen, 2, by=1).ret(gen, "done1", cid=2)
    b.resume(gen, 4, by=1).exc(gen, GeneratorExit(), cid=4)
    b.ret(main, 2, cid=1)
    return b


def gather_coroutines() -> TraceBuilder:
    """``asyncio.run(amain())`` with ``await asyncio.gather(acoro(0), acoro(1), acoro(2))``::

        async def acoro(i):
            await asyncio.sleep(0)
            return i * 10

    Each coroutine suspends in sleep(0) (a SUSPEND: no yield record) and is resumed by the
    event loop, which records nothing (resumer 0).
    """
    b = TraceBuilder()
    amain = b.func("m", "amain", 1)
    acoro = b.func("m", "acoro", 5, ("i",))
    b.call(amain, cid=1).suspend(amain, 1)
    for i in range(3):
        b.call(acoro, i, cid=2 + i).suspend(acoro, 2 + i)
    for i in range(3):
        b.resume(acoro, 2 + i).ret(acoro, i * 10, cid=2 + i)
    b.resume(amain, 1).ret(amain, [0, 10, 20], cid=1)
    return b


def no_parameters() -> TraceBuilder:
    """``main()`` without parameters calls ``add(1, 2)`` and returns what it returned."""
    b = TraceBuilder()
    main = b.func("m", "main", 1)
    add = b.func("m", "add", 4, ("a", "b"))
    b.call(main, cid=1).call(add, 1, 2, cid=2).ret(add, 3, cid=2).ret(main, 3, cid=1)
    return b
