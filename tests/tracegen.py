"""Test traces built with the reference encoder: buffers, .kdf files and trace directories.

Independent of the recorder and Device, so decoder tests do not wait for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kcovdf import abi
from kcovdf.encode import encode_value


def pc_of(module: str, qualname: str, line: int) -> int:
    """The pc kcovdf gives a function (docs/core.md §4)."""
    return abi.fnv1a64(f"{module}:{qualname}:{line}".encode())


def record(rtype: int, seq: int, pc: int, arg_idx: int, values: list[int],
           size: int = 8, ptr: int = 0) -> list[int]:
    """The words of one record."""
    return [abi.type_seq(rtype, len(values), seq), pc, abi.meta(arg_idx, size, ptr)] + list(values)


class TraceBuilder:
    """Records of one task, with the type and sym lines a real trace would carry."""

    def __init__(self) -> None:
        self.words: list[int] = []
        self.types: dict[int, dict[str, Any]] = {}
        self.syms: dict[int, dict[str, Any]] = {}
        self.seq = 0

    def func(self, module: str, qualname: str, line: int = 1,
             params: tuple[str, ...] = ()) -> int:
        """Declare a function (a sym line); returns its pc."""
        pc = pc_of(module, qualname, line)
        self.syms[pc] = {"t": "sym", "pc": hex(pc), "module": module, "qualname": qualname,
                         "file": f"/src/{module}.py", "line": line,
                         "params": [[p.lstrip("*"), _kind(p)] for p in params]}
        return pc

    def _value(self, rtype: int, pc: int, arg_idx: int, obj: Any, redacted: bool = False) -> None:
        enc = encode_value(obj, redacted=redacted)
        for t in enc.types:
            self.types.setdefault(t.id, {"t": "type", "id": hex(t.id), "class": t.cls,
                                         "fields": list(t.fields)})
        self.seq += 1
        ptr = 0 if redacted else id(obj)
        self.words += record(rtype, self.seq, pc, arg_idx, enc.words, abi.PY_VALUE_SIZE, ptr)

    def call(self, pc: int, *args: Any, redact: tuple[int, ...] = ()) -> TraceBuilder:
        """Entry records, one per argument."""
        for i, a in enumerate(args):
            self._value(abi.TYPE_ENTRY, pc, i, a, redacted=i in redact)
        return self

    def ret(self, pc: int, value: Any) -> TraceBuilder:
        """A return record."""
        self._value(abi.TYPE_RETURN, pc, abi.ARG_RETURN, value)
        return self

    def exc(self, pc: int, exc: BaseException) -> TraceBuilder:
        """An exception record."""
        self._value(abi.TYPE_RETURN, pc, abi.ARG_EXCEPTION, exc)
        return self

    def yld(self, pc: int, value: Any) -> TraceBuilder:
        """A yield record."""
        self._value(abi.TYPE_RETURN, pc, abi.ARG_YIELD, value)
        return self

    def buffer(self, size: int | None = None) -> list[int]:
        """The buffer words, buf[0] first, padded with zeros to ``size`` words."""
        words = [len(self.words)] + self.words
        return words + [0] * ((size or len(words)) - len(words))

    def table_lines(self, task: tuple[int, int, str] | None = None) -> list[dict[str, Any]]:
        """Type, sym and task lines as a Device table would hold them."""
        lines = list(self.types.values()) + list(self.syms.values())
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
              drops: int = 0, table_tail: bytes = b"", version: int = abi.FORMAT_VERSION) -> Path:
    """A .kdf file: header page, ``words`` as the buffer, then the table lines."""
    head = bytearray(abi.pack_file_header(len(words), pid=4242, created_ns=1))
    head[abi.HDR_DROPS:abi.HDR_DROPS + 8] = drops.to_bytes(8, "little")
    head[abi.HDR_VERSION:abi.HDR_VERSION + 4] = version.to_bytes(4, "little")
    table = b"".join(json.dumps(line).encode() + b"\n" for line in lines) + table_tail
    p = Path(path)
    p.write_bytes(bytes(head) + words_bytes(words) + table)
    return p


def write_dir(root: str | os.PathLike[str], tasks: dict[tuple[int, int, str], TraceBuilder]) -> Path:
    """A trace directory as ``kcovdf run`` writes it: run.json and one .kdf per task."""
    d = Path(root)
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({"format": abi.FORMAT_VERSION, "kcovdf": "0.1.0",
                                            "argv": ["prog.py"], "started_ns": 1}))
    for (pid, tid, name), b in tasks.items():
        write_kdf(d / f"task-{pid}-{tid}.kdf", b.buffer(len(b.words) + 64),
                  b.table_lines((pid, tid, name)))
    return d
