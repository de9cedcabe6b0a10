"""The exporter base class, the registry of formats, and private atomic output files."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kcovdf.read.decode import Trace

#: format name -> exporter class; filled by @register in each format's module.
REGISTRY: dict[str, type[Exporter]] = {}


class Exporter(abc.ABC):
    """Writes one decoded trace in one format."""

    #: the name given to ``kcovdf export --format``
    name: str
    #: one line for ``--help``
    description: str

    @abc.abstractmethod
    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write ``trace`` to ``out`` (a file or directory, as the format says); returns the files written."""


def register(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator adding an exporter to ``REGISTRY`` under its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file created 0600 (captured values may be secrets), replacing ``path`` atomically.

    Written beside ``path`` first so that an interrupted export never leaves half a file
    under the final name.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
