"""Exceptions of kcovdf. Device misuse raises OSError with the kernel's errno instead.

Every error is a KcovdfError whose ``slug`` names its kind in a stable, machine-readable way.
A module or function that cannot be instrumented is not an error: the program goes on with
the plain code and an InstrumentWarning names it (the traced program behaves as without kcovdf).
"""

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


class RunError(KcovdfError):
    """``kcovdf run`` cannot start the program (no such script or module, a bad output path); nothing ran.

    ``status`` is the exit status python itself gives in the same case (2: a script it cannot open).
    """

    slug = "run"

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class InstrumentWarning(UserWarning):
    """Something was left uninstrumented or a selection matched nothing."""
