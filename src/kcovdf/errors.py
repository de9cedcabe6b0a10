"""Exceptions of kcovdf. Device misuse raises OSError with the kernel's errno instead."""

from __future__ import annotations


class KcovdfError(Exception):
    """Base of every kcovdf error; ``slug`` is a stable machine-readable name."""

    slug = "kcovdf-error"


class ConfigError(KcovdfError, ValueError):
    """A wrong option, config key or selection; the message names it."""

    slug = "config"


class CorruptBufferError(KcovdfError):
    """A buffer or trace file that cannot be read as one; the message names the file and what was expected."""

    slug = "corrupt-buffer"


class InstrumentError(KcovdfError):
    """A module or function that cannot be instrumented (it is then imported unchanged)."""

    slug = "instrument"


class InstrumentWarning(UserWarning):
    """Something was left uninstrumented or a selection matched nothing."""
