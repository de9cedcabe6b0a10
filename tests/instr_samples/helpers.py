"""Import helpers for the instrumentation tests: fresh module copies with and without the hook."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator

from kcovdf.instrument import hook, rewrite, switch
from kcovdf.instrument.config import Config

from .fake_recorder import FakeRecorder


def forget(prefix: str) -> None:
    """Drop module ``prefix`` and its submodules from sys.modules, so the next import is fresh."""
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def load(name: str, config: Config | None = None) -> types.ModuleType:
    """A fresh import of ``name``, instrumented under ``config`` (default: include it); False: plain."""
    forget(name)
    if config is False:
        return importlib.import_module(name)
    h = hook.install(config or Config(include=(name,)))
    try:
        return importlib.import_module(name)
    finally:
        hook.uninstall(h)


def recording(monkeypatch, tmp_path, keep_values: bool = True) -> Iterator[FakeRecorder]:
    """Body of the tests' ``rec`` fixture: a FakeRecorder bound to a fresh Switch; caches go to tmp_path."""
    fake = FakeRecorder(keep_values)
    monkeypatch.setattr(switch, "_switch", switch.Switch(fake))
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "pycache"))
    meta_path = list(sys.meta_path)
    before = set(sys.modules)
    try:
        yield fake
    finally:
        sys.meta_path[:] = meta_path
        for name in set(sys.modules) - before:
            if name.startswith(("instr_samples.", "kcovdf_t_")):
                del sys.modules[name]


def write_module(directory, name: str, source: str) -> str:
    """Write ``name``.py into ``directory`` (put on sys.path by the caller); returns its path."""
    path = directory / f"{name}.py"
    path.write_text(source)
    return str(path)


def instrumented(func) -> bool:
    """Whether the pass rewrote this function: its code names the reserved global, or it is patched."""
    return rewrite.RESERVED in func.__code__.co_names or switch.get().patched(func)
