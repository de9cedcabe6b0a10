"""Loading a harness: a Python file defining ``TestOneInput(data: bytes)``, as for Atheris.

The harness's directory goes first on sys.path (as ``python harness.py`` does), the
selected modules are instrumented with the fuzzer's probes (coverage and comparisons)
besides the recorder's, and the harness runs as a module named after its file, so
``--include harness`` instruments it too. Its ``if __name__ == "__main__":`` block does not
run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from kcovdf.errors import KcovdfError
from kcovdf.instrument.config import Config
from kcovdf.instrument.hook import Hook, install
from kcovdf.runtime import core


class HarnessError(KcovdfError):
    """The harness cannot be fuzzed: missing, not importable, or without TestOneInput."""

    slug = "harness"


def probes_config(include: Sequence[str], exclude: Sequence[str] = (), every: bool = False) -> Config:
    """The selection, with the fuzzer's probes on and the recorder's records."""
    return Config(include=tuple(include), exclude=tuple(exclude), instrument_all=every,
                  coverage=True, compare=True)


def instrument(include: Sequence[str], exclude: Sequence[str] = (), every: bool = False) -> Hook:
    """Install the import hook for the fuzzer (kcovdf.fuzz.instrument_imports and the command).

    ``every``: every module imported from now on, as Atheris's ``with instrument_imports():``;
    the modules imported already stay as they are.
    """
    config = probes_config(include, exclude, every)
    if not every:
        return install(config, "kcovdf fuzz")
    core.redact(config.redact)
    hook = Hook(config, "instrument_imports()")
    sys.meta_path.insert(0, hook)
    return hook


def load(path: str) -> Callable[[bytes], object]:
    """The ``TestOneInput`` of the harness file ``path``; HarnessError saying what is wrong."""
    if not os.path.isfile(path):
        raise HarnessError(f"harness {path}: no such file")
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"harness {path}: not a Python source file")
    # through the meta path, so that --include NAME instruments the harness too
    found = importlib.util.find_spec(name) if name not in sys.modules else None
    if found is not None and found.origin and os.path.samefile(found.origin, path):
        spec = found
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException as exc:
        sys.modules.pop(name, None)
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        raise HarnessError(f"harness {path} raised {type(exc).__name__} at import:\n{detail.rstrip()}"
                           ) from None
    target = getattr(module, "TestOneInput", None)
    if target is None:
        raise HarnessError(f"harness {path} defines no TestOneInput(data); define "
                           "'def TestOneInput(data: bytes) -> None:' at its top level")
    if not callable(target):
        raise HarnessError(f"harness {path}: TestOneInput is a {type(target).__name__}, not a function")
    return target
