"""kcovdf: KCOV-Dataflow for Python.

Records every argument at function entry and every return value at exit of
selected Python code, as kernel-format u64 records in per-task buffers.
Data path: select -> rewrite -> record -> buffer -> decode -> symbolize -> view / check / fuzz.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names and the module that defines each. Loaded on first use so that
# `import kcovdf` stays cheap inside an instrumented program.
_EXPORTS = {
    "Device": "kcovdf.runtime.device",
    "instrument_imports": "kcovdf.instrument.api",
    "instrument_func": "kcovdf.instrument.api",
    "instrument_all": "kcovdf.instrument.api",
    "KcovdfError": "kcovdf.errors",
    "ConfigError": "kcovdf.errors",
    "CorruptBufferError": "kcovdf.errors",
    "InstrumentWarning": "kcovdf.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kcovdf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
