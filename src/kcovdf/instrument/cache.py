"""The rewritten-code cache, beside the interpreter's own bytecode cache.

A file ``__pycache__/<stem>.<cache_tag>.kcovdf-<version>-<pass key><config key>.pyc``
(placed by importlib.util.cache_from_source, so sys.pycache_prefix is honoured; the pass
key is 12 hex digits, pass_key(), the config key 16, Config.rewrite_key()) holds::

    MAGIC (8 bytes) | importlib MAGIC_NUMBER (4) | sha256 of the source (32)
    | marshal((module, kcovdf version, pass key + config key, symbols, codes))

``symbols`` are Symbol tuples, ``codes`` the module's code and then its variant modules
(rewrite.compile_rewritten). The reader is a checklist that returns None on any miss; the
writer writes ``<file>.<pid>`` and renames it into place, and swallows every OSError: a
cache failure never fails an import. Nothing is written under sys.dont_write_bytecode.
No JSON: a program that records the json module must not see kcovdf's cache calls.
"""

from __future__ import annotations

import importlib.util
import logging
import marshal
import os
import sys
from functools import cache
from hashlib import sha256
from pathlib import Path
from types import CodeType

from kcovdf import __version__
from kcovdf.instrument.config import Config
from kcovdf.symbols import Symbol

MAGIC = b"KCOVDFc\x02"
_HEAD = len(MAGIC) + len(importlib.util.MAGIC_NUMBER) + 32

#: The modules whose source decides the rewritten code and its symbols: the pass, its
#: redaction, the symbols and their pcs. Not the Switch, the hook or the install path:
#: they use the code, they do not make it.
PASS_MODULES = ("kcovdf.instrument.rewrite", "kcovdf.instrument.redact", "kcovdf.symbols")

log = logging.getLogger("kcovdf.instrument.cache")


def pass_sources() -> list[str]:
    """The files pass_key() hashes, those of PASS_MODULES."""
    import importlib

    return [importlib.import_module(name).__file__ or "" for name in PASS_MODULES]


@cache
def pass_key() -> str | None:
    """A hash of the pass's own source: a changed pass must not reuse code an older one wrote.

    The version number alone would not do during development, when the pass changes
    between releases. The pcs come from abi.fnv1a64, whose bytecode is hashed too. None
    when the source cannot be read (a zip or frozen install): then nothing is cached,
    rather than risking stale code.
    """
    from kcovdf.abi import fnv1a64

    h = sha256()
    try:
        for path in pass_sources():
            h.update(Path(path).read_bytes())
    except OSError as e:
        log.debug("kcovdf: no rewritten-code cache: the pass's source is unreadable (%s)", e)
        return None
    h.update(fnv1a64.__code__.co_code)
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
    if len(data) < _HEAD or not data.startswith(MAGIC):
        return None
    if data[len(MAGIC):len(MAGIC) + 4] != importlib.util.MAGIC_NUMBER:
        return None
    if data[len(MAGIC) + 4:_HEAD] != source_hash:
        return None
    try:
        name, version, key, raw, codes = marshal.loads(data[_HEAD:])
        if (name, version, key) != (module, __version__, _key(config)):
            return None
        symbols = [Symbol(*s) for s in raw]
    except (ValueError, TypeError, EOFError) as exc:
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
    body = marshal.dumps((module, __version__, _key(config), [tuple(s) for s in symbols], codes))
    data = b"".join((MAGIC, importlib.util.MAGIC_NUMBER, source_hash, body))
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
