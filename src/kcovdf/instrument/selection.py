"""The selection decision: does module NAME at PATH get instrumented, and which rule decided.

Rules, first match wins (docs/instrumentation.md §1):
  1. kcovdf itself            -> no
  2. the safety list          -> no (even when included explicitly)
  3. exclude (and submodules) -> no
  4. no Python source         -> no
  5. include, exact name      -> yes
  6. a test module            -> no (pytest rewrites those itself)
  7. include (submodules)     -> yes
  8. instrument_all           -> yes, except the modules kcovdf uses itself (OWN_USE)
  9. otherwise                -> no
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import NamedTuple

from kcovdf.instrument.config import Config

#: Modules that would break kcovdf if instrumented, whatever the selection says, and why.
#: Each entry covers its submodules.
SAFETY: dict[str, str] = {
    "importlib": "the import system itself; the hook runs inside it",
    "_frozen_importlib": "the import system itself (frozen bootstrap)",
    "_frozen_importlib_external": "the import system itself (frozen bootstrap)",
    "zipimport": "the import system itself",
    "encodings": "codec search runs from C during decoding, at startup and at shutdown",
    "codecs": "called from C by text decoding, at startup and at shutdown",
    "site": "startup configuration, run before any hook exists",
    "sitecustomize": "startup configuration, run before any hook exists (kcovdf run starts children with it)",
    "usercustomize": "startup configuration, run before any hook exists",
    "_sitebuiltins": "startup configuration, run before any hook exists",
    "threading": "the runtime patches Thread.start to follow threads and names tasks with it",
    "_threading_local": "thread-local state the runtime relies on",
    "weakref": "the Switch keeps its tables in it and swaps code while iterating them; its callbacks "
               "run during garbage collection, inside any record",
    "_weakrefset": "weakref's sets, used by abc and threading during garbage collection",
    "abc": "every isinstance()/issubclass() against an ABC runs it from C, inside the import system "
           "and the garbage collector too",
    "_py_abc": "every isinstance()/issubclass() against an ABC runs it from C",
    "_collections_abc": "every isinstance()/issubclass() against an ABC runs it from C",
}

#: Modules kcovdf calls itself while it imports or records, and for what. instrument_all
#: leaves them out (it would record kcovdf's own work as the program's); name one in
#: include to record it, kcovdf's own calls into it then included.
OWN_USE: dict[str, str] = {
    "io": "the hook reads source files through it",
    "_pyio": "the hook reads source files through it",
    "os": "the hook and the cache compute paths and write files through it",
    "posixpath": "the hook and the cache compute paths through it",
    "ntpath": "the hook and the cache compute paths through it",
    "genericpath": "the hook and the cache compute paths through it",
    "stat": "the cache checks files through it",
    "ast": "the pass parses and rewrites source with it",
    "tokenize": "the hook decodes source with it",
    "token": "the hook decodes source with it",
    "linecache": "tracebacks and warnings read source lines through it",
    "traceback": "warnings and logging format reports through it",
    "warnings": "the hook reports through it",
    "logging": "the hook announces instrumented modules through it",
    "json": "kcovdf run writes run.json with it",
    "re": "the redaction patterns are matched with it",
    "sre_compile": "the redaction patterns are matched with it",
    "sre_parse": "the redaction patterns are matched with it",
    "sre_constants": "the redaction patterns are matched with it",
    "fnmatch": "the redaction patterns are matched with it",
    "enum": "re's flags are enums; config and ABI constants too",
    "functools": "used by re, enum and logging on the hook's path, and to follow threads",
    "types": "used by the hook and enum on the hook's path",
    "operator": "used by collections and enum on the hook's path",
    "keyword": "used by collections on the hook's path",
    "reprlib": "used by collections on the hook's path",
    "collections": "used by the hook and logging on the hook's path",
    "copyreg": "used by pickling of the runtime's objects",
    "hashlib": "the cache keys rewritten code by hash",
    "dataclasses": "the config object is a dataclass",
    "tomllib": "the config is read with it",
    "tomli": "the config is read with it (Python 3.10)",
    "contextlib": "the hook's context managers use it",
    "typing": "annotations of the runtime",
    "string": "used by logging's formatting on the hook's path",
    "difflib": "the config reports option names through it",
    "argparse": "the config parses flags with it",
}

_TEST_PREFIX = "test_"
_TEST_SUFFIX = "_test.py"
_TEST_FILES = ("conftest.py",)


class Decision(NamedTuple):
    """The verdict on one module and the rule that produced it (logged by the hook)."""

    instrument: bool
    rule: str


def covers(prefix: str, name: str) -> bool:
    """True when ``name`` is module ``prefix`` or one of its submodules."""
    return name == prefix or name.startswith(prefix + ".")


def safety_reason(name: str) -> str | None:
    """Why ``name`` is on the safety list (every entry is a top-level name), or None."""
    return SAFETY.get(name.partition(".")[0])


def own_use(name: str) -> str | None:
    """What kcovdf uses module ``name`` for (OWN_USE; every entry is a top-level name), or None."""
    return OWN_USE.get(name.partition(".")[0])


def by_name(name: str, config: Config) -> Decision:
    """The rules that need only the name; ``instrument=True`` here is provisional (see decide)."""
    if covers("kcovdf", name):
        return Decision(False, "kcovdf itself")
    reason = safety_reason(name)
    if reason is not None:
        return Decision(False, f"safety list: {reason}")
    for prefix in config.exclude:
        if covers(prefix, name):
            return Decision(False, f"exclude {prefix!r}")
    if name in config.include:
        return Decision(True, f"include {name!r}")
    for prefix in config.include:
        if covers(prefix, name):
            return Decision(True, f"include {prefix!r} (package)")
    if config.instrument_all:
        use = own_use(name)
        if use is not None:
            return Decision(False, f"used by kcovdf itself ({use}); name it in include to record it")
        return Decision(True, "instrument_all")
    return Decision(False, "not selected")


def is_test_module(path: str) -> bool:
    """True for files pytest collects and rewrites by default: test_*.py, *_test.py, conftest.py."""
    base = os.path.basename(path)
    return base in _TEST_FILES or (base.endswith(".py") and (
        base.startswith(_TEST_PREFIX) or base.endswith(_TEST_SUFFIX)))


def decide(name: str, path: str | None, config: Config) -> Decision:
    """Whether module ``name`` loaded from ``path`` (None: unknown or no file) is instrumented."""
    verdict = by_name(name, config)
    if not verdict.instrument:
        return verdict
    if not path or not path.endswith(".py"):
        return Decision(False, "no Python source")
    if name in config.include:
        return verdict
    if is_test_module(path):
        return Decision(False, "test module (left to pytest; include it by its exact name)")
    return verdict


def importable(name: str) -> bool:
    """Whether module ``name`` is imported or can be found (a top level is looked up without importing)."""
    if name in sys.modules:
        return True
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        name = name.partition(".")[0]
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
