"""The rewritten-code cache, beside the interpreter's own bytecode cache.

A file ``__pycache__/<stem>.<cache_tag>.kcovdf-<version>-<pass hash><config hash>.pyc`` (placed by
importlib.util.cache_from_source, so sys.pycache_prefix is honoured) holds::

    MAGIC (8 bytes) | importlib MAGIC_NUMBER (4) | sha256 of the source (32)
    | u32 length of the JSON meta | meta {"module", "kcovdf", "config", "symbols"}
    | marshal(codes: the module's code, then its variant modules, as rewrite.compile_rewritten)

The reader is a checklist that returns None on any miss; the writer writes ``<file>.<pid>``
and renames it into place, and swallows every OSError: a cache failure never fails an import.
Nothing is written under sys.dont_write_bytecode.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import marshal
import os
import struct
import sys
from functools import cache
from hashlib import sha256
from pathlib import Path
from types import CodeType

from kcovdf import __version__
from kcovdf.instrument.config import Config
from kcovdf.symbols import Symbol

MAGIC = b"KCOVDFc\x01"
_LEN = struct.Struct("<I")
_HEAD = len(MAGIC) + len(importlib.util.MAGIC_NUMBER) + 32

log = logging.getLogger("kcovdf.instrument.cache")


@cache
def pass_key() -> str | None:
    """A hash of the pass's own source: a changed pass must not reuse code an older one wrote.

    The version number alone would not do during development, when the pass changes
    between releases. None when the source cannot be read (a zip or frozen install): then
    nothing is cached, rather than risking stale code.
    """
    from kcovdf import symbols
    from kcovdf.instrument import redact, rewrite

    h = sha256()
    try:
        for module in (rewrite, redact, symbols):
            h.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]
    except (OSError, TypeError) as e:
        log.debug("kcovdf: no rewritten-code cache: the pass's source is unreadable (%s)", e)
        return None
    return h.hexdigest()[:12]


def _key(config: Config) -> str:
    return f"{pass_key()}{config.rewrite_key()}"


def path_for(source_path: str, config: Config) -> str | None:
    """Where the rewritten code of ``source_path`` is cached; None without a cache tag or pass key."""
    try:
        pyc = importlib.util.cache_from_source(source_path)
    except (NotImplementedError, ValueError):
        return None
    if pass_key() is None:
        return None
    return f"{pyc[:-len('.pyc')]}.kcovdf-{__version__}-{_key(config)}.pyc"


def read(path: str, source_hash: bytes, module: str, config: Config
         ) -> tuple[tuple[CodeType, ...], list[Symbol]] | None:
    """The cached codes (rewrite.compile_rewritten's) and symbols when every key matches, else None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _HEAD + _LEN.size or not data.startswith(MAGIC):
        return None
    if data[len(MAGIC):len(MAGIC) + 4] != importlib.util.MAGIC_NUMBER:
        return None
    if data[len(MAGIC) + 4:_HEAD] != source_hash:
        return None
    (size,) = _LEN.unpack_from(data, _HEAD)
    start = _HEAD + _LEN.size
    try:
        meta = json.loads(data[start:start + size])
        if (meta["module"], meta["kcovdf"], meta["config"]) != (module, __version__, _key(config)):
            return None
        symbols = [Symbol.from_json(s) for s in meta["symbols"]]
        codes = marshal.loads(data[start + size:])
    except (ValueError, KeyError, TypeError, EOFError) as exc:
        log.debug("ignoring corrupt cache file %s: %s", path, exc)
        return None
    if not (isinstance(codes, tuple) and codes and all(isinstance(c, CodeType) for c in codes)):
        return None
    return codes, symbols


def write(path: str, source_hash: bytes, module: str, config: Config,
          codes: tuple[CodeType, ...], symbols: list[Symbol]) -> None:
    """Store ``codes`` and ``symbols`` atomically; never raises for a file-system problem."""
    if sys.dont_write_bytecode:
        return
    meta = json.dumps({"module": module, "kcovdf": __version__, "config": _key(config),
                       "symbols": [s.to_json() for s in symbols]}).encode()
    data = b"".join((MAGIC, importlib.util.MAGIC_NUMBER, source_hash, _LEN.pack(len(meta)), meta,
                     marshal.dumps(codes)))
    tmp = f"{path}.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot write cache file %s: %s", path, exc)
        try:
            os.unlink(tmp)
        except OSError:
            pass
